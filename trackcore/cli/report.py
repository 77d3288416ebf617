"""``trackcore report``: one Markdown/HTML page of a run: score table, plots, configuration."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="write a Markdown/HTML report of a reconstruction run",
        description="Read OUTPUT (a folder written by 'trackcore reconstruct') and write report.md and "
                    "report.html with the per-event score table, the timing plot and the configuration "
                    "used; with --events (the run's source, with truth) also efficiency, residual, pull "
                    "and event-display plots.")
    p.add_argument("output", type=Path, help="output folder of 'trackcore reconstruct'")
    p.add_argument("--events", default=None, help="the events that were reconstructed (folder, zip or event)")
    p.add_argument("--report-dir", "-o", type=Path, default=None, help="where to write (default OUTPUT/report)")
    p.add_argument("--max-events", type=int, default=5, metavar="N",
                   help="events used for the truth-based plots (default 5)")
    p.add_argument("--quiet", "-q", action="store_true", help="warnings and errors only")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..config import configure_logging
    from ..errors import InputError
    from ..report import write_report

    configure_logging(-1 if args.quiet else 0)
    if args.max_events < 1:
        raise InputError(f"--max-events must be >= 1, got {args.max_events}")
    md, page = write_report(args.output, args.events, args.report_dir, max_events=args.max_events)
    print(md)
    print(page)
    return 0
