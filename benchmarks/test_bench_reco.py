"""Benchmarks of the reconstruction chain on a <mu> = 200 event (pytest-benchmark; run with
``pytest benchmarks/test_bench_reco.py --benchmark-enable``).

The event (minimum bias, fixed seed, ``trackml_like_detector``, 15% noise) is simulated once per
session. ``test_bench_reconstruct`` times the whole default pipeline on the ``cpu`` backend;
``test_bench_stage`` times each stage alone on the outputs of the stages before it.
"""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.pipeline import build_pipeline, reconstruct
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


def test_bench_reconstruct(benchmark, mu200):
    det, event = mu200
    benchmark.group = "reconstruct"
    benchmark.extra_info["hits"] = len(event.hits)
    reco = benchmark(reconstruct, event, det, backend="cpu")
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
