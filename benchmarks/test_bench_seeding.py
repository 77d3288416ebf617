"""Benchmarks of the space-point grid and triplet seeding (pytest-benchmark; run with
``pytest benchmarks/test_bench_seeding.py --benchmark-enable``).

Events are simulated with a fixed seed on the TrackML-like detector for the ``cpu`` backend:
pile-up 130 (5.0k particles, 30k pixel space points: the pixel content the target quotes for a
TrackML <mu> = 200 event) and pile-up 200 (10.5k particles, 110k hits like TrackML, but 64k of
them pixel space points in this simulation); a 300-particle gun for the ``numpy`` reference.
Multiplicities fluctuate a lot between seeds, hence one fixed seed (``extra_info`` records the size).
``test_bench_seeding_reconstruction_config`` times what the reconstruction runs: the pipeline's
seeding settings on a full simulated <mu> = 200 event (``simulate_event``, 108k hits; issue #5 target
<= 100 ms of CPU on one core for ``find_seeds``, track parameters included).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.pipeline import default_seeding
from trackcore.reco.seeding import build_grid, find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import minimum_bias, particle_gun
from trackcore.sim.pdg import mass_of
from trackcore.sim.simulate import simulate_event
from trackcore.sim.transport import transport

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


@functools.lru_cache(maxsize=None)
def spacepoints(kind: str) -> SpacePoints:
    det = trackml_like_detector()
    particles = particle_gun(300, 3, pt=(1.0, 10.0)) if kind == "gun" else minimum_bias(3, pileup=float(kind))
    vertex = np.column_stack([particles[k] for k in ("vx", "vy", "vz")])
    momentum = np.column_stack([particles[k] for k in ("px", "py", "pz")])
    out = transport(det, vertex, momentum, particles["q"], mass_of(particles["particle_type"]), seed=3)
    mi, xyz = out["module_index"], out["position"]
    return SpacePoints.from_xyz(xyz[:, 0], xyz[:, 1], xyz[:, 2], layer_index=det.layer_index(mi),
                                volume_id=det.volume_id[mi], module_index=mi)


@needs_cpu
@pytest.mark.parametrize("pileup", ["130", "200"])
def test_bench_seeding_cpu(benchmark, pileup):
    sp = spacepoints(pileup)
    benchmark.group = "seeding"
    benchmark.extra_info["pixel_spacepoints"] = int(np.isin(sp.volume_id, (7, 8, 9)).sum())
    seeds = benchmark(find_seeds, sp, backend="cpu")
    assert len(seeds) > 1000


@functools.lru_cache(maxsize=None)
def simulated_event_spacepoints(seed: int) -> SpacePoints:
    det = trackml_like_detector()
    event = simulate_event(det, minimum_bias(np.random.default_rng(seed), pileup=200.0), seed=seed)
    return SpacePoints.from_event(event, det)


@needs_cpu
def test_bench_seeding_reconstruction_config(benchmark):
    sp = simulated_event_spacepoints(11)
    benchmark.group = "seeding"
    benchmark.extra_info["hits"] = len(sp)
    seeds = benchmark(find_seeds, sp, default_seeding(), backend="cpu")
    benchmark.extra_info["seeds"] = len(seeds)
    assert len(seeds) > 10_000 and np.all(np.diff(seeds.weight) <= 0)
    assert np.all(np.isfinite(seeds.pt)) and set(np.unique(seeds.charge)) == {-1, 1}


def test_bench_seeding_numpy(benchmark):
    sp = spacepoints("gun")
    benchmark.group = "seeding"
    seeds = benchmark.pedantic(find_seeds, args=(sp,), kwargs={"backend": "numpy"}, rounds=3, iterations=1)
    assert len(seeds) > 300


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_bench_grid(benchmark, backend):
    sp = spacepoints("200")
    benchmark.group = "seeding-grid"
    grid = benchmark(build_grid, sp, backend=backend)
    assert grid.offsets[-1] == int(np.isin(sp.volume_id, (7, 8, 9)).sum())
