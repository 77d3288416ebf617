"""Event readers and writers: TrackML CSV (``.csv``/``.csv.gz``), Parquet, dataset folders and zips.

Files are named ``event<digits>-<part>.<suffix>`` with part in hits, cells, particles, truth and
suffix ``.csv``, ``.csv.gz`` or ``.parquet``. :func:`read_event` accepts

- an event prefix ``.../event000000001`` (the files beside it, in whichever format is there),
- any one of the event's files (``.../event000000001-hits.csv.gz``; its format is used),
- a dataset folder or a ``.zip`` (events possibly in a subfolder), with ``event=`` naming the
  event (``"event000000001"`` or its number ``1``); it may be left out if there is only one.

Writers commit an event's files as one group through a journal (see :mod:`.atomic`); reading a
folder honours it, and restarts a read during which a writer committed, so a reader gets the old
event or the new one, never a mix of their files. Zip members are read in memory, never extracted, and an archive holding an absolute or ``..``
member name is refused, as is a member whose declared size exceeds the decompression limits of
:func:`trackcore.event.io.trackml_csv.uncompressed_limit` (2 GiB, 1000x its compressed size). Units: mm (positions), GeV (momenta), elementary charge (q).
"""
from __future__ import annotations

import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np

from ...errors import InputError
from .. import schema
from ..event import Event
from .atomic import journal_path, pending_group
from .parquet import parse_parquet, read_parquet, write_parquet
from .trackml_csv import (CSV_SUFFIXES, Parsed, check_unique, parse_csv, read_submission,
                          uncompressed_limit, write_event, write_submission)

__all__ = ["read_event", "write_event", "list_events", "iter_events", "read_parquet",
           "write_parquet", "read_submission", "write_submission", "PARTS"]

PARTS = tuple(schema.SCHEMAS)  # hits, cells, particles, truth
_FORMATS = {"csv": CSV_SUFFIXES, "parquet": (".parquet",)}
_FILE_RE = re.compile(r"^(event(\d+))-(hits|cells|particles|truth)(\.csv|\.csv\.gz|\.parquet)$")
_PREFIX_RE = re.compile(r"^event(\d+)$")
_READ_ATTEMPTS = 5  # reads of an event restarted because a writer committed meanwhile


# -- sources: a folder or a zip archive ------------------------------------------------------
def _ident(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _candidates(event: str) -> list[str]:
    """Every file name an event may have, in part then format order."""
    return [f"{event}-{p}{s}" for p in PARTS for f in _FORMATS.values() for s in f]


class _Folder:
    """Event files in a folder, as committed: an unfinished journaled write (see ``atomic``) is
    seen complete, its new files read from their temporaries and its removed files hidden."""

    def __init__(self, root: Path, only: str | None = None):
        self.root, self.label, self.only = root, str(root), only
        self.refresh()

    def event_stamp(self, event: str) -> tuple:
        """Identity of an event's journal and files: any commit renames a file over at least one
        of them (a new inode), so an unchanged stamp means no write happened in between."""
        return tuple(_ident(self.root / n) for n in [journal_path(self.root, event).name, *_candidates(event)])

    def refresh(self) -> None:
        """(Re)build the view; for one event, retried until no write commits while it is built."""
        for _ in range(_READ_ATTEMPTS):
            before = self.event_stamp(self.only) if self.only else None
            self._build()
            if self.only is None or self.event_stamp(self.only) == before:
                self.stamp = before
                return
        raise InputError(f"{self.root}: {self.only} was rewritten during each of {_READ_ATTEMPTS} attempts to read it")

    def _build(self) -> None:
        root, only = self.root, self.only
        if only is None:  # a whole dataset folder: flat, like the TrackML downloads
            listing = sorted(p.name for p in root.iterdir() if p.is_file())
            journals = [n for n in listing if n.startswith(".") and n.endswith(".commit")]
        else:  # one event: probe its dozen possible names instead of listing a big folder
            listing = [n for n in _candidates(only) if (root / n).is_file()]
            journals = [journal_path(root, only).name]
        self.redirect: dict[str, str] = {}  # member -> temporary holding its committed content
        hidden: set[str] = set()
        for name in journals:
            group = pending_group(root / name)
            if group is not None:
                self.redirect.update(group.replace)
                hidden |= group.removed
        names = (set(listing) - hidden) | set(self.redirect)
        self.names = sorted(names) if only is None else [n for n in _candidates(only) if n in names]

    def read(self, member: str) -> bytes:
        tmp = self.redirect.get(member)
        if tmp is not None:
            try:
                return (self.root / tmp).read_bytes()
            except FileNotFoundError:
                pass  # the writer renamed it over the member meanwhile: same content
        try:
            return (self.root / member).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {self.root / member}: {exc.strerror}") from None

    def display(self, member: str) -> str:
        return member

    def close(self) -> None:
        pass


# What zipfile raises for archives it cannot read: damaged structures, a newer zip version or an
# unknown compression method (NotImplementedError), an encrypted member (RuntimeError), a member
# name flagged UTF-8 that is not (UnicodeDecodeError), a damaged deflate stream (zlib.error).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, UnicodeDecodeError,
               zlib.error)


