"""The numpy reference of the CKF and the track fit (trackcore/reco/ckf_numpy.py) against the compiled core:
the same tracks with the same hits, and the same fitted parameters to rounding, on small simulated events
(constant field and a solenoid field map); its bin grid against the core's; its input checks."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import get_backend
from trackcore.errors import InputError
from trackcore.geometry.builders import generic_detector
from trackcore.geometry.field import solenoid_field_map
from trackcore.reco.ckf import CkfConfig
from trackcore.reco.ckf_numpy import ckf_numpy, fit_tracks_numpy
from trackcore.reco.kalman_numpy import GridGeometry, grid_geometry
from trackcore.reco.measurements import Measurements
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import simulate_event
from trackcore.sim.transport import compiled_geometry, field_arguments, layer_material

RTOL = 1e-9  # today the two agree bit for bit; this leaves room for a compiler contracting a*b+c into an FMA


def _core():
    from trackcore._corelib import core

    return core()


def _inputs(detector, n: int, seed: int, field=None):
    """Measurements, pixel triplet seeds (rows of the hits) and layer x/X0 of an n-muon gun event with noise."""
    parts = particle_gun(n, np.random.default_rng(seed), pt=(1.0, 10.0), eta=(-2.5, 2.5), pdg=13)
    event = simulate_event(detector, parts, seed=seed, field=field)
    meas = Measurements.from_event(event, detector)
    sp = SpacePoints.from_event(event, detector, volumes=(7, 8, 9))
    return meas, sp.hit_index[find_seeds(sp).hits], layer_material(detector)


def _assert_same_tracks(cpu: dict, ref: dict) -> None:
    for key in ("offsets", "hits", "seed", "ndf", "fitted"):
        np.testing.assert_array_equal(ref[key], cpu[key], err_msg=key)
    for key in ("perigee", "chi2", "covariance"):
        scale = np.abs(cpu[key]).max() if cpu[key].size else 0.0
        np.testing.assert_allclose(ref[key], cpu[key], rtol=RTOL, atol=RTOL * 1e-6 * scale, err_msg=key)


@pytest.fixture(scope="module")
def gun(reco_detector):
    return _inputs(reco_detector, 50, 3)


@pytest.mark.parametrize("settings", [{}, {"refine": False, "skip_used_seeds": False},
                                      {"max_branches": 3, "max_candidates": 6, "chi2_max": 30.0, "skip_used_hits": 2},
                                      {"rescue_min_measurements": 3, "min_measurements": 9}],
                         ids=["default", "no-refine-all-seeds", "wide-beam", "rescue-short"])
def test_ckf_matches_the_core(reco_detector, gun, settings):
    meas, seeds, x0 = gun
    config = CkfConfig(**settings).as_dict()
    cpu = _core().ckf(compiled_geometry(reco_detector), meas.compiled(), seeds, x0, 2.0, None, config)
    ref = ckf_numpy(reco_detector, meas, seeds, x0, 2.0, config)
    # Nearly every muon is found and fitted: the comparison is over real tracks, not an empty list.
    assert len(cpu["seed"]) >= 45 and cpu["fitted"].all() and len(cpu["hits"]) > 450
    assert ref["stats"] == dict(cpu["stats"])
    # The rescue case refines short trajectories before the min_measurements cut: it must happen here.
    assert (cpu["stats"]["rescued"] > 0) == ("rescue_min_measurements" in settings), cpu["stats"]
    _assert_same_tracks(cpu, ref)


def test_fit_matches_the_core(reco_detector, gun):
    meas, seeds, x0 = gun
    config = CkfConfig().as_dict()
    found = _core().ckf(compiled_geometry(reco_detector), meas.compiled(), seeds, x0, 2.0, None, config)
    tracks = np.split(found["hits"], found["offsets"][1:-1])
    # Plus: a 2-hit track (not fitted), a reversed track (outward transport fails), a repeated module.
    tracks += [tracks[0][:2], tracks[1][::-1], np.r_[tracks[2][:4], tracks[2][3:]]]
    offsets = np.r_[0, np.cumsum([len(t) for t in tracks])].astype(np.int64)
    flat = np.concatenate(tracks).astype(np.int64)
    cpu = _core().fit_tracks(compiled_geometry(reco_detector), meas.compiled(), offsets, flat, x0, 2.0, None, config)
    ref = fit_tracks_numpy(reco_detector, meas, offsets, flat, x0, 2.0, config)
    assert not cpu["fitted"][-3] and cpu["fitted"][:-3].all()
    _assert_same_tracks(cpu, ref)


def test_ckf_in_a_field_map_matches_the_core(reco_detector):
    """Runge-Kutta stepping, Newton crossings on it and finite-difference Jacobians."""
    field = solenoid_field_map()
    meas, seeds, x0 = _inputs(reco_detector, 12, 2, field=field)
    bz, fmap = field_arguments(field)
    config = CkfConfig().as_dict()
    cpu = _core().ckf(compiled_geometry(reco_detector), meas.compiled(), seeds, x0, bz, fmap, config)
    ref = ckf_numpy(reco_detector, meas, seeds, x0, bz, config, field_map=fmap)
    assert len(cpu["seed"]) >= 10
    _assert_same_tracks(cpu, ref)


def test_bin_grid_gives_the_cores_candidates(reco_detector):
    """The overlap search after a layer's first crossing skips the modules already looked at, so the
    reference must look at exactly the modules the core's bins give, not a superset."""
    for det in (generic_detector(), reco_detector):
        geo, core_geo = (GridGeometry(det) if det is not reco_detector else grid_geometry(det)), compiled_geometry(det)
        assert (geo.world_r, geo.world_z) == (core_geo.world_r, core_geo.world_z)
        rng = np.random.default_rng(5)
        for _ in range(1500):
            layer = int(rng.integers(geo.n_layers))
            phi_a, q_a = rng.uniform(-3.5, 3.5), rng.uniform(geo.q_lo[layer] - 20, geo.q_hi[layer] + 20)
            phi_b, q_b = phi_a + rng.normal(0, 0.1), q_a + rng.normal(0, 20)
            out: set = set()
            geo.candidates(layer, phi_a, q_a, phi_b, q_b, out)
            assert out == set(core_geo.candidates(layer, phi_a, q_a, phi_b, q_b)), (layer, phi_a, q_a, phi_b, q_b)


