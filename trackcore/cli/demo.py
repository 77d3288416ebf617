"""``trackcore demo``: the main job — simulate, reconstruct, score and plot on the built-in detector."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="simulate -> reconstruct -> score -> plots on the built-in detector",
        description="The end-to-end job on the built-in TrackML-like detector, no downloads: simulate "
                    "<mu> pile-up events, reconstruct them, print the TrackML score, efficiency, fake and "
                    "duplicate rates and per-stage timing, and write event displays and efficiency plots.")
    p.add_argument("--events", type=int, default=1, help="number of events (default 1)")
    p.add_argument("--pileup", type=float, default=200.0, help="<mu> (default 200)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--detector", default="trackml", help="detectors.csv path or built-in name (default trackml)")
    p.add_argument("--output", "-o", type=Path, default=Path("demo-output"), help="output folder")
    p.add_argument("--classify-seeds", action="store_true", help="drop bad seeds with the seed classifier plugin")
    p.add_argument("--backend", default=None,
                   help="numpy, cpu or cupy (a GPU): simulation and reconstruction both (default: cpu when built)")
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", "-q", action="store_true", help="results only: no progress lines")
    verbosity.add_argument("--verbose", "-v", action="store_true", help="debug messages")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from types import SimpleNamespace

    from ..api import reconstruct_event, simulate_events, summarize
    from ..config import configure_logging
    from ..geometry.io import load_detector
    from ..plugins import get_plugin_manager

    quiet = getattr(args, "quiet", False)
    configure_logging(-1 if quiet else 1 if getattr(args, "verbose", False) else 0)
    detector = load_detector(args.detector)
    backend = getattr(args, "backend", None)
    if backend is not None:
        from ..backends import get_backend

        get_backend(backend)  # an unusable backend fails here, before any work, with its reason
    if not quiet:
        print(detector.summary().splitlines()[0])
    sim_args = SimpleNamespace(detector=detector, output=args.output / "events", events=args.events,
                               pileup=args.pileup, gun=0, gun_pt=(1, 10), gun_eta=(-2.5, 2.5), gun_pdg=13, jets=0,
                               seed=args.seed, noise=0.15, first_event=0, gzip=False, backend=backend, misalign=False)
    pm = getattr(args, "plugin_manager", None) or get_plugin_manager()
    results = []
    for event, path in simulate_events(sim_args):
        if not quiet:
            print(f"simulated {path}: {len(event.hits)} hits")
        from ..reco.pipeline import ReconstructionConfig

        reco, result = reconstruct_event(event, detector, args.output / "reco", plugin_manager=pm, backend=backend,
                                         config=ReconstructionConfig(classify_seeds=args.classify_seeds))
        results.append(result)
        print(summarize([result]))
        from ..metrics import tracking_rates

        hit_id, track_id = reco.submission()
        print(tracking_rates(event, hit_id, reco.track_id_of_hits()).format_table())
        try:
            from ..plotting.figures import efficiency_vs_pt, event_display

            tid = reco.track_id_of_hits()
            a = event_display(event, tid, args.output / f"{event.name}-display.png")
            b = efficiency_vs_pt(event, tid, args.output / f"{event.name}-efficiency.png")
            print(f"plots: {a} {b}")
        except Exception as exc:  # plots are a convenience; the numbers above are the job
            print(f"plots skipped: {exc}")
    if len(results) > 1:
        scores = [r.score for r in results if r.score is not None]
        print(f"mean TrackML score over {len(scores)} events: {sum(scores) / len(scores):.4f}")
    return 0
