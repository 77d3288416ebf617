"""Space points, the (phi, z) grid and triplet seeding: backend parity, efficiency, bad input."""
from __future__ import annotations

import time

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.errors import GeometryError, InputError
from trackcore.event.event import Event
from trackcore.event.table import Table
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.seeding import SeedingConfig, Seeds, build_grid, find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import minimum_bias, particle_gun
from trackcore.sim.pdg import mass_of
from trackcore.sim.transport import transport

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


def simulate(detector, particles, seed: int = 0) -> tuple[Event, np.ndarray]:
    """Transport ``particles``; hits = crossings smeared by pitch/sqrt(12) in u and v. Returns the
    event and, per hit, the index of its particle."""
    vertex = np.column_stack([particles[k] for k in ("vx", "vy", "vz")])
    momentum = np.column_stack([particles[k] for k in ("px", "py", "pz")])
    out = transport(detector, vertex, momentum, particles["q"], mass_of(particles["particle_type"]), seed=seed)
    mi = out["module_index"]
    rng = np.random.default_rng(seed)
    local = detector.global_to_local(mi, out["position"])
    local[:, 0] += rng.normal(size=len(mi)) * detector.pitch_u[mi] / np.sqrt(12)
    local[:, 1] += rng.normal(size=len(mi)) * detector.pitch_v[mi] / np.sqrt(12)
    local[:, 2] = 0.0
    xyz = detector.local_to_global(mi, local)
    hits = Table({"hit_id": np.arange(1, len(mi) + 1), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                  "volume_id": detector.volume_id[mi], "layer_id": detector.layer_id[mi],
                  "module_id": detector.module_id[mi]}, name="hits")
    return Event(hits), out["particle_index"]


def seed_stats(sp: SpacePoints, particle: np.ndarray, seeds: Seeds, selected: np.ndarray) -> dict:
    """Efficiency over ``selected`` particles with pixel hits on >= 3 distinct layers."""
    part = particle[sp.hit_index]
    pix = np.isin(sp.volume_id, (7, 8, 9))
    pairs = np.unique(np.stack([part[pix], sp.layer_index[pix]], axis=1), axis=0)
    n_layers = np.bincount(pairs[:, 0], minlength=len(selected))
    den = selected & (n_layers >= 3)
    sp_part = part[seeds.hits]
    good = (sp_part[:, 0] == sp_part[:, 1]) & (sp_part[:, 1] == sp_part[:, 2])
    found = np.zeros(len(selected), bool)
    found[sp_part[good, 0]] = True
    return {"n": int(den.sum()), "efficiency": (found & den).sum() / max(den.sum(), 1),
            "fake_fraction": 1.0 - good.mean() if len(good) else 0.0,
            "seeds_per_particle": len(seeds) / max(den.sum(), 1), "good": good, "particle": sp_part[:, 0]}


@pytest.fixture(scope="module")
def detector():
    return trackml_like_detector()


@pytest.fixture(scope="module")
def gun_event(detector):
    particles = particle_gun(300, 11, pt=(1.0, 10.0), eta=(-2.5, 2.5))
    event, particle = simulate(detector, particles, seed=11)
    return particles, event, particle, SpacePoints.from_event(event, detector)


