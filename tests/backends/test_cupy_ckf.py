"""The 'cupy' backend's CKF (csrc/cuda/ckf.cu) and the reconstruction chain kept on the device.

Runtimes: ``host`` builds ckf.cu with g++ and runs every GPU thread in turn on the CPU: the same
search code, so the tracks must equal the compiled core's bit for bit. ``model`` is that emulation
with CuPy-like device arrays (trackcore/backends/cupy_kernels/_device_model.py): implicit
conversion to numpy and mixing with host arrays raise, and every transfer is logged, so the tests
see where the chain moves data. ``gpu`` runs through CuPy on a CUDA device (marked ``gpu``, skipped
without one); there, libdevice's sin/cos and the GPU's scheduling may change the last bits, so the
comparison is of tracks found, not of bits.
"""
from __future__ import annotations

import collections
import hashlib
import shutil
import warnings

import numpy as np
import pytest

from trackcore.backends import available_backends, get_backend, use_backend
from trackcore.backends.cupy_backend import make_backend
from trackcore.errors import BackendError, InputError
from trackcore.geometry.builders import trackml_like_detector
from trackcore.geometry.field import solenoid_field_map
from trackcore.reco.ckf import CkfConfig, find_tracks
from trackcore.reco.measurements import Measurements
from trackcore.reco.pipeline import reconstruct
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import minimum_bias, particle_gun
from trackcore.sim.simulate import simulate_event
from trackcore.sim.transport import compiled_geometry, field_arguments, layer_material

