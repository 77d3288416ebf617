"""``trackcore score``: TrackML score, efficiency, fake and duplicate rates of a submission."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "score"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="score a submission against an event's truth",
        description="Print the TrackML score and the efficiency / fake / duplicate rates of a submission "
                    "(hit_id,track_id CSV) against the truth of EVENT.")
    p.add_argument("event", help="the event (prefix or file) with its truth and particles")
    p.add_argument("submission", type=Path, nargs="?",
                   help="submission CSV (default: <event>-submission.csv beside --output)")
    p.add_argument("--output", "-o", type=Path, default=None, help="folder holding <event>-submission.csv")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError
    from ..event.io import read_event, read_submission
    from ..metrics import score_event, tracking_rates

    event = read_event(args.event)
    if event.truth is None:
        raise InputError(f"{args.event}: no truth file, so there is nothing to score against")
    path = args.submission or ((args.output or Path(".")) / f"{event.name}-submission.csv")
    sub = read_submission(path)
    score = score_event(event, sub["hit_id"], sub["track_id"])
    # Tracks of fewer than 3 hits (e.g. unassigned singletons) are not counted as tracks by the rates.
    rates = tracking_rates(event, sub["hit_id"], sub["track_id"])
    if args.json:
        print(json.dumps({"event": event.name, "score": score, **rates.as_dict()}, indent=2, default=float))
    else:
        print(f"{event.name}  TrackML score {score:.4f}")
        print(rates.format_table())
    return 0
