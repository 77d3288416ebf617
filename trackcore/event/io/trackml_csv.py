"""TrackML CSV codec: parse and format one table, write events and submissions.

Parsing uses ``np.loadtxt`` with a structured dtype (C parser, exact int64 ids); when it fails, a
slow line-by-line pass finds the exact line, column and value to report. Floats are written in
shortest round-trip form (``repr``), so read -> write -> read is bit-exact.
"""
from __future__ import annotations

import gzip as _gzip
import io
import os
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ...errors import InputError
from .. import schema
from ..event import Event
from ..table import Table
from .atomic import journal_path, write_bytes, write_files

__all__ = ["Parsed", "decode_text", "parse_csv", "format_csv", "write_event",
           "write_submission", "read_submission", "check_unique", "CSV_SUFFIXES",
           "MAX_UNCOMPRESSED_BYTES", "MAX_COMPRESSION_RATIO", "uncompressed_limit"]

CSV_SUFFIXES = (".csv", ".csv.gz")
# Only the blanks np.loadtxt strips: \s would also accept \x1c-\x1f, which int() rejects.
_INT_RE = re.compile(r"[ \t\f\v]*([+-]?)0*([0-9]+)[ \t\f\v]*\Z")
_SHOWN = 50  # characters of a bad value quoted in an error message
# np.loadtxt strips any Unicode whitespace around a number, so "1\x1c" would read as 1; a TrackML
# file only has spaces and tabs there. The ASCII ones are looked for with a fast per-character scan.
_ODD_BLANKS = "\x0b\x0c\x1c\x1d\x1e\x1f"
_ODD_BLANK_RE = re.compile("[\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")

#: Decompression limits for untrusted ``.csv.gz`` files and zip members. A TrackML event file
#: compresses 3-5x; these are generous bounds that only a decompression bomb (or a damaged file)
#: exceeds: at most 2 GiB uncompressed, and at most 1000x the compressed size beyond the first MiB.
MAX_UNCOMPRESSED_BYTES = 2 * 2**30
MAX_COMPRESSION_RATIO = 1000
_RATIO_FREE_BYTES = 2**20


def uncompressed_limit(compressed_bytes: int) -> int:
    """Most bytes that ``compressed_bytes`` of gzip/deflate data may expand to before it is refused."""
    return min(MAX_UNCOMPRESSED_BYTES, max(_RATIO_FREE_BYTES, MAX_COMPRESSION_RATIO * compressed_bytes))


def _show(value: str) -> str:
    """``value`` quoted for an error message, cut to ~50 characters (a field may be megabytes long)."""
    if len(value) <= _SHOWN:
        return repr(value)
    return f"{value[:_SHOWN]!r}... ({len(value)} characters)"


@dataclass
class Parsed:
    """A table read from one file, with a way to name a data row in error messages."""

    table: Table
    file: str
    locate: Callable[[int], str]  # 0-based data row -> "line 7" (CSV) or "row 5" (Parquet)


def decode_text(data: bytes, file: str) -> str:
    """Bytes of a ``.csv`` or ``.csv.gz`` file as text with ``\\n`` line ends."""
    if file.endswith(".gz"):
        data = _gunzip(data, file)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    return text.replace("\r\n", "\n") if "\r" in text else text


def _gunzip(data: bytes, file: str) -> bytes:
    """Decompress a gzip file, refusing one that expands beyond :func:`uncompressed_limit`.

    The trailer's size field (ISIZE, the last member's size mod 2^32) is checked first, so an
    honest bomb is refused before any decompression; a lying trailer is caught by the streaming cap.
    """
    limit = uncompressed_limit(len(data))
    bomb = (f"{file}: expands to more than {limit} bytes ({MAX_COMPRESSION_RATIO}x its {len(data)} bytes, "
            f"at most {MAX_UNCOMPRESSED_BYTES} bytes): refusing a decompression bomb")
    try:
        with _gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            if len(data) >= 18 and int.from_bytes(data[-4:], "little") > limit:
                # The trailer claims too much (a bomb, or a truncated/damaged file): measure the real
                # size in 1 MiB pieces, keeping none, before allocating anything.
                total = 0
                while chunk := fh.read(_RATIO_FREE_BYTES):
                    total += len(chunk)
                    if total > limit:
                        raise InputError(bomb)
                fh.seek(0)
            out = fh.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{file}: not a valid gzip file ({exc})") from None
    if len(out) > limit:  # a trailer that lied (it only holds the last member's size mod 2^32)
        raise InputError(bomb)
    return out