def random_spacepoints(n_tracks: int, n_noise: int, rng) -> SpacePoints:
    """Helices from near the origin crossing four barrel cylinders and three disks per side
    (exact positions plus 20 um noise), and uniformly spread noise points on the same surfaces."""
    radii, disks = np.array([32.0, 72.0, 116.0, 172.0]), np.array([600.0, 750.0, 900.0])
    pt, phi0 = rng.uniform(0.3, 20, n_tracks), rng.uniform(-np.pi, np.pi, n_tracks)
    q, z0 = rng.choice([-1, 1], n_tracks), rng.normal(0, 50, n_tracks)
    cot = np.sinh(rng.uniform(-3, 3, n_tracks))
    radius = pt / (0.299792458e-3 * 2.0)
    pts = []
    for lay, rr in enumerate(radii):  # cylinder crossings: s(r) = 2R asin(r / 2R)
        ok = rr < 2 * radius
        s = 2 * radius[ok] * np.arcsin(rr / (2 * radius[ok]))
        z = z0[ok] + cot[ok] * s
        ok2 = np.abs(z) < 450
        pts.append((np.full(ok2.sum(), rr), phi0[ok][ok2] - q[ok][ok2] * s[ok2] / (2 * radius[ok][ok2]), z[ok2],
                    np.full(ok2.sum(), lay)))
    for k, zd in enumerate(np.concatenate([disks, -disks])):  # disk crossings: r(s) = 2R sin(s / 2R)
        s = (zd - z0) / cot
        r = 2 * radius * np.sin(np.clip(s / (2 * radius), 0, np.pi / 2))
        ok = (s > 0) & (r > 35) & (r < 170) & (s < np.pi * radius)
        pts.append((r[ok], phi0[ok] - q[ok] * s[ok] / (2 * radius[ok]), np.full(ok.sum(), zd),
                    np.full(ok.sum(), 4 + k)))
    r, phi, z, layer = (np.concatenate(a) for a in zip(*pts))
    kind = rng.integers(0, 10, n_noise)
    rn = np.where(kind < 4, radii[np.minimum(kind, 3)], rng.uniform(35, 170, n_noise))
    zn = np.where(kind < 4, rng.uniform(-450, 450, n_noise), np.concatenate([disks, -disks])[np.maximum(kind - 4, 0)])
    r, phi = np.concatenate([r, rn]), np.concatenate([phi, rng.uniform(-np.pi, np.pi, n_noise)])
    z, layer = np.concatenate([z, zn]), np.concatenate([layer, np.where(kind < 4, kind, kind)])
    x, y = r * np.cos(phi) + rng.normal(0, 0.02, len(r)), r * np.sin(phi) + rng.normal(0, 0.02, len(r))
    return SpacePoints.from_xyz(x, y, z, layer_index=layer, volume_id=np.full(len(r), 8))


def assert_same(a: Seeds, b: Seeds) -> None:
    np.testing.assert_array_equal(a.hits, b.hits)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.charge, b.charge)
    assert a.charge.dtype == b.charge.dtype == np.int32
    # The compiled estimate repeats the numpy operations; libm and numpy's asin/atan2 may differ by an ulp.
    for name in ("pt", "phi", "theta", "cot_theta"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-14, err_msg=name)
    for name in ("z0", "d0"):  # mm, near 0 for prompt seeds: an absolute tolerance
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-9, err_msg=name)


# -- space points ---------------------------------------------------------------------------
def test_spacepoints_from_event(gun_event, detector):
    _, event, _, sp = gun_event
    assert len(sp) == event.n_hits
    np.testing.assert_allclose(sp.r, np.hypot(event.hits["x"], event.hits["y"]))
    np.testing.assert_allclose(sp.phi, np.arctan2(event.hits["y"], event.hits["x"]))
    np.testing.assert_array_equal(detector.volume_id[sp.module_index], event.hits["volume_id"])
    lay = [detector.layers[i] for i in sp.layer_index[:50]]
    assert all(l.volume_id == v and l.layer_id == k for l, v, k in
               zip(lay, event.hits["volume_id"][:50], event.hits["layer_id"][:50]))
    pix = SpacePoints.from_event(event, detector, volumes=(8,))
    assert set(np.unique(pix.volume_id)) == {8}
    np.testing.assert_array_equal(event.hits["z"][pix.hit_index], pix.z)


def test_spacepoints_bad_input(gun_event, detector):
    _, event, _, _ = gun_event
    hits = event.hits.copy()
    hits["module_id"] = hits["module_id"].copy()
    hits["module_id"][7] = 999_999
    with pytest.raises(GeometryError, match=r"row 7 \(hit_id 8\).*module 999999"):
        SpacePoints.from_event(Event(hits), detector)
    hits = event.hits.copy()
    hits["z"] = hits["z"].copy()
    hits["z"][4] = np.nan
    with pytest.raises(InputError, match=r"row 4 \(hit_id 5\) has a non-finite z"):
        SpacePoints.from_event(Event(hits), detector)


