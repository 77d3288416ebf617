"""The 'cupy' backend: kernel parity against numpy/cpu, device residency, and its errors without CuPy.

Every parity test runs on three runtimes: ``host`` builds the same csrc/cuda/*.cu files with g++ and
runs each thread in turn on the CPU (kernel logic and glue, no GPU needed); ``model`` is that with
CuPy-like device arrays that refuse implicit conversion (trackcore/backends/cupy_kernels/_device_model.py);
``gpu`` runs them through CuPy on a CUDA device (marked ``gpu``, skipped without CuPy or a GPU).
"""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import BACKEND_NAMES, available_backends, get_backend, use_backend
from trackcore.backends.cupy_backend import INSTALL_HINT, NOT_ON_GPU, make_backend
from trackcore.backends.cupy_kernels import reference
from trackcore.errors import BackendError, InputError
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.seeding import SeedingConfig, _params_for, _selection
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import simulate_event


def _gpu_runtime():
    try:
        from trackcore.backends.cupy_kernels import cupy_runtime

        return cupy_runtime()
    except BackendError as exc:
        pytest.skip(f"no CuPy GPU runtime: {exc}")


def _host_runtime():
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the host emulation of the CUDA kernels")
    from trackcore.backends.cupy_kernels._emulate import HostRuntime

    rt = HostRuntime()
    rt.build_all()
    return rt


def _model_runtime():
    """The host emulation with CuPy-like device arrays: the glue's own array code must never convert or
    mix host and device arrays implicitly (CuPy would raise; so does the model)."""
    _host_runtime()  # g++ present
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime

    return DeviceModelRuntime()


@pytest.fixture(scope="module", params=["host", "model", pytest.param("gpu", marks=pytest.mark.gpu)])
def gpu(request):
    """The cupy backend bound to the host emulation (plain or with the device-array model) or to a real GPU."""
    rt = {"host": _host_runtime, "model": _model_runtime, "gpu": _gpu_runtime}[request.param]()
    return make_backend(rt)


@pytest.fixture(scope="module")
def detector():
    return trackml_like_detector()


@pytest.fixture(scope="module")
def simulated(detector):
    event = simulate_event(detector, particle_gun(150, 5, pt=(0.5, 10.0), eta=(-2.5, 2.5)), seed=3)
    return SpacePoints.from_event(event, detector)


def random_spacepoints(n: int, rng) -> SpacePoints:
    """Uniform noise on four barrel cylinders plus straight-ish tracks: many doublets, some seeds."""
    radii = np.array([32.0, 72.0, 116.0, 172.0])
    phi0, z0, cot = rng.uniform(-np.pi, np.pi, n), rng.normal(0, 30, n), rng.uniform(-2, 2, n)
    r = np.repeat(radii, n)
    layer = np.repeat(np.arange(4), n)
    phi = np.tile(phi0, 4) + rng.normal(0, 2e-3, 4 * n)
    z = np.tile(z0, 4) + r * np.tile(cot, 4)
    noise = rng.integers(0, 4, n)
    r, layer = np.concatenate([r, radii[noise]]), np.concatenate([layer, noise])
    phi, z = np.concatenate([phi, rng.uniform(-np.pi, np.pi, n)]), np.concatenate([z, rng.uniform(-400, 400, n)])
    return SpacePoints.from_xyz(r * np.cos(phi), r * np.sin(phi), z, layer_index=layer, volume_id=np.full(len(r), 8))


def seeding_args(sp: SpacePoints):
    cfg = SeedingConfig()
    sel = _selection(sp, cfg)
    p = _params_for(sp, sel, cfg)
    return (sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel], p)


def reference_backend() -> str:
    return "cpu" if available_backends()["cpu"] == "ok" else "numpy"


# -- parity ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("event", ["random", "simulated"])
def test_grid_and_seeds_equal_the_reference(gpu, event, simulated):
    sp = random_spacepoints(300, np.random.default_rng(5)) if event == "random" else simulated
    args = seeding_args(sp)
    order, offsets = gpu.kernel("seeding_grid")(args[4], args[2], args[3], args[6])
    ref_order, ref_offsets = get_backend("numpy").kernel("seeding_grid")(args[4], args[2], args[3], args[6])
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(offsets, ref_offsets)
    hits, w = gpu.kernel("find_seeds")(*args)
    ref_hits, ref_w = get_backend(reference_backend()).kernel("find_seeds")(*args)
    assert len(ref_hits) > 20, "the event must produce seeds for the comparison to mean anything"
    np.testing.assert_array_equal(hits, ref_hits)  # same seeds, same order
    np.testing.assert_array_equal(w, ref_w)


