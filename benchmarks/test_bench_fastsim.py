"""Benchmarks of the digitisation step on one <mu> = 200 event (pytest-benchmark; run with
``pytest benchmarks/test_bench_fastsim.py --benchmark-enable``): the full digitisation (compiled
``cpu`` backend) against the fast one (shipped GAN generator + renderer, and the geometric no-ML
baseline) on the same transport crossings. The issue's target: fast >= 10x faster per event.
The fast path runs the compiled ``fastsim_conditions``/``fastsim_render`` kernels (``cpu``
backend); ``..._numpy_kernels`` runs their numpy references for comparison. ``extra_info``
records crossings, hits and cells.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from plugins.fastsim_gan import plugin  # noqa: E402
from plugins.fastsim_gan.fastsim import fast_digitize, module_tables  # noqa: E402
from plugins.fastsim_gan.model import NumpyGenerator  # noqa: E402


@functools.lru_cache(maxsize=None)
def crossings():
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.pdg import mass_of
    from trackcore.sim.simulate import SimulationConfig, crossings_for_digitization
    from trackcore.sim.transport import transport

    detector, config = trackml_like_detector(), SimulationConfig()
    p = minimum_bias(np.random.default_rng(4242), pileup=200.0)
    vertex = np.stack([p["vx"], p["vy"], p["vz"]], axis=1)
    momentum = np.stack([p["px"], p["py"], p["pz"]], axis=1)
    cr = transport(detector, vertex, momentum, p["q"], mass_of(p["particle_type"]), config=config.transport, seed=4242)
    dc = crossings_for_digitization(detector, cr, config.barrel_active_fraction, config.max_segment)
    return detector, config, dc, cr["momentum"]


def _info(benchmark, dc, digi) -> None:
    benchmark.group = "fastsim-digitization"
    benchmark.extra_info.update(crossings=int(len(dc["module_index"])), hits=int(len(digi.hits)),
                                cells=int(len(digi.cells)))


def test_bench_full_digitization(benchmark):
    from trackcore.sim.digitization import digitize

    detector, config, dc, _ = crossings()
    digi = benchmark.pedantic(lambda: digitize(detector, dc, config.digitization, np.random.default_rng(0),
                                               backend="cpu"), rounds=5, iterations=1)
    _info(benchmark, dc, digi)
    assert len(digi.hits) > 100_000


def test_bench_fast_digitization_gan(benchmark):
    if not plugin.MODEL_PATH.is_file():
        pytest.skip("no shipped generator")
    detector, config, dc, momentum = crossings()
    tables, generator = module_tables(detector, config), NumpyGenerator(plugin.MODEL_PATH)
    digi = benchmark.pedantic(lambda: fast_digitize(tables, dc, momentum, generator, np.random.default_rng(0)),
                              rounds=5, iterations=1)
    _info(benchmark, dc, digi)
    assert len(digi.hits) > 100_000


def test_bench_fast_digitization_baseline(benchmark):
    detector, config, dc, momentum = crossings()
    tables = module_tables(detector, config)
    digi = benchmark.pedantic(lambda: fast_digitize(tables, dc, momentum, None, np.random.default_rng(0)),
                              rounds=5, iterations=1)
    _info(benchmark, dc, digi)
    assert len(digi.hits) > 100_000


def test_bench_fast_digitization_gan_numpy_kernels(benchmark):
    if not plugin.MODEL_PATH.is_file():
        pytest.skip("no shipped generator")
    detector, config, dc, momentum = crossings()
    tables, generator = module_tables(detector, config), NumpyGenerator(plugin.MODEL_PATH)
    digi = benchmark.pedantic(lambda: fast_digitize(tables, dc, momentum, generator, np.random.default_rng(0),
                                                    backend="numpy"), rounds=5, iterations=1)
    _info(benchmark, dc, digi)
    assert len(digi.hits) > 100_000
