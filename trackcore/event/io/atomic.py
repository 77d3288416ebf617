"""Atomic file writes: write to a temporary file in the target folder, then ``os.replace``.

A reader never sees a half-written file: either the old file (or none) or the complete new one.
On any failure before the commit the temporary files are removed and the targets are left untouched.

A group of files (one event's hits, cells, ...) cannot be replaced in one system call: renames are
per file, so a crash between two of them would leave new hits beside old cells. With ``journal=``,
:func:`write_files` therefore commits the group through a small journal file:

1. write every new file as a temporary ``.<name>.<random>.tmp`` beside its target (fsynced);
2. commit: write the journal ``.<event>.commit`` atomically; it lists (temporary, target) pairs
   and the targets to remove. From here on the group counts as written;
3. remove the listed stale targets, rename every temporary over its target, delete the journal.

A reader that honours journals (:func:`pending_group`; ``read_event`` does) sees the committed
group as soon as the journal exists: a target whose temporary is still there is read from the
temporary, a removed target is hidden. A journal with no temporary left is fully applied (removals
come first) and means nothing. The next journaled write of the same group first finishes an
interrupted one (:func:`recover`). One writer per group at a time.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Mapping

from ...errors import InputError

__all__ = ["atomic_open", "write_bytes", "write_files", "journal_path", "pending_group", "PendingGroup",
           "recover"]

_JOURNAL_VERSION = 1
_MAX_JOURNAL_BYTES = 1 << 20  # a journal names a handful of files; a bigger one is not ours


def _temp_for(path: Path) -> tuple[int, Path]:
    # Same folder as the target: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    return fd, Path(tmp)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable (no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def journal_path(directory: str | os.PathLike, group: str) -> Path:
    """The journal of group ``group`` (an event name such as ``event000000001``) in ``directory``."""
    return Path(directory) / f".{group}.commit"


@dataclass
class PendingGroup:
    """What a committed but unfinished group means for a reader (file names in the journal's folder)."""

    replace: dict[str, str]  # target -> temporary that holds its new content (still to be renamed)
    removed: set[str]        # targets that are no longer part of the group


def _plain_name(name: object, journal: Path) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InputError(f"{journal}: journal entry {name!r} is not a file name in {journal.parent}")
    return name


def _read_journal(journal: Path) -> tuple[list[tuple[str, str]], list[str]] | None:
    """(temporary, target) pairs and removed targets of ``journal``; None if it does not exist."""
    try:
        with open(journal, "rb") as fh:
            raw = fh.read(_MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read write journal {journal}: {exc.strerror}") from None
    try:
        if len(raw) > _MAX_JOURNAL_BYTES:
            raise ValueError("too large")
        doc = json.loads(raw.decode("utf-8"))
        if doc.get("version") != _JOURNAL_VERSION:
            raise ValueError(f"version {doc.get('version')!r}")
        pairs = [(_plain_name(t, journal), _plain_name(p, journal)) for t, p in doc["replace"]]
        removed = [_plain_name(p, journal) for p in doc["remove"]]
    except InputError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{journal}: not a trackcore write journal ({exc}); an interrupted write left it "
                         "damaged, or it is not ours: remove it") from None
    return pairs, removed


def pending_group(journal: str | os.PathLike) -> PendingGroup | None:
    """The reader's view of an unfinished group, or None if ``journal`` is absent or fully applied."""
    journal = Path(journal)
    entries = _read_journal(journal)
    if entries is None:
        return None
    pairs, removed = entries
    replace = {target: tmp for tmp, target in pairs if (journal.parent / tmp).is_file()}
    if not replace:  # every rename done, and removals come first: the folder is the group
        return None
    return PendingGroup(replace, set(removed))


def _apply(directory: Path, pairs: Iterable[tuple[str, str]], removed: Iterable[str]) -> None:
    # Removals before renames: once no temporary is left, the group is complete (see pending_group).
    for name in removed:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    for tmp, target in pairs:
        with contextlib.suppress(FileNotFoundError):  # renamed already by an earlier attempt
            os.replace(directory / tmp, directory / target)
    _fsync_dir(directory)


def recover(journal: str | os.PathLike) -> None:
    """Finish the group that ``journal`` commits (renames and removals), then delete the journal."""
    journal = Path(journal)
    entries = _read_journal(journal)
    if entries is not None:
        _apply(journal.parent, *entries)
        journal.unlink()
        _fsync_dir(journal.parent)


def write_files(files: Mapping[str | os.PathLike, bytes], *, remove: Iterable[str | os.PathLike] = (),
                journal: str | os.PathLike | None = None) -> list[Path]:
    """Write several files as a group: all temporaries first, then all renames, in ``files`` order.

    If writing any temporary fails, none of the targets is touched. Without ``journal`` each file
    is replaced atomically, but a crash between two renames leaves some old and some new files.
    With ``journal`` (see the module docstring; every path must be in the journal's folder) the
    group, including the removal of ``remove`` paths, is all-or-nothing for journal-aware readers.
    Returns the target paths.
    """
    targets = [Path(p) for p in files]
    removed = [Path(p) for p in remove]
    if journal is not None:
        journal = Path(journal)
        outside = [p for p in targets + removed if p.parent != journal.parent]
        if outside:
            raise InputError(f"write_files: {outside[0]} is not in the journal's folder {journal.parent}")
        recover(journal)  # an earlier interrupted write of this group is finished first
    written: list[tuple[Path, Path]] = []
    journal_written = False
    try:
        for path, data in zip(targets, files.values()):
            fd, tmp = _temp_for(path)
            written.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if journal is not None:  # the commit point
            doc = {"version": _JOURNAL_VERSION, "replace": [[tmp.name, path.name] for tmp, path in written],
                   "remove": [p.name for p in removed]}
            write_bytes(journal, json.dumps(doc).encode("utf-8"))
            journal_written = True
            _fsync_dir(journal.parent)
    except BaseException:
        if journal_written:  # interrupted right after the commit: withdraw it before its temporaries
            _discard(journal)
        for tmp, _ in written:
            _discard(tmp)
        raise
    if journal is None:
        for tmp, path in written:
            os.replace(tmp, path)
    else:
        # An interruption from here on leaves the journal: readers see the new group, and the next
        # write of the group finishes it.
        _apply(journal.parent, [(tmp.name, path.name) for tmp, path in written], [p.name for p in removed])
        journal.unlink()
        _fsync_dir(journal.parent)
    return targets