def test_grid_orders_equal_radii_by_index(gpu):
    rng = np.random.default_rng(8)
    n = 3000
    phi, z = rng.uniform(-np.pi, np.pi, n), rng.uniform(-500, 500, n)
    r = rng.choice([33.0, 72.0, 116.0], n)  # many exact ties inside each cell
    params = seeding_args(random_spacepoints(50, rng))[6]
    got = gpu.kernel("seeding_grid")(phi, z, r, params)
    ref = get_backend("numpy").kernel("seeding_grid")(phi, z, r, params)
    for g, e in zip(got, ref):
        np.testing.assert_array_equal(g, e)


def test_seeds_equal_the_numpy_reference_with_tight_limits(gpu):
    args = list(seeding_args(random_spacepoints(120, np.random.default_rng(9))))
    args[6] = dict(args[6], max_seeds_per_middle=2, max_seeds=40, compat_limit=1)
    hits, w = gpu.kernel("find_seeds")(*args)
    ref_hits, ref_w = get_backend("numpy").kernel("find_seeds")(*args)
    assert len(ref_hits) == 40
    np.testing.assert_array_equal(hits, ref_hits)
    np.testing.assert_array_equal(w, ref_w)


def test_transforms_equal_numpy(gpu, detector):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(detector), 500)
    pts = detector.centre[idx] + rng.normal(0, 20, (500, 3))
    for name in ("global_to_local", "local_to_global"):
        got = gpu.kernel(name)(detector.centre, detector.rotation, idx, pts)
        ref = get_backend("numpy").kernel(name)(detector.centre, detector.rotation, idx, pts)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-10)
    with pytest.raises(InputError, match=r"module_index\[3\] = -1"):
        gpu.kernel("global_to_local")(detector.centre, detector.rotation, np.r_[idx[:3], -1], pts[:4])


