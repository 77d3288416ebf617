"""``trackcore simulate``: simulate events and write them in TrackML format."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from ..event import Event

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
    p.add_argument("--backend", default=None, help="numpy, cpu or cupy (default: cpu when built)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="worker threads of the transport (default: one per CPU); the events do not depend on it")
    p.add_argument("--fastsim", action="store_true",
                   help="fast simulation: a plugin's trackcore_fast_simulate hook (e.g. fastsim_gan) replaces the "
                        "full digitisation; an error if no installed plugin answers")
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
    events = fast_simulate_events(args) if args.fastsim else simulate_events(args)
    for event, path in tqdm(events, total=args.events, desc="simulate", unit="event", disable=args.quiet):
        if args.quiet:
            continue
        tqdm.write(f"{path}: {len(event.hits)} hits, {int((event.particles['nhits'] > 0).sum())} particles with hits, "
                   f"{(event.truth['particle_id'] == 0).mean():.1%} noise")
    return 0


def fast_simulate_events(args: argparse.Namespace) -> Iterator[tuple[Event, Path]]:
    """Like :func:`trackcore.api.simulate_events`, each event made by ``pm.hook.trackcore_fast_simulate``.

    Event ``i`` gets particles from seed ``args.seed + i`` (as the full simulation) and the hook
    config ``{"seed", "event_id", "noise_fraction", "backend"}``.
    :raises InputError: ``--misalign`` was given (the hook simulates the nominal detector).
    :raises PluginError: no plugin implements the hook, or none returned an event.
    """
    import numpy as np

    from ..api import load_detector, make_particles, write_event
    from ..errors import InputError, PluginError
    from ..event import Event

    if args.misalign:
        raise InputError("simulate --fastsim: --misalign is not supported (fast simulation uses the nominal detector)")
    pm = getattr(args, "plugin_manager", None)
    if pm is None or not pm.hook.trackcore_fast_simulate.get_hookimpls():
        raise PluginError("simulate --fastsim: no installed plugin implements trackcore_fast_simulate "
                          "(install one, e.g. the fastsim_gan plugin, or drop --fastsim)")
    detector = load_detector(args.detector)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(args.events):
        seed = args.seed + i
        parts = make_particles(np.random.default_rng(seed), pileup=args.pileup, gun=args.gun, gun_pt=args.gun_pt,
                               gun_eta=args.gun_eta, gun_pdg=args.gun_pdg, jets=args.jets)
        config = {"seed": seed, "event_id": args.first_event + i, "noise_fraction": args.noise,
                  "backend": args.backend}
        event = pm.hook.trackcore_fast_simulate(particles=parts, detector=detector, config=config)
        if event is None:
            raise PluginError("simulate --fastsim: every trackcore_fast_simulate plugin returned None for event "
                              f"{args.first_event + i}")
        if not isinstance(event, Event):
            raise PluginError(f"simulate --fastsim: trackcore_fast_simulate returned {type(event).__name__}, "
                              "expected a trackcore Event")
        write_event(event, out, gzip=args.gzip)
        yield event, out / event.name
