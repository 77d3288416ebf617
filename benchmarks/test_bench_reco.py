"""Benchmarks of the reconstruction chain on a <mu> = 200 event (pytest-benchmark; run with
``pytest benchmarks/test_bench_reco.py --benchmark-enable``).

The event (minimum bias, fixed seed, ``trackml_like_detector``, 15% noise) is simulated once per
session. ``test_bench_reconstruct`` times the whole default pipeline on the ``cpu`` backend;
``test_bench_stage`` times each stage alone on the outputs of the stages before it (one worker
thread per CPU, the default).
"""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.pipeline import build_pipeline, reconstruct
from trackcore.threads import resolve_threads
from trackcore.sim.particles import minimum_bias
from trackcore.sim.simulate import simulate_event

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
STAGES = ["measurements", "spacepoints", "collision_region", "seeding", "track_finding"]


@pytest.fixture(scope="session")
def mu200():
    det = trackml_like_detector()
    event = simulate_event(det, minimum_bias(np.random.default_rng(2024), pileup=200.0), seed=7, backend="cpu")
    return det, event


@pytest.fixture(scope="session")
def mu200_outputs(mu200):
    det, event = mu200
    return dict(reconstruct(event, det, backend="cpu").outputs)


@pytest.mark.parametrize("threads", [1, 0], ids=["1-thread", "all-cpus"])
def test_bench_reconstruct(benchmark, mu200, threads):
    """Wall time of the whole chain on one worker thread and on one per CPU (the default)."""
    det, event = mu200
    benchmark.group = "reconstruct"
    benchmark.extra_info.update(hits=len(event.hits), threads=resolve_threads(threads))
    reco = benchmark(reconstruct, event, det, backend="cpu", threads=threads)
    benchmark.extra_info["tracks"] = len(reco.tracks)
    assert len(reco.tracks) > 1000


@pytest.mark.parametrize("stage", STAGES)
def test_bench_stage(benchmark, mu200, mu200_outputs, stage):
    det, event = mu200
    pipeline = build_pipeline(det, backend="cpu")
    state = dict(mu200_outputs)  # every stage reads only the outputs of the stages before it
    fn = pipeline.stages[pipeline.names.index(stage)].fn
    benchmark.group = "reconstruct-stages"
    out = benchmark(fn, event, state)
    assert out is not None and set(out) == set(state[stage])
