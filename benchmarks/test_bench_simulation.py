"""Benchmarks of the simulation driver (transport, digitisation, clustering, noise, truth) with
pytest-benchmark; run with ``pytest benchmarks/test_bench_simulation.py --benchmark-enable``.

The particles are drawn once with a fixed seed (minimum bias through ``trackml_like_detector``):
<mu> = 200 on the compiled ``cpu`` backend (the TrackML pile-up) and <mu> = 5 on the ``numpy``
reference, whose per-particle Python loop makes 200 impractical. ``extra_info`` records the sizes.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry.builders import trackml_like_detector
from trackcore.sim.particles import minimum_bias
from trackcore.sim.simulate import simulate_event

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


@functools.lru_cache(maxsize=None)
def detector():
    return trackml_like_detector()


@functools.lru_cache(maxsize=None)
def particles(pileup: float):
    return minimum_bias(np.random.default_rng(2024), pileup=pileup)


@pytest.mark.parametrize("backend,pileup", [pytest.param("cpu", 200.0, marks=needs_cpu), ("numpy", 5.0)])
def test_bench_simulate_event(benchmark, backend, pileup):
    det, parts = detector(), particles(pileup)
    benchmark.group = "simulation"
    benchmark.extra_info.update(pileup=pileup, particles=len(parts))
    event = benchmark(simulate_event, det, parts, seed=7, backend=backend)
    benchmark.extra_info["hits"] = len(event.hits)
    assert len(event.hits) > 10 * len(parts) * 0.5