def _check_blanks(body: str, names: list[str], dtypes: dict[str, np.dtype], file: str) -> None:
    """Refuse a typed value surrounded by a control or Unicode blank that np.loadtxt would strip."""
    if body.isascii() and not any(c in body for c in _ODD_BLANKS):
        return  # the usual case: a few memchr scans, no regex over the whole body
    for m in _ODD_BLANK_RE.finditer(body):
        start = body.rfind("\n", 0, m.start()) + 1
        col = body.count(",", start, m.start())
        name = names[col] if col < len(names) else None
        if name in dtypes:  # extra text columns may hold any text
            end = body.find("\n", m.start())
            value = body[start:end if end >= 0 else len(body)].split(",")[col]
            raise InputError(f"{file}, line {body.count(chr(10), 0, start) + 2}, column {name!r}: "
                             f"{_show(value)} holds the character {m.group()!r}; only spaces and tabs may "
                             "surround a number")


def _header(text: str, file: str) -> tuple[list[str], str]:
    cut = text.find("\n")
    head, body = (text, "") if cut < 0 else (text[:cut], text[cut + 1:])
    if not head.strip():
        raise InputError(f"{file}: empty header (line 1); expected comma-separated column names")
    names = [n.strip().strip('"') for n in head.split(",")]
    seen: set[str] = set()
    for i, n in enumerate(names):
        if not n:
            raise InputError(f"{file}: header column {i + 1} has no name (line 1: {_show(head)})")
        if n in seen:
            raise InputError(f"{file}: header names column {_show(n)} twice")
        seen.add(n)
    return names, body


def _locator(body: str) -> Callable[[int], str]:
    """Map a data row to its file line; np.loadtxt skips empty lines, so count them."""
    if "\n\n" not in body and not body.startswith("\n"):
        return lambda row: f"line {row + 2}"

    def locate(row: int) -> str:
        k = -1
        for lineno, line in enumerate(body.split("\n"), start=2):
            if line:
                k += 1
                if k == row:
                    return f"line {lineno}"
        return f"data row {row}"

    return locate


def _diagnose(body: str, names: list[str], dtypes: dict[str, np.dtype], file: str) -> None:
    """Find the first bad line the slow way and raise an InputError describing it."""
    for lineno, line in enumerate(body.split("\n"), start=2):
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != len(names):
            what = "truncated row" if len(fields) < len(names) else "too many values"
            raise InputError(f"{file}, line {lineno}: {what}: expected {len(names)} values "
                             f"({','.join(names)}), found {len(fields)}")
        for name, value in zip(names, fields):
            dt = dtypes.get(name)
            if dt is None:
                continue
            where = f"{file}, line {lineno}, column {name!r}"
            if not value.strip():
                raise InputError(f"{where}: empty value")
            if dt.kind in "iu":
                m = _INT_RE.match(value)
                if not m:
                    raise InputError(f"{where}: {_show(value)} is not an integer ({dt.name})")
                info = np.iinfo(dt)
                # Count digits before int(): Python refuses to convert > 4300 digits (ValueError).
                if len(m.group(2)) > len(str(info.max)) or not info.min <= int(m.group(1) + m.group(2)) <= info.max:
                    raise InputError(f"{where}: {_show(value.strip())} does not fit in {dt.name}")
            else:
                try:
                    if "_" in value:  # Python accepts 1_000, np.loadtxt does not
                        raise ValueError
                    float(value)
                except ValueError:
                    raise InputError(f"{where}: {_show(value)} is not a number") from None


def _infer(col: np.ndarray) -> np.ndarray:
    """Type an unknown column read as text: int64, else float64, else keep the strings."""
    for dt in (np.int64, np.float64):
        try:
            return col.astype(dt)
        except (ValueError, OverflowError):
            pass
    return col


def _parse_arrow(body: str, names: list[str], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray] | None:
    """The columns (all typed) parsed by pyarrow's multi-threaded CSV reader (337k cells: 33 ms against
    np.loadtxt's 100 ms on 2 cores); None where it refuses the text (a bad value, a space before a
    number, a short row...): the np.loadtxt path then reads it, or names what is wrong. Quotes and
    null markers are turned off, so it accepts no value np.loadtxt would refuse."""
    if "0x" in body or "0X" in body:  # pyarrow reads hexadecimal integers; np.loadtxt refuses them
        return None
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(body.encode()),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pacsv.ParseOptions(quote_char=False, double_quote=False, escape_char=False,
                                             newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.from_numpy_dtype(dt) for n, dt in dtypes.items()},
                                                 null_values=[], strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False))
    except (pa.ArrowException, ValueError):
        return None
    return {n: np.ascontiguousarray(table.column(n).to_numpy(), dtype=dtypes[n]) for n in names}


