"""Round trips (CSV, CSV.gz, Parquet, zip) and the accepted path forms of read_event."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event import Event, Table
from trackcore.event.io import (iter_events, list_events, read_event, read_parquet, write_event,
                                write_parquet)

from event_io_helpers import assert_same_event, make_event


@pytest.mark.parametrize("gz", [False, True])
def test_csv_round_trip_exact(tmp_path, synthetic_event, gz):
    paths = write_event(synthetic_event, tmp_path, gzip=gz)
    suffix = ".csv.gz" if gz else ".csv"
    assert sorted(p.name for p in paths) == sorted(f"event000000042-{p}{suffix}"
                                                   for p in ("hits", "cells", "particles", "truth"))
    back = read_event(tmp_path / "event000000042")
    assert_same_event(synthetic_event, back)
    # writing what was read gives the same bytes again
    before = {p.name: p.read_bytes() for p in paths}
    write_event(back, tmp_path, gzip=gz)
    assert {p.name: p.read_bytes() for p in paths} == before


def test_parquet_round_trip_exact(tmp_path, synthetic_event):
    paths = write_parquet(synthetic_event, tmp_path)
    assert all(p.suffix == ".parquet" for p in paths) and len(paths) == 4
    assert_same_event(synthetic_event, read_parquet(tmp_path / "event000000042"))
    assert_same_event(synthetic_event, read_event(tmp_path / "event000000042-truth.parquet"))


@pytest.mark.parametrize("name", ["event000000042", "event000000042-hits.csv.gz",
                                  "event000000042-cells.csv.gz", "event000000042-truth.csv.gz"])
def test_read_event_path_forms(tmp_path, synthetic_event, name):
    write_event(synthetic_event, tmp_path, gzip=True)
    ev = read_event(tmp_path / name)
    assert ev.event_id == 42 and ev.n_hits == synthetic_event.n_hits
    assert ev.meta["format"] == "csv" and ev.meta["files"]["hits"] == "event000000042-hits.csv.gz"


def test_missing_optional_parts_are_none(tmp_path, synthetic_event):
    write_event(Event(hits=synthetic_event.hits, event_id=7), tmp_path)
    ev = read_event(tmp_path / "event000000007")
    assert ev.cells is None and ev.particles is None and ev.truth is None
    full = read_event(tmp_path / "event000000007", parts=("hits",))
    assert full.truth is None


def test_parts_selects_tables(tmp_path, synthetic_event):
    write_event(synthetic_event, tmp_path)
    ev = read_event(tmp_path / "event000000042", parts=("truth",))
    assert ev.truth is not None and ev.cells is None and ev.particles is None and ev.hits is not None
    with pytest.raises(InputError, match="unknown part"):
        read_event(tmp_path / "event000000042", parts=("hits", "tracks"))


def test_extra_columns_kept_and_particle_type_optional(tmp_path, synthetic_event):
    ev = synthetic_event
    ev.hits["flag"] = np.arange(ev.n_hits) % 3
    ev.hits["r"] = np.hypot(ev.hits["x"], ev.hits["y"])
    ev.hits["tag"] = np.array([f"t{i}" for i in range(ev.n_hits)])
    ev.particles = Table({c: ev.particles[c] for c in ev.particles.columns if c != "particle_type"})
    for i, writer in enumerate((lambda e, d: write_event(e, d, gzip=True), write_parquet)):
        d = tmp_path / str(i)
        writer(ev, d)
        back = read_event(d / "event000000042")
        assert back.hits.columns[-3:] == ["flag", "r", "tag"]
        assert back.hits["flag"].dtype == np.int64 and np.array_equal(back.hits["flag"], ev.hits["flag"])
        assert back.hits["r"].tobytes() == ev.hits["r"].tobytes()
        assert back.hits["tag"].tolist() == ev.hits["tag"].tolist()
        assert "particle_type" not in back.particles


def test_empty_event(tmp_path):
    from trackcore.event import schema

    empty = Event(**{p: Table({c: np.empty(0, dt) for c, dt in schema.SCHEMAS[p].items()}, name=p)
                     for p in schema.SCHEMAS}, event_id=3)
    write_event(empty, tmp_path / "csv")
    assert (tmp_path / "csv" / "event000000003-hits.csv").read_text() == \
        "hit_id,x,y,z,volume_id,layer_id,module_id\n"
    write_parquet(empty, tmp_path / "pq")
    for d in ("csv", "pq"):
        back = read_event(tmp_path / d / "event000000003")
        assert back.n_hits == 0
        assert_same_event(empty, back)


def test_float_format_is_applied(tmp_path, synthetic_event):
    write_event(synthetic_event, tmp_path, float_format="%.3f")
    line = (tmp_path / "event000000042-hits.csv").read_text().splitlines()[4]
    assert all(len(v.split(".")[1]) == 3 for v in line.split(",")[1:4])
    back = read_event(tmp_path / "event000000042")
    assert np.allclose(back.hits["y"], synthetic_event.hits["y"], atol=5e-4)
    with pytest.raises(InputError, match="float_format"):
        write_event(synthetic_event, tmp_path, float_format="%d %d")


def test_rewrite_removes_stale_parts(tmp_path, synthetic_event):
    write_event(synthetic_event, tmp_path)
    write_event(Event(hits=synthetic_event.hits, event_id=42), tmp_path, gzip=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["event000000042-hits.csv.gz"]
    assert read_event(tmp_path / "event000000042").truth is None


def _zip_dataset(tmp_path, events, folder="train_sample/", parquet=False):
    src = tmp_path / "src"
    for ev in events:
        (write_parquet(ev, src) if parquet else write_event(ev, src, gzip=True))
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(folder, "")  # a directory entry, as zip tools write them
        for p in sorted(src.iterdir()):
            zf.write(p, folder + p.name)
        zf.writestr("README.txt", "not an event")
    return archive


@pytest.mark.parametrize("parquet", [False, True])
def test_zip_dataset(tmp_path, parquet):
    events = [make_event(event_id=i, seed=i) for i in (1000, 1001, 1002)]
    archive = _zip_dataset(tmp_path, events, parquet=parquet)
    assert list_events(archive) == ["event000001000", "event000001001", "event000001002"]
    assert_same_event(events[1], read_event(archive, event="event000001001"))
    assert_same_event(events[2], read_event(archive, event=1002))
    assert [e.event_id for e in iter_events(archive, parts=("hits",))] == [1000, 1001, 1002]
    # read in memory: nothing was extracted next to the archive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip", "src"]
    with pytest.raises(InputError, match="holds 3 events"):
        read_event(archive)
    with pytest.raises(InputError, match="no files of event 5"):
        read_event(archive, event=5)


def test_folder_dataset(tmp_path):
    events = [make_event(event_id=i, seed=i) for i in (2, 1)]
    for ev in events:
        write_event(ev, tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    assert list_events(tmp_path) == ["event000000001", "event000000002"]
    assert_same_event(events[0], read_event(tmp_path, event="event000000002"))
    assert [e.event_id for e in iter_events(tmp_path)] == [1, 2]


def test_single_event_zip_needs_no_name(tmp_path, synthetic_event):
    archive = _zip_dataset(tmp_path, [synthetic_event], folder="a/b/")
    assert_same_event(synthetic_event, read_event(archive))


@pytest.mark.parametrize("bad", ["../event000000001-hits.csv", "/abs/event000000001-hits.csv",
                                 "ok/../../evil.csv", "C:\\evil.csv", "a\\..\\..\\evil.csv"])
def test_zip_path_traversal_refused(tmp_path, synthetic_event, bad):
    archive = _zip_dataset(tmp_path, [synthetic_event])
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(zipfile.ZipInfo(bad), "hit_id,x\n")
    for call in (lambda: list_events(archive), lambda: read_event(archive)):
        with pytest.raises(InputError, match="unsafe path") as err:
            call()
        assert repr(bad) in str(err.value) and "data.zip" in str(err.value)


def test_zip_event_in_two_folders_is_ambiguous(tmp_path, synthetic_event):
    archive = _zip_dataset(tmp_path, [synthetic_event])
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("copy/event000000042-hits.csv", "hit_id,x,y,z,volume_id,layer_id,module_id\n")
    with pytest.raises(InputError, match="more than once"):
        read_event(archive, event=42)
    with pytest.raises(InputError, match="more than once"):
        list_events(archive)


def test_bad_zip_and_bad_source(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(InputError, match="broken.zip"):
        list_events(tmp_path / "broken.zip")
    with pytest.raises(InputError, match="not a dataset folder"):
        list_events(tmp_path / "nothing.txt")
