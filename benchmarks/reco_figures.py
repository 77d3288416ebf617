"""Figures of the reconstruction issue: TrackML score, efficiency, fake/duplicate rates and time per
stage on simulated <mu> = 200 events (built-in TrackML-like detector) and on the real TrackML subset.

    .venv/bin/python benchmarks/reco_figures.py [--seeds 11,12,13] [--classify-seeds] [--threads N]

Times are process CPU seconds and wall seconds of `reconstruct`, and per-stage wall seconds, on one
worker thread unless --threads says otherwise (0: one per CPU). The tracks do not depend on it.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from trackcore.event.io import read_event
from trackcore.geometry.builders import trackml_like_detector
from trackcore.geometry.field import trackml_field_map
from trackcore.geometry.io import read_detector
from trackcore.metrics import score_event, tracking_rates
from trackcore.plugins import get_plugin_manager
from trackcore.reco.pipeline import ReconstructionConfig, reconstruct
from trackcore.sim.particles import minimum_bias
from trackcore.sim.simulate import simulate_event

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "trackml"


def primary_efficiency(event, track_of_hit: np.ndarray, min_pt: float = 1.0, min_hits: int = 4) -> tuple[float, int]:
    """Efficiency for particles made at the collision (not flagged ``secondary``), pT > min_pt, >= min_hits hits."""
    pid = event.truth_aligned()["particle_id"]
    p = event.particles
    primary = p["secondary"] == 0 if "secondary" in p else np.ones(len(p), bool)
    wanted = set(p["particle_id"][primary & (np.hypot(p["px"], p["py"]) > min_pt) & (p["nhits"] >= min_hits)].tolist())
    found = set()
    for t in np.unique(track_of_hit[track_of_hit >= 0]):
        ids, counts = np.unique(pid[track_of_hit == t], return_counts=True)
        if counts.max() * 2 > counts.sum() and ids[counts.argmax()] != 0:
            found.add(int(ids[counts.argmax()]))
    return len(wanted & found) / max(len(wanted), 1), len(wanted)


def report(label: str, event, detector, config, pm, field=None, threads: int = 1) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    reco = reconstruct(event, detector, config, plugin_manager=pm, field=field, threads=threads)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    hit_id, track_id = reco.submission()
    rates = tracking_rates(event, hit_id, reco.track_id_of_hits())
    line = (f"{label}: {len(event.hits)} hits  score {score_event(event, hit_id, track_id):.4f}  "
            f"eff(pT>1) {rates.efficiency_pt:.4f}  fake {rates.fake_rate:.4f}  dup {rates.duplicate_rate:.4f}")
    if "secondary" in event.particles:
        eff, n = primary_efficiency(event, reco.track_id_of_hits())
        line += f"  eff(pT>1, primaries, n={n}) {eff:.4f}"
    stages = " ".join(f"{k}={v:.3f}s" for k, v in reco.timings.items())
    print(f"{line}  cpu {cpu:.2f}s wall {wall:.2f}s  [{stages}]", flush=True)
    # Wall seconds of each track-finding pass (first pass, then the extra passes that found seeds).
    passes = reco.outputs["track_finding"]["passes"]
    print("    passes (seeding / ckf s, seeds used): " + "; ".join(
        f"{p['seeding_seconds']:.3f} / {p['ckf_seconds']:.3f}, {p['seeds_used']}" for p in passes), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="11,12,13")
    ap.add_argument("--classify-seeds", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="worker threads of seeding and CKF (0: one per CPU)")
    args = ap.parse_args()
    config = ReconstructionConfig(classify_seeds=args.classify_seeds)
    pm = get_plugin_manager() if args.classify_seeds else None
    detector = trackml_like_detector()
    warm = True
    for seed in (int(s) for s in args.seeds.split(",")):
        event = simulate_event(detector, minimum_bias(np.random.default_rng(seed), pileup=200), seed=seed, event_id=seed)
        if warm:  # build the detector's compiled caches outside the timed run
            reconstruct(event, detector, config, plugin_manager=pm)
            warm = False
        report(f"simulated <mu>=200, seed {seed}", event, detector, config, pm, threads=args.threads)
    if (SHARED / "event000000001-hits.csv.gz").exists():
        real = read_event(SHARED / "event000000001")
        real_detector = read_detector(SHARED / "detectors.csv.gz")
        report("real TrackML event000000001, uniform 2 T", real, real_detector, config, pm, threads=args.threads)
        report("real TrackML event000000001, TrackML field map", real, real_detector, config, pm,
               field=trackml_field_map(), threads=args.threads)
    else:
        print(f"real TrackML subset not found at {SHARED}: skipped")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