# -- grid -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_grid_is_a_counting_sort_by_cell_then_r(gun_event, backend):
    sp = gun_event[3]
    grid = build_grid(sp, backend=backend)
    pix = np.flatnonzero(np.isin(sp.volume_id, (7, 8, 9)))
    assert sorted(grid.order.tolist()) == pix.tolist()
    assert grid.offsets[0] == 0 and grid.offsets[-1] == len(pix) and np.all(np.diff(grid.offsets) >= 0)
    cell = grid.cell(sp.phi[grid.order], sp.z[grid.order])
    expected = np.repeat(np.arange(grid.n_phi * grid.n_z), np.diff(grid.offsets))
    np.testing.assert_array_equal(cell, expected)
    r = sp.r[grid.order]
    assert np.all((np.diff(r) >= 0) | (np.diff(cell) != 0))
    assert grid.neighbour_phi_bins(0)[0] == grid.n_phi - grid.phi_neighbours  # wraps at -pi


@needs_cpu
def test_grid_backends_agree(gun_event):
    a, b = build_grid(gun_event[3], backend="numpy"), build_grid(gun_event[3], backend="cpu")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.offsets, b.offsets)


# -- parity -----------------------------------------------------------------------------------
@needs_cpu
@pytest.mark.parametrize("config", [
    SeedingConfig(volumes=None),
    SeedingConfig(volumes=None, min_pt=0.2, z0_min=-50, z0_max=120, d0_max=10, max_seeds_per_middle=2),
    SeedingConfig(volumes=None, min_pt=0.05, delta_r_max=300, phi_bins_per_window=1, z_bin_width=1000),
    SeedingConfig(volumes=None, compat_limit=0, max_seeds=50, bz=-2.0),
], ids=["default", "tight", "few-bins", "limits"])
def test_parity_random_hits(config):
    sp = random_spacepoints(300, 1500, np.random.default_rng(5))
    cpu, ref = find_seeds(sp, config, backend="cpu"), find_seeds(sp, config, backend="numpy")
    assert len(ref) >= 50
    assert_same(cpu, ref)


@needs_cpu
def test_parity_simulated_hits(gun_event):
    sp = gun_event[3]
    from trackcore.reco.pipeline import default_seeding

    # The class default, a tight one, and the pipeline's first pass (phi bins one window wide).
    for config in (SeedingConfig(), SeedingConfig(min_pt=0.4, sigma_scattering=2.0, max_seeds_per_middle=1),
                   default_seeding()):
        assert_same(find_seeds(sp, config, backend="cpu"), find_seeds(sp, config, backend="numpy"))


@needs_cpu
def test_kernel_parameters_equal_the_numpy_estimate():
    # The compiled kernel estimates (pt, charge, phi, theta, z0, d0, cot) itself; they must match
    # estimate_parameters (numpy) on the same seeds, for either field sign.
    from trackcore.backends import get_backend
    from trackcore.reco.seeding import _params_for, _selection, estimate_parameters

    sp = random_spacepoints(200, 800, np.random.default_rng(8))
    for bz in (2.0, -3.5):
        config = SeedingConfig(volumes=None, bz=bz)
        sel = _selection(sp, config)
        args = (sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel], _params_for(sp, sel, config))
        hits, w, track = get_backend("cpu").kernel("find_seeds")(*args, bz=bz)
        plain_hits, plain_w = get_backend("cpu").kernel("find_seeds")(*args)  # without bz: two outputs as before
        np.testing.assert_array_equal(hits, plain_hits)
        assert track.shape == (len(hits), 7) and len(hits) > 100
        ref = estimate_parameters(sp, sel[hits], bz)
        for k, name in enumerate(("pt", "charge", "phi", "theta", "z0", "d0", "cot")):
            np.testing.assert_allclose(track[:, k], ref[k], rtol=1e-12, atol=1e-9, err_msg=name)
        assert set(np.unique(track[:, 1])) == {-1.0, 1.0}
        np_hits, np_w, np_track = get_backend("numpy").kernel("find_seeds")(*args, bz=bz)
        np.testing.assert_array_equal(np_hits, hits)
        np.testing.assert_allclose(np_track, track, rtol=1e-12, atol=1e-9)
    for backend in ("cpu", "numpy"):
        with pytest.raises(ValueError, match="bz must be finite and non-zero"):
            get_backend(backend).kernel("find_seeds")(*args, bz=float("nan"))


