"""Regressions of the kernel fuzz sweep: bad input to the compiled core once hung, crashed or gave
silently wrong output; each now raises a ValueError (or InputError) naming the problem.

Inputs that used to hang or crash run in a subprocess with a time limit (``_bounded``), so that a
regression fails the test instead of taking the test machine down with it.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from trackcore._corelib import core
from trackcore.errors import InputError
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.ckf import CkfConfig
from trackcore.reco.seeding import SeedingConfig
from trackcore.sim.transport import compiled_geometry, layer_material

C = core()

_PRELUDE = """
import numpy as np
from trackcore._corelib import core
from trackcore.geometry.builders import trackml_like_detector
from trackcore.sim.transport import compiled_geometry, layer_material
C = core()
det = trackml_like_detector()
geo, x0 = compiled_geometry(det), layer_material(det)
v = np.zeros((3, 3))
p = np.array([[1.0, 0.2, 0.3], [0.5, -0.4, 2.0], [-2.0, 1.0, -0.5]])
q = np.array([1, -1, 1], np.int32)
m = np.full(3, 0.13957)
def field_map(bz):
    return (0.0, 100.0, 12, -3000.0, 100.0, 61, np.zeros((12, 61)), bz)
def attempt(label, call):
    # One line per call: "returned <label>" or "ValueError <message>".
    try:
        call()
        print("returned", label)
    except ValueError as e:
        print("ValueError", e)
