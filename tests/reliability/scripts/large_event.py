"""Simulate and reconstruct one high pile-up event; report hits, time per step and peak RSS.

Usage: .venv/bin/python tests/reliability/scripts/large_event.py [--pileup 1000] [--seed 1] [--json out.json]

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water mark, KiB on
Linux) read after each step, so the value after a step is the peak up to and including it.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pileup", type=float, default=1000.0, help="mean number of collisions <mu>")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the report here as JSON")
    args = ap.parse_args(argv)

    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.reco.pipeline import reconstruct
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.simulate import simulate_event

    report: dict = {"pileup": args.pileup, "seed": args.seed, "rss_start_mib": _rss_mib()}
    t0 = time.perf_counter()
    detector = trackml_like_detector()
    particles = minimum_bias(np.random.default_rng(args.seed), pileup=args.pileup)
    report.update(particles=len(particles), setup_s=time.perf_counter() - t0, rss_after_setup_mib=_rss_mib())

    t0 = time.perf_counter()
    event = simulate_event(detector, particles, seed=args.seed, event_id=args.seed)
    report.update(hits=event.n_hits, cells=len(event.cells), simulate_s=time.perf_counter() - t0,
                  rss_after_simulate_mib=_rss_mib())
    print(f"simulated {event.n_hits} hits from {len(particles)} particles in {report['simulate_s']:.1f} s, "
          f"peak RSS {report['rss_after_simulate_mib']:.0f} MiB", flush=True)

    t0 = time.perf_counter()
    reco = reconstruct(event, detector)
    tid = reco.track_id_of_hits()
    report.update(tracks=len(reco.tracks), hits_on_tracks=int((tid >= 0).sum()),
                  reconstruct_s=time.perf_counter() - t0, stage_s=dict(reco.timings),
                  peak_rss_mib=_rss_mib())
    # The output must be a valid assignment: every hit at most once, indices inside the event.
    assert len(tid) == event.n_hits and tid.min(initial=-1) >= -1
    print(json.dumps(report, indent=1, default=float))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=float)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
