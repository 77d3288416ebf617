"""The simulation against the real TrackML subset: the event's own particles through the real
detectors.csv, compared per quantity (markdown table).

    .venv/bin/python benchmarks/sim_vs_real.py [--seeds 5] [--noise 0.15]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from trackcore.event.io import read_event
from trackcore.geometry.io import read_detector
from trackcore.sim.simulate import SimulationConfig, simulate_event

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "trackml"
GROUPS = {"pixel endcap": (7, 9), "pixel barrel": (8,), "short-strip endcap": (12, 14), "short-strip barrel": (13,),
          "long-strip endcap": (16, 18), "long-strip barrel": (17,)}


def summary(event) -> dict[str, float]:
    truth = event.truth_aligned()
    signal = truth["particle_id"] != 0
    volume = event.hits["volume_id"]
    order = np.argsort(event.hits["hit_id"])
    counts = np.bincount(np.searchsorted(event.hits["hit_id"][order], event.cells["hit_id"]), minlength=len(order))
    cells = np.empty(len(order))
    cells[order] = counts
    _, per_particle = np.unique(truth["particle_id"][signal], return_counts=True)
    out = {"hits": len(volume), "noise fraction": float(np.mean(~signal)),
           "particles with hits": len(per_particle), "hits per particle": float(per_particle.mean())}
    for name, vols in GROUPS.items():
        sel = np.isin(volume, vols) & signal
        out[f"cells per hit, {name}"] = float(cells[sel].mean())
        out[f"hit share, {name}"] = float(sel.sum() / signal.sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--noise", type=float, default=0.15)
    args = ap.parse_args()
    if not (SHARED / "event000000001-hits.csv.gz").exists():
        sys.exit(f"real TrackML subset not found at {SHARED}")
    real = read_event(SHARED / "event000000001")
    detector = read_detector(SHARED / "detectors.csv.gz")
    config = SimulationConfig(noise_fraction=args.noise)
    sims = [summary(simulate_event(detector, real.particles.copy(), config=config, seed=s)) for s in range(args.seeds)]
    ref = summary(real)
    print(f"| quantity | real event000000001 | simulated (mean of {args.seeds} seeds) | sim/real |")
    print("|---|---|---|---|")
    for key, value in ref.items():
        sim = float(np.mean([s[key] for s in sims]))
        print(f"| {key} | {value:.3f} | {sim:.3f} | {sim / value:.2f} |")


if __name__ == "__main__":
    main()
