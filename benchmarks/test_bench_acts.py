"""ACTS beside trackcore on the same events (pytest-benchmark; skipped without ``pyacts``).

Run with ``OMP_NUM_THREADS=1 pytest benchmarks/test_bench_acts.py --benchmark-enable``. One small
event (1,000 pions, ~12k hits) is simulated by ACTS Fatras on the ACTS generic detector and
reconstructed by ACTS (grid triplet seeding, CKF, greedy ambiguity resolution); the event and the
geometry are written in TrackML format, read back, and reconstructed by trackcore, which is the
timed call. ``extra_info`` holds both TrackML scores and both times per event. The full-size
comparison (5,000 particles per event) is ``benchmarks/acts_compare.py``; its figures are in
``benchmarks/README.md``.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("acts", reason="pyacts (ACTS Python bindings) not installed")
pytest.importorskip("acts.examples", reason="pyacts without the examples framework")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import acts_compare  # noqa: E402

from trackcore.event.io import read_event  # noqa: E402
from trackcore.geometry.io import read_detector  # noqa: E402
from trackcore.metrics import score_event  # noqa: E402
from trackcore.reco.pipeline import reconstruct  # noqa: E402

PARTICLES = 1000


@functools.lru_cache(maxsize=None)
def acts_sample(folder: str):
    columns, events = acts_compare.run_acts(1, PARTICLES, Path(folder))
    detector = read_detector(acts_compare.write_trackml(columns, events, Path(folder) / "trackml"))
    return detector, events[0], read_event(Path(folder) / "trackml" / "event000000000")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return acts_sample(str(tmp_path_factory.mktemp("acts")))


def test_geometry_matches_trackml_layout(sample):
    detector, _, _ = sample
    # The generic detector is the TrackML layout: same module count and volume numbering.
    assert len(detector) == 18728
    assert sorted(set(detector.volume_id.tolist())) == [7, 8, 9, 12, 13, 14, 16, 17, 18]
    barrel = [lay for lay in detector.layers if lay.volume_id == 8]
    assert [round(lay.r_mean) for lay in barrel] == [32, 72, 116, 172]


def test_hits_lie_on_their_modules(sample):
    detector, _, event = sample
    h = event.hits
    idx = detector.index(h["volume_id"], h["layer_id"], h["module_id"])
    local = detector.global_to_local(idx, np.column_stack([h["x"], h["y"], h["z"]]), backend="numpy")
    assert np.abs(local[:, 2]).max() < 1e-6  # measurements sit on the module plane
    assert detector.contains_local(idx, local, tolerance=0.5).mean() > 0.999  # smearing may leave the edge


def test_bench_trackcore_vs_acts(benchmark, sample):
    detector, acts_event, event = sample
    tid = acts_event.track_of_hit.copy()
    free = tid < 0
    tid[free] = tid.max() + 1 + np.arange(int(free.sum()))
    acts_score = score_event(event, event.hits["hit_id"], tid)
    reconstruct(event, detector, threads=1)  # warm-up: compiled geometry views are built once per detector
    benchmark.group = "acts-comparison"
    # One worker thread, as the single-threaded ACTS sequencer it is compared with.
    reco = benchmark.pedantic(reconstruct, args=(event, detector), kwargs={"threads": 1}, rounds=3, iterations=1)
    score = score_event(event, *reco.submission())
    benchmark.extra_info.update(hits=len(event.hits), acts_score=acts_score, trackcore_score=score,
                                acts_seconds=acts_event.stage_seconds["total"],
                                acts_seeding_seconds=acts_event.stage_seconds["seeding"],
                                acts_ckf_seconds=acts_event.stage_seconds["ckf"])
    assert acts_score > 0.9, "the ACTS chain itself is misconfigured"
    assert score >= acts_score - 0.01, f"trackcore {score:.4f} vs ACTS {acts_score:.4f} (target: at most 0.01 below)"
