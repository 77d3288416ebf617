"""Benchmarks of the aligner (pytest-benchmark; run with
``pytest benchmarks/test_bench_aligner.py --benchmark-enable``).

Wall time of one global-fit iteration (track fits, Schur-reduced normal equations, sparse solve)
and of one ML-aligner epoch (per-batch re-fits, forward/backward, Adam), for growing numbers of
alignable modules (a barrel ring, then the whole generic pixel detector) and of tracks (single
muons, pT 2-20 GeV, multiple scattering on). ``extra_info`` records modules, tracks, hits and
the peak traced memory (tracemalloc: numpy buffers included, torch's own allocator not).
"""
from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("scipy")

from plugins.aligner import global_fit as G
from plugins.aligner import residuals as R
from trackcore.geometry.alignment import apply_alignment, random_misalignment
from trackcore.geometry.builders import generic_detector
from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import SimulationConfig, simulate_event

#: (label, eta range of the muons, number of muons): the ring lights ~200 barrel modules.
CASES = [("ring-5k", (0.1, 0.5), 5000), ("full-5k", (-2.5, 2.5), 5000), ("full-20k", (-2.5, 2.5), 20000),
         ("full-80k", (-2.5, 2.5), 80000)]


@functools.cache
def sample_for(eta: tuple[float, float], muons: int):
    det = generic_detector()
    truth = apply_alignment(det, random_misalignment(det, 11))
    per_event = 1000
    events = [simulate_event(det, particle_gun(per_event, 100 + i, pt=(2.0, 20.0), eta=eta),
                             simulation_detector=truth, config=SimulationConfig(noise_fraction=0.0), seed=100 + i,
                             event_id=i) for i in range(muons // per_event)]
    return det, R.collect_tracks(det, events)


def _info(benchmark, det, sample, peak: int) -> None:
    benchmark.group = "aligner"
    lit = np.unique(sample.module)
    benchmark.extra_info.update(modules=len(lit), tracks=int(sample.n_tracks), hits=int(sample.n_hits),
                                peak_traced_MiB=round(peak / 2**20, 1))


@pytest.mark.parametrize("label,eta,muons", CASES, ids=[c[0] for c in CASES])
def test_bench_global_fit_iteration(benchmark, label, eta, muons):
    det, sample = sample_for(eta, muons)
    config = G.GlobalFitConfig(iterations=1, spectrum=0, min_hits=5)
    tracemalloc.start()
    res = G.global_fit(det, sample, config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    _info(benchmark, det, sample, peak)
    benchmark.extra_info["parameters"] = res.history[0]["parameters"]
    benchmark.extra_info["nnz"] = res.history[0]["nnz"]
    out = benchmark.pedantic(lambda: G.global_fit(det, sample, config), rounds=2, iterations=1)
    assert np.isfinite(out.corrections).all()


@pytest.mark.parametrize("label,eta,muons", CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_bench_ml_epoch(benchmark, label, eta, muons):
    torch = pytest.importorskip("torch")
    from plugins.aligner.ml_aligner import MLAlignerConfig, ml_align

    torch.set_num_threads(1)
    det, sample = sample_for(eta, muons)
    config = MLAlignerConfig(optimizer="adam", epochs=1, batch_events=1, device="cpu", min_hits=5)
    tracemalloc.start()
    ml_align(det, sample, config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    _info(benchmark, det, sample, peak)
    out = benchmark.pedantic(lambda: ml_align(det, sample, config), rounds=2, iterations=1)
    assert len(out.loss) == len(np.unique(sample.event))
