"""``trackcore reconstruct``: find and fit tracks in events; write submissions and tracks."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "reconstruct"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="reconstruct tracks in an event or a folder of events",
        description="Reconstruct tracks (seeding, combinatorial Kalman filter, ambiguity resolution, fit). "
                    "Needs only the hits file (cells used when present; truth only for the printed score). "
                    "Writes OUTPUT/<event>-submission.csv (hit_id,track_id) and OUTPUT/<event>-tracks.csv.")
    p.add_argument("source", help="an event (prefix or file), a dataset folder or a .zip")
    p.add_argument("--detector", default="trackml", help="detectors.csv path or built-in name (default trackml)")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--backend", default=None, help="numpy, cpu or cupy (default: cpu when built)")
    p.add_argument("--seeding", choices=("grid", "hashing"), default="grid",
                   help="seeding strategy: triplets from the (phi, z) grid, or inside ANN buckets (default grid)")
    p.add_argument("--json", action="store_true", help="print per-event results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def event_sources(source: str) -> list[tuple[str, str | None]]:
    """(path, event name) pairs: one event, or every event of a folder or zip."""
    from ..event.io import list_events

    path = Path(source)
    if path.is_dir() or path.suffix == ".zip":
        return [(source, name) for name in list_events(source)]
    return [(source, None)]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..api import reconstruct_event, results_json, summarize
    from ..event.io import read_event
    from ..geometry.io import load_detector
    from ..plugins import get_plugin_manager

    detector = load_detector(args.detector)
    pm = getattr(args, "plugin_manager", None) or get_plugin_manager()
    from ..reco.pipeline import ReconstructionConfig

    config = ReconstructionConfig(seeding_strategy=args.seeding)
    results = []
    for src, name in tqdm(event_sources(args.source), desc="reconstruct", unit="event", disable=args.quiet):
        event = read_event(src, event=name) if name else read_event(src)
        _, result = reconstruct_event(event, detector, args.output, backend=args.backend, plugin_manager=pm,
                                      config=config)
        results.append(result)
    print(results_json(results) if args.json else summarize(results))
    return 0