def _tracks_and_planes(rng, n: int, reach=(20.0, 400.0), p_min: float = 0.5):
    """Tracks from near the beam line (|p| p_min-20 GeV, both charges) and planes ahead of them, a fifth behind."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    pos = rng.normal(0, 5, (n, 3))
    qop = rng.choice([-1, 1], n) / rng.uniform(p_min, 20, n)
    normal = d + rng.normal(0, 0.2, (n, 3))
    normal /= np.linalg.norm(normal, axis=1)[:, None]
    point = pos + d * rng.uniform(*reach, n)[:, None] * np.where(rng.random(n) < 0.2, -1, 1)[:, None]
    return pos, d, qop, point, normal


def test_helix_to_plane_equals_numpy_and_lands_on_the_plane(gpu):
    n = 400
    pos, d, qop, point, normal = _tracks_and_planes(np.random.default_rng(2), n, reach=(20.0, 1000.0), p_min=0.2)
    ok, s, p, t = gpu.kernel("helix_to_plane")(pos, d, qop, 2.0, point, normal, 0.0, 5000.0)
    rok, rs, rp, rt = reference.helix_to_plane_numpy(pos, d, qop, 2.0, point, normal, 0.0, 5000.0)
    np.testing.assert_array_equal(ok, rok)
    assert 0.5 * n < ok.sum() < n  # both outcomes occur
    np.testing.assert_allclose(s[ok], rs[ok], rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(p[ok], rp[ok], rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(t[ok], rt[ok], rtol=1e-11, atol=1e-11)
    assert np.all(np.isnan(s[~ok]))
    np.testing.assert_allclose(np.einsum("ij,ij->i", p[ok] - point[ok], normal[ok]), 0, atol=1e-9)


def test_rk_to_plane_in_the_trackml_field_map_equals_numpy(gpu):
    """Runge-Kutta propagation in the TrackML solenoid map (Bz and Br vary along the path)."""
    from trackcore.geometry.field import trackml_field_map
    from trackcore.sim.transport import field_arguments

    _, fmap = field_arguments(trackml_field_map())
    rng = np.random.default_rng(12)
    pos, d, qop, point, normal = _tracks_and_planes(rng, 300)
    shift = rng.uniform(-1500, 1500, len(pos))  # towards the endcaps, where Br is largest
    pos[:, 2] += shift
    point[:, 2] += shift
    ok, s, p, t = gpu.kernel("rk_to_plane")(pos, d, qop, fmap, point, normal, 0.0, 1000.0)
    rok, rs, rp, rt = reference.rk_to_plane_numpy(pos, d, qop, fmap, point, normal, 0.0, 1000.0)
    np.testing.assert_array_equal(ok, rok)
    assert 0.5 * len(ok) < ok.sum() < len(ok)
    np.testing.assert_allclose(s[ok], rs[ok], rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(p[ok], rp[ok], rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(t[ok], rt[ok], rtol=1e-11, atol=1e-11)
    assert np.all(np.isnan(s[~ok]))
    np.testing.assert_allclose(np.einsum("ij,ij->i", p[ok] - point[ok], normal[ok]), 0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(t[ok], axis=1), 1, atol=1e-12)


def test_rk_to_plane_in_a_uniform_field_follows_the_helix(gpu):
    """In a uniform 2 T map, Runge-Kutta lands where the exact helix does, up to the error of one
    fourth-order step: s theta^4 times a constant (theta the path's turning angle; measured at most
    s theta^4 / 57 on these tracks, so / 30 is a bound with margin, 3 um at most here)."""
    r, z = np.arange(0.0, 1300.0, 100.0), np.arange(-3100.0, 3200.0, 100.0)
    fmap = (0.0, 100.0, len(r), -3100.0, 100.0, len(z), np.zeros((len(r), len(z))), np.full((len(r), len(z)), 2.0))
    pos, d, qop, point, normal = _tracks_and_planes(np.random.default_rng(13), 300, reach=(20.0, 300.0))
    ok, s, p, t = gpu.kernel("rk_to_plane")(pos, d, qop, fmap, point, normal, 0.0, 1000.0)
    hok, hs, hp, ht = gpu.kernel("helix_to_plane")(pos, d, qop, 2.0, point, normal, 0.0, 1000.0)
    np.testing.assert_array_equal(ok, hok)
    assert ok.sum() > 0.5 * len(ok)
    turn = np.abs(qop[ok] * 0.299792458e-3 * 2.0 * s[ok])  # rad
    assert np.all(np.linalg.norm(p[ok] - hp[ok], axis=1) <= s[ok] * turn**4 / 30 + 1e-9)
    # the same kernel with the constant field given as a number
    cok, cs, cp, ct = gpu.kernel("rk_to_plane")(pos, d, qop, 2.0, point, normal, 0.0, 1000.0)
    np.testing.assert_array_equal(cok, ok)
    np.testing.assert_allclose(cp[ok], p[ok], atol=1e-9)


def test_rk_to_plane_rejects_a_bad_field_map(gpu):
    pos, d, qop, point, normal = _tracks_and_planes(np.random.default_rng(14), 5)
    good = (0.0, 100.0, 3, -100.0, 100.0, 3, np.zeros((3, 3)), np.full((3, 3), 2.0))
    for bad, match in ((good[:6] + (np.zeros((3, 2)), good[7]), "Br has shape"),
                       (good[:7] + (np.full((3, 3), np.nan),), "finite"),
                       ((0.0, 0.0) + good[2:], "positive spacing"), ("2 T", "field_map must be")):
        with pytest.raises(InputError, match=match):
            gpu.kernel("rk_to_plane")(pos, d, qop, bad, point, normal)


def test_kalman_update_equals_numpy(gpu):
    rng = np.random.default_rng(3)
    n = 300
    a = rng.normal(size=(n, 5, 5)) * 0.05
    cov = a @ a.transpose(0, 2, 1) + np.eye(5) * 1e-4
    params = np.column_stack([rng.normal(0, 1, (n, 2)), rng.uniform(-np.pi, np.pi, n), rng.uniform(0.2, 3, n),
                              rng.normal(0, 1, n)])
    meas, var = params[:, :2] + rng.normal(0, 0.05, (n, 2)), np.full((n, 2), 0.0025)
    cov[0, 0, 0] = -1.0  # not positive definite: chi2 1e30, state unchanged
    for dry in (False, True):
        got = gpu.kernel("kalman_update")(params, cov, meas, var, dry)
        ref = reference.kalman_update_numpy(params, cov, meas, var, dry)
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)
        assert got[2][0] == 1e30 and np.array_equal(got[1][0], cov[0])
    assert np.all(np.abs(got[0][:, 2]) <= np.pi)


def test_lsh_keys_and_buckets_equal_numpy(gpu):
    rng = np.random.default_rng(4)
    pts = rng.normal(0, 3, (2000, 4))
    pts[1000:] = pts[:1000] + rng.normal(0, 1e-3, (1000, 4))  # near twins share buckets
    proj, off = rng.normal(size=(3, 5, 4)), rng.uniform(0, 2.0, (3, 5))
    keys = gpu.kernel("lsh_keys")(pts, proj, off, 2.0)
    np.testing.assert_array_equal(keys, reference.lsh_keys_numpy(pts, proj, off, 2.0))
    table = get_backend("numpy").kernels
    if "lsh_keys" in table:  # the hashing kernels' numpy entry uses the same hash_math.hpp scheme
        np.testing.assert_array_equal(keys, table["lsh_keys"](pts, proj, off, 2.0))
    for g, r in zip(gpu.kernel("lsh_buckets")(pts, proj, off, 2.0), reference.lsh_buckets_numpy(pts, proj, off, 2.0)):
        np.testing.assert_array_equal(g, r)
    same = (keys[:, :1000] == keys[:, 1000:]).mean()
    assert same > 0.95 and len(np.unique(keys[0])) > 50
    with pytest.raises(InputError, match="width"):
        gpu.kernel("lsh_keys")(pts, proj, off, 0.0)


def test_bad_input_and_missing_kernels(gpu):
    args = list(seeding_args(random_spacepoints(20, np.random.default_rng(6))))
    args[2] = args[2].copy()
    args[2][4] = np.nan
    with pytest.raises(InputError, match=r"z\[4\] is not finite"):
        gpu.kernel("find_seeds")(*args)
    with pytest.raises(InputError, match="shape"):
        gpu.kernel("kalman_update")(np.zeros((3, 5)), np.zeros((3, 5, 4)), np.zeros((3, 2)), np.zeros((3, 2)))
    for name in NOT_ON_GPU:
        with pytest.raises(BackendError, match=f"{name}.*no GPU version"):
            gpu.kernel(name)


@pytest.mark.gpu
def test_device_arrays_stay_on_the_device():
    rt = _gpu_runtime()
    backend = make_backend(rt)
    cp = rt.xp
    args = seeding_args(random_spacepoints(100, np.random.default_rng(7)))
    hits, w = backend.kernel("find_seeds")(*(cp.asarray(a) for a in args[:6]), args[6])
    assert isinstance(hits, cp.ndarray) and isinstance(w, cp.ndarray)
    ref_hits, _ = get_backend("numpy").kernel("find_seeds")(*args)
    np.testing.assert_array_equal(cp.asnumpy(hits), ref_hits)


# -- without CuPy ---------------------------------------------------------------------------------
def test_cupy_selection_fails_clearly_and_changes_nothing():
    if available_backends()["cupy"] == "ok":
        pytest.skip("CuPy and a GPU are present here")
    for attempt in (lambda: get_backend("cupy"), lambda: use_backend("cupy").__enter__()):
        with pytest.raises(BackendError, match="cupy") as info:
            attempt()
        assert "pip install trackcore[cuda]" in str(info.value) or "no usable CUDA GPU" in str(info.value) \
            or "no CUDA GPU" in str(info.value)
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert INSTALL_HINT in str(info.value)
    assert get_backend().name in BACKEND_NAMES and get_backend().name != "cupy"
    for name in ("numpy", reference_backend()):
        with use_backend(name) as b:
            pts = np.array([[1.0, 2.0, 3.0]])
            out = b.kernel("global_to_local")(np.zeros((1, 3)), np.eye(3)[None], np.zeros(1, np.int64), pts)
            np.testing.assert_allclose(out, pts)


def test_device_inputs_give_device_outputs_on_the_model(detector):
    """Every batch kernel with device inputs returns device arrays (no download) equal to its host-input
    result, and moves no bulk data (the device-array model logs every transfer)."""
    rt = _model_runtime()
    backend, xp = make_backend(rt), rt.xp
    rng = np.random.default_rng(12)
    idx = rng.integers(0, len(detector), 200)
    pts = detector.centre[idx] + rng.normal(0, 20, (200, 3))
    pos, d, qop, point, normal = _tracks_and_planes(rng, 200, reach=(20.0, 1000.0), p_min=0.2)
    a = rng.normal(size=(200, 5, 5)) * 0.05
    params = np.column_stack([rng.normal(0, 1, (200, 2)), rng.uniform(-3, 3, 200), rng.uniform(0.2, 3, 200),
                              rng.normal(0, 1, 200)])
    cases = {
        "global_to_local": ((detector.centre, detector.rotation, idx, pts), {}),
        "helix_to_plane": ((pos, d, qop, 2.0, point, normal, 0.0, 5000.0), {}),
        "kalman_update": ((params, a @ a.transpose(0, 2, 1) + np.eye(5) * 1e-4, params[:, :2], np.full((200, 2), 2.5e-3),
                           False), {}),
        "lsh_keys": ((pts, rng.normal(size=(3, 4, 3)), rng.uniform(0, 2, (3, 4)), 2.0), {}),
    }
    for name, (args, kwargs) in cases.items():
        host_out = backend.kernel(name)(*args, **kwargs)
        dev_args = tuple(xp.asarray(v) if isinstance(v, np.ndarray) else v for v in args)
        rt.log.clear()
        dev_out = backend.kernel(name)(*dev_args, **kwargs)
        assert not rt.log.bulk(), (name, rt.log.bulk())
        outs = dev_out if isinstance(dev_out, tuple) else (dev_out,)
        refs = host_out if isinstance(host_out, tuple) else (host_out,)
        for got, ref in zip(outs, refs):
            assert rt.is_device(got), name
            np.testing.assert_array_equal(rt.to_host(got), ref, err_msg=name)
