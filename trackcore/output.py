"""Reconstruction outputs as CSV, Parquet or ROOT: fitted tracks (parameters and covariance) and submissions.

Per event ``<event>`` and format, in the output folder:

- ``csv``: ``<event>-tracks.csv`` and ``<event>-submission.csv`` (TrackML ``hit_id,track_id``),
- ``parquet``: ``<event>-tracks.parquet`` and ``<event>-submission.parquet``,
- ``root``: ``<event>-reco.root`` holding the TTrees ``tracks`` and ``submission`` (written
  with uproot; any ROOT or uproot reads them).

The tracks table has one row per track: ``track_id``, the perigee ``d0 z0`` (mm) ``phi theta``
(rad) ``qop`` (e/GeV), their errors ``sigma_*``, ``pt`` (GeV), ``eta``, ``charge``, ``chi2``,
``ndf``, ``nhits``, ``fitted`` and the upper triangle of the 5x5 perigee covariance as
``cov_<a>_<b>`` (units the product of a's and b's). Every file is written atomically, and all of an
event's files as a group (all temporaries, then all renames).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .errors import InputError
from .event import Table

__all__ = ["OUTPUT_FORMATS", "tracks_table", "submission_table", "covariance_columns", "perigee_and_covariance",
           "format_table", "format_root", "output_files", "output_paths", "write_outputs", "read_table",
           "read_outputs"]

OUTPUT_FORMATS = ("csv", "parquet", "root")
_PERIGEE = ("d0", "z0", "phi", "theta", "qop")


def covariance_columns() -> list[tuple[str, int, int]]:
    """(column name, row, column) of the covariance's upper triangle, row-major."""
    return [(f"cov_{_PERIGEE[i]}_{_PERIGEE[j]}", i, j) for i in range(5) for j in range(i, 5)]


def tracks_table(tracks) -> Table:
    """``tracks.to_table()`` (:class:`trackcore.reco.tracks.Tracks`) plus the full perigee covariance."""
    table = tracks.to_table()
    cov = np.asarray(tracks.covariance, dtype=np.float64).reshape(-1, 5, 5)
    for name, i, j in covariance_columns():
        table[name] = cov[:, i, j]
    return table


def perigee_and_covariance(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) perigee and (N, 5, 5) covariance from a tracks table (as written by this module)."""
    missing = [c for c in _PERIGEE if c not in table] + [c for c, _, _ in covariance_columns() if c not in table]
    if missing:
        raise InputError(f"tracks table {table.name!r}: missing column(s) {missing}")
    perigee = np.column_stack([np.asarray(table[c], np.float64) for c in _PERIGEE]) if len(table) else np.zeros((0, 5))
    cov = np.zeros((len(table), 5, 5))
    for name, i, j in covariance_columns():
        cov[:, i, j] = cov[:, j, i] = table[name]
    return perigee, cov


def submission_table(hit_id, track_id) -> Table:
    """A TrackML submission (``hit_id``, ``track_id``; int64, each hit once) as a table."""
    from .event.io.trackml_csv import check_unique

    cols = {}
    for name, values in (("hit_id", hit_id), ("track_id", track_id)):
        arr = np.asarray(values)
        if arr.ndim != 1 or (arr.dtype.kind not in "iu" and len(arr)):
            raise InputError(f"submission: {name} must be a 1-D integer array, got {arr.dtype} shape {arr.shape}")
        cols[name] = arr.astype(np.int64)
    if len(cols["hit_id"]) != len(cols["track_id"]):
        raise InputError(f"submission: {len(cols['hit_id'])} hit_ids but {len(cols['track_id'])} track_ids")
    check_unique(cols["hit_id"], "submission", lambda r: f"row {r}")
    return Table(cols, name="submission")


def format_table(table: Table, fmt: str) -> bytes:
    """``table`` as CSV or Parquet bytes."""
    if fmt == "csv":
        from .event.io.trackml_csv import format_csv

        return format_csv(table)
    if fmt == "parquet":
        from .event.io.parquet import format_parquet

        return format_parquet(table)
    raise InputError(f"format {fmt!r}: expected 'csv' or 'parquet' (ROOT files hold several trees: format_root)")


class _Buffer(io.BytesIO):
    """A BytesIO that keeps its content when uproot closes it."""

    data = b""

    def close(self) -> None:
        if not self.closed:
            self.data = self.getvalue()
        super().close()


def _uproot():
    try:
        import uproot
    except ImportError as exc:
        raise InputError("ROOT output needs uproot: pip install 'trackcore[root]'") from exc
    return uproot


def format_root(trees: Mapping[str, Table]) -> bytes:
    """A ROOT file (bytes) with one flat TTree per table; branches are the table's columns."""
    uproot = _uproot()
    buf = _Buffer()
    with uproot.recreate(buf) as f:
        for name, table in trees.items():
            data = {c: np.ascontiguousarray(table[c]) for c in table.columns}
            for c, arr in data.items():
                if arr.dtype.kind not in "iufb":
                    raise InputError(f"ROOT tree {name!r}: column {c!r} has dtype {arr.dtype}; only numbers are written")
            # mktree + extend writes a TTree (assigning a dict would write an RNTuple in uproot >= 5.7).
            tree = f.mktree(name, {c: a.dtype for c, a in data.items()}, title=f"trackcore {name}")
            tree.extend(data)
    return buf.data