class _Zip:
    def __init__(self, path: Path):
        self.label = str(path)
        try:
            self.zf = zipfile.ZipFile(path)
        except _ZIP_ERRORS as exc:
            raise InputError(f"{path}: not a readable zip archive ({type(exc).__name__}: {str(exc)[:200]})") from None
        for name in self.zf.namelist():
            if not _safe_member(name):
                self.zf.close()
                raise InputError(f"{path}: member {name!r} has an unsafe path (absolute or with '..'); "
                                 "refusing to read this archive")
        self.names = [n for n in self.zf.namelist() if not n.endswith("/")]

    def read(self, member: str) -> bytes:
        info = self.zf.getinfo(member)
        # Refuse a bomb from the central directory's sizes, before decompressing anything; zipfile
        # then stops at the declared size, so a member that lies about it cannot expand further.
        limit = uncompressed_limit(info.compress_size)
        if info.file_size > limit:
            raise InputError(f"{self.label}: member {member!r} declares {info.file_size} bytes uncompressed from "
                             f"{info.compress_size} (limit {limit} bytes): refusing a decompression bomb")
        try:
            with self.zf.open(info) as fh:
                return fh.read(limit + 1)
        except _ZIP_ERRORS as exc:
            raise InputError(f"{self.label}: cannot read member {member!r} "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None

    def display(self, member: str) -> str:
        return f"{Path(self.label).name}:{member}"

    def close(self) -> None:
        self.zf.close()


def _safe_member(name: str) -> bool:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return False
    return ".." not in PurePosixPath(norm).parts


@dataclass
class _EventFiles:
    name: str
    event_id: int
    folder: str
    files: dict = field(default_factory=dict)  # part -> {suffix: member}


def _index(src) -> dict[int, list[_EventFiles]]:
    """Events of a source by id; several entries for one id mean it is ambiguous."""
    found: dict[tuple[str, str], _EventFiles] = {}
    for member in src.names:
        folder, _, base = member.replace("\\", "/").rpartition("/")
        m = _FILE_RE.match(base)
        if m:
            key = (folder, m.group(1))
            ev = found.setdefault(key, _EventFiles(m.group(1), int(m.group(2)), folder))
            ev.files.setdefault(m.group(3), {})[m.group(4)] = member
    by_id: dict[int, list[_EventFiles]] = {}
    for ev in found.values():
        by_id.setdefault(ev.event_id, []).append(ev)
    return by_id


def _open(path: Path):
    if path.is_dir():
        return _Folder(path)
    if path.suffix.lower() == ".zip" and path.is_file():
        return _Zip(path)
    raise InputError(f"{path}: not a dataset folder or a .zip archive")


def _select(src, by_id: dict[int, list[_EventFiles]], event: str | int | None) -> _EventFiles:
    if event is None:
        with_hits = sorted(i for i, evs in by_id.items() if any("hits" in e.files for e in evs))
        if len(with_hits) != 1:
            names = [by_id[i][0].name for i in with_hits[:5]]
            raise InputError(f"{src.label}: holds {len(with_hits)} events {names}; pass event=<name or number>")
        event_id = with_hits[0]
    elif isinstance(event, (int, np.integer)):
        event_id = int(event)
    else:
        m = _PREFIX_RE.match(str(event))
        if not m:
            raise InputError(f"event={event!r}: expected a name like 'event000000001' or a number")
        event_id = int(m.group(1))
    evs = by_id.get(event_id)
    if not evs:
        raise InputError(f"{src.label}: no files of event {event_id} (event{event_id:09d}-hits.*)")
    if len(evs) > 1:
        where = sorted(f"{e.folder or '.'}/{e.name}" for e in evs)
        raise InputError(f"{src.label}: event {event_id} appears more than once: {where}")
    return evs[0]


def _choose_files(src, ev: _EventFiles, fmt: str | None) -> tuple[str, dict[str, str]]:
    present = [f for f, sfxs in _FORMATS.items() if any(s in d for d in ev.files.values() for s in sfxs)]
    if fmt is None:
        if len(present) > 1:
            raise InputError(f"{src.label}: {ev.name} has both CSV and Parquet files; pass format='csv' "
                             "or format='parquet', or name one file")
        fmt = present[0] if present else "csv"
    chosen = {}
    for part, by_suffix in ev.files.items():
        cands = [by_suffix[s] for s in _FORMATS[fmt] if s in by_suffix]
        if len(cands) > 1:
            raise InputError(f"{src.label}: both {cands[0]} and {cands[1]} exist; remove one")
        if cands:
            chosen[part] = cands[0]
    if "hits" not in chosen:
        raise InputError(f"{src.label}: {ev.name} has no hits file ({ev.name}-hits"
                         f"{' or '.join(_FORMATS[fmt])}); hits are required")
    return fmt, chosen


# -- reading ----------------------------------------------------------------------------------
def _parse(data: bytes, file: str, part: str) -> Parsed:
    optional = schema.PARTICLES_OPTIONAL if part == "particles" else ()
    parse = parse_parquet if file.endswith(".parquet") else parse_csv
    return parse(data, file, schema.SCHEMAS[part], optional)


def _read_consistent(src, ev: _EventFiles, wanted: set[str], fmt: str | None
                     ) -> tuple[str, dict[str, str], dict[str, bytes]]:
    """(format, part -> member, part -> bytes) of one event, all from one committed version.

    In a folder, a writer may commit a new version while the files are read one by one: the
    event's stamp then changes and the read starts again from a fresh view (a seqlock).
    """
    if not isinstance(src, _Folder):  # an archive does not change under its reader
        fmt, chosen = _choose_files(src, ev, fmt)
        return fmt, chosen, {p: src.read(m) for p, m in chosen.items() if p in wanted}
    view = src if src.only == ev.name else _Folder(src.root, only=ev.name)
    for _ in range(_READ_ATTEMPTS):
        try:
            fmt_used, chosen = _choose_files(view, _select(view, _index(view), ev.event_id), fmt)
            blobs = {p: view.read(m) for p, m in chosen.items() if p in wanted}
        except InputError:
            if view.event_stamp(ev.name) == view.stamp:
                raise
        else:
            if view.event_stamp(ev.name) == view.stamp:
                return fmt_used, chosen, blobs
        view.refresh()
    raise InputError(f"{src.label}: {ev.name} was rewritten during each of {_READ_ATTEMPTS} attempts to read it")


def _read(src, ev: _EventFiles, parts: Iterable[str], validate: bool, fmt: str | None) -> Event:
    wanted = set(parts) | {"hits"}  # hits are always read: an Event needs them
    unknown = wanted - set(PARTS)
    if unknown:
        raise InputError(f"parts: unknown part(s) {sorted(unknown)}; choose from {list(PARTS)}")
    fmt, chosen, blobs = _read_consistent(src, ev, wanted, fmt)
    # The parts parse side by side: decompression and pyarrow's parsing let go of the GIL.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(blobs) or 1) as pool:
        futures = {p: pool.submit(_parse, data, src.display(chosen[p]), p) for p, data in blobs.items()}
        parsed = {p: f.result() for p, f in futures.items()}
    event = Event(**{p: parsed[p].table if p in parsed else None for p in PARTS},
                  event_id=ev.event_id,
                  meta={"source": src.label, "format": fmt,
                        "files": {p: src.display(m) for p, m in chosen.items() if p in wanted}})
    for p in parsed:
        parsed[p].table.name = p
    if validate:
        _validate(parsed)
        event.validate(source=f"{src.label}/{ev.name}" if isinstance(src, _Zip) else ev.name)
    return event


def read_event(path: str | os.PathLike, *, event: str | int | None = None,
               parts: Iterable[str] = PARTS, validate: bool = True,
               format: str | None = None) -> Event:
    """Read one event (see the module docstring for the accepted ``path`` forms).

    ``parts`` chooses the tables to read (hits always); parts without a file are ``None``.
    ``format`` ("csv" or "parquet") picks one where both exist. ``validate`` checks values and
    cross-table ids; any problem raises :class:`InputError` naming file, line/row and column.
    """
    if format is not None and format not in _FORMATS:
        raise InputError(f"format={format!r}: expected 'csv' or 'parquet'")
    path = Path(path)
    if path.is_dir() or (path.suffix.lower() == ".zip" and path.is_file()):
        src = _open(path)
        try:
            return _read(src, _select(src, _index(src), event), parts, validate, format)
        finally:
            src.close()
    if event is not None:
        raise InputError(f"{path}: event= is only for a dataset folder or zip; this is an event path")
    m, p = _FILE_RE.match(path.name), _PREFIX_RE.match(path.name)
    if m:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        own = "parquet" if m.group(4) == ".parquet" else "csv"
        if format is not None and format != own:
            raise InputError(f"{path}: format={format!r} contradicts the file suffix {m.group(4)!r}")
        name, event_id, format = m.group(1), int(m.group(2)), own
    elif p:
        name, event_id = path.name, int(p.group(1))
    else:
        raise InputError(f"{path}: not an event prefix (event000000001), an event file "
                         "(event000000001-hits.csv[.gz]|.parquet), a folder or a .zip")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    src = _Folder(path.parent, only=name)
    by_id = _index(src)
    if not by_id:
        raise InputError(f"{path}: no files {name}-<part>.csv[.gz]|.parquet in {path.parent}")
    return _read(src, _select(src, by_id, event_id), parts, validate, format)


def _names(by_id: dict[int, list[_EventFiles]], label: str) -> list[str]:
    names = []
    for event_id in sorted(by_id):
        evs = [e for e in by_id[event_id] if "hits" in e.files]
        if len(evs) > 1:
            where = sorted(f"{e.folder or '.'}/{e.name}" for e in evs)
            raise InputError(f"{label}: event {event_id} appears more than once: {where}")
        names.extend(e.name for e in evs)
    return names


def list_events(source: str | os.PathLike) -> list[str]:
    """Names (``event000000001``...) of the events with a hits file in a folder or zip, by number."""
    src = _open(Path(source))
    try:
        return _names(_index(src), src.label)
    finally:
        src.close()


def iter_events(source: str | os.PathLike, *, parts: Iterable[str] = PARTS, validate: bool = True,
                format: str | None = None) -> Iterator[Event]:
    """Yield every event of a folder or zip in number order (arguments as in :func:`read_event`)."""
    if format is not None and format not in _FORMATS:
        raise InputError(f"format={format!r}: expected 'csv' or 'parquet'")
    src = _open(Path(source))  # opened once: a zip's directory is not re-read per event
    try:
        by_id = _index(src)
        for name in _names(by_id, src.label):
            yield _read(src, _select(src, by_id, name), parts, validate, format)
    finally:
        src.close()


# -- validation with file/line context --------------------------------------------------------
def _validate(parsed: dict[str, Parsed]) -> None:
    for part, pt in parsed.items():
        for name, dtype in schema.SCHEMAS[part].items():
            if name in pt.table and np.dtype(dtype).kind == "f":
                bad = ~np.isfinite(pt.table[name])
                if bad.any():
                    row = int(np.flatnonzero(bad)[0])
                    raise InputError(f"{pt.file}, {pt.locate(row)}, column {name!r}: "
                                     f"non-finite value {pt.table[name][row]}")
    hits = parsed["hits"]
    check_unique(hits.table["hit_id"], hits.file, hits.locate)
    if "particles" in parsed:
        pp = parsed["particles"]
        check_unique(pp.table["particle_id"], pp.file, pp.locate, column="particle_id")
    if "truth" in parsed:
        tr = parsed["truth"]
        check_unique(tr.table["hit_id"], tr.file, tr.locate)
        _check_subset(hits, "hit_id", tr, "has no row in")
        _check_subset(tr, "hit_id", hits, "is not in")
        if "particles" in parsed:
            # noise hits have particle_id 0, which is not a particle
            pids = tr.table["particle_id"]
            missing = ~np.isin(pids, parsed["particles"].table["particle_id"]) & (pids != 0)
            if missing.any():
                row = int(np.flatnonzero(missing)[0])
                raise InputError(f"{tr.file}, {tr.locate(row)}: particle_id {int(pids[row])} is not in "
                                 f"{parsed['particles'].file} ({int(missing.sum())} rows in all)")
    if "cells" in parsed:
        _check_subset(parsed["cells"], "hit_id", hits, "is not in")


def _check_subset(a: Parsed, column: str, b: Parsed, verb: str) -> None:
    missing = ~np.isin(a.table[column], b.table[column])
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(f"{a.file}, {a.locate(row)}: {column} {int(a.table[column][row])} {verb} "
                         f"{b.file} ({int(missing.sum())} such rows)")
