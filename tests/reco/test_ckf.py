"""Combinatorial Kalman filter: track finding on a muon gun with noise, hit exclusivity, the chi2 cut,
and bad or empty input."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event import Event
from trackcore.metrics import tracking_rates
from trackcore.reco.ckf import CkfConfig, find_tracks
from trackcore.reco.measurements import Measurements
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.reco.tracks import Tracks


@pytest.fixture(scope="module")
def gun(reco_detector, gun_event):
    """Measurements and pixel triplet seeds (rows of event.hits) of the gun event."""
    meas = Measurements.from_event(gun_event, reco_detector)
    sp = SpacePoints.from_event(gun_event, reco_detector, volumes=(7, 8, 9))
    seeds = find_seeds(sp)
    return meas, sp.hit_index[seeds.hits]


@pytest.fixture(scope="module")
def found(reco_detector, gun, gun_event):
    meas, seeds = gun
    return find_tracks(meas, seeds, reco_detector)


def particle_of_hits(event: Event) -> np.ndarray:
    return event.truth["particle_id"]


def test_finds_the_muons(gun_event, found):
    tracks, stats = found
    hit_id = gun_event.hits["hit_id"]
    tid = tracks.track_of_hit(len(hit_id))
    free = tid < 0
    tid[free] = len(tracks) + np.arange(free.sum())  # unassigned hits: singletons, not tracks
    rates = tracking_rates(gun_event, hit_id, tid)
    parts = gun_event.particles
    pt = np.hypot(parts["px"], parts["py"])
    assert pt.min() >= 1.0 and rates.n_reconstructable_pt > 250
    assert rates.technical_efficiency_pt > 0.95, rates.format_table()
    assert rates.fake_rate < 0.05, rates.format_table()
    assert rates.duplicate_rate < 0.05, rates.format_table()
    assert stats["seeds_used"] + stats["seeds_skipped"] > 0 and stats["tracks_before_ambiguity"] >= len(tracks)


def test_tracks_hold_their_particles_hits(gun_event, found):
    tracks, _ = found
    pid = particle_of_hits(gun_event)
    n_truth = np.bincount(np.searchsorted(np.unique(pid), pid))
    uniq = np.unique(pid)
    purity, completeness = [], []
    for i in range(len(tracks)):
        p = pid[tracks.track_hits(i)]
        values, counts = np.unique(p, return_counts=True)
        best = values[np.argmax(counts)]
        purity.append(counts.max() / len(p))
        completeness.append(counts.max() / n_truth[np.searchsorted(uniq, best)] if best != 0 else 0.0)
    purity, completeness = np.array(purity), np.array(completeness)
    assert np.mean(purity) > 0.97, np.mean(purity)
    assert np.median(completeness) >= 0.9, np.median(completeness)
    assert np.all(tracks.n_hits >= CkfConfig().min_measurements)


def test_every_hit_on_at_most_one_track(found, gun_event):
    tracks, _ = found
    assert len(np.unique(tracks.hits)) == len(tracks.hits)
    assert tracks.hits.min() >= 0 and tracks.hits.max() < len(gun_event.hits)
    assert tracks.offsets[0] == 0 and tracks.offsets[-1] == len(tracks.hits) and np.all(np.diff(tracks.offsets) >= 0)


def test_found_tracks_have_perigee_and_covariance(found, gun_event):
    tracks, _ = found
    assert tracks.fitted.mean() > 0.98
    f = tracks.fitted
    assert np.all(np.isfinite(tracks.perigee[f])) and np.all(np.isfinite(tracks.covariance[f]))
    diag = np.einsum("nii->ni", tracks.covariance[f])
    assert np.all(diag > 0)
    # Fitted pT agrees with the gun range (1-10 GeV) for nearly every track.
    pt = tracks.pt[f]
    assert np.mean((pt > 0.8) & (pt < 12.5)) > 0.97
    assert set(tracks.to_table().columns) >= {"d0", "z0", "phi", "theta", "qop", "sigma_qop", "pt", "eta", "chi2"}


def test_tiny_chi2_cut_keeps_nothing_beyond_the_seeds(reco_detector, gun):
    meas, seeds = gun
    tracks, stats = find_tracks(meas, seeds, reco_detector, config=CkfConfig(chi2_max=1e-9, min_measurements=3))
    # No hit passes the cut, so every trajectory is its seed's three hits and nothing more.
    assert len(tracks) > 0 and np.all(tracks.n_hits == 3)
    seed_sets = {tuple(sorted(s)) for s in seeds.tolist()}
    assert all(tuple(sorted(tracks.track_hits(i).tolist())) in seed_sets for i in range(len(tracks)))
    none, _ = find_tracks(meas, seeds, reco_detector, config=CkfConfig(chi2_max=1e-9))
    assert len(none) == 0  # min_measurements 5 > 3 seed hits


@pytest.mark.parametrize("bad", [[[0, 1, -1]], [[0, 1, 10 ** 9]]], ids=["negative", "beyond"])
def test_seeds_out_of_range(reco_detector, gun, bad):
    meas, _ = gun
    with pytest.raises(InputError, match="seeds refer to hits outside the event"):
        find_tracks(meas, np.array(bad), reco_detector)


def test_empty_event_and_empty_seeds(reco_detector, gun):
    meas, seeds = gun
    tracks, stats = find_tracks(meas, np.zeros((0, 3), np.int64), reco_detector)
    assert isinstance(tracks, Tracks) and len(tracks) == 0 and stats["seeds_used"] == 0
    empty = meas.take(np.zeros(0, np.int64))
    tracks, _ = find_tracks(empty, np.zeros((0, 3), np.int64), reco_detector)
    assert len(tracks) == 0 and tracks.track_of_hit(0).shape == (0,)
    with pytest.raises(InputError):
        find_tracks(empty, seeds[:1], reco_detector)


def _soft_seed_outcomes(detector, event: Event, backend: str, n_max: int = 60) -> np.ndarray:
    """For pure seeds of soft primaries (0.1 < pT < 0.3 GeV), one per particle, each followed alone:
    rows (hits on the track, of them the particle's, the particle's hits in the event)."""
    import dataclasses

    from trackcore.reco.pipeline import default_ckf, default_seeding

    meas = Measurements.from_event(event, detector)
    sp = SpacePoints.from_event(event, detector, volumes=(7, 8, 9))
    seeds = sp.hit_index[find_seeds(sp, dataclasses.replace(default_seeding(), min_pt=0.1)).hits]
    pid = particle_of_hits(event)
    parts = event.particles
    soft = parts["particle_id"][(np.hypot(parts["px"], parts["py"]) > 0.1) & (np.hypot(parts["px"], parts["py"]) < 0.3)
                                & (parts["secondary"] == 0)]
    p = pid[seeds]
    pure = (p[:, 0] == p[:, 1]) & (p[:, 1] == p[:, 2]) & np.isin(p[:, 0], soft)
    _, first = np.unique(p[pure, 0], return_index=True)
    config = dataclasses.replace(default_ckf(), min_measurements=3, skip_used_seeds=False)
    rows = []
    for seed in seeds[pure][np.sort(first)][:n_max]:
        tracks, _ = find_tracks(meas, seed[None, :], detector, config=config, backend=backend)
        hits = tracks.hits[tracks.offsets[0]:tracks.offsets[1]] if len(tracks) else np.zeros(0, np.int64)
        q = pid[seed[0]]
        rows.append((len(hits), int(np.sum(pid[hits] == q)), int(np.sum(pid == q))))
    return np.array(rows)


@pytest.fixture(scope="module")
def busy_event(reco_detector) -> Event:
    """Minimum bias at <mu> = 60: enough hits beyond the beam line to lead a wrong search astray."""
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.simulate import simulate_event

    return simulate_event(reco_detector, minimum_bias(np.random.default_rng(1), pileup=60), seed=1)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_soft_seeds_grow_into_their_particles_tracks(reco_detector, busy_event, backend):
    """A pure seed of a soft primary, followed alone, gives a track holding most of its particle's hits.

    The refinement searches inward of the seed; unbounded, that search went through the beam line
    onto the far side's hits and 12-20 % of these seeds ended as another particle's track (majority
    fraction 0.80-0.88 on <mu> = 60 events with seeds 1-3; 0.97-1.0 with the search stopped at the
    beam line).
    """
    out = _soft_seed_outcomes(reco_detector, busy_event, backend)
    assert len(out) == 60
    majority = (2 * out[:, 1] > out[:, 0]) & (2 * out[:, 1] > out[:, 2])
    assert majority.mean() >= 0.95, out