def parse_csv(data: bytes | str, file: str, columns: Mapping[str, type],
              optional: Sequence[str] = ()) -> Parsed:
    """Parse a TrackML CSV table.

    ``columns`` maps required column names to dtypes (``optional`` ones may be absent); other
    columns in the file are kept, typed int64, float64 or str. Raises :class:`InputError` naming
    ``file``, the line and the column on any malformed content.
    """
    text = data if isinstance(data, str) else decode_text(data, file)
    names, body = _header(text, file)
    for name in columns:
        if name not in names and name not in optional:
            raise InputError(f"{file}: missing column {name!r} (header: {_show(','.join(names))})")
    dtypes = {n: np.dtype(columns[n]) for n in names if n in columns}
    known = [i for i, n in enumerate(names) if n in dtypes]
    extra = [i for i, n in enumerate(names) if n not in dtypes]
    out: dict[str, np.ndarray] = {}
    if not body.strip():
        out = {n: np.empty(0, dtype=dtypes.get(n, np.float64)) for n in names}
        return Parsed(Table(out, name=file), file, _locator(body))
    _check_blanks(body, names, dtypes, file)
    fast = _parse_arrow(body, names, dtypes) if not extra else None
    if fast is not None:
        return Parsed(Table(fast, name=file), file, _locator(body))
    struct = np.dtype([(names[i], dtypes[names[i]]) for i in known])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "input contained no data" must not pass silently
            rows = np.loadtxt(io.StringIO(body), delimiter=",", dtype=struct, comments=None,
                              usecols=known if extra else None, ndmin=1)
            texts = (np.loadtxt(io.StringIO(body), delimiter=",", dtype=str, comments=None,
                                usecols=extra, ndmin=2) if extra else None)
    except (ValueError, UserWarning) as exc:
        _diagnose(body, names, dtypes, file)
        raise InputError(f"{file}: cannot parse ({str(exc)[:200]})") from None
    # With usecols, np.loadtxt does not check row widths; a comma count does, cheaply.
    if body.count(",") != len(rows) * (len(names) - 1):
        _diagnose(body, names, dtypes, file)
        raise InputError(f"{file}: rows do not all have {len(names)} values")
    for i, name in enumerate(names):
        if name in dtypes:
            out[name] = np.ascontiguousarray(rows[name])
        else:
            out[name] = _infer(texts[:, extra.index(i)])
    return Parsed(Table(out, name=file), file, _locator(body))


def _format_column(col: np.ndarray, name: str, float_format: str | None) -> list[str]:
    if col.dtype.kind == "f":
        values = col.astype(np.float64).tolist()
        if float_format is None:
            return list(map(repr, values))  # shortest string that reads back to the same double
        return [float_format % v for v in values]
    if col.dtype.kind in "iub":
        return list(map(str, col.astype(np.int64).tolist() if col.dtype.kind == "b" else col.tolist()))
    values = [str(v) for v in col.tolist()]
    for row, v in enumerate(values):
        if any(c in v for c in ',"\n\r'):
            raise InputError(f"column {name!r} row {row}: value {v!r} holds a comma, quote or newline")
    return values


def format_csv(table: Table, float_format: str | None = None) -> bytes:
    """A table as TrackML CSV bytes (header line, then one line per row)."""
    if float_format is not None:
        try:
            float_format % 1.5
        except (TypeError, ValueError) as exc:
            raise InputError(f"float_format {float_format!r} is not a %-format for one float ({exc})") from None
    header = (",".join(table.columns) + "\n").encode("utf-8")
    fast = _format_rows_compiled(table) if float_format is None else None
    if fast is not None:
        return header + fast
    cols = [_format_column(table[c], c, float_format) for c in table.columns]
    return header + "".join(",".join(row) + "\n" for row in zip(*cols)).encode("utf-8")


