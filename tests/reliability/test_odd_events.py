"""Odd events reconstruct to a valid (possibly empty) result: no crash, every hit on at most one track.

Cases: no hits, a single hit, only noise, every hit on one module, loopers (0.1-0.3 GeV), hits on
module edges and corners. The generic detector keeps the runs fast.
"""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event import Event, Table
from trackcore.geometry.builders import generic_detector
from trackcore.reco.pipeline import reconstruct
from trackcore.sim.digitization import noise_hits
from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import SimulationConfig, simulate_event
from trackcore.sim.transport import TransportConfig


@pytest.fixture(scope="module")
def detector():
    return generic_detector()


def _check_valid(reco, event: Event) -> None:
    t = reco.tracks
    n = event.n_hits
    assert t.offsets[0] == 0 and t.offsets[-1] == len(t.hits) and (np.diff(t.offsets) >= 0).all()
    assert len(t.perigee) == len(t) == len(t.chi2) == len(t.fitted)
    if len(t.hits):
        assert t.hits.min() >= 0 and t.hits.max() < n
        assert len(np.unique(t.hits)) == len(t.hits), "a hit is on two tracks"
        assert np.isfinite(t.perigee[t.fitted]).all()
    tid = reco.track_id_of_hits()
    assert tid.shape == (n,) and tid.min(initial=-1) >= -1
    hit_id, track_id = reco.submission()
    assert len(hit_id) == len(track_id) == n and len(np.unique(hit_id)) == n


def _hits_event(detector, module_index: np.ndarray, uvw: np.ndarray) -> Event:
    """An event with hits at local points of given modules (no cells, no truth)."""
    xyz = detector.local_to_global(module_index, uvw)
    n = len(module_index)
    hits = Table({"hit_id": np.arange(1, n + 1, dtype=np.int64), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                  "volume_id": detector.volume_id[module_index].astype(np.int32),
                  "layer_id": detector.layer_id[module_index].astype(np.int32),
                  "module_id": detector.module_id[module_index].astype(np.int32)}, name="hits")
    return Event(hits=hits, event_id=1)


def test_no_hits(detector):
    event = _hits_event(detector, np.zeros(0, np.int64), np.zeros((0, 3)))
    reco = reconstruct(event, detector)
    _check_valid(reco, event)
    assert len(reco.tracks) == 0


def test_single_hit(detector):
    event = _hits_event(detector, np.array([len(detector) // 2]), np.zeros((1, 3)))
    reco = reconstruct(event, detector)
    _check_valid(reco, event)
    assert len(reco.tracks) == 0  # a track needs at least three measurements


def test_all_noise(detector):
    rng = np.random.default_rng(3)
    noise = noise_hits(detector, rng, 3000)
    event = Event(hits=noise.hits, cells=noise.cells, event_id=1)
    reco = reconstruct(event, detector)
    _check_valid(reco, event)
    # Random points may line up by chance, but they must not become a large share of "tracks".
    assert (reco.track_id_of_hits() >= 0).mean() < 0.2


def test_all_hits_on_one_module(detector):
    rng = np.random.default_rng(4)
    m = len(detector) // 3
    n = 500
    uvw = np.column_stack([rng.uniform(-1, 1, n) * detector.min_hu[m], rng.uniform(-1, 1, n) * detector.hv[m],
                           np.zeros(n)])
    event = _hits_event(detector, np.full(n, m), uvw)
    reco = reconstruct(event, detector)
    _check_valid(reco, event)
    assert len(reco.tracks) == 0  # one layer cannot make a seed


def test_hits_on_module_edges_and_corners(detector):
    mods = np.arange(0, len(detector), max(1, len(detector) // 200))
    corners = []
    for su, sv in [(-1, -1), (-1, 1), (1, -1), (1, 1), (0, 1), (1, 0)]:
        # exactly on the edge: the trapezoid's half width at v = +-hv is min_hu or max_hu
        hv = detector.hv[mods]
        hw = np.where(sv < 0, detector.min_hu[mods], detector.max_hu[mods]) if sv else detector.max_hu[mods]
        corners.append(np.column_stack([su * hw, sv * hv, np.zeros(len(mods))]))
    uvw = np.concatenate(corners)
    event = _hits_event(detector, np.tile(mods, 6), uvw)
    reco = reconstruct(event, detector)
    _check_valid(reco, event)


def test_loopers_reconstruct_validly(detector):
    rng = np.random.default_rng(5)
    particles = particle_gun(30, rng, pt=(0.1, 0.3), eta=(-1.0, 1.0), vertex_sigma=(0.0, 0.0, 1.0))
    config = SimulationConfig(transport=TransportConfig(loop_fraction=0.0, max_crossings=200), noise_fraction=0.0)
    event = simulate_event(detector, particles, config=config, seed=5)
    assert event.n_hits > 0
    reco = reconstruct(event, detector)
    _check_valid(reco, event)


def test_hits_stacked_on_one_point(detector):
    event = _hits_event(detector, np.array([0, 0, 0, 1, 1]), np.zeros((5, 3)))
    reco = reconstruct(event, detector)
    _check_valid(reco, event)


def test_hit_far_off_its_module_is_a_clear_error(detector):
    """A hit labelled with a module it cannot be on: InputError naming the hit, not a crash or a track."""
    event = _hits_event(detector, np.array([0, 1, 2]), np.zeros((3, 3)))
    event.hits["x"][2] = 1e6
    with pytest.raises(InputError, match="hit_id 3"):
        reconstruct(event, detector)
