"""Atomic writes and submissions."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
from event_io_helpers import make_event

from trackcore.errors import InputError
from trackcore.event.io import atomic, read_event, read_submission, write_event, write_submission


def _no_temps(folder):
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_failed_group_write_leaves_old_files(tmp_path, monkeypatch):
    old = make_event(event_id=1, seed=1)
    write_event(old, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd):  # the disk fills up while the third file is written
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        write_event(make_event(event_id=1, seed=2), tmp_path)
    assert calls["n"] == 3
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert _no_temps(tmp_path)


def test_atomic_open_failure_mid_write(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target) as fh:
            fh.write(b"half of the new con")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and _no_temps(tmp_path)
    with atomic.atomic_open(tmp_path / "new.csv") as fh:
        fh.write(b"new\n")
    assert (tmp_path / "new.csv").read_text() == "new\n" and _no_temps(tmp_path)


def test_failed_format_writes_nothing(tmp_path, monkeypatch):
    ev = make_event(event_id=1)
    from trackcore.event.io import trackml_csv

    def boom(data, **kw):
        raise MemoryError("compressing")

    monkeypatch.setattr(trackml_csv._gzip, "compress", boom)
    with pytest.raises(MemoryError):
        write_event(ev, tmp_path, gzip=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["sub.csv", "sub.csv.gz"])
def test_submission_round_trip(tmp_path, name):
    hit_id = np.array([5, 1, 9, 2**40], np.int64)
    track_id = np.array([0, 3, 3, -1], np.int32)
    path = write_submission(tmp_path / name, hit_id, track_id)
    sub = read_submission(path)
    assert sub.columns == ["hit_id", "track_id"]
    assert sub["hit_id"].dtype == np.int64 and sub["track_id"].dtype == np.int64
    assert np.array_equal(sub["hit_id"], hit_id) and np.array_equal(sub["track_id"], track_id)
    if name.endswith(".gz"):
        assert gzip.decompress(path.read_bytes()).startswith(b"hit_id,track_id\n5,0\n")


def test_submission_errors(tmp_path):
    with pytest.raises(InputError, match="duplicate hit_id 1 at row 0 and row 2"):
        write_submission(tmp_path / "s.csv", [1, 2, 1], [1, 1, 2])
    with pytest.raises(InputError, match="3 hit_ids but 2 track_ids"):
        write_submission(tmp_path / "s.csv", [1, 2, 3], [1, 1])
    with pytest.raises(InputError, match="track_id must be integer"):
        write_submission(tmp_path / "s.csv", [1, 2], [1.5, 2.0])
    assert not (tmp_path / "s.csv").exists()
    (tmp_path / "dup.csv").write_text("event_id,hit_id,track_id\n1,4,1\n1,5,1\n1,4,2\n")
    with pytest.raises(InputError, match=r"dup.csv: duplicate hit_id 4 at line 2 and line 4"):
        read_submission(tmp_path / "dup.csv")
    (tmp_path / "nocol.csv").write_text("hit_id,track\n1,1\n")
    with pytest.raises(InputError, match="nocol.csv: missing column 'track_id'"):
        read_submission(tmp_path / "nocol.csv")
    with pytest.raises(InputError, match="cannot read submission"):
        read_submission(tmp_path / "absent.csv")


def test_submission_keeps_event_id_column(tmp_path):
    (tmp_path / "k.csv").write_text("event_id,hit_id,track_id\n1,4,1\n1,5,1\n")
    sub = read_submission(tmp_path / "k.csv")
    assert sub.columns == ["event_id", "hit_id", "track_id"] and sub["event_id"].tolist() == [1, 1]


def test_submission_read_is_consistent_with_event(tmp_path):
    ev = make_event(event_id=1)
    write_event(ev, tmp_path)
    truth = read_event(tmp_path / "event000000001").truth
    write_submission(tmp_path / "perfect.csv", truth["hit_id"], truth["particle_id"])
    sub = read_submission(tmp_path / "perfect.csv")
    assert np.array_equal(sub["track_id"], truth["particle_id"])