def test_cupy_kernel_parameters_on_the_host_emulation():
    # The cupy find_seeds (its CUDA kernels built for the host by g++) returns the same parameters.
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("g++ not found: no host emulation of the CUDA kernels")
    from trackcore.backends import get_backend
    from trackcore.backends.cupy_backend import make_backend
    from trackcore.backends.cupy_kernels._emulate import HostRuntime
    from trackcore.reco.seeding import _params_for, _selection

    rt = HostRuntime()
    rt.build_all()
    sp, config = random_spacepoints(60, 200, np.random.default_rng(3)), SeedingConfig(volumes=None)
    sel = _selection(sp, config)
    args = (sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel], _params_for(sp, sel, config))
    got = make_backend(rt).kernel("find_seeds")(*args, bz=2.0)
    ref = get_backend("numpy").kernel("find_seeds")(*args, bz=2.0)
    assert len(got) == 3 and len(got[0]) > 20
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[2], ref[2])


@needs_cpu
def test_parity_many_equal_weights():
    # compat_weight = impact_weight = z0_weight = 0: every weight is 0 (and some -0.0), so the order is
    # decided by (middle, bottom, top) alone, over more seeds than the small-input sort path takes.
    config = SeedingConfig(volumes=None, compat_weight=0.0, impact_weight=0.0, z0_weight=0.0)
    sp = random_spacepoints(300, 1500, np.random.default_rng(4))
    cpu, ref = find_seeds(sp, config, backend="cpu"), find_seeds(sp, config, backend="numpy")
    assert len(ref) > 1000 and np.all(ref.weight == 0)
    assert_same(cpu, ref)


# -- physics ----------------------------------------------------------------------------------
def check_gun(particles, event, particle, sp, backend):
    seeds = find_seeds(sp, backend=backend)
    stats = seed_stats(sp, particle, seeds, np.ones(len(particles), bool))
    print(f"\ngun ({backend}): {stats['n']} particles, efficiency {stats['efficiency']:.4f}, "
          f"fake seeds {stats['fake_fraction']:.3%}, seeds/particle {stats['seeds_per_particle']:.2f}")
    assert stats["n"] > 250
    assert stats["efficiency"] >= 0.99
    assert stats["fake_fraction"] < 0.05
    assert np.all(np.diff(seeds.weight) <= 0)
    good, p = stats["good"], stats["particle"][stats["good"]]
    pt = np.hypot(particles["px"], particles["py"])[p]
    assert np.mean(seeds.charge[good] == particles["q"][p]) > 0.99
    assert np.median(np.abs(seeds.pt[good] / pt - 1)) < 0.15
    assert np.median(np.abs(seeds.z0[good] - particles["vz"][p])) < 0.5
    assert np.median(np.abs(seeds.d0[good])) < 0.2
    theta = np.arctan2(np.hypot(particles["px"], particles["py"]), particles["pz"])[p]
    assert np.median(np.abs(seeds.theta[good] - theta)) < 0.005
    return seeds


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_efficiency_particle_gun(gun_event, backend):
    seeds = check_gun(*gun_event, backend)
    counts = np.bincount(seeds.hits[:, 1])
    assert counts.max() <= SeedingConfig().max_seeds_per_middle


@needs_cpu
def test_efficiency_real_detector_geometry(shared_trackml):
    from trackcore.geometry.io import read_detector

    det = read_detector(shared_trackml / "detectors.csv.gz")
    particles = particle_gun(300, 12, pt=(1.0, 10.0), eta=(-2.5, 2.5))
    event, particle = simulate(det, particles, seed=12)
    check_gun(particles, event, particle, SpacePoints.from_event(event, det), "cpu")


@needs_cpu
def test_efficiency_real_trackml_event(shared_trackml):
    from trackcore.event.io import read_event
    from trackcore.geometry.io import read_detector

    event = read_event(shared_trackml, event=1)
    sp = SpacePoints.from_event(event, read_detector(shared_trackml / "detectors.csv.gz"))
    seeds = find_seeds(sp)
    pid = event.truth_aligned()["particle_id"]
    ids, particle = np.unique(pid, return_inverse=True)
    p = event.particles
    row = np.searchsorted(p["particle_id"], ids, sorter=np.argsort(p["particle_id"]))
    row = np.argsort(p["particle_id"])[np.minimum(row, len(p) - 1)]
    known = (ids != 0) & (p["particle_id"][row] == ids)
    prompt = known & (np.hypot(p["px"], p["py"])[row] > 1.0) & (np.hypot(p["vx"], p["vy"])[row] < 1.0)
    stats = seed_stats(sp, particle, seeds, prompt)
    print(f"\nreal TrackML event: {stats['n']} prompt pT>1 particles, efficiency {stats['efficiency']:.3f}")
    assert stats["n"] >= 10 and stats["efficiency"] >= 0.95


