"""Fuzz targets shared by the property tests and ``scripts/fuzz_readers.py``.

Each target takes file bytes, puts them where a reader expects a file and runs the reader. The
contract under test: a reader either returns or raises a :class:`trackcore.errors.TrackcoreError`;
any other exception (IndexError, UnicodeDecodeError, zlib.error, MemoryError...) is a bug.
"""
from __future__ import annotations

import gzip
import io
import random
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from trackcore.errors import TrackcoreError
from trackcore.event import Event, Table
from trackcore.event.io import read_event, read_submission, write_event, write_parquet, write_submission
from trackcore.geometry.alignment import read_alignment, write_alignment, AlignmentParameters
from trackcore.geometry.builders import generic_detector
from trackcore.geometry.detector import Detector
from trackcore.geometry.field import read_field_map, solenoid_field_map, write_field_map
from trackcore.geometry.io import read_detector, write_detector
from trackcore.sim.particles import read_particle_table

EVENT = "event000000001"
PARTS = ("hits", "cells", "particles", "truth")

# Tokens that stress number parsing: overflow, NaN spellings, separators Python accepts but C does not.
TOKENS = [b"", b"nan", b"-inf", b"1e999", b"-1e-999", b"9" * 25, b"-9223372036854775809", b"0x1f", b"1_000",
          b"\x00", b"\xff\xfe", b"\xc3\xa9", b"\"", b",", b"\n", b"\r", b"\r\n", b" ", b"+", b"-", b".", b"e",
          b"2147483648", b"4294967296", b"1e18", b"1.5", b"-0", b"\xef\xbb\xbf", b"\t", b"\\"]


def small_event(seed: int = 0) -> Event:
    """A tiny consistent event with every part (ids sparse, one noise hit)."""
    rng = np.random.default_rng(seed)
    n, npart = 6, 2
    hit_id = np.array([3, 5, 8, 13, 21, 34], np.int64)
    pids = np.array([4503599644147712, 4503599678750720], np.int64)
    hit_pid = np.array([pids[0], pids[0], pids[1], pids[1], pids[1], 0], np.int64)
    hits = Table({"hit_id": hit_id, "x": rng.normal(size=n) * 300, "y": rng.normal(size=n) * 300,
                  "z": rng.normal(size=n) * 1e3, "volume_id": np.full(n, 8, np.int32),
                  "layer_id": np.array([2, 4, 2, 4, 6, 8], np.int32), "module_id": np.arange(1, n + 1, dtype=np.int32)})
    cells = Table({"hit_id": np.repeat(hit_id, 2), "ch0": np.arange(2 * n, dtype=np.int32),
                   "ch1": np.arange(2 * n, dtype=np.int32)[::-1].copy(), "value": rng.random(2 * n)})
    particles = Table({"particle_id": pids, "particle_type": np.array([211, -13], np.int32),
                       "vx": rng.normal(size=npart), "vy": rng.normal(size=npart), "vz": rng.normal(size=npart),
                       "px": rng.normal(size=npart), "py": rng.normal(size=npart), "pz": rng.normal(size=npart),
                       "q": np.array([1, -1], np.int32), "nhits": np.array([2, 3], np.int32)})
    truth = Table({"hit_id": hit_id, "particle_id": hit_pid, **{k: rng.normal(size=n) for k in
                   ("tx", "ty", "tz", "tpx", "tpy", "tpz")}, "weight": np.full(n, 1.0 / n)})
    return Event(hits=hits, cells=cells, particles=particles, truth=truth, event_id=1)


def small_detector() -> Detector:
    """The first 12 modules of the generic detector (a valid detectors.csv, small enough to fuzz)."""
    cols = generic_detector().to_columns()
    return Detector.from_columns({k: v[:12] for k, v in cols.items()}, name="small")


