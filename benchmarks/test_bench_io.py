"""Benchmarks of event input and output on one <mu> = 200 event (pytest-benchmark; run with
``pytest benchmarks/test_bench_io.py --benchmark-enable``): ``write_event`` and ``read_event`` of the
TrackML CSV files, plain and gzipped, and the tracks + submission outputs of its reconstruction.
Reading parses typed columns with pyarrow (multi-threaded) and the parts side by side; writing
formats numeric columns in the compiled core (floats as Python's repr); ``--gzip`` compresses the
parts side by side. ``extra_info`` records the hits and bytes written.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.event.io import read_event, write_event
from trackcore.geometry.builders import trackml_like_detector
from trackcore.sim.particles import minimum_bias
from trackcore.sim.simulate import simulate_event

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


@functools.lru_cache(maxsize=None)
def event():
    return simulate_event(trackml_like_detector(), minimum_bias(np.random.default_rng(2024), pileup=200.0), seed=7)


@pytest.mark.parametrize("gzip", [False, True], ids=["csv", "csv.gz"])
def test_bench_write_event(benchmark, tmp_path, gzip):
    ev = event()
    benchmark.group = "event-io"
    paths = benchmark.pedantic(write_event, args=(ev, tmp_path), kwargs={"gzip": gzip}, rounds=3, iterations=1)
    benchmark.extra_info.update(hits=len(ev.hits), bytes=sum(p.stat().st_size for p in paths))


@pytest.mark.parametrize("gzip", [False, True], ids=["csv", "csv.gz"])
def test_bench_read_event(benchmark, tmp_path, gzip):
    ev = event()
    write_event(ev, tmp_path, gzip=gzip)
    benchmark.group = "event-io"
    back = benchmark.pedantic(read_event, args=(tmp_path / ev.name,), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["hits"] = len(back.hits)
    assert np.array_equal(back.hits["x"], ev.hits["x"])


@needs_cpu
def test_bench_write_outputs(benchmark, tmp_path):
    from trackcore.output import write_outputs
    from trackcore.reco.pipeline import reconstruct

    ev = event()
    reco = reconstruct(ev, trackml_like_detector())
    hit_id, track_id = reco.submission()
    benchmark.group = "event-io"
    benchmark.pedantic(write_outputs, args=(tmp_path, ev.name, reco.tracks, hit_id, track_id, ("csv",)), rounds=3,
                       iterations=1)
    benchmark.extra_info["tracks"] = len(reco.tracks)
