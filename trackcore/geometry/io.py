"""Reading and writing detector descriptions (TrackML ``detectors.csv``), and numeric CSV helpers.

``read_detector`` accepts ``detectors.csv`` or ``detectors.csv.gz``, with or without the extra
leading unnamed index column that pandas adds on re-save. Every error names the file and the
column and/or line at fault. Writing is atomic (temporary file + ``os.replace``) and exact
(floats are written with Python's shortest round-trip representation).
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import GeometryError, InputError
from .detector import MODULE_COLUMNS, Detector

__all__ = ["read_detector", "write_detector", "load_detector", "BUILTIN_DETECTORS",
           "read_csv_columns", "write_csv_columns"]

#: Names that :func:`load_detector` resolves to detectors built in code.
BUILTIN_DETECTORS = ("trackml", "generic")
_ID_COLUMNS = ("volume_id", "layer_id", "module_id")
# Detector packs ids into one int64 key: volume << 40 | layer << 24 | module.
_ID_LIMITS = {"volume_id": 1 << 23, "layer_id": 1 << 16, "module_id": 1 << 24}


# -- generic numeric CSV ---------------------------------------------------------------
def _read_text(path: Path, error: type[InputError]) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
                return fh.read()
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:  # zlib.error: damaged deflate data
        raise error(f"{path}: cannot read ({exc})") from None


def _locate_bad_cell(path: Path, lines: list[str], names: Sequence[str], first_line: int,
                     error: type[InputError]) -> None:
    """Slow scan run only after the fast parser failed: raise naming the line and column."""
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        cells = line.split(",")
        lineno = first_line + k
        if len(cells) != len(names):
            raise error(f"{path}: line {lineno} has {len(cells)} fields, the header has {len(names)}")
        for name, cell in zip(names, cells):
            try:
                float(cell)
            except ValueError:
                raise error(f"{path}: line {lineno}, column {name!r}: {cell.strip()!r} is not a number") from None
    raise error(f"{path}: cannot parse the numeric table")  # pragma: no cover - loadtxt and float() disagree


def read_csv_columns(path: str | os.PathLike, columns: Sequence[str], *, what: str = "table",
                     int_columns: Sequence[str] = (), error: type[InputError] = InputError
                     ) -> dict[str, np.ndarray]:
    """Read a headed numeric CSV (optionally ``.gz``) into float64/int64 columns.

    The header must hold exactly ``columns`` (any order), optionally after a leading unnamed
    index column (``""`` or ``"Unnamed: 0"``), which is dropped. Values must be finite numbers;
    ``int_columns`` must hold whole numbers. Errors name the file, line (1-based, the header is
    line 1) and column.
    """
    path = Path(path)
    text = _read_text(path, error)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise error(f"{path}: empty file, expected a header with the {what} columns {list(columns)}")
    header = [h.strip().strip('"') for h in lines[0].split(",")]
    skip_index = header[0] in ("", "Unnamed: 0")
    names = header[1:] if skip_index else header
    missing = [c for c in columns if c not in names]
    unknown = [c for c in names if c not in columns]
    if missing or unknown or len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise error(f"{path}: wrong {what} columns: missing {missing}, unknown {unknown}"
                    + (f", duplicated {dup}" if dup else "") + f"; expected {list(columns)}")
    body = lines[1:]
    if not any(line.strip() for line in body):
        raise error(f"{path}: the {what} has a header but no rows")
    try:
        data = np.loadtxt(io.StringIO("\n".join(body)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError:
        _locate_bad_cell(path, body, header, 2, error)
    if data.shape[1] != len(header):
        raise error(f"{path}: rows have {data.shape[1]} fields, the header has {len(header)}")
    if skip_index:
        data = data[:, 1:]
    # Line numbers of data rows (loadtxt skips blank lines, so map them back).
    row_lines = np.flatnonzero([bool(line.strip()) for line in body]) + 2
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        col = data[:, j]
        bad = ~np.isfinite(col)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise error(f"{path}: line {row_lines[i]}, column {name!r}: value {col[i]} is not finite "
                        f"({int(bad.sum())} such rows)")
        if name in int_columns:
            frac = col != np.round(col)
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                raise error(f"{path}: line {row_lines[i]}, column {name!r}: {col[i]} is not a whole number")
            out[name] = col.astype(np.int64)
        else:
            out[name] = col
    out["_line"] = row_lines
    return {k: out[k] for k in (*columns, "_line")}


def _format_column(values: np.ndarray, integer: bool) -> list[str]:
    if integer:
        return [str(v) for v in np.asarray(values, np.int64).tolist()]
    # repr of a Python float is the shortest string that reads back to the same double.
    return [repr(v) for v in np.asarray(values, np.float64).tolist()]


def write_csv_columns(path: str | os.PathLike, columns: Mapping[str, np.ndarray],
                      int_columns: Sequence[str] = ()) -> Path:
    """Write columns as a headed CSV, gzip-compressed when ``path`` ends in ``.gz``; atomic."""
    path = Path(path)
    names = list(columns)
    formatted = [_format_column(columns[k], k in int_columns) for k in names]
    text = ",".join(names) + "\n" + "".join(",".join(row) + "\n" for row in zip(*formatted))
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)  # mtime=0: identical content gives identical bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives beside the target: os.replace is atomic only within a filesystem.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


# -- detectors -----------------------------------------------------------------------------
def _detector_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name or "detector"


def read_detector(path: str | os.PathLike) -> Detector:
    """Read a TrackML ``detectors.csv`` / ``.csv.gz`` into a :class:`Detector`.

    Lengths are in mm. Raises :class:`GeometryError` naming the file and the line/column for a
    wrong column layout, a non-numeric or non-finite value, non-integer or out-of-range ids, a
    duplicated (volume, layer, module), or a rotation that is not a proper rotation.
    """
    path = Path(path)
    cols = read_csv_columns(path, MODULE_COLUMNS, what="detector", int_columns=_ID_COLUMNS,
                            error=GeometryError)
    lines = cols.pop("_line")
    for k, limit in _ID_LIMITS.items():
        bad = (cols[k] < 0) | (cols[k] >= limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise GeometryError(f"{path}: line {lines[i]}, column {k!r}: {cols[k][i]} is outside [0, {limit})")
    key = (cols["volume_id"] << 40) | (cols["layer_id"] << 24) | cols["module_id"]
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise GeometryError(
            f"{path}: duplicate module (volume {cols['volume_id'][a]}, layer {cols['layer_id'][a]}, "
            f"module {cols['module_id'][a]}) on lines {lines[a]} and {lines[b]}")
    # Built under the file's name so Detector's own checks (e.g. rotations) name the file.
    det = Detector.from_columns(cols, name=str(path))
    det.name = _detector_name(path)
    return det


def write_detector(detector: Detector, path: str | os.PathLike) -> Path:
    """Write ``detector`` as TrackML ``detectors.csv`` (gzip when ``path`` ends in ``.gz``).

    The file has the standard header (no index column); values read back bit-for-bit
    identical. The write is atomic: a reader sees the old file or the complete new one.
    """
    return write_csv_columns(path, detector.to_columns(), int_columns=_ID_COLUMNS)


def load_detector(spec: "str | os.PathLike | Detector") -> Detector:
    """A detector from a path to ``detectors.csv[.gz]``, or a built-in name.

    Built-in names: ``"trackml"`` (:func:`trackml_like_detector`, the TrackML layout built in
    code) and ``"generic"`` (:func:`generic_detector`, small and fast). A :class:`Detector` is
    returned unchanged.
    """
    if isinstance(spec, Detector):
        return spec
    if isinstance(spec, str) and spec.strip().lower() in BUILTIN_DETECTORS:
        from .builders import generic_detector, trackml_like_detector

        return trackml_like_detector() if spec.strip().lower() == "trackml" else generic_detector()
    path = Path(spec)
    if not path.exists():
        raise GeometryError(f"{path}: no such detector file, and not a built-in detector "
                            f"(built-in: {', '.join(BUILTIN_DETECTORS)})")
    return read_detector(path)
