"""The real TrackML files in ../shared: counts, official dtypes, exact values, round trips."""
from __future__ import annotations

import csv
import gzip
import zipfile

import numpy as np
import pytest
from event_io_helpers import assert_same_event

from trackcore.event.io import (list_events, read_event, read_parquet, write_event,
                                write_parquet)


@pytest.fixture(scope="module")
def real_event(shared_trackml):
    return read_event(shared_trackml / "event000000001")


def test_counts_and_official_dtypes(real_event):
    ev = real_event
    assert ev.event_id == 1
    assert ev.n_hits == 2923 and len(ev.truth) == 2923
    assert len(ev.particles) == 288 and len(ev.cells) == 9949
    assert int((ev.truth["particle_id"] == 0).sum()) == 394
    # trackml.dataset.load_event: ids int64, volume/layer/module int32
    assert ev.hits["hit_id"].dtype == np.int64 and ev.truth["particle_id"].dtype == np.int64
    for c in ("volume_id", "layer_id", "module_id"):
        assert ev.hits[c].dtype == np.int32
    assert ev.hits.columns == ["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"]
    assert "particle_type" in ev.particles
    assert sorted(set(ev.hits["volume_id"].tolist())) == [7, 8, 9, 12, 13, 14, 16, 17, 18]


def test_particles_nhits_match_truth(real_event):
    ev = real_event
    pids, counts = np.unique(ev.truth["particle_id"][ev.truth["particle_id"] != 0], return_counts=True)
    nhits = dict(zip(ev.particles["particle_id"].tolist(), ev.particles["nhits"].tolist()))
    assert all(nhits[p] == c for p, c in zip(pids.tolist(), counts.tolist()))
    assert sum(nhits.values()) == 2923 - 394


def test_values_match_an_independent_parse(shared_trackml, real_event):
    """Every value equals Python's own int()/float() of the file's text (exact, not approximate)."""
    for part in ("hits", "truth"):
        with gzip.open(shared_trackml / f"event000000001-{part}.csv.gz", "rt") as fh:
            rows = list(csv.reader(fh))
        table = getattr(real_event, part)
        assert rows[0] == table.columns
        for j, name in enumerate(rows[0]):
            conv = int if table[name].dtype.kind == "i" else float
            expected = np.array([conv(r[j]) for r in rows[1:]], dtype=table[name].dtype)
            assert expected.tobytes() == table[name].tobytes(), (part, name)


@pytest.mark.parametrize("how", ["csv", "csv.gz", "parquet", "zip"])
def test_real_round_trip(tmp_path, real_event, how):
    if how == "parquet":
        write_parquet(real_event, tmp_path)
        back = read_parquet(tmp_path / "event000000001-hits.parquet")
    elif how == "zip":
        write_event(real_event, tmp_path / "d", gzip=True)
        with zipfile.ZipFile(tmp_path / "ds.zip", "w") as zf:
            for p in (tmp_path / "d").iterdir():
                zf.write(p, f"sample/{p.name}")
        assert list_events(tmp_path / "ds.zip") == ["event000000001"]
        back = read_event(tmp_path / "ds.zip", event="event000000001")
    else:
        write_event(real_event, tmp_path, gzip=how == "csv.gz")
        back = read_event(tmp_path / "event000000001")
    assert_same_event(real_event, back)


@pytest.mark.parametrize("part", ["hits", "cells", "particles", "truth"])
def test_csv_output_is_the_original_text(tmp_path, shared_trackml, real_event, part):
    """Shortest round-trip floats and plain ints reproduce the official files line for line."""
    write_event(real_event, tmp_path)
    with gzip.open(shared_trackml / f"event000000001-{part}.csv.gz", "rt") as fh:
        original = fh.read().splitlines()
    assert (tmp_path / f"event000000001-{part}.csv").read_text().splitlines() == original


def test_accuracy_phase_particles_without_particle_type(tmp_path, shared_trackml):
    # a real particles file beside a tiny hits file (the other event-1000 files are not available)
    (tmp_path / "event000001000-particles.csv").symlink_to(shared_trackml / "event000001000-particles.csv")
    (tmp_path / "event000001000-hits.csv").write_text("hit_id,x,y,z,volume_id,layer_id,module_id\n"
                                                      "1,-64.4099,-7.1637,-1502.5,7,2,1\n")
    ev = read_event(tmp_path / "event000001000-particles.csv")
    p = ev.particles
    assert ev.event_id == 1000
    assert p.columns == ["particle_id", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits"]
    assert "particle_type" not in p
    assert len(p) == 12263 and int(p["nhits"].sum()) == 103305
    assert p["particle_id"].dtype == np.int64 and p["q"].dtype == np.int32
    assert p["particle_id"][0] == 4503668346847232  # above 2**52: read as an integer, not a float
