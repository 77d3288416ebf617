"""The 'cupy' backend's simulation kernels (csrc/cuda/simulation.cu): transport, digitize_segments, cluster_cells.

``host``: the kernels built with g++ and run thread by thread (trackcore/backends/cupy_kernels/_emulate.py):
the same device code, so the crossings, cells and clusters must equal the compiled core's bit for
bit. ``gpu`` (marked, skipped without CuPy and a GPU): libdevice's sin, cos and log may move the
last bits, so the comparison there is of what was found.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from trackcore.backends import available_backends, get_backend
from trackcore.backends.cupy_backend import make_backend
from trackcore.errors import InputError
from trackcore.geometry.builders import trackml_like_detector
from trackcore.geometry.field import trackml_field_map
from trackcore.sim.particles import minimum_bias, particle_gun
from trackcore.sim.pdg import mass_of
from trackcore.sim.simulate import simulate_event
from trackcore.sim.transport import TransportConfig, compiled_geometry, layer_material, transport

pytestmark = [pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built"),
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found: no host build of the kernels")]
EVENT_PARTS = ("hits", "cells", "particles", "truth")


@pytest.fixture(scope="module")
def host_backend():
    from trackcore.backends.cupy_kernels._emulate import HostRuntime

    return make_backend(HostRuntime())


@pytest.fixture(scope="module")
def detector():
    return trackml_like_detector()


def _particles(parts):
    v = np.stack([parts["vx"], parts["vy"], parts["vz"]], axis=1)
    p = np.stack([parts["px"], parts["py"], parts["pz"]], axis=1)
    return v, p, parts["q"], mass_of(parts["particle_type"])


@pytest.mark.parametrize("case", ["pileup-constant-field", "gun-field-map", "no-material-rk"])
def test_transport_host_build_gives_the_cores_crossings(host_backend, detector, case):
    field, config = None, TransportConfig()
    if case == "pileup-constant-field":
        parts = minimum_bias(np.random.default_rng(4), pileup=40.0)
    else:
        parts = particle_gun(300, np.random.default_rng(5), pt=(0.2, 20.0), eta=(-3.5, 3.5))
        if case == "gun-field-map":
            field = trackml_field_map()
        else:
            config = TransportConfig(multiple_scattering=False, energy_loss=False, use_rk=True, loop_fraction=0.0,
                                     max_crossings=25)
    v, p, q, m = _particles(parts)
    cpu = transport(detector, v, p, q, m, field=field, config=config, seed=11, backend="cpu")
    got = transport(detector, v, p, q, m, field=field, config=config, seed=11, backend=host_backend)
    assert len(cpu["module_index"]) > 2000
    assert set(got) == set(cpu)
    for key in cpu:
        np.testing.assert_array_equal(got[key], cpu[key], err_msg=key)


def test_transport_errors_as_the_core(host_backend, detector):
    n = 50
    v, p = np.zeros((n, 3)), np.tile([1.0, 0.3, 0.2], (n, 1))
    p[40] = [1e-100, 0.0, 0.0]  # curls forever without loop protection
    q, m = np.ones(n, np.int32), np.full(n, 0.13957)
    config = TransportConfig(min_p=0.0, loop_fraction=0.0)
    from trackcore._corelib import core

    with pytest.raises(ValueError) as cpu_error:
        core().transport(compiled_geometry(detector), v, p, q, m, layer_material(detector), min_p=0.0,
                         loop_fraction=0.0)
    with pytest.raises(ValueError) as gpu_error:
        get_backend(host_backend).kernel("transport")(detector, v, p, q, m, layer_material(detector), 2.0, None, 0,
                                                      config)
    assert str(gpu_error.value) == str(cpu_error.value) and "particle 40 needs more than 2e7 steps" in str(cpu_error.value)
    with pytest.raises(InputError, match="particle 3 needs charge != 0"):
        get_backend(host_backend).kernel("transport")(detector, v, p, np.where(np.arange(n) == 3, 0, 1), m,
                                                      layer_material(detector), 2.0, None, 0, config)


def test_digitization_kernels_give_the_cores_cells(host_backend, detector):
    from trackcore._corelib import core
    from trackcore.sim.digitization import _module_shapes

    rng = np.random.default_rng(8)
    shapes = _module_shapes(detector)
    n = 4000
    module = rng.integers(0, len(detector), n)
    half = np.c_[np.maximum(shapes[module, 0], shapes[module, 1]), shapes[module, 2]]
    start = rng.uniform(-1.1, 1.1, (n, 2)) * half
    seg = np.c_[start, start + rng.normal(0, 0.3, (n, 2)) * np.r_[[1.0, 3.0]]]
    seg[:50, 2:] = seg[:50, :2]  # perpendicular crossings
    charge = rng.uniform(1e3, 1e5, n)
    cpu = core().digitize_segments(module, seg, charge, shapes)
    got = host_backend.kernel("digitize_segments")(module, seg, charge, shapes)
    assert len(cpu[0]) > n
    for a, b in zip(got, cpu):
        np.testing.assert_array_equal(a, b)
    # Clustering: fired cells of the pieces, sorted and unique, on both backends.
    key = np.unique((module[cpu[0]].astype(np.int64) << 42) | (cpu[1] << 21) | cpu[2])
    cells = (key >> 42, (key >> 21) & ((1 << 21) - 1), key & ((1 << 21) - 1))
    labels = core().cluster_cells(*cells)
    np.testing.assert_array_equal(host_backend.kernel("cluster_cells")(*cells), labels)
    assert labels.max() + 1 < len(key)  # some clusters have several cells
    with pytest.raises(InputError, match="sorted"):
        host_backend.kernel("cluster_cells")(cells[0][::-1].copy(), cells[1][::-1].copy(), cells[2][::-1].copy())
    with pytest.raises(InputError, match="charge"):
        host_backend.kernel("digitize_segments")(module, seg, -charge, shapes)


def test_simulate_event_on_the_host_build_equals_the_cpu_backend(host_backend, detector):
    parts = minimum_bias(np.random.default_rng(21), pileup=50.0)
    cpu = simulate_event(detector, parts, seed=5, backend="cpu")
    got = simulate_event(detector, parts, seed=5, backend=host_backend)
    assert len(cpu.hits) > 30_000
    for part in EVENT_PARTS:
        a, b = getattr(cpu, part), getattr(got, part)
        assert list(a.columns) == list(b.columns), part
        for col in a.columns:
            np.testing.assert_array_equal(np.asarray(b[col]), np.asarray(a[col]), err_msg=f"{part}.{col}")


def test_simulate_cli_with_backend_cupy(detector, tmp_path, monkeypatch, capsys):
    """``trackcore simulate --backend cupy`` with the host build standing in for a GPU: the cpu files."""
    import trackcore.backends as backends
    from trackcore.backends.cupy_kernels._emulate import HostRuntime
    from trackcore.cli.main import main
    from trackcore.plugins import DISABLE_AUTOLOAD_ENV

    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    monkeypatch.setitem(backends._loaded, "cupy", make_backend(HostRuntime()))
    for name in ("cpu", "cupy"):
        assert main(["simulate", "--events", "1", "--pileup", "10", "--backend", name, "--output",
                     str(tmp_path / name), "--quiet"]) == 0
    for part in EVENT_PARTS:
        a = (tmp_path / "cpu" / f"event000000000-{part}.csv").read_bytes()
        assert a == (tmp_path / "cupy" / f"event000000000-{part}.csv").read_bytes(), part


@pytest.mark.gpu
def test_gpu_transport_and_simulation_agree_with_the_cpu(detector):
    from trackcore.errors import BackendError

    try:
        backend = get_backend("cupy")
    except BackendError as exc:
        pytest.skip(f"no CuPy GPU runtime: {exc}")
    parts = minimum_bias(np.random.default_rng(4), pileup=40.0)
    v, p, q, m = _particles(parts)
    cpu = transport(detector, v, p, q, m, seed=11, backend="cpu")
    got = transport(detector, v, p, q, m, seed=11, backend=backend)
    # Same random numbers (integer streams); libdevice may move the last bits of the physics.
    assert abs(len(got["module_index"]) - len(cpu["module_index"])) <= 0.005 * len(cpu["module_index"])
    cpu_seq = {i: tuple(cpu["module_index"][cpu["particle_index"] == i]) for i in range(len(v))}
    gpu_seq = {i: tuple(got["module_index"][got["particle_index"] == i]) for i in range(len(v))}
    assert np.mean([cpu_seq[i] == gpu_seq[i] for i in range(len(v))]) > 0.99
    a = simulate_event(detector, parts, seed=5, backend="cpu")
    b = simulate_event(detector, parts, seed=5, backend=backend)
    assert abs(len(a.hits) - len(b.hits)) <= 0.005 * len(a.hits)


def test_demo_with_backend_cupy_matches_cpu(tmp_path, monkeypatch, capsys):
    """``trackcore demo --backend cupy`` (the device-array model standing in for a GPU): simulation and
    reconstruction on the cupy kernels give the cpu run's event, score and rates."""
    import re

    import trackcore.backends as backends
    from trackcore.backends.cupy_kernels._device_model import DeviceModelRuntime
    from trackcore.cli.main import main
    from trackcore.plugins import DISABLE_AUTOLOAD_ENV

    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    monkeypatch.setitem(backends._loaded, "cupy", make_backend(DeviceModelRuntime()))
    text = {}
    for name in ("cpu", "cupy"):
        capsys.readouterr()
        assert main(["demo", "--pileup", "10", "--backend", name, "--output", str(tmp_path / name), "--quiet"]) == 0
        out = capsys.readouterr().out
        # Timings differ; the score and every rate must not.
        text[name] = [re.sub(r"\[.*\]", "", line) for line in out.splitlines() if "score=" in line or "%" in line]
    assert text["cupy"] == text["cpu"] and any("score=" in line for line in text["cpu"])