"""


def _bounded(code: str, timeout: float = 15.0) -> str:
    """Run ``code`` after _PRELUDE in a fresh interpreter; its stdout ("ValueError ..." expected)."""
    try:
        res = subprocess.run([sys.executable, "-c", _PRELUDE + textwrap.dedent(code)], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s (endless loop)")
    assert res.returncode == 0, f"exit {res.returncode} (a negative code is a crash by signal): {res.stderr[-800:]}"
    return res.stdout


@pytest.fixture(scope="module")
def det():
    return trackml_like_detector()


@pytest.fixture(scope="module")
def geo(det):
    return compiled_geometry(det), layer_material(det)


def _particles():
    return (np.zeros((3, 3)), np.array([[1.0, 0.2, 0.3], [0.5, -0.4, 2.0], [-2.0, 1.0, -0.5]]),
            np.array([1, -1, 1], np.int32), np.full(3, 0.13957))


# -- Geometry.candidates: an absurd phi never wrapped (endless loop) -------------------------
def test_candidates_absurd_phi_is_value_error():
    out = _bounded("""
        for phi in (1e30, -1e300, float("inf"), float("nan")):
            attempt(phi, lambda: geo.candidates(0, phi, 50.0, 0.2, 60.0))
        """)
    assert out.count("ValueError") == 4 and "returned" not in out, out
    assert "phi = 1e+30 rad" in out


def test_candidates_valid_still_answer(geo):
    g, _ = geo
    assert len(g.candidates(0, 0.1, 50.0, 0.2, 60.0)) > 0
    assert len(g.candidates(0, -np.pi, 50.0, np.pi, 60.0)) > 0  # the limits of a wrapped angle


# -- transport: field-map values (NaN/inf/1e300 crashed, 1e30 hung) --------------------------
def test_transport_field_map_values_checked():
    out = _bounded("""
        for value in (float("nan"), float("inf"), 1e300, 1e30, -1e30):
            bz = np.full((12, 61), 2.0)
            bz[2, 30] = value
            attempt(value, lambda: C.transport(geo, v, p, q, m, x0, field_map=field_map(bz), use_rk=True))
        """)
    assert out.count("ValueError") == 5 and "returned" not in out, out
    assert "field map Bz[2, 30] = 1e+30 T" in out


def test_field_map_placement_and_constant_field_checked(geo):
    g, x0 = geo
    v, p, q, m = _particles()
    grid = (0.0, 100.0, 12, -3000.0, 100.0, 61, np.zeros((12, 61)), np.full((12, 61), 2.0))
    with pytest.raises(ValueError, match="field map: r0 = 1e\\+30"):
        C.transport(g, v, p, q, m, x0, field_map=(1e30,) + grid[1:], use_rk=True)
    with pytest.raises(ValueError, match="field map: r0 = nan"):
        C.transport(g, v, p, q, m, x0, field_map=(float("nan"),) + grid[1:], use_rk=True)
    with pytest.raises(ValueError, match="bz = 1e\\+30 T"):
        C.transport(g, v, p, q, m, x0, bz=1e30)
    out = C.transport(g, v, p, q, m, x0, field_map=grid, use_rk=True)  # the valid map still runs
    assert len(out["module_index"]) > 0


# -- transport: absurd mass (1e300 crashed), momentum, material ------------------------------
def test_transport_absurd_mass_is_value_error():
    out = _bounded("""
        for mass in (1e300, 1e30):
            attempt(mass, lambda: C.transport(geo, v, p, q, np.full(3, mass), x0))
        """)
    assert out.count("ValueError") == 2 and "returned" not in out, out
    assert "mass = 1e+300 GeV" in out


def test_transport_absurd_momentum_and_material(geo):
    g, x0 = geo
    v, p, q, m = _particles()
    p[1] = [1e300, 0.0, 0.0]  # |p|^2 overflowed: the particle was silently dropped
    with pytest.raises(ValueError, match=r"particle 1: \|p\|"):
        C.transport(g, v, p, q, m, x0)
    _, p, _, _ = _particles()
    for value in (np.nan, np.inf, -1.0):  # NaN cut particles short; -1 gave them energy
        bad = x0.copy()
        bad[3] = value
        with pytest.raises(ValueError, match=r"layer_x0\[3\]"):
            C.transport(g, v, p, q, m, bad)


def test_transport_curling_particle_without_loop_protection_stops():
    """1e-100 GeV (or 1e-30 GeV through the Python API) curls in 1e-100 mm steps: it looped forever."""
    out = _bounded("""
        from trackcore.sim.transport import transport, TransportConfig
        p[1] = [1e-100, 0.0, 0.0]
        attempt(None, lambda: C.transport(geo, v, p, q, m, x0, min_p=0.0, loop_fraction=0.0))
        p[1] = [1e-30, 0.0, 0.0]
        attempt(None, lambda: transport(det, v, p, q, m, config=TransportConfig(loop_fraction=0.0)))
        """)
    assert out.count("ValueError") == 2 and "returned" not in out, out
    assert "particle 1 needs more than 2e7 steps" in out


# -- CKF settings: zero steps or huge seed covariance hung; NaN silently found nothing -------
def _ckf_case(key, value):
    return dataclasses.replace(CkfConfig(), **{key: value}).as_dict()


def test_ckf_absurd_settings_hang_no_more():
    out = _bounded("""
        import dataclasses
        from trackcore.reco.ckf import CkfConfig
        from trackcore.reco.measurements import Measurements
        from trackcore.sim.particles import minimum_bias
        from trackcore.sim.simulate import simulate_event
        ev = simulate_event(det, minimum_bias(np.random.default_rng(1), pileup=5.0), seed=1)
        meas = Measurements.from_event(ev, det)
        hits = meas.compiled()
        seeds = np.arange(0, 30, dtype=np.int64).reshape(-1, 3)
        for key, value in (("max_step", 0.0), ("max_step", 1e-300), ("max_turn", 0.0), ("sigma_phi", 1e30),
                           ("sigma_qop_rel", 1e30), ("sigma_theta", 1e30), ("mass", 1e30)):
            cfg = dataclasses.replace(CkfConfig(), **{key: value}).as_dict()
            attempt(key, lambda: C.ckf(geo, hits, seeds, x0, 2.0, None, cfg))
        """, timeout=20.0)
    assert out.count("ValueError") == 7 and "returned" not in out, out
    assert "CKF setting sigma_qop_rel = 1e+30" in out


@pytest.mark.parametrize("key, value, match", [
    ("max_path", float("nan"), "max_path"), ("max_path", float("inf"), "max_path"),
    ("sigma_phi", float("nan"), "sigma_phi"), ("edge_tolerance", float("nan"), "edge_tolerance"),
    ("mass", 1e-300, "mass"), ("max_shared", -1, "max_shared"), ("skip_used_hits", -5, "skip_used_hits"),
    ("max_turn", 1e-300, "max_turn"), ("layer_depth", float("nan"), "layer_depth"),
])
def test_ckf_settings_out_of_range_are_value_errors(geo, key, value, match):
    g, x0 = geo
    hits = C.HitArrays(np.zeros(3, np.int64), np.zeros(3), np.zeros(3), np.full(3, 1e-4), np.full(3, 1e-4),
                       np.zeros((3, 3)))
    with pytest.raises(ValueError, match=match):
        C.ckf(g, hits, np.array([[0, 1, 2]]), x0, 2.0, None, _ckf_case(key, value))


@pytest.mark.parametrize("key, value", [
    ("max_step", 0.0), ("max_turn", 0.0), ("sigma_phi", 1e30), ("sigma_qop_rel", 1e30), ("mass", 1e30),
    ("max_path", float("nan")), ("edge_tolerance", -1.0), ("max_shared", -1), ("skip_used_hits", 4),
    ("min_measurements", 2), ("chi2_max", float("inf")), ("max_branches", 1.5),
])
def test_ckf_settings_checked_before_any_backend_runs(key, value):
    # The same ranges in Python: the numpy twin (which has no checks of its own) would hang on the
    # first two, and every backend now raises InputError naming the setting before any work.
    from trackcore.reco.ckf import find_tracks, fit_tracks
    from trackcore.reco.measurements import Measurements

    det = trackml_like_detector()
    meas = Measurements(np.zeros(3, np.int64), np.zeros(3), np.zeros(3), np.full(3, 1e-4), np.full(3, 1e-4),
                        np.zeros((3, 3)))
    bad = dataclasses.replace(CkfConfig(), **{key: value})
    for backend in ("numpy", "cpu"):
        with pytest.raises(InputError, match=f"CKF setting .*{key}"):
            find_tracks(meas, np.array([[0, 1, 2]]), det, config=bad, backend=backend)
    with pytest.raises(InputError, match=f"CKF setting .*{key}"):
        fit_tracks(meas, [np.array([0, 1, 2])], det, config=bad)
    assert CkfConfig().check() == CkfConfig()


def test_ckf_and_fit_check_field_and_material(geo):
    g, x0 = geo
    hits = C.HitArrays(np.zeros(3, np.int64), np.zeros(3), np.zeros(3), np.full(3, 1e-4), np.full(3, 1e-4),
                       np.zeros((3, 3)))
    cfg = CkfConfig().as_dict()
    bad = x0.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match=r"layer_x0\[0\]"):
        C.ckf(g, hits, np.array([[0, 1, 2]]), bad, 2.0, None, cfg)
    with pytest.raises(ValueError, match="bz = inf"):
        C.ckf(g, hits, np.array([[0, 1, 2]]), x0, np.inf, None, cfg)
    offsets, index = np.array([0, 3]), np.array([0, 1, 2])
    # fit_tracks read layer_x0 without a length check (past the end of a short array).
    with pytest.raises(ValueError, match="layer_x0"):
        C.fit_tracks(g, hits, offsets, index, x0[:2], 2.0, None, cfg)
    with pytest.raises(ValueError, match=r"layer_x0\[0\]"):
        C.fit_tracks(g, hits, offsets, index, bad, 2.0, None, cfg)
    with pytest.raises(ValueError, match="params"):
        C.transport_jacobian(g, 0, [0.0, 0.0, 0.1, 1.0, float("nan")], 1, 1, 2.0, False)


# -- seeding: NaN/inf parameters gave NaN weights; an absurd phi was binned silently --------
def _seed_inputs():
    from trackcore.reco.seeding import derived_parameters

    rng = np.random.default_rng(3)
    r = np.repeat([32.0, 72.0, 116.0, 172.0], 20)
    phi = rng.uniform(-0.3, 0.3, len(r))
    x, y, z = r * np.cos(phi), r * np.sin(phi), rng.uniform(-50, 50, len(r))
    layer = np.repeat(np.arange(4), 20)
    return [x, y, z, r, phi], layer, derived_parameters(SeedingConfig(), 30.0, 180.0, -60.0, 60.0)


@pytest.mark.parametrize("key", ["compat_weight", "impact_weight", "inv_phi_bin", "z_lo", "cot_max", "var_r"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_seeding_parameters_must_be_finite(key, value):
    xs, layer, params = _seed_inputs()
    params[key] = value
    with pytest.raises(ValueError, match=f"'{key}'"):
        C.find_seeds(*xs, layer, params, bz=2.0)
    with pytest.raises(ValueError, match=f"'{key}'"):
        C.seeding_grid(xs[4], xs[2], xs[3], params)


def test_seeding_phi_and_bz_checked():
    xs, layer, params = _seed_inputs()
    xs[4] = xs[4].copy()
    xs[4][5] = 1e30
    with pytest.raises(ValueError, match=r"phi\[5\] = 1e\+30"):
        C.find_seeds(*xs, layer, params, bz=2.0)
    with pytest.raises(ValueError, match=r"phi\[5\]"):
        C.seeding_grid(xs[4], xs[2], xs[3], params)
    with pytest.raises(ValueError, match=r"phi\[5\]"):
        C.seed_buckets(*xs, layer, np.arange(len(layer)).reshape(1, -1), params)
    xs, layer, params = _seed_inputs()
    with pytest.raises(ValueError, match="bz must be finite and non-zero"):
        C.find_seeds(*xs, layer, params, bz=1e300)  # gave infinite track parameters
    hits, weight, track = C.find_seeds(*xs, layer, params, bz=2.0)
    assert np.isfinite(weight).all() and np.isfinite(track).all()


def test_seeding_config_absurd_field_and_pt():
    with pytest.raises(InputError, match="min_pt"):  # was a ZeroDivisionError in derived_parameters
        SeedingConfig(min_pt=1e-300)
    with pytest.raises(InputError, match="bz"):  # the collision-region search then hung
        SeedingConfig(bz=1e30)


def test_collision_region_window_wider_than_a_turn_holds_each_point_once():
    from trackcore.reco.collision_region import _window_pairs

    phi_b = np.sort(np.random.default_rng(5).uniform(-np.pi, np.pi, 50))
    phi_a = np.array([-3.0, 0.0, 2.5])
    for half_width in (4.0, 1e30):  # was: up to three copies of each b per a, multiplied per layer
        a, b = _window_pairs(phi_a, phi_b, half_width)
        assert len(a) == 3 * 50
        for i in range(3):
            assert sorted(b[a == i]) == list(range(50))
    a, b = _window_pairs(phi_a, phi_b, 0.3)  # a normal window: unchanged
    assert all(abs((phi_b[b[k]] - phi_a[a[k]] + np.pi) % (2 * np.pi) - np.pi) <= 0.3 for k in range(len(a)))


# -- Geometry: a module at 1e30 mm overflowed the mask bins; skewed rotations, bad layer kinds ---
def _geometry_args(det):
    args = [np.array(a, np.float64) for a in (det.centre, det.rotation, det.thickness, det.min_hu, det.max_hu, det.hv)]
    layer = det.layer_index(np.arange(len(det))).astype(np.int32)
    kinds = np.array([0 if la.kind == "barrel" else 1 for la in det.layers], np.int32)
    return args, layer, kinds


@pytest.mark.parametrize("column, value, match", [
    (0, 1e30, "within 1e6 mm"), (5, 1e300, "within 1e6 mm"), (3, -1.0, "min_hu >= 0"),
    (1, 0.5, "not orthonormal"), (1, 1e30, "not orthonormal"),
])
def test_geometry_absurd_module_is_value_error(det, column, value, match):
    args, layer, kinds = _geometry_args(det)
    if args[column].ndim == 1:
        args[column][5] = value
    else:
        args[column][5].reshape(-1)[0] = value  # module 5's x, or its R[0, 0]
    with pytest.raises(ValueError, match=f"module 5: .*{match}"):
        C.Geometry(*args, layer, kinds)


def test_geometry_layer_kind_checked(det):
    args, layer, kinds = _geometry_args(det)
    kinds[2] = 7
    with pytest.raises(ValueError, match=r"layer_kind\[2\] = 7"):
        C.Geometry(*args, layer, kinds)
    kinds[2] = 0
    assert C.Geometry(*args, layer, kinds).n_modules == len(det)


# -- LSH: a width of 1e-300 clamped every projection to 2^62: one bucket for all points ------
def test_lsh_width_too_small_for_the_features_is_value_error():
    rng = np.random.default_rng(1)
    x, a, b = rng.normal(size=(100, 3)), rng.normal(size=(4, 2, 3)), rng.uniform(0, 0.7, (4, 2))
    for width in (1e-300, 5e-324):
        with pytest.raises(ValueError, match="too small"):
            C.lsh_knn(x, np.arange(10), a, b, width, 5)
        with pytest.raises(ValueError, match="too small"):
            C.lsh_keys(x, a, b, width)
    x[3, 1] = 1e300
    with pytest.raises(ValueError, match="too small"):
        C.lsh_keys(x, a, b, 0.7)
    x[3, 1] = 0.0
    assert len(np.unique(C.lsh_keys(x, a, b, 0.7)[0])) > 10  # valid widths keep their buckets


# -- CKF hits: a local coordinate of 1e30 or inf mm sent the track search into an endless walk ----
def test_ckf_absurd_hit_coordinate_is_value_error():
    out = _bounded("""
        from trackcore.reco.measurements import Measurements
        from trackcore.reco.ckf import CkfConfig
        from trackcore.sim.particles import minimum_bias
        from trackcore.sim.simulate import simulate_event
        ev = simulate_event(det, minimum_bias(np.random.default_rng(1), pileup=5.0), seed=1)
        meas = Measurements.from_event(ev, det)
        cols = [np.array(a) for a in (meas.module_index, meas.u, meas.v, meas.var_u, meas.var_v, meas.xyz)]
        seeds = np.arange(0, 30, dtype=np.int64).reshape(-1, 3)
        for col, value in ((1, 1e30), (2, float("inf")), (1, float("nan"))):
            bad = [c.copy() for c in cols]
            bad[col][1] = value
            attempt((col, value), lambda: C.ckf(geo, C.HitArrays(*bad), seeds, x0, 2.0, None, CkfConfig().as_dict()))
        """, timeout=20.0)
    assert out.count("ValueError") == 3 and "returned" not in out, out
    assert "hit 1: u = 1e+30" in out


def test_ckf_hit_position_and_variance_must_be_finite(geo):
    g, x0 = geo
    base = [np.zeros(3, np.int64), np.zeros(3), np.zeros(3), np.full(3, 1e-4), np.full(3, 1e-4), np.zeros((3, 3))]
    for col, value in ((5, np.nan), (3, np.inf)):
        cols = [c.copy() for c in base]
        cols[col][1] = value  # hit 1's position (all three) or its variance
        with pytest.raises(ValueError, match="hit 1"):
            C.ckf(g, C.HitArrays(*cols), np.array([[0, 1, 2]]), x0, 2.0, None, CkfConfig().as_dict())


def test_lsh_knn_absurd_k_is_value_error():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    proj, offsets = rng.normal(size=(2, 4, 3)), rng.uniform(0, 1, size=(2, 4))
    with pytest.raises(ValueError, match="more than 2\\^31 answers"):
        C.lsh_knn(x, np.arange(10), proj, offsets, 1.0, 2**31 - 1)
    assert C.lsh_knn(x, np.arange(10), proj, offsets, 1.0, 60).shape == (10, 60)  # more than the points: -1 pads


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_transport_bounds_hold_for_every_backend(backend):
    # The numpy twin has no bounds of its own: the Python entry point checks for both.
    from trackcore.sim.transport import transport

    det = trackml_like_detector()
    v, p, q, m = np.zeros((2, 3)), np.array([[1.0, 0.0, 0.5], [0.5, 0.5, 0.0]]), np.array([1, -1], np.int32), np.full(2, 0.14)
    with pytest.raises(InputError, match="particle 1: mass = 1e\\+30 GeV"):
        transport(det, v, p, q, np.array([0.14, 1e30]), backend=backend)
    big = p.copy()
    big[0, 2] = 1e300
    with pytest.raises(InputError, match="particle 0: a momentum component of 1e\\+300 GeV"):
        transport(det, v, big, q, m, backend=backend)
    from trackcore.geometry import ConstantField

    with pytest.raises(InputError, match="Bz = 1e\\+30 T"):
        transport(det, v, p, q, m, field=ConstantField(1e30), backend=backend)