@needs_cpu
def test_pileup_density(detector):
    particles = minimum_bias(3, pileup=200.0)
    event, particle = simulate(detector, particles, seed=3)
    sp = SpacePoints.from_event(event, detector)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        seeds = find_seeds(sp, backend="cpu")
        times.append(time.perf_counter() - t0)
    pt = np.hypot(particles["px"], particles["py"])
    prompt = (pt > 1.0) & (np.hypot(particles["vx"], particles["vy"]) < 1.0) & (np.abs(particles["vz"]) < 200)
    stats = seed_stats(sp, particle, seeds, prompt)
    n_pix = int(np.isin(sp.volume_id, (7, 8, 9)).sum())
    print(f"\npile-up: {len(particles)} particles, {len(sp)} hits ({n_pix} pixel), seeding {1e3 * min(times):.0f} ms, "
          f"{len(seeds)} seeds, efficiency (prompt pT>1) {stats['efficiency']:.4f} of {stats['n']}, "
          f"fake seeds {stats['fake_fraction']:.1%}")
    assert len(particles) > 8000 and stats["n"] > 500
    assert stats["efficiency"] >= 0.99
    assert min(times) < 5.0  # sanity only: the timing target is checked by the benchmark


# -- API and bad input -----------------------------------------------------------------------------
def test_empty_and_tiny_input():
    empty = find_seeds(SpacePoints.from_xyz([], [], [], layer_index=[]), backend="numpy")
    assert len(empty) == 0 and empty.hits.shape == (0, 3) and empty.hits.dtype == np.int64
    assert empty.weight.dtype == np.float64 and empty.charge.dtype == np.int32
    two = SpacePoints.from_xyz([30.0, 70.0], [0.0, 0.0], [0.0, 0.0], layer_index=[0, 1])
    assert len(find_seeds(two, SeedingConfig(volumes=None))) == 0


def test_straight_positive_track_charge_and_limits():
    # A pT = 2 GeV positive particle from the origin: under Bz > 0 it turns clockwise.
    r = np.array([32.0, 72.0, 116.0, 172.0])
    radius = 2.0 / (0.299792458e-3 * 2.0)
    phi = -np.arcsin(r / (2 * radius))  # clockwise from phi0 = 0
    x, y, z = r * np.cos(phi), r * np.sin(phi), 0.5 * 2 * radius * np.arcsin(r / (2 * radius))
    sp = SpacePoints.from_xyz(x, y, z, layer_index=np.arange(4))
    seeds = find_seeds(sp, SeedingConfig(volumes=None), backend="numpy")
    assert len(seeds) >= 2 and np.all(seeds.charge == 1)
    np.testing.assert_allclose(seeds.pt, 2.0, rtol=1e-6)
    np.testing.assert_allclose(seeds.cot_theta, 0.5, rtol=1e-9)
    np.testing.assert_allclose(seeds.z0, 0.0, atol=1e-6)
    np.testing.assert_allclose(seeds.d0, 0.0, atol=1e-6)
    assert seeds.weight[0] > 199  # 200 for a confirming second top layer, minus tiny |d0|, |z0| terms
    flipped = find_seeds(sp, SeedingConfig(volumes=None, bz=-2.0), backend="numpy")
    assert np.all(flipped.charge == -1)
    assert len(find_seeds(sp, SeedingConfig(volumes=None, min_pt=2.5), backend="numpy")) == 0
    assert len(find_seeds(sp, SeedingConfig(volumes=None, max_seeds=1), backend="numpy")) == 1


