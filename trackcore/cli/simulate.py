"""``trackcore simulate``: simulate events and write them in TrackML format."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "simulate"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="simulate events through a detector and write TrackML files",
        description="Simulate pile-up (default), particle-gun or jet events through a detector "
                    "(built-in 'trackml' by default) and write event<9 digits>-{hits,cells,particles,truth}.csv.")
    p.add_argument("--events", type=int, default=1, help="number of events (default 1)")
    p.add_argument("--pileup", type=float, default=200.0, help="mean number of pile-up collisions <mu> (default 200)")
    p.add_argument("--gun", type=int, default=0, metavar="N",
                   help="instead of pile-up: a particle gun of N particles per event")
    p.add_argument("--gun-pt", type=float, nargs=2, default=(1.0, 10.0), metavar=("MIN", "MAX"), help="gun pT range, GeV")
    p.add_argument("--gun-eta", type=float, nargs=2, default=(-2.5, 2.5), metavar=("MIN", "MAX"), help="gun eta range")
    p.add_argument("--gun-pdg", type=int, default=13, help="gun particle PDG code (default 13, muon)")
    p.add_argument("--jets", type=int, default=0, metavar="N", help="add N high-pT jets per event")
    p.add_argument("--seed", type=int, default=0, help="random seed (event i uses seed + i)")
    p.add_argument("--detector", default="trackml", help="detectors.csv path or built-in name (trackml, generic)")
    p.add_argument("--noise", type=float, default=0.15, help="fraction of noise hits (default 0.15)")
    p.add_argument("--misalign", action="store_true",
                   help="simulate a randomly misaligned detector (100/100/50 um, 20 mrad) and write the truth alignment")
    p.add_argument("--first-event", type=int, default=0, help="id of the first event written")
    p.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    p.add_argument("--backend", default=None, help="numpy or cpu (default: cpu when built)")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", "-q", action="store_true", help="no progress bar, warnings and errors only")
    verbosity.add_argument("--verbose", "-v", action="store_true", help="debug messages")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..api import simulate_events
    from ..config import configure_logging

    configure_logging(-1 if args.quiet else 1 if args.verbose else 0)
    for event, path in tqdm(simulate_events(args), total=args.events, desc="simulate", unit="event",
                            disable=args.quiet):
        if args.quiet:
            continue
        tqdm.write(f"{path}: {len(event.hits)} hits, {int((event.particles['nhits'] > 0).sum())} particles with hits, "
                   f"{(event.truth['particle_id'] == 0).mean():.1%} noise")
    return 0
