"""Throughput of ``run_dataset`` on <mu> = 200 events with one and with two Dask workers.

Run with ``pytest benchmarks/test_bench_throughput.py --benchmark-enable -s``. Four fixed-seed
events (``minimum_bias(pileup=200)``, seeds 2024..2027, 15% noise, ~160k hits each) are simulated
once; a ``LocalCluster`` (processes, one thread each) is started and warmed (detector loaded,
compiled geometry built) before the clock starts, so the timing is reading, reconstruction and
writing only. ``test_speedup`` prints events/s for both, their ratio (target: >= 1.8 on a
2-core machine), and checks that both runs wrote byte-identical outputs.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from trackcore.backends import available_backends

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
distributed = pytest.importorskip("dask.distributed")
N_EVENTS = 4
MEASURED: dict[int, float] = {}


@pytest.fixture(scope="module")
def mu200_events(tmp_path_factory):
    from trackcore.event.io import write_event
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.simulate import simulate_event

    folder = tmp_path_factory.mktemp("mu200")
    det = trackml_like_detector()
    for i in range(N_EVENTS):
        parts = minimum_bias(np.random.default_rng(2024 + i), pileup=200.0)
        write_event(simulate_event(det, parts, seed=7 + i, event_id=i, backend="cpu"), folder)
    return folder


def _warm() -> int:
    from trackcore.distributed import _detector
    from trackcore.sim.transport import compiled_geometry

    compiled_geometry(_detector("trackml"))
    return 1


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_throughput(benchmark, mu200_events, tmp_path, workers):
    from trackcore.distributed import run_dataset

    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        client.run(_warm)
        out = mu200_events.parent / f"out-{workers}"
        benchmark.group = "throughput-mu200"
        benchmark.extra_info.update(workers=workers, events=N_EVENTS)

        def run():
            t0 = time.perf_counter()
            result = run_dataset(mu200_events, "trackml", out, client=client, overwrite=True, plugins=False)
            MEASURED[workers] = N_EVENTS / (time.perf_counter() - t0)
            return result

        result = benchmark.pedantic(run, rounds=1, iterations=1)
        assert not result.failed and len(result.done) == N_EVENTS
        benchmark.extra_info["events_per_s"] = MEASURED[workers]
        # the machine may be shared: the load says how much of it this run had
        benchmark.extra_info["load_average_1min"] = os.getloadavg()[0]
        benchmark.extra_info["cpus"] = os.cpu_count()
    finally:
        client.close()
        cluster.close()


def test_speedup(mu200_events):
    if set(MEASURED) != {1, 2}:
        pytest.skip("run the whole file: both throughput benchmarks are needed")
    ratio = MEASURED[2] / MEASURED[1]
    print(f"\nthroughput <mu>=200: 1 worker {MEASURED[1]:.3f} events/s, 2 workers {MEASURED[2]:.3f} events/s, "
          f"ratio {ratio:.2f} (target >= 1.8); {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}")
    one, two = mu200_events.parent / "out-1", mu200_events.parent / "out-2"
    names = sorted(p.name for p in one.iterdir() if p.name.endswith((".csv", ".toml")))
    assert len(names) == 2 * N_EVENTS + 1
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