def test_bad_input():
    with pytest.raises(InputError, match="expected SpacePoints"):
        find_seeds(np.zeros((5, 3)))
    sp = random_spacepoints(5, 20, np.random.default_rng(1))
    sp.z[3] = np.nan
    with pytest.raises(InputError, match="z is not finite .* at row 3"):
        find_seeds(sp, backend="numpy")
    with pytest.raises(InputError, match="non-finite y"):
        SpacePoints.from_xyz([1.0, 2.0], [np.inf, 0.0], [0.0, 0.0], layer_index=[0, 1])
    with pytest.raises(InputError, match="min_pt must be > 0"):
        SeedingConfig(min_pt=0)
    with pytest.raises(InputError, match="bz must be non-zero"):
        SeedingConfig(bz=0.0)
    with pytest.raises(InputError, match="delta_r_max"):
        SeedingConfig(delta_r_min=10, delta_r_max=5)
    with pytest.raises(InputError, match="finite number"):
        SeedingConfig(d0_max=float("nan"))
    with pytest.raises(InputError, match="must be 1-D"):
        SpacePoints.from_xyz([1.0], [1.0], [1.0], layer_index=[0, 1])


# -- middle space points restricted to some layers ----------------------------------------------
def _seed_args(sp, config):
    from trackcore.reco.seeding import _params_for, _selection

    sel = _selection(sp, config)
    return (sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel],
            _params_for(sp, sel, config))


@needs_cpu
def test_middle_mask_keeps_exactly_the_seeds_of_the_allowed_middles():
    # Seeds are made middle by middle (with the cap per middle), so restricting the middles must give
    # the unrestricted seeds whose middle is allowed, in the same order, on every backend.
    from trackcore.backends import get_backend

    sp = random_spacepoints(300, 1500, np.random.default_rng(11))
    args = _seed_args(sp, SeedingConfig(volumes=None))
    middle = np.random.default_rng(1).random(len(args[0])) < 0.4
    full = get_backend("numpy").kernel("find_seeds")(*args, bz=2.0)
    keep = middle[full[0][:, 1]]
    assert 0 < keep.sum() < len(keep)
    for backend in ("numpy", "cpu"):
        got = get_backend(backend).kernel("find_seeds")(*args, bz=2.0, middle=middle)
        np.testing.assert_array_equal(got[0], full[0][keep])
        np.testing.assert_array_equal(got[1], full[1][keep])
        np.testing.assert_allclose(got[2], full[2][keep], rtol=1e-12, atol=1e-12)  # libm vs numpy roundings
    for backend in ("numpy", "cpu"):
        with pytest.raises(ValueError, match="middle"):
            get_backend(backend).kernel("find_seeds")(*args, bz=2.0, middle=middle[:-1])


def test_middle_mask_on_the_host_emulation_of_the_cuda_kernels():
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("g++ not found: no host emulation of the CUDA kernels")
    from trackcore.backends import get_backend
    from trackcore.backends.cupy_backend import make_backend
    from trackcore.backends.cupy_kernels._emulate import HostRuntime

    rt = HostRuntime()
    rt.build_all()
    sp = random_spacepoints(60, 200, np.random.default_rng(3))
    args = _seed_args(sp, SeedingConfig(volumes=None))
    middle = np.random.default_rng(2).random(len(args[0])) < 0.5
    got = make_backend(rt).kernel("find_seeds")(*args, bz=2.0, middle=middle)
    ref = get_backend("numpy").kernel("find_seeds")(*args, bz=2.0, middle=middle)
    assert len(ref[0]) > 5
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


@needs_cpu
def test_middle_layers_config_selects_middles_by_volume_and_layer(gun_event):
    sp = gun_event[3]
    assert (sp.layer_id >= 0).all()  # from the event's layer_id column
    pairs = sorted({(int(v), int(l)) for v, l in zip(sp.volume_id, sp.layer_id)})
    allowed = tuple(pairs[::2])
    seeds = find_seeds(sp, SeedingConfig(middle_layers=allowed))
    everything = find_seeds(sp, SeedingConfig())
    mid = seeds.hits[:, 1]
    assert len(seeds) > 0 and set(zip(sp.volume_id[mid].tolist(), sp.layer_id[mid].tolist())) <= set(allowed)
    keep = np.isin(sp.volume_id[everything.hits[:, 1]] * 1_000_000 + sp.layer_id[everything.hits[:, 1]],
                   [v * 1_000_000 + l for v, l in allowed])
    np.testing.assert_array_equal(seeds.hits, everything.hits[keep])
    assert_same(find_seeds(sp, SeedingConfig(middle_layers=allowed), backend="cpu"),
                find_seeds(sp, SeedingConfig(middle_layers=allowed), backend="numpy"))
    with pytest.raises(InputError, match="middle_layers"):
        SeedingConfig(middle_layers=(8, 2))
