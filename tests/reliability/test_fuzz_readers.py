"""Property tests: every reader given random or mutated bytes raises only TrackcoreError subclasses.

The targets (TrackML CSV/csv.gz/Parquet parts, detectors.csv, alignment, field map, submission,
particle table, zipped dataset) are in reliability_fuzzlib. Findings of the long run
(scripts/fuzz_readers.py) are kept below as regression tests.
"""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reliability_fuzzlib as F
from trackcore.errors import GeometryError, InputError, TrackcoreError

FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return F.seed_files(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


def test_seed_files_are_valid(seeds, work):
    # The mutations start from files every reader accepts, so a rejection below is the mutation's doing.
    for name, (_, key) in F.TARGETS.items():
        assert F.run_target(name, seeds[key], work, seeds) == "ok", name


def _run(name: str, data: bytes, seeds: dict, work: Path) -> str:
    """run_target, with the known (reported, pinned by strict xfails below) bugs turned into xfail."""
    try:
        return F.run_target(name, data, work, seeds)
    except F.KNOWN_BUGS.get(name, ()) as exc:
        pytest.xfail(f"known bug in {name}: {type(exc).__name__} escapes ({exc})")


@pytest.mark.parametrize("name", sorted(F.TARGETS))
@FAST
@given(rnd=st.randoms(use_true_random=False))
def test_mutated_file_raises_only_trackcore_errors(name, rnd, seeds, work):
    data = F.mutate(seeds[F.TARGETS[name][1]], rnd)
    _run(name, data, seeds, work)  # anything but TrackcoreError propagates and fails


@pytest.mark.parametrize("name", sorted(F.TARGETS))
@settings(FAST, max_examples=30)
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_trackcore_errors(name, data, seeds, work):
    _run(name, data, seeds, work)


@FAST
@given(header=st.lists(st.sampled_from(["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id", "extra",
                                        "", "x "]), max_size=9),
       rows=st.lists(st.lists(st.sampled_from([b"1", b"-2", b"0.5", b"nan", b"", b"a", b"1e400",
                                               b"99999999999999999999"]), max_size=9), max_size=5))
def test_hits_csv_grammar(header, rows, seeds, work):
    """Structured CSV: plausible headers and rows of awkward cells, ragged or not."""
    text = ",".join(header).encode() + b"\n" + b"\n".join(b",".join(r) for r in rows)
    assert F.run_target("hits.csv", text, work, seeds) in {"ok", "InputError"}


# -- regressions from the long fuzz run ------------------------------------------------------
def _corrupt_gzip(plain: bytes) -> bytes:
    """A gzip stream with a valid header whose deflate data is damaged (zlib.error on read)."""
    z = bytearray(gzip.compress(plain, mtime=0))
    z[12:20] = b"\xff" * 8
    return bytes(z)


def test_corrupt_deflate_stream_in_event_csv_gz(seeds, work):
    data = _corrupt_gzip(gzip.decompress(seeds["hits.csv.gz"]))
    assert F.run_target("hits.csv.gz(raw)", data, work, seeds) == "InputError"


@pytest.mark.parametrize("reader", ["read_detector", "read_alignment", "read_field_map"])
def test_corrupt_deflate_stream_in_geometry_csv_gz(reader, seeds, tmp_path):
    from trackcore.geometry import alignment, field, io

    fn = {"read_detector": io.read_detector, "read_alignment": alignment.read_alignment,
          "read_field_map": field.read_field_map}[reader]
    key = {"read_detector": "detectors.csv", "read_alignment": "alignment.csv", "read_field_map": "field.csv"}[reader]
    path = tmp_path / f"{key}.gz"
    path.write_bytes(_corrupt_gzip(seeds[key]))
    with pytest.raises(InputError, match=str(path.name)):
        fn(path)


def _parquet_hits_with_extra(extra) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trackcore.event import schema

    cols = {k: pa.array(np.arange(1, 4).astype(v)) for k, v in schema.HITS.items()}
    cols["extra"] = extra
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(cols), sink)
    return sink.getvalue().to_pybytes()


def _extra_columns():
    import pyarrow as pa

    return {"list": pa.array([[1], [2, 3], []]), "map": pa.array([[("a", 1)]] * 3, pa.map_(pa.string(), pa.int64())),
            "binary": pa.array([b"\xff", b"\x00", b"a"])}


@pytest.mark.parametrize("kind", ["list", "map", "binary"])
def test_parquet_extra_column_of_unsupported_type(kind):
    from trackcore.event import schema
    from trackcore.event.io.parquet import parse_parquet

    data = _parquet_hits_with_extra(_extra_columns()[kind])
    with pytest.raises(InputError, match="extra"):
        parse_parquet(data, "event000000001-hits.parquet", schema.HITS)


def test_whole_number_id_beyond_int64_is_rejected(tmp_path, seeds):
    """An id column value 1e300 is a 'whole number'; it must not wrap around silently."""
    from trackcore.geometry.io import read_detector

    lines = seeds["detectors.csv"].decode().splitlines()
    cells = lines[1].split(",")
    cells[0] = "1e300"  # volume_id
    (tmp_path / "detectors.csv").write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(GeometryError, match="volume_id"):
        read_detector(tmp_path / "detectors.csv")



@pytest.mark.parametrize("value", ["1\x1c", "5\x1e\x1e", "\x1f7"])
def test_integer_with_control_separator_is_an_input_error(value):
    from trackcore.event import schema
    from trackcore.event.io.trackml_csv import parse_csv

    text = f"hit_id,track_id\n{value},1\n"
    with pytest.raises(InputError, match="line 2"):
        parse_csv(text.encode(), "submission.csv", schema.SUBMISSION)


def test_parquet_column_name_not_utf8_is_an_input_error(seeds):
    from trackcore.event import schema
    from trackcore.event.io.parquet import parse_parquet

    data = bytearray(seeds["cells.parquet"])
    at = data.index(b"hit_id", data.index(b"\x18\x06schema"))  # the name in the footer's schema
    data[at + 4:at + 6] = b"\x97\x98"
    with pytest.raises(InputError, match="cells.parquet"):
        parse_parquet(bytes(data), "event000000001-cells.parquet", schema.CELLS)
