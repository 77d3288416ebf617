"""Benchmarks of hashing (pytest-benchmark; run with ``pytest benchmarks/test_bench_hashing.py
--benchmark-enable``): bucketing time per event for faiss exact / IVF / HNSW and the compiled LSH,
and the total seeding time of hashing vs grid seeding.

One <mu> = 200 event (``minimum_bias(1, pileup=200)`` through ``simulate_event`` on the TrackML-like
detector, seed 1: 14k particles, 173k hits, 85k pixel space points). ``extra_info`` records the
bucket tracking efficiency (particles with pT > 1 GeV and >= 4 pixel hits that have >= 4 of them
in one bucket), the bucket purity and the number of seeds.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.hashing import HashingConfig, bucket_hits, bucket_metrics, hashing_seeds
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import minimum_bias
from trackcore.sim.simulate import simulate_event

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


@functools.lru_cache(maxsize=None)
def event_data():
    det = trackml_like_detector()
    event = simulate_event(det, minimum_bias(np.random.default_rng(1), pileup=200), seed=1, event_id=1)
    sp = SpacePoints.from_event(event, det, volumes=(7, 8, 9))
    particle = event.truth_aligned()["particle_id"][sp.hit_index]
    parts = event.particles
    ids, counts = np.unique(particle[particle != 0], return_counts=True)
    nhits = dict(zip(ids.tolist(), counts.tolist()))
    pt = np.hypot(parts["px"], parts["py"])
    reco = np.array([p for p, t in zip(parts["particle_id"].tolist(), pt) if t > 1.0 and nhits.get(p, 0) >= 4])
    return sp, particle, reco


@needs_cpu
@pytest.mark.parametrize("method", ["faiss_exact", "faiss_ivf", "faiss_hnsw", "lsh"])
def test_bench_bucketing(benchmark, method):
    if method.startswith("faiss"):
        pytest.importorskip("faiss")
    sp, particle, reco = event_data()
    benchmark.group = "hashing-bucketing"
    buckets = benchmark.pedantic(bucket_hits, args=(sp, HashingConfig(method=method)), kwargs={"backend": "cpu"},
                                 rounds=2 if method in ("faiss_exact", "faiss_hnsw") else 5, iterations=1)
    m = bucket_metrics(buckets, particle, reco)
    benchmark.extra_info.update(m)
    assert m["efficiency"] > 0.95 and m["mean_size"] <= 50


@needs_cpu
@pytest.mark.parametrize("seeding", ["grid", "hashing_lsh", "hashing_faiss_ivf"])
def test_bench_seeding_total(benchmark, seeding):
    sp, _, _ = event_data()
    if seeding == "hashing_faiss_ivf":
        pytest.importorskip("faiss")
    benchmark.group = "hashing-seeding"
    if seeding == "grid":
        seeds = benchmark.pedantic(find_seeds, args=(sp,), kwargs={"backend": "cpu"}, rounds=3, iterations=1)
    else:
        cfg = HashingConfig(method=seeding.removeprefix("hashing_"))
        seeds = benchmark.pedantic(hashing_seeds, args=(sp, cfg), kwargs={"backend": "cpu"}, rounds=3, iterations=1)
    benchmark.extra_info["seeds"] = len(seeds)
    assert len(seeds) > 10_000
