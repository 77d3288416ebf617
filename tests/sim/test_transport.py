"""Transport: numpy reference vs compiled engine, and physics validation against independent formulas.

Physics numbers used here are written out independently of trackcore (PDG 2024): c = 0.299792458
GeV/(T m), Highland formula, silicon X0 = 9.370 cm, density 2.329 g/cm^3, minimum ionisation
1.664 MeV cm^2/g. Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from trackcore.backends import get_backend
from trackcore.errors import BackendError, BuildError, InputError
from trackcore.geometry import ConstantField, GridFieldMap, generic_detector, read_detector, trackml_like_detector
from trackcore.sim.transport import TransportConfig, field_arguments, layer_material, transport
from trackcore.sim.transport_numpy import transport_numpy

C_LIGHT = 0.299792458e-3  # GeV / (T mm)
MUON = 0.1056584
KEYS = ("particle_index", "module_index", "position", "momentum", "local", "local_direction", "edep", "path")


def _cpu_available() -> bool:
    try:
        get_backend("cpu")
        return True
    except (BackendError, BuildError, ImportError):
        return False


CPU = pytest.mark.skipif(not _cpu_available(), reason="the compiled core (cpu backend) is not built")
BACKENDS = ["numpy", pytest.param("cpu", marks=CPU)]


@pytest.fixture(scope="module")
def generic():
    return generic_detector()


@pytest.fixture(scope="module")
def trackml():
    return trackml_like_detector()


def gun(n: int, seed: int, pt=(0.3, 10.0), eta=(-3.0, 3.0), vertex_sigma=(2.0, 2.0, 50.0), mass=MUON):
    """Particles flat in pT, eta, phi from a Gaussian (displaced) vertex: vertex, momentum, charge, mass."""
    rng = np.random.default_rng(seed)
    pt_ = rng.uniform(*pt, n)
    eta_ = rng.uniform(*eta, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mom = np.stack([pt_ * np.cos(phi), pt_ * np.sin(phi), pt_ * np.sinh(eta_)], axis=1)
    vtx = rng.normal(0.0, vertex_sigma, (n, 3))
    return vtx, mom, rng.choice([-1, 1], n).astype(np.int32), np.full(n, mass)


def run(detector, particles, backend, field=None, seed=3, **cfg):
    return transport(detector, *particles, field=field, config=TransportConfig(**cfg), seed=seed, backend=backend)


def assert_same_crossings(a: dict, b: dict, tol: float = 1e-8) -> None:
    for k in ("particle_index", "module_index"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for k in KEYS[2:]:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=tol, err_msg=k)


def uniform_map(bz: float = 2.0) -> GridFieldMap:
    """A uniform field on an (r, z) grid that covers the TrackML detector."""
    r = np.linspace(0.0, 1200.0, 13)
    z = np.linspace(-3200.0, 3200.0, 33)
    return GridFieldMap(r, z, np.zeros((13, 33)), np.full((13, 33), bz))


# --- parity: numpy reference == compiled engine --------------------------------------------------
@CPU
@pytest.mark.parametrize("material", [False, True], ids=["material-off", "material-on"])
def test_parity_generic(generic, material):
    parts = gun(200, 1)
    kw = dict(multiple_scattering=material, energy_loss=material)
    a, b = run(generic, parts, "numpy", **kw), run(generic, parts, "cpu", **kw)
    assert len(a["module_index"]) > 800
    assert_same_crossings(a, b)


@CPU
@pytest.mark.parametrize("material", [False, True], ids=["material-off", "material-on"])
def test_parity_trackml_like(trackml, material):
    parts = gun(120, 2)
    kw = dict(multiple_scattering=material, energy_loss=material)
    a, b = run(trackml, parts, "numpy", **kw), run(trackml, parts, "cpu", **kw)
    assert len(a["module_index"]) > 1000
    assert_same_crossings(a, b)


@CPU
def test_parity_real_detector(shared_trackml):
    det = read_detector(shared_trackml / "detectors.csv.gz")
    parts = gun(80, 3, pt=(0.2, 5.0))
    a, b = run(det, parts, "numpy", loop_fraction=0.0), run(det, parts, "cpu", loop_fraction=0.0)
    assert len(a["module_index"]) > 800
    assert_same_crossings(a, b)


@CPU
@pytest.mark.parametrize("mode", ["rk-constant", "rk-map"])
def test_parity_runge_kutta(trackml, mode):
    parts = gun(50, 4)
    field = uniform_map() if mode == "rk-map" else None
    a = run(trackml, parts, "numpy", field=field, use_rk=True)
    b = run(trackml, parts, "cpu", field=field, use_rk=True)
    assert_same_crossings(a, b)


@CPU
@pytest.mark.parametrize("mode", ["helix", "rk-trackml-map"])
def test_parity_soft_loopers(trackml, mode):
    """Soft particles curl through many short, strongly bent steps: where the compiled engine's
    sagitta test leaves a candidate module out before the plane intersection (the numpy reference
    has no such test), the crossings must still be the same, in the solenoid map's varying field too."""
    from trackcore.geometry.field import trackml_field_map

    parts = gun(40, 5, pt=(0.1, 0.6), eta=(-2.0, 2.0))
    field = trackml_field_map() if mode == "rk-trackml-map" else None
    a, b = run(trackml, parts, "numpy", field=field), run(trackml, parts, "cpu", field=field)
    assert len(a["module_index"]) > 300
    assert_same_crossings(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_arc_dipping_through_a_module_between_chord_ends_is_found(generic, backend):
    """A 1.2 GeV track grazing a barrel module: within one 50 mm step its arc dips 8 um through the
    module's plane and comes back, so both ends of the step's chord lie 0.15 mm on the same side.
    The compiled engine leaves out modules whose plane both chord ends clear by more than the arc's
    sagitta; this one it must keep, and both backends find the crossing 5.6 mm before the arc's
    deepest point (19.4 mm into the step)."""
    m = int(np.argmin(np.abs(generic.centre[:, 2]) + 1e3 * (np.abs(generic.rotation[:, 2, 2]) > 1e-9)))
    c, n = generic.centre[m], generic.rotation[m][:, 2]  # a barrel module near z = 0: its normal is transverse
    n = n / np.hypot(n[0], n[1])
    t = np.array([-n[1], n[0], 0.0])  # in the plane, transverse
    radius, step, dip = 2000.0, 50.0, 0.05  # mm; the step's turn is 50 / 2000 rad
    sagitta = radius * (1 - np.cos(step / radius / 2))
    deepest = c - dip * sagitta * n  # the arc's point nearest the plane side -n
    centre = deepest + radius * n
    half = step / radius / 2
    start = centre - radius * (np.cos(half) * n + np.sin(half) * t)
    direction = np.cos(half) * t - np.sin(half) * n  # tangent at the start, moving towards +t
    charge = 1 if np.dot(n, [t[1], -t[0], 0.0]) > 0 else -1  # Bz > 0 bends positive charges clockwise
    pt = C_LIGHT * 2.0 * radius
    parts = (start[None], (pt * direction)[None], np.array([charge], np.int32), np.array([MUON]))
    out = run(generic, parts, backend, multiple_scattering=False, energy_loss=False)
    assert len(out["module_index"]) and out["module_index"][0] == m
    assert out["path"][0] == pytest.approx(step / 2 - np.sqrt(2 * radius * dip * sagitta), abs=0.05)
    first = out["position"][0]
    assert abs(np.dot(first - c, n)) < 1e-6  # on the plane


# --- the trajectory is the analytic helix --------------------------------------------------------
def helix_point(vertex, momentum, charge, bz, s):
    """Position after path s on a helix, written out independently: circle of radius pT / (c B)
    about the centre to the right of the transverse direction (for q B > 0), z linear in the angle."""
    pt = np.hypot(momentum[:, 0], momentum[:, 1])
    p = np.linalg.norm(momentum, axis=1)
    radius = pt / (C_LIGHT * abs(bz))
    sign = np.sign(charge * bz)
    ux, uy = momentum[:, 0] / pt, momentum[:, 1] / pt
    cx, cy = vertex[:, 0] + sign * radius * uy, vertex[:, 1] - sign * radius * ux
    turn = -sign * s * (pt / p) / radius  # clockwise for q B > 0
    dx, dy = vertex[:, 0] - cx, vertex[:, 1] - cy
    x = cx + dx * np.cos(turn) - dy * np.sin(turn)
    y = cy + dx * np.sin(turn) + dy * np.cos(turn)
    return np.stack([x, y, vertex[:, 2] + s * momentum[:, 2] / p], axis=1), np.stack([cx, cy], axis=1), radius


@pytest.mark.parametrize("backend", BACKENDS)
def test_crossings_lie_on_the_analytic_helix(trackml, backend):
    vtx, mom, q, m = parts = gun(60, 5, pt=(0.4, 10.0))
    out = run(trackml, parts, backend, multiple_scattering=False, energy_loss=False)
    i = out["particle_index"]
    assert len(np.unique(i)) > 55 and len(i) > 500
    expected, centre, radius = helix_point(vtx[i], mom[i], q[i], 2.0, out["path"])
    assert np.abs(out["position"] - expected).max() < 1e-3
    # On the circle of the right radius about the right centre, |p| unchanged.
    r_circle = np.hypot(*(out["position"][:, :2] - centre).T)
    assert np.abs(r_circle - radius).max() < 1e-3
    np.testing.assert_allclose(np.linalg.norm(out["momentum"], axis=1), np.linalg.norm(mom[i], axis=1), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("field", ["constant", "map"])
def test_runge_kutta_matches_helix(trackml, backend, field):
    parts = gun(40 if backend == "numpy" else 300, 6, pt=(0.4, 10.0))
    kw = dict(multiple_scattering=False, energy_loss=False)
    helix = run(trackml, parts, backend, **kw)
    rk = run(trackml, parts, backend, field=uniform_map() if field == "map" else ConstantField(2.0), use_rk=True,
             **kw)
    np.testing.assert_array_equal(rk["module_index"], helix["module_index"])
    np.testing.assert_array_equal(rk["particle_index"], helix["particle_index"])
    assert np.abs(rk["position"] - helix["position"]).max() < 1e-3
    assert np.abs(rk["path"] - helix["path"]).max() < 1e-3


def test_field_map_tuple_matches_field_object(generic):
    fmap = uniform_map()
    bz, tup = field_arguments(fmap)
    assert bz == 0.0 and tup[2] == 13 and tup[5] == 33
    parts = gun(30, 7)
    cfg = TransportConfig(use_rk=True)
    direct = transport_numpy(generic, *parts, layer_material(generic), bz, tup, 3, cfg)
    assert_same_crossings(direct, transport(generic, *parts, field=fmap, config=cfg, seed=3, backend="numpy"))


# --- crossings lie in their modules --------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_crossings_inside_their_modules(trackml, backend):
    parts = gun(60, 8)
    out = run(trackml, parts, backend)
    mod, loc = out["module_index"], out["local"]
    assert np.abs(loc[:, 2]).max() < 1e-8
    assert np.all(np.abs(loc[:, 1]) <= trackml.hv[mod] + 1e-9)
    assert np.all(np.abs(loc[:, 0]) <= trackml.half_width_at(mod, loc[:, 1]) + 1e-9)
    np.testing.assert_allclose(trackml.global_to_local(mod, out["position"], backend="numpy"), loc, atol=1e-8)
    np.testing.assert_allclose(trackml.local_to_global(mod, loc, backend="numpy"), out["position"], atol=1e-8)
    # The local direction is the global momentum direction rotated into the module frame.
    d = out["momentum"] / np.linalg.norm(out["momentum"], axis=1)[:, None]
    np.testing.assert_allclose(np.einsum("nji,nj->ni", trackml.rotation[mod], d), out["local_direction"], atol=1e-12)
    # Path grows along each particle's crossings.
    same = out["particle_index"][1:] == out["particle_index"][:-1]
    assert np.all(np.diff(out["path"])[same] > 0)


# --- material effects ----------------------------------------------------------------------------
def highland(p: float, mass: float, x_over_x0: np.ndarray) -> np.ndarray:
    """PDG Eq. 34.15: theta0 = 13.6 MeV / (beta c p) sqrt(x/X0) (1 + 0.038 ln(x / (X0 beta^2)))."""
    beta = p / math.sqrt(p * p + mass * mass)
    return 13.6e-3 / (beta * p) * np.sqrt(x_over_x0) * (1 + 0.038 * np.log(x_over_x0 / beta ** 2))


def thick_layers(detector, x0: float = 0.05) -> dict:
    return {(lay.volume_id, lay.layer_id): x0 for lay in detector.layers}


def consecutive(out: dict) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (k, k+1) of consecutive crossings of the same particle."""
    k = np.flatnonzero(out["particle_index"][1:] == out["particle_index"][:-1])
    return k, k + 1


def central_muons(n: int, p: float, seed: int):
    rng = np.random.default_rng(seed)
    eta, phi = rng.uniform(-0.5, 0.5, n), rng.uniform(-np.pi, np.pi, n)
    pt = p / np.cosh(eta)
    mom = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)
    return np.zeros((n, 3)), mom, rng.choice([-1, 1], n).astype(np.int32), np.full(n, MUON)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiple_scattering_width_is_highland(generic, backend):
    # No field: the direction changes only by scattering, lumped at each crossing.
    out = run(generic, central_muons(1000, 1.0, 9), backend, field=ConstantField(0.0), energy_loss=False,
              layer_x0=thick_layers(generic), seed=11)
    k0, k1 = consecutive(out)
    assert len(k0) > 2000
    d0 = out["momentum"][k0] / np.linalg.norm(out["momentum"][k0], axis=1)[:, None]
    d1 = out["momentum"][k1] / np.linalg.norm(out["momentum"][k1], axis=1)[:, None]
    # Two projected angles on axes perpendicular to the incoming direction (any such pair will do).
    u = np.cross(d0, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u, axis=1)[:, None]
    v = np.cross(d0, u)
    along = np.einsum("ij,ij->i", d1, d0)
    angles = np.concatenate([np.arctan2(np.einsum("ij,ij->i", d1, u), along),
                             np.arctan2(np.einsum("ij,ij->i", d1, v), along)])
    x = 0.05 / np.abs(out["local_direction"][k0, 2])  # path through the tilted layer
    theta0 = np.tile(highland(1.0, MUON, x), 2)
    assert abs(np.std(angles / theta0) - 1.0) < 0.10
    assert abs(np.mean(angles / theta0)) < 0.05
    # And the raw width at near-normal incidence is the Highland number for 5% X0 (~2.7 mrad).
    normal = np.tile(x < 0.0505, 2)
    assert normal.sum() > 500
    assert np.std(angles[normal]) == pytest.approx(highland(1.0, MUON, np.array(0.05)), rel=0.10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_energy_loss_is_bethe_bloch(generic, backend):
    x0_si_mm, density, dedx_min = 93.70, 2.329, 1.664e-3  # mm, g/cm^3, GeV cm^2/g (PDG, silicon)

    def loss_per_g_cm2(p):
        out = run(generic, central_muons(300, p, 12), backend, multiple_scattering=False,
                  layer_x0=thick_layers(generic))
        k0, k1 = consecutive(out)
        assert len(k0) > 300
        e0, e1 = (np.sqrt(np.sum(out["momentum"][k] ** 2, axis=1) + MUON ** 2) for k in (k0, k1))
        grams = 0.05 * x0_si_mm / np.abs(out["local_direction"][k0, 2]) * 0.1 * density  # g/cm^2
        return (e0 - e1) / grams

    at_minimum = loss_per_g_cm2(3.5 * MUON)  # beta gamma ~ 3.5
    assert np.mean(at_minimum) == pytest.approx(dedx_min, rel=0.10)
    assert np.mean(loss_per_g_cm2(0.12)) > 1.3 * np.mean(at_minimum)  # beta gamma ~ 1.1: 1/beta^2 rise
    assert np.mean(at_minimum) < np.mean(loss_per_g_cm2(10.0)) < 1.4 * dedx_min  # mild relativistic rise


@pytest.mark.parametrize("backend", BACKENDS)
def test_very_slow_heavy_particles_never_gain_energy(generic, backend):
    # beta gamma = 0.004, below where the Bethe formula turns negative (~0.013): it used to add energy.
    from trackcore.sim.transport_numpy import bethe_bloch_si

    assert bethe_bloch_si(0.004 * 1000.0, 1000.0) == 0.0 < bethe_bloch_si(0.05 * 1000.0, 1000.0)
    out = run(generic, central_muons(50, 4.0, 14)[:3] + (np.full(50, 1000.0),), backend, multiple_scattering=False,
              layer_x0=thick_layers(generic))
    k0, k1 = consecutive(out)
    assert len(k0) > 50
    p0, p1 = (np.linalg.norm(out["momentum"][k], axis=1) for k in (k0, k1))
    assert np.all(p1 <= p0 * (1 + 1e-12))  # rounding of sqrt(e^2 - m^2) at m = 250 p


@pytest.mark.parametrize("backend", BACKENDS)
def test_energy_deposit_is_landau_like(generic, backend):
    out = run(generic, central_muons(300, 1.0, 13), backend)
    si_um = 2 * generic.thickness[out["module_index"]] / np.abs(out["local_direction"][:, 2]) * 1e3
    per_um = out["edep"] / si_um * 1e6  # keV / um
    assert np.all(out["edep"] >= 0)
    # A MIP in ~300 um of silicon: most probable ~0.28 keV/um (84 keV, PDG Fig. 34.8 / Bichsel);
    # the distribution is skewed to high values (Landau tail).
    assert 0.26 < np.median(per_um) < 0.30
    assert np.mean(per_um) > np.median(per_um)
    assert np.percentile(per_um, 95) > 1.2 * np.median(per_um)


@CPU
def test_material_depends_on_seed_only(generic):
    parts = gun(50, 14)
    a, b, c = (run(generic, parts, "cpu", seed=s) for s in (5, 5, 6))
    assert_same_crossings(a, b, tol=0.0)
    assert not np.array_equal(a["edep"], c["edep"][: len(a["edep"])])


# --- loopers and acceptance ----------------------------------------------------------------------
def looper(pt: float = 0.2):
    return np.zeros((1, 3)), np.array([[pt, 0.0, 0.0]]), np.array([1], np.int32), np.array([MUON])


def n_passes(out: dict, detector, layer: int) -> int:
    """Passes through ``layer``: its crossings grouped where the path jumps by more than 20 mm."""
    path = out["path"][detector.layer_index(out["module_index"]) == layer]
    return int(len(path) > 0) + int(np.count_nonzero(np.diff(path) > 20.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_looper_curls_through_inner_layers(trackml, backend):
    radius = 0.2 / (C_LIGHT * 2.0)  # 333.6 mm: the circle through the origin reaches r = 2R
    inner = trackml.layers.index(trackml.layer(8, 2))
    kw = dict(multiple_scattering=False, energy_loss=False, max_crossings=500)
    out = run(trackml, looper(), backend, loop_fraction=0.0, max_path=5000.0, **kw)
    r = np.hypot(out["position"][:, 0], out["position"][:, 1])
    assert r.max() < 2 * radius + 1e-3
    # Out at the start, in and out again each turn: 2.4 turns in 5 m give 5 passes at the origin.
    assert n_passes(out, trackml, inner) == 5
    assert out["path"].max() <= 5000.0 + 50.0
    # ACTS-style loop protection stops it after half a turn (at r = 2R).
    half = run(trackml, looper(), backend, **kw)
    assert half["path"].max() <= math.pi * radius + 1e-6
    assert n_passes(half, trackml, inner) == 1
    # max_crossings and min_p stop it too.
    assert len(run(trackml, looper(), backend, loop_fraction=0.0, max_crossings=7)["path"]) == 7
    slow = run(trackml, looper(), backend, loop_fraction=0.0, min_p=0.197, max_crossings=500)
    full = run(trackml, looper(), backend, loop_fraction=0.0, max_crossings=500)
    assert 0 < len(slow["path"]) < len(full["path"])
    assert np.linalg.norm(slow["momentum"], axis=1).min() >= 0.197


@pytest.mark.parametrize("backend", BACKENDS)
def test_beyond_acceptance_crosses_nothing(generic, trackml, backend):
    n = 40
    phi = np.linspace(-3.0, 3.0, n)
    for eta, det, most in ((4.5, generic, 0), (-4.5, generic, 0), (4.5, trackml, 5), (-6.0, trackml, 0)):
        mom = np.stack([np.cos(phi), np.sin(phi), np.full(n, np.sinh(eta))], axis=1)
        out = run(det, (np.zeros((n, 3)), mom, np.ones(n, np.int32), np.full(n, MUON)), backend)
        assert np.bincount(out["particle_index"], minlength=n).max() <= most, (det.name, eta)


@pytest.mark.parametrize("backend", [pytest.param("numpy"), pytest.param("cpu", marks=[CPU])])
def test_chord_grazing_a_layer_finds_its_crossing(generic, backend):
    # A stiff track from a displaced vertex that cuts through the first barrel layer (r ~ 32 mm)
    # inside one 50 mm step whose two ends both lie outside that layer's r range.
    x = 32.0
    parts = (np.array([[x, -30.0, 0.0]]), np.array([[0.0, 100.0, 0.0]]), np.array([1], np.int32), np.array([MUON]))
    out = run(generic, parts, backend, multiple_scattering=False, energy_loss=False)
    first = out["position"][0]
    assert abs(first[1]) < 10.0 and abs(np.hypot(first[0], first[1]) - x) < 1.0


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("change, message", [
    (lambda v, p, q, m: (v.__setitem__((1, 2), np.nan)), "particle 1 has a non-finite"),
    (lambda v, p, q, m: (p.__setitem__((2, 0), np.inf)), "particle 2 has a non-finite"),
    (lambda v, p, q, m: (q.__setitem__(0, 0)), "particle 0 is neutral"),
    (lambda v, p, q, m: (p.__setitem__(1, 0.0)), "non-zero momentum"),
], ids=["nan-vertex", "inf-momentum", "zero-charge", "zero-momentum"])
def test_bad_particles_are_input_errors(generic, backend, change, message):
    v, p, q, m = gun(3, 15)
    change(v, p, q, m)
    with pytest.raises(InputError, match=message):
        transport(generic, v, p, q, m, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_shapes_and_mass(generic, backend):
    v, p, q, m = gun(3, 16)
    with pytest.raises(InputError, match="same number of particles"):
        transport(generic, v, p[:2], q, m, backend=backend)
    with pytest.raises(ValueError, match="mass > 0"):
        transport(generic, v, p, q, np.array([MUON, 0.0, MUON]), backend=backend)
    kernel = get_backend(backend).kernel("transport")
    x0, cfg = layer_material(generic), TransportConfig()
    with pytest.raises(ValueError, match="layer_x0"):
        kernel(generic, v, p, q, m, x0[:-1], 2.0, None, 0, cfg)
    with pytest.raises(ValueError, match="momentum"):
        kernel(generic, v, p[:, :2].copy(), q, m, x0, 2.0, None, 0, cfg)
    bad_map = (0.0, 10.0, 4, -10.0, 10.0, 3, np.zeros((4, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="field map"):
        kernel(generic, v, p, q, m, x0, 0.0, bad_map, 0, cfg)


def test_momentum_of_wrong_width_is_rejected(generic):
    with pytest.raises(InputError):
        transport(generic, np.zeros((2, 3)), np.ones((3, 2)), np.ones(2, np.int32), np.full(2, MUON), backend="numpy")


def test_splitmix64_reference_values():
    from trackcore.sim.transport_numpy import Stream, splitmix64

    # First two outputs of Vigna's SplitMix64 generator seeded with 0 (uint64 wraparound).
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    u = np.array([Stream(1, 2).uniform() for _ in range(1)] + [Stream(1, 3).uniform()])
    assert np.all((u > 0) & (u < 1)) and u[0] != u[1]
