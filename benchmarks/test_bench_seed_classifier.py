"""Benchmarks of the seed classifier on one <mu> = 200 event (pytest-benchmark; run with
``pytest benchmarks/test_bench_seed_classifier.py --benchmark-enable``).

Per event: the features of all its seeds, then inference of the shipped model with onnxruntime
(what the pipeline runs) and with PyTorch (single thread, for comparison). ``extra_info`` records
the number of seeds.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from plugins.seed_classifier import plugin  # noqa: E402
from plugins.seed_classifier.features import cluster_table, seed_features  # noqa: E402
from plugins.seed_classifier.onnx_runtime import OnnxSeedClassifier  # noqa: E402
from plugins.seed_classifier.train import find_event_seeds, simulate  # noqa: E402


@functools.lru_cache(maxsize=None)
def event_and_seeds():
    (event,) = simulate(1, 4242, 200.0, desc="", progress=False)
    hit_index, _ = find_event_seeds(event)
    return event, hit_index


def test_bench_seed_features(benchmark):
    event, hit_index = event_and_seeds()
    benchmark.group = "seed-classifier"
    benchmark.extra_info["seeds"] = int(len(hit_index))
    x = benchmark.pedantic(lambda: seed_features(event, hit_index, cluster_table(event)), rounds=3, iterations=1)
    assert x.shape[0] == len(hit_index) > 50_000


def test_bench_seed_inference_onnxruntime(benchmark):
    event, hit_index = event_and_seeds()
    x = seed_features(event, hit_index)
    session = OnnxSeedClassifier(plugin.MODEL_PATH)
    benchmark.group = "seed-classifier"
    benchmark.extra_info["seeds"] = int(len(x))
    prob = benchmark.pedantic(session.predict, args=(x,), rounds=5, iterations=1)
    assert prob.shape == (len(x), 3)


def test_bench_seed_inference_torch(benchmark):
    torch = pytest.importorskip("torch")
    from plugins.seed_classifier.model import load_state, predict_torch

    event, hit_index = event_and_seeds()
    x = seed_features(event, hit_index)
    model = load_state(plugin.MODEL_DIR / "model.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same single thread onnxruntime gets in the pipeline
    try:
        benchmark.group = "seed-classifier"
        benchmark.extra_info["seeds"] = int(len(x))
        prob = benchmark.pedantic(predict_torch, args=(model, x), rounds=5, iterations=1)
    finally:
        torch.set_num_threads(threads)
    assert prob.shape == (len(x), 3)


def test_bench_seed_classify_hook(benchmark):
    """The whole pipeline stage: features + onnxruntime + labels."""
    from trackcore.hookspecs import Seeds

    event, hit_index = event_and_seeds()
    clf = plugin.SeedClassifier()
    seeds = Seeds(hit_index, np.zeros((len(hit_index), 5)))
    benchmark.group = "seed-classifier"
    benchmark.extra_info["seeds"] = int(len(hit_index))
    result = benchmark.pedantic(clf.trackcore_classify_seeds, args=(event, seeds), rounds=3, iterations=1)
    assert result.label.shape == (len(hit_index),)
