"""Tracking efficiency, fake and duplicate rates on a crafted event with hand-counted answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event import Event, Table
from trackcore.metrics import TrackingRates, tracking_rates

# particle 1: 6 hits, pT 2 GeV; particle 2: 4 hits, pT 0.5; particle 3: 3 hits (not reconstructable), pT 5;
# particle 4: 6 hits, pT 3; noise: 3 hits
PID = np.array([1] * 6 + [2] * 4 + [3] * 3 + [4] * 6 + [0] * 3)
HIT = np.arange(100, 100 + len(PID))
H = {p: HIT[PID == p].tolist() for p in (0, 1, 2, 3, 4)}
PT = {0: 0.0, 1: 2.0, 2: 0.5, 3: 5.0, 4: 3.0}
TRACKS = {
    10: H[1][:3],                        # 3/3 from p1, but 3/6 of p1: matched, not technical
    11: H[1][3:5] + [H[0][0]],           # 2/3 from p1: matched, a duplicate of p1
    12: H[2][:2] + [H[4][0], H[0][1]],   # p2 holds 2/4: fake
    13: H[4][1:] + [H[2][2]],            # 5/6 from p4, 5/6 of p4: technical
    14: H[3],                            # p3 complete: technical, but p3 is not reconstructable
    15: [H[2][3], H[0][2]],              # 2 hits: too short to count
}                                        # p1's 6th hit is unassigned
SUB_HIT = np.array([h for hs in TRACKS.values() for h in hs])
SUB_TRK = np.array([t for t, hs in TRACKS.items() for _ in hs])


def truth_table() -> Table:
    return Table({"hit_id": HIT, "particle_id": PID, "pt": np.array([PT[p] for p in PID])}, name="truth")


def test_crafted_counts_and_rates():
    r = tracking_rates(truth_table(), SUB_HIT, SUB_TRK)
    assert (r.n_particles, r.n_reconstructable, r.n_reconstructable_pt) == (4, 3, 2)
    assert (r.n_tracks, r.n_short_tracks, r.n_matched, r.n_technical, r.n_fake, r.n_duplicate) == (5, 1, 4, 2, 1, 1)
    assert (r.n_found, r.n_found_pt, r.n_found_technical, r.n_found_technical_pt) == (2, 2, 1, 1)
    assert (r.n_hits, r.n_noise_hits, r.n_unassigned_hits) == (22, 3, 1)
    assert r.efficiency == pytest.approx(2 / 3)
    assert r.efficiency_pt == 1.0
    assert r.technical_efficiency == pytest.approx(1 / 3)
    assert r.technical_efficiency_pt == 0.5
    assert r.fake_rate == pytest.approx(1 / 5)
    assert r.duplicate_rate == pytest.approx(1 / 4)


def test_min_track_hits_and_min_hits_and_min_pt():
    r = tracking_rates(truth_table(), SUB_HIT, SUB_TRK, min_track_hits=2)
    # the 2-hit track (p2 1/2, noise 1/2) now counts, as a fake
    assert (r.n_tracks, r.n_fake, r.n_short_tracks) == (6, 2, 0)
    r = tracking_rates(truth_table(), SUB_HIT, SUB_TRK, min_hits=3)
    assert (r.n_reconstructable, r.n_found, r.n_found_technical) == (4, 3, 2)
    r = tracking_rates(truth_table(), SUB_HIT, SUB_TRK, min_pt=2.5)
    assert (r.n_reconstructable_pt, r.n_found_pt, r.n_found_technical_pt) == (1, 1, 1)


def test_noise_only_track_is_fake_and_noise_is_never_a_particle():
    r = tracking_rates(truth_table(), np.array(H[0]), np.zeros(3, dtype=int))
    assert (r.n_tracks, r.n_matched, r.n_fake, r.n_particles) == (1, 0, 1, 4)
    assert r.efficiency == 0.0 and r.fake_rate == 1.0 and math.isnan(r.duplicate_rate)


def test_perfect_reconstruction():
    real = PID != 0
    r = tracking_rates(truth_table(), HIT[real], PID[real])
    assert r.efficiency == r.technical_efficiency == r.efficiency_pt == 1.0
    assert r.fake_rate == 0.0 and r.duplicate_rate == 0.0 and r.n_tracks == 4


def test_empty_submission_gives_nan_fake_rate():
    r = tracking_rates(truth_table(), [], [])
    assert r.efficiency == 0.0 and math.isnan(r.fake_rate) and r.n_unassigned_hits == 22


def test_pt_sources_agree():
    by_column = tracking_rates(truth_table(), SUB_HIT, SUB_TRK)
    # tpx/tpy at the innermost hit: outer hits get a different momentum, which must be ignored
    radius = np.arange(len(PID), dtype=float)
    tpx = np.array([PT[p] for p in PID]) * np.where(np.r_[True, PID[1:] != PID[:-1]], 1.0, 0.1)
    truth = Table({"hit_id": HIT, "particle_id": PID, "tx": radius, "ty": np.zeros(len(PID)),
                   "tpx": tpx, "tpy": np.zeros(len(PID))})
    assert tracking_rates(truth, SUB_HIT, SUB_TRK) == by_column
    particles = Table({"particle_id": np.array([1, 2, 3, 4]), "px": np.array([0.0, 0.3, 3.0, 0.0]),
                       "py": np.array([2.0, 0.4, 4.0, 3.0])})
    event = Event(hits=Table({"hit_id": HIT}), particles=particles,
                  truth=Table({"hit_id": HIT, "particle_id": PID}))
    assert tracking_rates(event, SUB_HIT, SUB_TRK) == by_column
    # no pT information at all: pT-restricted efficiencies are undefined
    r = tracking_rates({"hit_id": HIT, "particle_id": PID}, SUB_HIT, SUB_TRK)
    assert r.n_reconstructable_pt == 0 and math.isnan(r.efficiency_pt) and r.efficiency == by_column.efficiency


def test_as_dict_and_table():
    r = tracking_rates(truth_table(), SUB_HIT, SUB_TRK)
    d = r.as_dict()
    assert d["n_fake"] == 1 and d["duplicate_rate"] == 0.25 and set(d) == set(TrackingRates.__dataclass_fields__)
    text = r.format_table()
    assert "66.67 %  (2/3)" in text and "20.00 %  (1/5)" in text and "25.00 %  (1/4)" in text
    assert "pT > 1 GeV" in text and "22 / 3 / 1" in text


def test_bad_input():
    with pytest.raises(InputError, match="duplicate hit_id"):
        tracking_rates(truth_table(), np.array([100, 100]), np.array([1, 1]))
    with pytest.raises(InputError, match="not in the truth"):
        tracking_rates(truth_table(), np.array([5]), np.array([1]))
    with pytest.raises(InputError, match="'particle_id'"):
        tracking_rates({"hit_id": HIT}, SUB_HIT, SUB_TRK)
    with pytest.raises(InputError, match="no truth"):
        tracking_rates(Event(hits=Table({"hit_id": HIT})), SUB_HIT, SUB_TRK)
    with pytest.raises(InputError, match="min_hits"):
        tracking_rates(truth_table(), SUB_HIT, SUB_TRK, min_hits=0)
    with pytest.raises(InputError, match="track_id has 1"):
        tracking_rates(truth_table(), SUB_HIT, SUB_TRK[:1])


def test_real_event_truth_as_tracks(real_event):
    truth = real_event.truth
    real = truth["particle_id"] != 0
    r = tracking_rates(real_event, truth["hit_id"][real], truth["particle_id"][real])
    assert r.efficiency == r.technical_efficiency == r.efficiency_pt == 1.0
    assert r.fake_rate == 0.0 and r.duplicate_rate == 0.0
    ids, counts = np.unique(truth["particle_id"][real], return_counts=True)
    parts = real_event.particles
    pt = dict(zip(parts["particle_id"].tolist(), np.hypot(parts["px"], parts["py"]).tolist()))
    fast = sum(1 for i, c in zip(ids.tolist(), counts) if c >= 4 and pt[i] > 1.0)
    assert (r.n_particles, r.n_reconstructable, r.n_reconstructable_pt) == (len(ids), int((counts >= 4).sum()), fast)
    assert r.n_tracks == int((counts >= 3).sum()) and r.n_unassigned_hits == int((~real).sum())