def output_paths(folder: str | os.PathLike, event_name: str, formats: Iterable[str]) -> list[Path]:
    """The files :func:`write_outputs` writes for one event."""
    folder = Path(folder)
    out = []
    for fmt in formats:
        if fmt not in OUTPUT_FORMATS:
            raise InputError(f"output format {fmt!r}: choose from {', '.join(OUTPUT_FORMATS)}")
        if fmt == "root":
            out.append(folder / f"{event_name}-reco.root")
        else:
            out += [folder / f"{event_name}-tracks.{fmt}", folder / f"{event_name}-submission.{fmt}"]
    return out


def output_files(folder: str | os.PathLike, event_name: str, tracks: Table, submission: Table,
                 formats: Iterable[str]) -> dict[Path, bytes]:
    """Path -> content of every output file of one event (nothing written yet)."""
    files: dict[Path, bytes] = {}
    for fmt, *paths in ((f, *output_paths(folder, event_name, [f])) for f in formats):
        if fmt == "root":
            files[paths[0]] = format_root({"tracks": tracks, "submission": submission})
        else:
            files[paths[0]] = format_table(tracks, fmt)
            files[paths[1]] = format_table(submission, fmt)
    return files


def write_outputs(folder: str | os.PathLike, event_name: str, tracks, hit_id, track_id,
                  formats: Iterable[str] = ("csv",), extra: Mapping[Path, bytes] | None = None) -> list[Path]:
    """Write one event's tracks (a ``Tracks`` or a tracks :class:`Table`) and submission in ``formats``.

    ``extra`` files join the same atomic group and are renamed last (a completion marker there
    appears only after the outputs).
    """
    from .event.io.atomic import write_files

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = tracks if isinstance(tracks, Table) else tracks_table(tracks)
    files = output_files(folder, event_name, table, submission_table(hit_id, track_id), formats)
    files.update(extra or {})
    return write_files(files)


def read_table(path: str | os.PathLike, tree: str | None = None) -> Table:
    """Read a tracks or submission table from ``.csv``, ``.parquet`` or ``.root`` (``tree`` names the TTree)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".root":
        uproot = _uproot()
        try:
            with uproot.open(path) as f:
                names = [k.split(";")[0] for k, c in f.classnames().items() if c == "TTree"]
                if tree is None:
                    if len(names) != 1:
                        raise InputError(f"{path}: holds the trees {names}; pass tree=")
                    tree = names[0]
                if tree not in names:
                    raise InputError(f"{path}: no TTree {tree!r} (trees: {', '.join(names)})")
                arrays = f[tree].arrays(library="np")
                return Table({k: np.asarray(v) for k, v in arrays.items()}, name=f"{path.name}:{tree}")
        except InputError:
            raise
        except Exception as exc:  # uproot raises many kinds for damaged files
            raise InputError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    if path.suffix == ".parquet":
        from .event.io.parquet import parse_parquet

        return Table(parse_parquet(path.read_bytes(), path.name, {}).table.to_dict(), name=path.name)
    if path.name.endswith((".csv", ".csv.gz")):
        import gzip

        from .event.io.trackml_csv import parse_csv

        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        return Table(parse_csv(data, path.name, {}).table.to_dict(), name=path.name)
    raise InputError(f"{path}: unknown output format (expected .csv, .csv.gz, .parquet or .root)")


def read_outputs(folder: str | os.PathLike, event_name: str, fmt: str | None = None) -> tuple[Table, Table]:
    """(tracks, submission) of one event from an output folder, in ``fmt`` or the first format found."""
    folder = Path(folder)
    for f in ([fmt] if fmt else OUTPUT_FORMATS):
        paths = output_paths(folder, event_name, [f])
        if all(p.is_file() for p in paths):
            if f == "root":
                return read_table(paths[0], "tracks"), read_table(paths[0], "submission")
            return read_table(paths[0]), read_table(paths[1])
    raise InputError(f"{folder}: no outputs of {event_name} ({event_name}-tracks.csv|.parquet or "
                     f"{event_name}-reco.root with its submission)")