def test_numpy_backend_serves_the_reference(reco_detector, gun):
    assert get_backend("numpy").kernel("ckf") is ckf_numpy
    meas, _, x0 = gun
    empty = ckf_numpy(reco_detector, meas, np.zeros((0, 3), np.int64), x0, 2.0, {})
    assert empty["offsets"].tolist() == [0] and empty["perigee"].shape == (0, 5)
    assert empty["covariance"].shape == (0, 5, 5) and empty["stats"]["seeds_used"] == 0


@pytest.mark.parametrize("change, message", [
    (dict(config={"chi2_maxx": 1.0}), "unknown CKF setting 'chi2_maxx'"),
    (dict(config={"max_branches": 1.5}), "'max_branches' must be int"),
    (dict(config={"min_measurements": 2}), "out of range"),
    (dict(seeds=[[0, 1, 10**6]]), "seed hit index outside the hits"),
    (dict(seeds=[[0.0, 1.0, 2.0]]), "integer"),
    (dict(layer_x0=np.zeros(3)), "layer_x0 must have shape"),
    (dict(var_u=0.0), "hit 0 has a non-positive variance"),
    (dict(module=10**7), "hit 0 has module index outside the geometry"),
])
def test_bad_input_is_an_input_error(reco_detector, gun, change, message):
    meas, seeds, x0 = gun
    meas = meas.take(np.arange(len(meas)))  # a copy to spoil
    if "var_u" in change:
        meas.var_u[0] = change["var_u"]
    if "module" in change:
        meas.module_index[0] = change["module"]
    with pytest.raises(InputError, match=message):
        ckf_numpy(reco_detector, meas, np.asarray(change.get("seeds", seeds[:3])), change.get("layer_x0", x0), 2.0,
                  change.get("config", {}))
