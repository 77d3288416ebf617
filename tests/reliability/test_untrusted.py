"""Untrusted files: zip path traversal, decompression bombs, absurd lines, pickled model files.

Readers must refuse what they cannot trust with a clear InputError before doing damage: no file
written outside a dataset, no unbounded allocation from a small file, no code run from a model.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import reliability_fuzzlib as F
from trackcore.errors import InputError
from trackcore.event import schema
from trackcore.event.io import list_events, read_event
from trackcore.event.io.trackml_csv import parse_csv

HEADER = b"hit_id,x,y,z,volume_id,layer_id,module_id\n"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return F.seed_files(tmp_path_factory.mktemp("seeds"))


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


# -- path traversal ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../event000000001-hits.csv", "train/../../event000000001-hits.csv",
                                 "/tmp/event000000001-hits.csv", "C:/evil/event000000001-hits.csv",
                                 "..\\event000000001-hits.csv", "train\\..\\..\\x.csv"])
@pytest.mark.parametrize("call", ["read_event", "list_events"])
def test_zip_with_traversal_member_is_refused(tmp_path, seeds, bad, call):
    members = {f"{F.EVENT}-{p}.csv": seeds[f"{p}.csv"] for p in F.PARTS}
    members[bad] = b"hit_id\n1\n"
    path = _zip(tmp_path / "data.zip", members)
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(tmp_path.parent))
    with pytest.raises(InputError, match="unsafe path"):
        read_event(path) if call == "read_event" else list_events(path)
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(tmp_path.parent))) == before  # nothing written


def test_zip_member_named_like_a_parent_but_safe_is_read(tmp_path, seeds):
    """'..x' is a legal name, not a traversal: the check must look at path parts, not substrings."""
    members = {f"..data/{F.EVENT}-{p}.csv": seeds[f"{p}.csv"] for p in F.PARTS}
    event = read_event(_zip(tmp_path / "data.zip", members))
    assert event.n_hits == 6


def test_zip_that_is_not_a_zip_is_an_input_error(tmp_path):
    path = tmp_path / "data.zip"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(InputError, match="zip"):
        read_event(path)


def _patched_zip(path: Path, seeds: dict, central: dict[int, int], local: dict[int, int]) -> Path:
    """A one-event zip with 16-bit header fields overwritten (offsets in the central/local headers)."""
    _zip(path, {f"{F.EVENT}-hits.csv": seeds["hits.csv"]})
    data = bytearray(path.read_bytes())
    cd = data.index(b"PK\x01\x02")
    for off, value in central.items():
        struct.pack_into("<H", data, cd + off, value)
    for off, value in local.items():
        struct.pack_into("<H", data, off, value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["zip version 23.2", "encrypted member", "compression method 99"])
def test_unsupported_zip_features_are_input_errors(tmp_path, seeds, kind):
    central, local = {"zip version 23.2": ({6: 232}, {}), "encrypted member": ({8: 1}, {6: 1}),
                      "compression method 99": ({10: 99}, {8: 99})}[kind]
    path = _patched_zip(tmp_path / "odd.zip", seeds, central, local)
    with pytest.raises(InputError, match="odd.zip"):
        read_event(path)


def test_zip_member_name_not_utf8_is_an_input_error(tmp_path, seeds):
    path = _zip(tmp_path / "odd.zip", {f"{F.EVENT}-hits.csv": seeds["hits.csv"], "caf\u00e9.txt": b"x"})
    path.write_bytes(path.read_bytes().replace("\u00e9".encode(), b"\xc3\x28"))  # invalid UTF-8, flag kept
    with pytest.raises(InputError, match="odd.zip"):
        read_event(path)


# -- decompression bombs ---------------------------------------------------------------------
BOMB = 64 * 2**20  # 64 MiB of expansion from ~64 KiB: ratio ~1000


def _peak_mib(fn) -> tuple[float, BaseException | None]:
    tracemalloc.start()
    err = None
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the caller checks the type
        err = exc
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak, err


def test_zip_bomb_member_is_refused_before_decompression(tmp_path):
    members = {f"{F.EVENT}-hits.csv": HEADER + b"\n" * BOMB}
    path = _zip(tmp_path / "bomb.zip", members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < BOMB / 500
    peak, err = _peak_mib(lambda: read_event(path))
    assert isinstance(err, InputError), err
    assert peak < 16, f"peak {peak:.0f} MiB allocated for a {path.stat().st_size >> 10} KiB file"


def test_gzip_bomb_is_refused_before_decompression(tmp_path):
    path = tmp_path / f"{F.EVENT}-hits.csv.gz"
    path.write_bytes(gzip.compress(HEADER + b"\n" * BOMB, compresslevel=9))
    peak, err = _peak_mib(lambda: read_event(path))
    assert isinstance(err, InputError), err
    assert peak < 16, f"peak {peak:.0f} MiB allocated for a {path.stat().st_size >> 10} KiB file"


# -- absurd lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"1" * 10**7, b"1," * 10**6, b"\x00" * 10**6,
                                  b"1,2,3,4,5,6,7\n" * 3 + b"," * 10**6, b"\n" * 10**6 + b"1,2"])
def test_absurd_line_fails_fast_with_a_short_message(body):
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="f.csv, line") as info:
        parse_csv(HEADER + body + b"\n", "f.csv", schema.HITS)
    assert time.perf_counter() - t0 < 5.0
    assert len(str(info.value)) < 1000, "an error message must not echo megabytes of input"


def test_error_message_for_a_huge_bad_value_is_short():
    with pytest.raises(InputError, match="module_id") as info:
        parse_csv(HEADER + b"1,2,3,4,5,6," + b"7." * 10**6 + b"\n", "f.csv", schema.HITS)
    assert len(str(info.value)) < 1000


def test_integer_with_a_million_digits_is_an_input_error():
    with pytest.raises(InputError, match="module_id"):
        parse_csv(HEADER + b"1,2,3,4,5,6," + b"9" * 10**6 + b"\n", "f.csv", schema.HITS)


def test_header_only_claims_no_rows(seeds):
    """No row count is trusted from a file: a header alone gives an empty table, not an allocation."""
    parsed = parse_csv(HEADER, "f.csv", schema.HITS)
    assert len(parsed.table) == 0


# -- model files ------------------------------------------------------------------------------
def _seed_classifier_model():
    pytest.importorskip("torch")
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from plugins.seed_classifier import model
    except ImportError as exc:
        pytest.skip(f"seed classifier plugin not importable: {exc}")
    return model


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling this runs code: it creates the marker file
        return (Path.touch, (self.marker,))


def test_pickled_code_in_a_model_file_never_runs(tmp_path):
    model = _seed_classifier_model()
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"n_features": _Evil(marker)}))
    with pytest.raises(Exception):  # noqa: B017 - which type is the next test's business
        model.load_state(path)
    assert not marker.exists()


@pytest.mark.parametrize("data", [b"garbage", pickle.dumps({"n_features": 3})])
def test_bad_model_file_is_an_input_error(tmp_path, data):
    model = _seed_classifier_model()
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(InputError, match="model.pt"):
        model.load_state(path)
