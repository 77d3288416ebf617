"""Atomic file writes: write to a temporary file in the target folder, then ``os.replace``.

A reader never sees a half-written file: either the old file (or none) or the complete new one.
On any failure the temporary files are removed and the targets are left untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

__all__ = ["atomic_open", "write_bytes", "write_files"]


def _temp_for(path: Path) -> tuple[int, Path]:
    # Same folder as the target: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes 0600 files; give the result the mode an ordinary open() would.
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing; the file appears only if the ``with`` block succeeds."""
    path = Path(path)
    fd, tmp = _temp_for(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(data)


def write_files(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files as a group: all temporaries first, then all renames.

    If writing any temporary fails, none of the targets is touched. Returns the target paths.
    """
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            fd, tmp = _temp_for(path)
            written.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        for tmp, _ in written:
            _discard(tmp)
        raise
    for tmp, path in written:
        os.replace(tmp, path)
    return [path for _, path in written]
