"""The high-level Python API used by the command line: simulate, reconstruct, score.

Each function is a thin composition of the stage functions in ``sim``, ``reco`` and ``metrics``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .event import Event
from .event.io import read_event, write_event
from .geometry.detector import Detector
from .geometry.io import load_detector
from .metrics import score_event, tracking_rates


def make_particles(rng: np.random.Generator, *, pileup: float = 200.0, gun: int = 0, gun_pt=(1.0, 10.0),
                   gun_eta=(-2.5, 2.5), gun_pdg: int = 13, jets: int = 0):
    """The particle table of one event: a gun, or minimum-bias pile-up, plus optional jets."""
    from .sim import particles as src

    parts = (src.particle_gun(gun, rng, pt=tuple(gun_pt), eta=tuple(gun_eta), pdg=gun_pdg) if gun
             else src.minimum_bias(rng, pileup=pileup))
    if jets:
        jet_parts, _ = src.jets(rng, n_jets=jets)
        parts = src.combine(parts, jet_parts)
    return parts


def simulate_events(args) -> Iterator[tuple[Event, Path]]:
    """Simulate ``args.events`` events as the ``simulate`` command describes, writing each."""
    from .geometry.alignment import apply_alignment, random_misalignment, write_alignment
    from .sim.simulate import SimulationConfig, simulate_event

    detector = load_detector(args.detector)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    sim_detector = None
    if getattr(args, "misalign", False):
        params = random_misalignment(detector, np.random.default_rng(args.seed + 7919))
        sim_detector = apply_alignment(detector, params)
        write_alignment(params, out / "true-alignment.csv")
    config = SimulationConfig(noise_fraction=args.noise)
    for i in range(args.events):
        seed = args.seed + i
        rng = np.random.default_rng(seed)
        parts = make_particles(rng, pileup=args.pileup, gun=args.gun, gun_pt=args.gun_pt, gun_eta=args.gun_eta,
                               gun_pdg=args.gun_pdg, jets=args.jets)
        event = simulate_event(detector, parts, config=config, seed=seed, event_id=args.first_event + i,
                               backend=args.backend, simulation_detector=sim_detector,
                               threads=getattr(args, "threads", None))
        write_event(event, out, gzip=args.gzip)
        yield event, out / event.name


@dataclass
class EventResult:
    name: str
    n_hits: int
    n_tracks: int
    timings: dict
    score: float | None = None
    rates: dict | None = None
    threads: int | None = None  #: worker threads of the compiled kernels (None: the numpy reference, one)


def reconstruct_event(event: Event, detector: Detector, output: Path | None = None, *, backend=None,
                      plugin_manager=None, config=None, formats=("csv",), field=None, threads: int | None = None):
    """Reconstruct one event; write its tracks and submission when ``output`` (a folder) is given.

    ``field``: the magnetic field (default: uniform 2 T; :func:`trackcore.geometry.field.trackml_field_map`
    for TrackML challenge data). ``formats`` (csv, parquet, root) as in :mod:`trackcore.output`; for csv the files are
    ``<event>-submission.csv`` and ``<event>-tracks.csv`` (perigee, errors and covariance).
    ``threads``: worker threads of the compiled seeding and CKF (None or 0: one per CPU).
    """
    from .backends import get_backend
    from .reco.pipeline import reconstruct
    from .threads import resolve_threads

    t0 = time.perf_counter()
    reco = reconstruct(event, detector, config, backend=backend, plugin_manager=plugin_manager, field=field,
                       threads=threads)
    total = time.perf_counter() - t0
    if output is not None:
        from .output import write_outputs

        hit_id, track_id = reco.submission()
        write_outputs(output, event.name, reco.tracks, hit_id, track_id, formats)
    result = EventResult(event.name, len(event.hits), len(reco.tracks), dict(reco.timings, total=total))
    if get_backend(backend).name == "cpu":
        result.threads = resolve_threads(threads)
    if event.truth is not None and len(event.hits):
        hit_id, track_id = reco.submission()
        result.score = score_event(event, hit_id, track_id)
        # the submission ids: unassigned hits are singletons, not one big track -1
        result.rates = tracking_rates(event, hit_id, track_id).as_dict()
    return reco, result


def summarize(results: list[EventResult]) -> str:
    lines = []
    for r in results:
        t = " ".join(f"{k}={v * 1000:.0f}ms" for k, v in r.timings.items())
        if r.threads:
            t += f", {r.threads} thread{'s' if r.threads > 1 else ''}"
        s = f"  score={r.score:.4f}" if r.score is not None else ""
        lines.append(f"{r.name}: {r.n_hits} hits, {r.n_tracks} tracks{s}  [{t}]")
    return "\n".join(lines)


def results_json(results: list[EventResult]) -> str:
    return json.dumps([r.__dict__ for r in results], indent=2, default=float)
