"""TrackML score: crafted cases with exact values, bad input, and the independent reference on real data."""
from __future__ import annotations

import time

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event import Event, Table
from trackcore.metrics import score_event, trackml_score
from trackcore.metrics.score import assign, track_majority

# particle 1: hits 1-4 (0.1 each); particle 2: hits 5-7 (0.1, 0.1, 0.2); noise: hits 8, 9 (weight 0)
HIT = np.arange(1, 10)
PID = np.array([1, 1, 1, 1, 2, 2, 2, 0, 0])
W = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.0, 0.0])


def score(sub_hit, sub_trk):
    return trackml_score(HIT, PID, W, np.asarray(sub_hit), np.asarray(sub_trk))


def test_perfect_is_one():
    assert score(HIT, PID) == pytest.approx(1.0, abs=1e-15)


def test_all_hits_in_one_track_is_zero():
    assert score(HIT, np.zeros(9, dtype=int)) == 0.0


def test_one_hit_per_track_is_zero():
    assert score(HIT, np.arange(9)) == 0.0
    assert score([], []) == 0.0  # nothing submitted: every hit unassigned


def test_hand_computed_shuffled_case():
    # track 10 = {1,2,3,5}: 3/4 of it from particle 1, 3/4 of particle 1 -> matched, weight 0.3
    # track 11 = {4,6,7,8}: particle 2 has 2/4 -> not > 50 %; hit 9 unassigned
    assert score([1, 2, 3, 5, 4, 6, 7, 8], [10, 10, 10, 10, 11, 11, 11, 11]) == pytest.approx(0.3 / 0.8, abs=1e-15)
    # hit 4 alone: track 11 = {6,7,8} has 2/3 of its hits and 2/3 of particle 2 -> +0.3
    assert score([1, 2, 3, 5, 4, 6, 7, 8], [10, 10, 10, 10, 12, 11, 11, 11]) == pytest.approx(0.6 / 0.8, abs=1e-15)


def test_noise_in_a_track_lowers_purity():
    with_one = score([5, 6, 7, 8], [1, 1, 1, 1])  # 3/4 pure -> matched
    with_two = score([5, 6, 7, 8, 9], [1, 1, 1, 1, 1])  # 3/5 still > 50 %
    assert with_one == with_two == pytest.approx(0.4 / 0.8, abs=1e-15)
    # particle 2's hits 5,6 with both noise hits: 2/4 is not a majority
    assert score([5, 6, 8, 9], [1, 1, 1, 1]) == 0.0


def test_exactly_half_is_not_enough():
    # track {1,2}: all from particle 1 but only 2/4 of it
    assert score([1, 2], [3, 3]) == 0.0
    assert score([1, 2, 3], [3, 3, 3]) == pytest.approx(0.3 / 0.8, abs=1e-15)


def test_ties_go_to_the_smallest_particle_id():
    a = assign(HIT, PID, np.array([1, 2, 5, 6, 8, 9]), np.array([4, 4, 4, 4, 4, 4]))
    m = track_majority(a)
    # the track holds 2 hits each of particles 0, 1 and 2: noise (id 0) wins the tie
    assert a.particle_ids[m.particle[0]] == 0 and m.major_nhits[0] == 2 and m.nhits[0] == 6
    a = assign(HIT, PID, np.array([1, 2, 6, 7]), np.array([4, 4, 4, 4]))
    m = track_majority(a, W)
    assert a.particle_ids[m.particle[0]] == 1 and m.major_weight[0] == pytest.approx(0.2)
    # a tie is never a > 50 % majority, so it cannot score
    assert score([1, 2, 6, 7], [4, 4, 4, 4]) == 0.0


def test_unassigned_hits_are_singletons():
    explicit = score(HIT, np.array([1, 1, 1, 100, 2, 2, 101, 102, 103]))
    missing = score([1, 2, 3, 5, 6], [1, 1, 1, 2, 2])
    assert explicit == missing == pytest.approx(0.5 / 0.8, abs=1e-15)


def test_track_labels_and_row_order_do_not_matter():
    sub_trk = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3])
    ref = score(HIT, sub_trk)
    perm = np.random.default_rng(1).permutation(9)
    relabel = {1: -7, 2: 2**62, 3: 0}
    assert score(HIT[perm], np.array([relabel[t] for t in sub_trk[perm]])) == ref
    assert trackml_score(HIT[::-1], PID[::-1], W[::-1], HIT, sub_trk) == ref