def _format_rows_compiled(table: Table) -> bytes | None:
    """The rows as the Python formatting makes them (floats as repr, integers and booleans in decimal),
    by the compiled core: ~6x faster on floats. None without the core or for a column of another kind
    (text, or unsigned integers beyond int64), which the Python formatting then writes."""
    from ..._corelib import core, core_available

    if not core_available() or not table.columns:
        return None
    cols = []
    for name in table.columns:
        col = np.asarray(table[name])
        if col.ndim != 1:
            return None
        if col.dtype.kind == "f":
            cols.append(np.ascontiguousarray(col, np.float64))
        elif col.dtype.kind in "ib" or (col.dtype.kind == "u" and (len(col) == 0 or col.max() <= np.iinfo(np.int64).max)):
            cols.append(np.ascontiguousarray(col, np.int64))
        else:
            return None
    return core().format_csv_rows(cols)


def _gz(data: bytes) -> bytes:
    return _gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same bytes every run


def write_event(event: Event, directory: str | os.PathLike, *, gzip: bool = False,
                float_format: str | None = None) -> list[Path]:
    """Write ``event<9 digits>-<part>.csv[.gz]`` for every part of ``event`` that is not ``None``.

    Floats are written in shortest round-trip form unless ``float_format`` (a %-format such as
    ``"%.6g"``, lossy) is given. All files are written atomically as a group. Files of this event
    in the other CSV flavour (``.csv`` vs ``.csv.gz``) or for parts the event lacks are removed,
    so that reading the folder gives back exactly this event. The files are committed through a
    journal (``.<event>.commit``, see :mod:`.atomic`): readers see the old event or the new one,
    never a mix, even if the writer is killed. Returns the written paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if gzip else ".csv"
    files: dict[Path, bytes] = {}
    for part in schema.SCHEMAS:
        table = getattr(event, part)
        if table is None:
            continue
        try:
            files[directory / f"{event.name}-{part}{suffix}"] = format_csv(table, float_format)
        except InputError as exc:
            raise InputError(f"{event.name} {part}: {exc}") from None
    if gzip:  # zlib lets go of the GIL: the parts compress side by side, to the same bytes
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(files) or 1) as pool:
            files = dict(zip(files, pool.map(_gz, files.values())))
    stale = [directory / f"{event.name}-{part}{sfx}" for part in schema.SCHEMAS for sfx in CSV_SUFFIXES]
    # One journaled group: a reader never sees new hits beside old cells, even after a crash.
    return write_files(files, remove=[p for p in stale if p not in files],  # absent ones are skipped
                       journal=journal_path(directory, event.name))


def write_submission(path: str | os.PathLike, hit_id, track_id) -> Path:
    """Write a TrackML submission (``hit_id,track_id``; ``.csv`` or ``.csv.gz``) atomically.

    Every hit_id may appear once; both arrays must be 1-D integer arrays of equal length.
    """
    path = Path(path)
    cols = {}
    for name, values in (("hit_id", hit_id), ("track_id", track_id)):
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise InputError(f"submission {path.name}: {name} must be 1-D, got shape {arr.shape}")
        if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and len(arr) == 0):
            raise InputError(f"submission {path.name}: {name} must be integer, got {arr.dtype}")
        cols[name] = arr.astype(np.int64)
    if len(cols["hit_id"]) != len(cols["track_id"]):
        raise InputError(f"submission {path.name}: {len(cols['hit_id'])} hit_ids but "
                         f"{len(cols['track_id'])} track_ids")
    check_unique(cols["hit_id"], f"submission {path.name}", lambda r: f"row {r}")
    data = format_csv(Table(cols, name="submission"))
    write_bytes(path, _gz(data) if path.name.endswith(".gz") else data)
    return path


def read_submission(path: str | os.PathLike) -> Table:
    """Read a submission CSV (``hit_id,track_id`` and optionally other columns such as event_id)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read submission {path}: {exc.strerror}") from None
    parsed = parse_csv(data, path.name, schema.SUBMISSION)
    check_unique(parsed.table["hit_id"], path.name, parsed.locate)
    return Table(parsed.table.to_dict(), name="submission")


def check_unique(ids: np.ndarray, file: str, locate: Callable[[int], str],
                         column: str = "hit_id") -> None:
    if len(ids) < 2:
        return
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if len(dup):
        first, second = int(order[dup[0]]), int(order[dup[0] + 1])
        raise InputError(f"{file}: duplicate {column} {int(s[dup[0]])} at {locate(first)} "
                         f"and {locate(second)} ({len(dup)} duplicates in all)")