def seed_files(folder: Path) -> dict[str, bytes]:
    """Valid bytes for every target, written with trackcore's own writers."""
    folder.mkdir(parents=True, exist_ok=True)
    ev = small_event()
    out: dict[str, bytes] = {}
    write_event(ev, folder / "csv")
    write_parquet(ev, folder / "pq")
    for part in PARTS:
        out[f"{part}.csv"] = (folder / "csv" / f"{EVENT}-{part}.csv").read_bytes()
        out[f"{part}.parquet"] = (folder / "pq" / f"{EVENT}-{part}.parquet").read_bytes()
    det = small_detector()
    out["detectors.csv"] = write_detector(det, folder / "detectors.csv").read_bytes()
    params = AlignmentParameters(det.volume_id, det.layer_id, det.module_id, np.full((len(det), 6), 1e-3))
    out["alignment.csv"] = write_alignment(params, folder / "alignment.csv").read_bytes()
    fmap = solenoid_field_map(r_max=30.0, z_max=40.0, dr=10.0, dz=10.0)  # a 4 x 9 grid
    out["field.csv"] = write_field_map(fmap, folder / "field.csv").read_bytes()
    out["submission.csv"] = write_submission(folder / "sub.csv", ev.hits["hit_id"], np.arange(6)).read_bytes()
    out["hits.csv.gz"] = gzip.compress(out["hits.csv"], mtime=0)
    out["detectors.csv.gz"] = gzip.compress(out["detectors.csv"], mtime=0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for part in PARTS:
            zf.writestr(f"train/{EVENT}-{part}.csv", out[f"{part}.csv"])
    out["dataset.zip"] = buf.getvalue()
    return out


# -- targets: bytes -> reader call -----------------------------------------------------------
def _event_part(part: str, suffix: str) -> Callable[[bytes, Path, dict], object]:
    def target(data: bytes, tmp: Path, seeds: dict) -> object:
        fmt = "parquet" if suffix == ".parquet" else "csv"
        for p in PARTS:  # the other parts valid, so the reader gets as far as cross-checks
            body = data if p == part else seeds[f"{p}.{'parquet' if fmt == 'parquet' else 'csv'}"]
            if p == part and suffix == ".csv.gz":
                body = gzip.compress(data, mtime=0)
            name = f"{EVENT}-{p}{suffix if p == part else ('.parquet' if fmt == 'parquet' else '.csv')}"
            (tmp / name).write_bytes(body)
        return read_event(tmp / EVENT, format=fmt)
    return target


def _file(name: str, reader: Callable[[Path], object]) -> Callable[[bytes, Path, dict], object]:
    def target(data: bytes, tmp: Path, seeds: dict) -> object:
        path = tmp / name
        path.write_bytes(data)
        return reader(path)
    return target


def _zip(data: bytes, tmp: Path, seeds: dict) -> object:
    path = tmp / "dataset.zip"
    path.write_bytes(data)
    return read_event(path)


def _raw_gzip(data: bytes, tmp: Path, seeds: dict) -> object:
    """Bytes given as a .csv.gz file directly (corrupt deflate streams, truncated trailers)."""
    (tmp / f"{EVENT}-hits.csv.gz").write_bytes(data)
    return read_event(tmp / f"{EVENT}-hits.csv.gz", parts=("hits",))


#: name -> (target, seed key)
TARGETS: dict[str, tuple[Callable[[bytes, Path, dict], object], str]] = {
    **{f"{p}.csv": (_event_part(p, ".csv"), f"{p}.csv") for p in PARTS},
    **{f"{p}.csv.gz": (_event_part(p, ".csv.gz"), f"{p}.csv") for p in PARTS},
    **{f"{p}.parquet": (_event_part(p, ".parquet"), f"{p}.parquet") for p in PARTS},
    "hits.csv.gz(raw)": (_raw_gzip, "hits.csv.gz"),
    "detectors.csv": (_file("detectors.csv", read_detector), "detectors.csv"),
    "detectors.csv.gz(raw)": (_file("detectors.csv.gz", read_detector), "detectors.csv.gz"),
    "alignment.csv": (_file("alignment.csv", read_alignment), "alignment.csv"),
    "field.csv": (_file("field.csv", read_field_map), "field.csv"),
    "submission.csv": (_file("submission.csv", read_submission), "submission.csv"),
    "particle_table.csv": (_file("particles.csv", read_particle_table), "particles.csv"),
    "dataset.zip": (_zip, "dataset.zip"),
}


#: Findings reported to the owners and pinned by strict xfail tests: target -> exception types that
#: still escape. Remove an entry once its fix lands (the strict xfail then fails and reminds you).
KNOWN_BUGS: dict[str, tuple[type[BaseException], ...]] = {
}


def run_target(name: str, data: bytes, tmp: Path, seeds: dict) -> str:
    """Run one target; return "ok" or the TrackcoreError class name. Other exceptions propagate."""
    for f in tmp.iterdir():
        f.unlink()
    target, _ = TARGETS[name]
    try:
        target(data, tmp, seeds)
    except TrackcoreError as exc:
        return type(exc).__name__
    return "ok"


# -- mutation ----------------------------------------------------------------------------------
def mutate(data: bytes, rnd: random.Random, n_ops: int | None = None) -> bytes:
    """Apply a few random edits: byte flips, token splices, line duplication/deletion, truncation."""
    buf = bytearray(data)
    for _ in range(n_ops if n_ops is not None else rnd.randint(1, 4)):
        op = rnd.randrange(8)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip one byte
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif op == 1:  # splice a token in, replacing a short run
            end = min(len(buf), pos + rnd.randrange(6))
            buf[pos:end] = rnd.choice(TOKENS)
        elif op == 2:  # truncate
            del buf[pos:]
        elif op == 3:  # delete a range
            del buf[pos:pos + rnd.randrange(1, 40)]
        elif op == 4:  # duplicate a line
            lines = bytes(buf).split(b"\n")
            i = rnd.randrange(len(lines))
            lines.insert(i, lines[i])
            buf = bytearray(b"\n".join(lines))
        elif op == 5:  # drop a comma-separated field in one line
            lines = bytes(buf).split(b"\n")
            i = rnd.randrange(len(lines))
            f = lines[i].split(b",")
            if len(f) > 1:
                del f[rnd.randrange(len(f))]
            lines[i] = b",".join(f)
            buf = bytearray(b"\n".join(lines))
        elif op == 6:  # replace one field with a token
            lines = bytes(buf).split(b"\n")
            i = rnd.randrange(len(lines))
            f = lines[i].split(b",")
            f[rnd.randrange(len(f))] = rnd.choice(TOKENS)
            lines[i] = b",".join(f)
            buf = bytearray(b"\n".join(lines))
        else:  # insert random bytes
            buf[pos:pos] = rnd.randbytes(rnd.randrange(1, 16))
    return bytes(buf)