@pytest.mark.parametrize(
    "args, match",
    [
        ((HIT, PID, W, [1, 2, 2], [1, 1, 1]), r"submission: duplicate hit_id \[2\]"),
        ((HIT, PID, W, [1, 2, 99], [1, 1, 1]), r"not in the truth, e\.g\. \[99\]"),
        ((HIT, PID, np.r_[W[:-1], np.nan], HIT, PID), "invalid value nan at row 8"),
        ((HIT, PID, np.r_[W[:-1], -1.0], HIT, PID), "invalid value -1.0 at row 8"),
        ((HIT, PID, W[:-1], HIT, PID), "expected 9 values"),
        ((HIT, PID[:-1], W, HIT, PID), "particle_id has 8"),
        ((HIT, PID, W, HIT, PID[:-1]), "track_id has 8"),
        ((HIT, PID, W, HIT, np.full(9, 1.5)), "non-integer value 1.5"),
        ((HIT, PID, np.zeros(9), HIT, PID), "all weights are 0"),
        ((np.r_[HIT[:-1], 1], PID, W, HIT, PID), r"truth: duplicate hit_id \[1\]"),
        (([], [], [], [], []), "no hits"),
        ((HIT, PID, W, HIT.astype(str), PID), "must hold integers"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(InputError, match=match):
        trackml_score(*args)


def test_integer_valued_float_ids_are_accepted():
    assert score(HIT.astype(float), PID.astype(float)) == pytest.approx(1.0, abs=1e-15)


def _event(with_weight: bool) -> Event:
    cols = {"hit_id": HIT, "particle_id": PID * (1 << 16), "tz": np.arange(9, dtype=float)}
    if with_weight:
        cols["weight"] = W
    truth = Table(cols, name="truth")
    parts = Table({"particle_id": np.array([1, 2]) << 16, "vz": [0.0, 0.0], "px": [5.0, 5.0], "py": [0.0, 0.0]})
    hits = Table({"hit_id": HIT})
    return Event(hits=hits, truth=truth, particles=parts)


def test_score_event_uses_file_weights_or_recomputes():
    sub = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3])
    # file weights: track 1 = particle 1 (0.4), track 2 = {5,6}, 2/3 of particle 2 (0.2)
    assert score_event(_event(True), HIT, sub) == pytest.approx(0.6 / 0.8, abs=1e-15)
    # recomputed weights: particle 2 has 3 hits -> weight 0; particle 1 carries everything
    assert score_event(_event(False), HIT, sub) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(InputError, match="no truth"):
        score_event(Event(hits=Table({"hit_id": HIT})), HIT, sub)


def test_speed_120k_hits():
    rng = np.random.default_rng(7)
    n = 120_000
    pid = rng.integers(1, 12_000, n)
    pid[rng.random(n) < 0.15] = 0
    hit = rng.permutation(3 * n)[:n] + 1
    w = rng.random(n)
    trk = pid.copy()
    moved = rng.random(n) < 0.1
    trk[moved] = rng.integers(0, 20_000, moved.sum())
    t0 = time.perf_counter()
    s = trackml_score(hit, pid, w, hit, trk)
    elapsed = time.perf_counter() - t0
    assert 0.5 < s < 1.0
    assert elapsed < 2.0, f"{elapsed:.2f} s for 120k hits (measured ~0.04 s)"


# -- cross-check against the independent reference on the real event ----------------------------

def _corruptions(pid: np.ndarray, rng: np.random.Generator):
    n = len(pid)
    for rate in (0.01, 0.05, 0.2, 0.5, 0.9):
        trk = pid.copy()
        m = rng.random(n) < rate
        trk[m] = rng.permutation(trk[m])
        yield f"shuffle {rate}", np.arange(n), trk
    ids = np.unique(pid)
    for frac in (0.1, 0.5):
        # merge: map chosen particles onto another particle's track
        chosen = rng.choice(ids, int(frac * len(ids)), replace=False)
        target = dict(zip(chosen.tolist(), rng.choice(ids, len(chosen)).tolist()))
        yield f"merge {frac}", np.arange(n), np.array([target.get(int(p), int(p)) for p in pid])
    for frac in (0.3, 1.0):
        # split: a random part of each chosen particle's hits goes to a new track
        split = rng.random(n) < frac * 0.5
        yield f"split {frac}", np.arange(n), np.where(split, pid + 1, pid * 2)
    keep = rng.random(n) < 0.7  # 30 % of hits unassigned, the rest shuffled a little
    trk = pid.copy()
    m = rng.random(n) < 0.1
    trk[m] = rng.permutation(trk[m])
    yield "drop 0.3", np.flatnonzero(keep), trk[keep]
    yield "noise as one track", np.arange(n), np.where(pid == 0, -5, pid)


def test_agrees_with_reference_on_real_event(real_event, shared_score_tool):
    import pandas as pd

    truth = real_event.truth
    tdf = pd.DataFrame({c: truth[c] for c in ("hit_id", "particle_id", "weight")})
    rng = np.random.default_rng(2024)
    hit, pid, w = truth["hit_id"], truth["particle_id"], truth["weight"]
    seen = []
    for name, rows, trk in _corruptions(pid, rng):
        ours = trackml_score(hit, pid, w, hit[rows], trk)
        ref = shared_score_tool.score(tdf, pd.DataFrame({"hit_id": hit[rows], "track_id": trk}))
        assert ours == pytest.approx(ref, abs=1e-12, rel=0), name
        seen.append(ours)
    # the corruptions span the range, so the comparison is not between trivial values
    assert min(seen) < 0.2 and max(seen) > 0.95
    assert trackml_score(hit, pid, w, hit, pid) == pytest.approx(1.0, abs=1e-12)
