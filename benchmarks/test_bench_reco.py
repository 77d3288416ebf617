"""Benchmarks of the reconstruction chain on a <mu> = 200 event (pytest-benchmark; run with
``pytest benchmarks/test_bench_reco.py --benchmark-enable``).

The event (minimum bias, fixed seed, ``trackml_like_detector``, 15% noise) is simulated once per
session. ``test_bench_reconstruct`` times the whole default pipeline on the ``cpu`` backend;
``test_bench_stage`` times each stage alone on the outputs of the stages before it (one worker
thread per CPU, the default). ``test_bench_reconstruct_gpu`` times the chain on the ``cupy`` backend
where CuPy and a GPU are present (the event's measurements go to the device and the tracks come back
inside the timed call; the first, untimed call compiles the kernels), and records how many tracks
agree with the ``cpu`` backend's.
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


def test_bench_reconstruct_gpu(benchmark, mu200):
    """Wall time of the whole chain on the GPU (skipped without CuPy and a GPU)."""
    if available_backends()["cupy"] != "ok":
        pytest.skip(f"cupy backend unavailable: {available_backends()['cupy']}")
    det, event = mu200
    reconstruct(event, det, backend="cupy")  # compiles the CUDA kernels, uploads the detector's tables
    benchmark.group = "reconstruct"
    reco = benchmark.pedantic(reconstruct, args=(event, det), kwargs={"backend": "cupy"}, rounds=5, iterations=1)
    ref = reconstruct(event, det, backend="cpu")
    same = (reco.track_id_of_hits() == ref.track_id_of_hits()).mean()
    benchmark.extra_info.update(hits=len(event.hits), tracks=len(reco.tracks), cpu_tracks=len(ref.tracks),
                                same_assignment_fraction=float(same))
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
