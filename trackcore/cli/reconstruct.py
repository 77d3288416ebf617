"""``trackcore reconstruct``: find and fit tracks in events; write submissions and tracks."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "reconstruct"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="reconstruct tracks in an event or a folder of events",
        description="Reconstruct tracks (seeding, combinatorial Kalman filter, ambiguity resolution, fit). "
                    "Needs only the hits file (cells used when present; truth only for the printed score). "
                    "Writes OUTPUT/<event>-submission.csv (hit_id,track_id) and OUTPUT/<event>-tracks.csv "
                    "(or the --format ones), OUTPUT/<event>-result.json and OUTPUT/config.toml. Events "
                    "already done with the same configuration are skipped. With --workers or --scheduler "
                    "the events run in parallel on Dask.")
    p.add_argument("source", help="an event (prefix or file), a dataset folder or a .zip")
    p.add_argument("--detector", default=None,
                   help="detectors.csv path or built-in name (default: the config's, else trackml)")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML configuration of the whole pipeline ('trackcore config --dump' prints one)")
    p.add_argument("--backend", default=None, help="numpy, cpu or cupy (default: the config's, else cpu when built)")
    p.add_argument("--field", default=None,
                   help="magnetic field: constant (uniform 2 T, as trackcore simulates), trackml (the solenoid map "
                        "of the TrackML challenge data) or a field-map file (default: the config's, else constant)")
    p.add_argument("--seeding", choices=("grid", "hashing"), default=None,
                   help="seeding strategy: triplets from the (phi, z) grid, or inside ANN buckets "
                        "(default: the config's, else grid)")
    p.add_argument("--format", dest="formats", action="append", choices=("csv", "parquet", "root"), default=None,
                   help="output format of tracks and submissions; repeat for several (default: the config's, else csv)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run on a local Dask cluster of N processes (default: in this process)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="worker threads of the seeding and the CKF per event (default: the config's, else one "
                        "per CPU; one per event under --workers/--scheduler); the tracks do not depend on it")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster (e.g. tcp://host:8786); source and output must be "
                        "paths its workers see")
    p.add_argument("--overwrite", action="store_true", help="reconstruct events even when their outputs exist")
    p.add_argument("--no-plugins", action="store_true", help="do not use installed plugins")
    p.add_argument("--classify-seeds", action="store_true",
                   help="drop bad seeds with the seed classifier plugin (trained on trackcore's simulation)")
    p.add_argument("--split-clusters", action="store_true",
                   help="split merged pixel clusters with the cluster splitter plugin (for dense jet cores)")
    p.add_argument("--json", action="store_true", help="print per-event results as JSON")
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", "-q", action="store_true", help="no progress bar, warnings and errors only")
    verbosity.add_argument("--verbose", "-v", action="store_true", help="debug messages")
    p.set_defaults(func=run)
    return p


def run_config(args: argparse.Namespace):
    """The run configuration: the --config file (or defaults) with the options given on the line."""
    import dataclasses

    from ..config import RunConfig, load_config

    run = load_config(args.config) if args.config else RunConfig()
    if args.detector is not None:
        run.detector = args.detector
    if args.backend is not None:
        run.backend = args.backend
    if args.field is not None:
        run.field = args.field
    if args.formats:
        run.formats = tuple(dict.fromkeys(args.formats))
    if args.seeding is not None:
        run.reconstruction = dataclasses.replace(run.reconstruction, seeding_strategy=args.seeding)
    if args.classify_seeds:
        run.reconstruction = dataclasses.replace(run.reconstruction, classify_seeds=True)
    if args.split_clusters:
        run.reconstruction = dataclasses.replace(run.reconstruction, split_clusters=True)
    if args.threads is not None:
        from ..threads import resolve_threads

        resolve_threads(args.threads)
        run.threads = args.threads
    return run


def run(args: argparse.Namespace) -> int:
    from ..api import results_json, summarize
    from ..config import configure_logging
    from ..distributed import run_dataset

    configure_logging(-1 if args.quiet else 1 if args.verbose else 0)
    run_cfg = run_config(args)
    if args.workers is not None and args.workers < 1:
        from ..errors import InputError

        raise InputError(f"--workers must be >= 1, got {args.workers}")
    plugins = False if args.no_plugins else (getattr(args, "plugin_manager", None) or True)
    workers = args.workers if (args.workers is not None or args.scheduler) else 0
    outcome = run_dataset(args.source, None, args.output, config=run_cfg, workers=workers, scheduler=args.scheduler,
                          overwrite=args.overwrite, plugins=plugins, progress=not args.quiet)
    results = outcome.results
    print(results_json(results) if args.json else summarize(results))
    for failed in outcome.failed:
        print(f"{failed.event}: FAILED: {failed.error}", file=sys.stderr)
    return 1 if outcome.failed else 0
