"""Tracks and submissions as CSV, Parquet and ROOT (a TTree written by uproot, read back by uproot)."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event.io import read_submission
from trackcore.output import (covariance_columns, output_paths, perigee_and_covariance, read_outputs, read_table,
                              tracks_table, write_outputs)
from trackcore.reco.tracks import Tracks

uproot = pytest.importorskip("uproot")


@pytest.fixture
def tracks() -> Tracks:
    rng = np.random.default_rng(4)
    n = 7
    a = rng.normal(size=(n, 5, 5))
    cov = a @ a.transpose(0, 2, 1) * 1e-3  # symmetric positive definite
    lengths = rng.integers(3, 9, n)
    offsets = np.r_[0, np.cumsum(lengths)]
    perigee = np.c_[rng.normal(0, 0.1, n), rng.normal(0, 50, n), rng.uniform(-np.pi, np.pi, n),
                    rng.uniform(0.2, 2.9, n), rng.choice([-1, 1], n) / rng.uniform(0.5, 10, n)]
    return Tracks(offsets, rng.permutation(offsets[-1]), perigee, cov, rng.uniform(1, 30, n),
                  (2 * lengths - 5).astype(np.int64), np.arange(n, dtype=np.int64), np.ones(n, bool))


def _submission(tracks: Tracks, n_free: int = 5):
    n_hits = len(tracks.hits) + n_free
    hit_id = np.arange(1, n_hits + 1, dtype=np.int64)
    tid = tracks.track_of_hit(n_hits)
    free = tid < 0
    tid[free] = len(tracks) + np.arange(free.sum())
    return hit_id, tid


def test_tracks_table_holds_the_full_covariance(tracks):
    table = tracks_table(tracks)
    assert table.columns[:6] == ["track_id", "d0", "z0", "phi", "theta", "qop"]
    assert [c for c, _, _ in covariance_columns()] == [c for c in table.columns if c.startswith("cov_")]
    assert len(covariance_columns()) == 15
    perigee, cov = perigee_and_covariance(table)
    np.testing.assert_array_equal(perigee, tracks.perigee)
    np.testing.assert_array_equal(cov, tracks.covariance)
    np.testing.assert_allclose(table["sigma_z0"] ** 2, tracks.covariance[:, 1, 1])


@pytest.mark.parametrize("fmt", ["csv", "parquet", "root"])
def test_write_and_read_back_exactly(tmp_path, tracks, fmt):
    hit_id, tid = _submission(tracks)
    written = write_outputs(tmp_path, "event000000042", tracks, hit_id, tid, [fmt])
    assert sorted(written) == sorted(output_paths(tmp_path, "event000000042", [fmt]))
    table, sub = read_outputs(tmp_path, "event000000042", fmt)
    ref = tracks_table(tracks)
    assert table.columns == ref.columns and len(table) == len(tracks)
    for c in ref.columns:
        np.testing.assert_array_equal(table[c], ref[c], err_msg=c)  # floats round-trip bit for bit
    np.testing.assert_array_equal(sub["hit_id"], hit_id)
    np.testing.assert_array_equal(sub["track_id"], tid)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporaries left behind


def test_root_file_is_a_ttree_read_by_uproot(tmp_path, tracks):
    hit_id, tid = _submission(tracks)
    (path,) = write_outputs(tmp_path, "event000000001", tracks, hit_id, tid, ["root"])
    with uproot.open(path) as f:
        assert f.classnames() == {"tracks;1": "TTree", "submission;1": "TTree"}
        tree = f["tracks"]
        assert tree.num_entries == len(tracks) and tree.title == "trackcore tracks"
        arrays = tree.arrays(["qop", "cov_qop_qop", "nhits"], library="np")
        np.testing.assert_array_equal(arrays["qop"], tracks.perigee[:, 4])
        np.testing.assert_array_equal(arrays["cov_qop_qop"], tracks.covariance[:, 4, 4])
        np.testing.assert_array_equal(arrays["nhits"], tracks.n_hits)
        assert f["submission"].num_entries == len(hit_id)


def test_csv_submission_is_the_trackml_format(tmp_path, tracks):
    hit_id, tid = _submission(tracks)
    write_outputs(tmp_path, "event000000001", tracks, hit_id, tid, ["csv"])
    sub = read_submission(tmp_path / "event000000001-submission.csv")
    assert sub.columns == ["hit_id", "track_id"]
    np.testing.assert_array_equal(sub["track_id"], tid)


def test_empty_event(tmp_path):
    for fmt in ("csv", "parquet", "root"):
        write_outputs(tmp_path, "event000000003", Tracks.empty(), np.zeros(0, np.int64), np.zeros(0, np.int64), [fmt])
        table, sub = read_outputs(tmp_path, "event000000003", fmt)
        assert len(table) == 0 and len(sub) == 0


def test_bad_input(tmp_path, tracks):
    hit_id, tid = _submission(tracks)
    with pytest.raises(InputError, match="output format 'hdf5'"):
        write_outputs(tmp_path, "event000000001", tracks, hit_id, tid, ["hdf5"])
    dup = hit_id.copy()
    dup[1] = dup[0]
    with pytest.raises(InputError, match="duplicate hit_id"):
        write_outputs(tmp_path, "event000000001", tracks, dup, tid, ["csv"])
    with pytest.raises(InputError, match="must be a 1-D integer"):
        write_outputs(tmp_path, "event000000001", tracks, hit_id.astype(float), tid, ["csv"])
    assert not list(tmp_path.iterdir())  # nothing written on failure
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"root" * 100)
    with pytest.raises(InputError, match="bad.root: not a readable ROOT file"):
        read_table(bad)
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "missing.parquet")
    with pytest.raises(InputError, match="no outputs of event000000009"):
        read_outputs(tmp_path, "event000000009")
    write_outputs(tmp_path, "event000000001", tracks, hit_id, tid, ["root"])
    with pytest.raises(InputError, match="pass tree="):
        read_table(tmp_path / "event000000001-reco.root")
    with pytest.raises(InputError, match="no TTree 'nope'"):
        read_table(tmp_path / "event000000001-reco.root", "nope")