pytestmark = [pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built"),
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found: no host build of ckf.cu")]
TRACK_KEYS = ("offsets", "hits", "seed", "ndf", "fitted", "perigee", "chi2", "covariance")


def _core():
    from trackcore._corelib import core

    return core()


@pytest.fixture(scope="module")
def host():
    from trackcore.backends.cupy_kernels._emulate import HostRuntime

    return HostRuntime()


@pytest.fixture(scope="module")
def detector():
    return trackml_like_detector()


def _gun(detector, n: int, seed: int, field=None):
    parts = particle_gun(n, np.random.default_rng(seed), pt=(1.0, 10.0), eta=(-2.5, 2.5), pdg=13)
    event = simulate_event(detector, parts, seed=seed, field=field)
    meas = Measurements.from_event(event, detector)
    sp = SpacePoints.from_event(event, detector, volumes=(7, 8, 9))
    return meas, sp.hit_index[find_seeds(sp).hits], layer_material(detector)


@pytest.fixture(scope="module")
def gun(detector):
    return _gun(detector, 50, 3)


def _gpu_ckf(runtime, detector, meas, seeds, x0, bz, config, fmap=None):
    from trackcore.backends.cupy_kernels.ckf import ckf

    return ckf(detector, meas, seeds, x0, bz, config, fmap, runtime=runtime)


@pytest.mark.parametrize("settings", [{}, {"refine": False, "skip_used_seeds": False},
                                      {"max_branches": 3, "max_candidates": 6, "chi2_max": 30.0, "skip_used_hits": 2},
                                      {"rescue_min_measurements": 3, "min_measurements": 9}],
                         ids=["default", "no-refine-all-seeds", "wide-beam", "rescue-short"])
def test_host_build_gives_the_cores_tracks_bit_for_bit(host, detector, gun, settings):
    meas, seeds, x0 = gun
    config = CkfConfig(**settings).as_dict()
    cpu = _core().ckf(compiled_geometry(detector), meas.compiled(), seeds, x0, 2.0, None, config)
    got = _gpu_ckf(host, detector, meas, seeds, x0, 2.0, config)
    assert len(cpu["seed"]) >= 45 and cpu["fitted"].all()
    assert got["stats"] == dict(cpu["stats"])
    assert (got["stats"]["rescued"] > 0) == ("rescue_min_measurements" in settings)
    for key in TRACK_KEYS:
        np.testing.assert_array_equal(got[key], cpu[key], err_msg=key)


def test_host_build_in_a_field_map_gives_the_cores_tracks(host, detector):
    """Runge-Kutta stepping, Newton crossings on it and finite-difference Jacobians on the device path."""
    field = solenoid_field_map()
    meas, seeds, x0 = _gun(detector, 12, 2, field=field)
    bz, fmap = field_arguments(field)
    config = CkfConfig().as_dict()
    cpu = _core().ckf(compiled_geometry(detector), meas.compiled(), seeds, x0, bz, fmap, config)
    got = _gpu_ckf(host, detector, meas, seeds, x0, bz, config, fmap)
    assert len(cpu["seed"]) >= 10
    for key in TRACK_KEYS:
        np.testing.assert_array_equal(got[key], cpu[key], err_msg=key)


def test_waves_do_not_change_the_tracks(detector, gun):
    """Seeds are followed in waves and committed in order: one seed per wave gives the same tracks."""
    from trackcore.backends.cupy_kernels._emulate import HostRuntime

    meas, seeds, x0 = gun
    config = CkfConfig(skip_used_hits=2).as_dict()
    one, wide = HostRuntime(), HostRuntime()
    one.ckf_wave, wide.ckf_wave = 1, 1000
    a, b = (_gpu_ckf(rt, detector, meas, seeds, x0, 2.0, config) for rt in (one, wide))
    assert a["stats"] == b["stats"] and a["stats"]["seeds_skipped"] > 0
    for key in TRACK_KEYS:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_bad_settings_and_inputs(host, detector, gun):
    meas, seeds, x0 = gun
    with pytest.raises(BackendError, match="max_candidates <= 8"):
        _gpu_ckf(host, detector, meas, seeds, x0, 2.0, {"max_candidates": 9})
    with pytest.raises(InputError, match="unknown CKF setting"):
        _gpu_ckf(host, detector, meas, seeds, x0, 2.0, {"beam": 3})
    with pytest.raises(InputError, match="seed hit index"):
        _gpu_ckf(host, detector, meas, seeds + len(meas), x0, 2.0, {})
    bad = Measurements(meas.module_index, meas.u.copy(), meas.v, meas.var_u, meas.var_v, meas.xyz)
    bad.u[3] = np.nan
    with pytest.raises(InputError, match="u must be finite"):
        _gpu_ckf(host, detector, bad, seeds, x0, 2.0, {})
    empty = _gpu_ckf(host, detector, meas, np.zeros((0, 3), np.int64), x0, 2.0, {})
    assert empty["offsets"].tolist() == [0] and empty["perigee"].shape == (0, 5)


# -- the chain on the device ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pileup_event(detector):
    return simulate_event(detector, minimum_bias(np.random.default_rng(11), pileup=30.0), seed=11)


def _assignment(reco) -> str:
    return hashlib.sha256(np.asarray(reco.track_id_of_hits()).tobytes()).hexdigest()


def test_device_model_arrays_behave_like_cupys():
    """The guarantees the chain test below rests on."""
    from trackcore.backends.arrays import is_device, namespace_of, repeat_index, to_host
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime

    rt = DeviceModelRuntime()
    xp = rt.xp
    a = xp.asarray(np.arange(5.0))
    assert is_device(a) and namespace_of(a) is xp and rt.log.transfers[-1].kind == "upload"
    b = np.sqrt(a) + 1.0  # numpy functions and operators keep device arrays on the device
    assert is_device(b) and is_device(xp.concatenate([a, b])) and is_device(a.sum())
    for implicit in (lambda: np.asarray(a), lambda: a + np.ones(5), lambda: np.ones(5) * a, lambda: a[np.array([1])]):
        with pytest.raises(TypeError):
            implicit()
    with pytest.raises(TypeError, match="repeats"):
        xp.repeat(a, xp.asarray([1, 0, 2, 1, 1]))
    np.testing.assert_array_equal(to_host(repeat_index(xp.asarray([1, 0, 2]), xp)), [0, 2, 2])
    n = len(rt.log.transfers)
    assert float(a[2]) == 2.0 and rt.log.transfers[n].kind == "scalar"
    np.testing.assert_array_equal(to_host(b), np.sqrt(np.arange(5.0)) + 1.0)
    assert rt.log.transfers[-1].kind == "download"


def test_whole_chain_on_the_device_model(detector, pileup_event):
    """reconstruct of a <mu> = 200 event on the device model: the cpu backend's tracks (every pass, no
    buffer overflow), with the event's arrays uploaded once (measurements) and the tracks downloaded
    once; in between only parameters and counts move."""
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime

    event = simulate_event(detector, minimum_bias(np.random.default_rng(12), pileup=200.0), seed=12)
    ref = reconstruct(event, detector, backend="cpu")
    rt = DeviceModelRuntime()
    backend = make_backend(rt)
    reconstruct(pileup_event, detector, backend=backend)  # the detector's tables go to the device once
    rt.log.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a seed outgrowing the device buffers warns
        got = reconstruct(event, detector, backend=backend)
    assert len(ref.tracks) > 5000 and _assignment(got) == _assignment(ref)
    counters = ("seeds_used", "seeds_skipped", "candidates", "tracks_before_ambiguity", "rescued")
    for a, b in zip(got.outputs["track_finding"]["passes"], ref.outputs["track_finding"]["passes"], strict=True):
        assert {k: a[k] for k in counters} == {k: b[k] for k in counters}
    for key in ("perigee", "chi2", "covariance", "seed", "fitted"):
        np.testing.assert_array_equal(getattr(got.tracks, key), getattr(ref.tracks, key), err_msg=key)
    # Bulk data (>= 1 kB; the smallest track arrays of this event are below that) moves only at the ends.
    bulk = collections.Counter((t.kind, t.where.rsplit("/", 1)[-1].split(":")[0]) for t in rt.log.bulk())
    assert set(bulk) == {("upload", "measurements.py"), ("download", "tracks.py")}, bulk
    assert bulk[("upload", "measurements.py")] == 3 and bulk[("download", "tracks.py")] <= 8
    small = [t for t in rt.log.transfers if t.kind != "scalar" and t.nbytes < 1024]
    assert len(small) < 100 and sum(t.nbytes for t in small) < 20_000  # settings, parameter packs, counters
    assert not isinstance(got.tracks.hits, type(rt.xp.zeros(1)))  # the tracks came back to the host


def test_use_backend_and_cli_run_the_chain_on_the_device_model(detector, pileup_event, tmp_path, monkeypatch, capsys):
    """``with use_backend("cupy")`` and ``trackcore reconstruct --backend cupy`` with the device model standing
    in for CuPy on a GPU."""
    import trackcore.backends as backends
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime
    from trackcore.cli.main import main
    from trackcore.event.io import read_submission, write_event
    from trackcore.plugins import DISABLE_AUTOLOAD_ENV

    rt = DeviceModelRuntime()
    monkeypatch.setitem(backends._loaded, "cupy", make_backend(rt))
    ref = reconstruct(pileup_event, detector, backend="cpu")
    with use_backend("cupy"):
        assert get_backend().name == "cupy"
        got = reconstruct(pileup_event, detector)
    assert _assignment(got) == _assignment(ref)
    assert any(t.kind == "download" and "tracks.py" in t.where for t in rt.log.transfers)

    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    events = tmp_path / "events"
    write_event(pileup_event, events)
    out = {}
    for name in ("cpu", "cupy"):
        capsys.readouterr()
        assert main(["reconstruct", str(events), "--backend", name, "--output", str(tmp_path / name), "--quiet"]) == 0
        out[name] = read_submission(tmp_path / name / "event000000000-submission.csv")
    for col in ("hit_id", "track_id"):
        np.testing.assert_array_equal(out["cupy"][col], out["cpu"][col])


# -- on a GPU --------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_ckf_finds_the_cores_tracks(detector, gun):
    try:
        from trackcore.backends.cupy_kernels import cupy_runtime

        rt = cupy_runtime()
    except BackendError as exc:
        pytest.skip(f"no CuPy GPU runtime: {exc}")
    meas, seeds, x0 = gun
    config = CkfConfig().as_dict()
    cpu = _core().ckf(compiled_geometry(detector), meas.compiled(), seeds, x0, 2.0, None, config)
    got = _gpu_ckf(rt, detector, meas, seeds, x0, 2.0, config)  # host inputs: host outputs
    cpu_tracks = {tuple(t) for t in np.split(cpu["hits"], cpu["offsets"][1:-1])}
    gpu_tracks = {tuple(t) for t in np.split(got["hits"], got["offsets"][1:-1])}
    assert len(cpu_tracks & gpu_tracks) >= 0.98 * len(cpu_tracks)


@pytest.mark.gpu
def test_gpu_chain_matches_the_cpu_chain(detector, pileup_event):
    try:
        backend = get_backend("cupy")
    except BackendError as exc:
        pytest.skip(f"no CuPy GPU runtime: {exc}")
    from trackcore.metrics.score import score_event

    ref = reconstruct(pileup_event, detector, backend="cpu")
    got = reconstruct(pileup_event, detector, backend=backend)
    assert isinstance(got.tracks.hits, np.ndarray)
    score = [score_event(pileup_event, *r.submission()) for r in (ref, got)]
    assert abs(score[0] - score[1]) < 0.002, score


def test_find_tracks_keeps_device_arrays_on_the_device(detector, gun):
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime

    meas, seeds, _ = gun
    rt = DeviceModelRuntime()
    xp = rt.xp
    backend = make_backend(rt)
    dev = Measurements(*(xp.asarray(getattr(meas, k)) for k in ("module_index", "u", "v", "var_u", "var_v", "xyz")))
    dev_seeds = xp.asarray(seeds)
    find_tracks(dev, dev_seeds, detector, backend=backend)  # the detector's arrays go to the device once
    rt.log.clear()
    tracks, stats = find_tracks(dev, dev_seeds, detector, backend=backend)
    assert rt.is_device(tracks.hits) and rt.is_device(tracks.perigee) and stats["seeds_used"] > 0
    assert not rt.log.bulk(), rt.log.bulk()
    host_tracks, _ = find_tracks(meas, seeds, detector, backend="cpu")
    np.testing.assert_array_equal(tracks.to_host().hits, host_tracks.hits)


def test_hashing_seeding_on_a_device_backend_is_a_clear_error(detector):
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime
    from trackcore.reco.pipeline import ReconstructionConfig, build_pipeline

    with pytest.raises(BackendError, match="'hashing' seeding strategy has no GPU version"):
        build_pipeline(detector, ReconstructionConfig(seeding_strategy="hashing"),
                       backend=make_backend(DeviceModelRuntime()))
