"""The alignment study: single muons on a misaligned pixel detector, both methods, honest numbers.

    python -m plugins.aligner.study --output aligner-study [--events 400] [--muons 1000]

Simulates ``--events`` training events of ``--muons`` single muons each (pT flat 2-20 GeV,
|eta| < 2.5, vertex spread 15 um / 50 mm, multiple scattering and energy loss on) through the
generic pixel detector (2,072 modules) misaligned with the seed study's sigmas (100/100/50 um,
20 mrad), plus ``--test-events`` held-out events; runs the global fit and the ML aligner on the
same tracks; writes ``report.json`` and PNGs per method into OUTPUT/global and OUTPUT/ml and a
``study.json`` with both. Every random number follows ``--seed``.

``--pileup MU`` adds Poisson(MU) minimum-bias collisions (the calibrated TrackML-like spectrum,
material secondaries included) to every training and held-out event: all their hits are simulated
(shared clusters, busier modules), and the truth tracks of the prompt pile-up particles with
pT >= ``--pileup-pt-min`` join the muons in the alignment sample (material secondaries do not: they
do not come from the beam line that the beam-spot term assumes).
"""
from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

from trackcore.geometry.alignment import (
    apply_alignment,
    random_misalignment,
    write_alignment,
)
from trackcore.geometry.builders import generic_detector, trackml_like_detector
from trackcore.geometry.detector import PIXEL_VOLUMES, Detector
from trackcore.sim.particles import combine, minimum_bias, particle_gun
from trackcore.sim.simulate import SimulationConfig, simulate_event

from .plugin import AlignOutcome, align
from .report import write_outputs
from .residuals import collect_tracks


def pixel_detector(name: str) -> Detector:
    """``generic`` (2,072 pixel modules) or ``trackml-pixel`` (the TrackML pixel volumes 7/8/9)."""
    if name == "generic":
        return generic_detector()
    det = trackml_like_detector()
    sel = np.isin(det.volume_id, PIXEL_VOLUMES)
    return type(det)(det.volume_id[sel], det.layer_id[sel], det.module_id[sel], det.centre[sel], det.rotation[sel],
                     det.thickness[sel], det.min_hu[sel], det.max_hu[sel], det.hv[sel], det.pitch_u[sel],
                     det.pitch_v[sel], name="trackml-pixel")


def simulate_muons(detector: Detector, truth_detector: Detector, n_events: int, muons: int, first_seed: int,
                   progress: bool = True, pileup: float = 0.0, pileup_pt_min: float = 0.5) -> list:
    """``n_events`` events of ``muons`` single muons (pT 2-20 GeV) flying through ``truth_detector``,
    plus Poisson(``pileup``) minimum-bias collisions per event; hits of pile-up particles below
    ``pileup_pt_min`` (GeV) or made in the material keep their truth ``particle_id`` zeroed, so that
    :func:`.residuals.collect_tracks` leaves them out (they stay in the event as hits)."""
    from tqdm import tqdm

    config = SimulationConfig(noise_fraction=0.0)
    out = []
    for i in tqdm(range(n_events), desc="simulate", disable=not progress, unit="event"):
        particles = particle_gun(muons, first_seed + i, pt=(2.0, 20.0), eta=(-2.5, 2.5))
        keep = None
        if pileup > 0:
            mb = minimum_bias(np.random.default_rng(first_seed + i + 7_000_000), pileup=pileup)
            particles = combine(particles, mb)  # muons keep ids 1..muons
            pt = np.hypot(np.asarray(mb["px"]), np.asarray(mb["py"]))
            prompt = ~np.asarray(mb["secondary"], bool) if "secondary" in mb else np.ones(len(mb), bool)
            keep = np.r_[np.arange(1, muons + 1), muons + 1 + np.flatnonzero(prompt & (pt >= pileup_pt_min))]
        event = simulate_event(detector, particles, simulation_detector=truth_detector, config=config,
                               seed=first_seed + i, event_id=i)
        if keep is not None and event.truth is not None:
            truth = event.truth.copy()
            pid = np.asarray(truth["particle_id"]).copy()
            pid[~np.isin(pid, keep)] = 0
            truth["particle_id"] = pid
            event.truth = truth
        out.append(event)
    return out


def _align_ml(detector: Detector, events: list, config: dict, progress: bool) -> AlignOutcome:
    """:func:`.plugin.align` for the ML aligner, keeping the hessian-free history (CG iterations and
    residual norms per outer iteration) in ``details``."""
    from .ml_aligner import MLAlignerConfig, ml_align

    t0 = time.perf_counter()
    cfg = MLAlignerConfig(**{k: v for k, v in config.items() if k != "method"})
    sample = collect_tracks(detector, events)
    res = ml_align(detector, sample, cfg, progress=progress)
    details = {"loss": res.loss, "epoch_loss": res.epoch_loss, "device": res.device, "modes": list(cfg.modes),
               "history": res.history}
    return AlignOutcome("ml", res.frames, res.corrections, sample, time.perf_counter() - t0, details)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", "-o", type=Path, required=True)
    ap.add_argument("--detector", choices=("generic", "trackml-pixel"), default="generic")
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--test-events", type=int, default=20)
    ap.add_argument("--muons", type=int, default=1000, help="single muons per event")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--methods", default="global,ml")
    ap.add_argument("--iterations", type=int, default=8, help="global fit iterations")
    ap.add_argument("--refit-from-seed", action="store_true",
                    help="global fit: fit every track from its seed at each iteration (the hessian-free rule)")
    ap.add_argument("--epochs", type=int, default=20, help="ml epochs")
    ap.add_argument("--batch-events", type=int, default=4, help="ml events per Adam step")
    ap.add_argument("--learning-rate", type=float, default=3e-3, help="ml initial Adam step (mm)")
    ap.add_argument("--optimizer", choices=("adam", "block-newton", "hessian-free"), default="adam",
                    help="ml optimizer (hessian-free: --epochs = most outer Gauss-Newton iterations)")
    ap.add_argument("--cg-tolerance", type=float, default=1e-4, help="hessian-free: relative CG residual")
    ap.add_argument("--cg-iterations", type=int, default=300, help="hessian-free: most CG iterations per step")
    ap.add_argument("--cg-chi2", type=float, default=None,
                    help="hessian-free: CG also runs until its residual's chi2 estimate is below this")
    ap.add_argument("--preconditioner", choices=("block-jacobi", "two-level", "two-level-additive"),
                    default="two-level", help="hessian-free: CG preconditioner (two-level: 6x6 blocks + coarse rigid bodies)")
    ap.add_argument("--coarse-level", choices=("aggregate", "layer", "ring"), default="aggregate",
                    help="hessian-free two-level: rigid bodies of patches of ~--aggregate-size neighbouring modules, "
                         "of every layer/disk, or of their rings")
    ap.add_argument("--aggregate-size", type=int, default=6,
                    help="hessian-free two-level, --coarse-level aggregate: modules per patch")
    ap.add_argument("--pileup", type=float, default=0.0, help="<mu> of minimum-bias pile-up added to every event")
    ap.add_argument("--pileup-pt-min", type=float, default=0.5,
                    help="GeV: prompt pile-up particles above it are alignment tracks")
    ap.add_argument("--init", choices=("zero", "global"), default="zero", help="ml starting point")
    ap.add_argument("--init-iterations", type=int, default=2, help="global-fit iterations for --init global")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    detector = pixel_detector(args.detector)
    truth = random_misalignment(detector, np.random.default_rng(args.seed + 7919))
    write_alignment(truth, out / "true-alignment.csv")
    misaligned = apply_alignment(detector, truth)
    t0 = time.perf_counter()
    pu = {"pileup": args.pileup, "pileup_pt_min": args.pileup_pt_min}
    train = simulate_muons(detector, misaligned, args.events, args.muons, args.seed * 1_000_000, not args.quiet, **pu)
    test = simulate_muons(detector, misaligned, args.test_events, args.muons, args.seed * 1_000_000 + 500_000,
                          not args.quiet, **pu)
    sim_s = time.perf_counter() - t0
    held = collect_tracks(detector, test)
    study = {"detector": detector.name, "modules": len(detector), "events": args.events, "muons_per_event": args.muons,
             "test_events": args.test_events, "simulation_s": sim_s, "seed": args.seed, **pu,
             "training_tracks": None, "methods": {}}
    for method in [m for m in args.methods.split(",") if m]:
        config = {"method": method}
        if method == "global":
            config["iterations"] = args.iterations
            if args.refit_from_seed:
                config["refit_from_seed"] = True
        else:
            config.update(epochs=args.epochs, batch_events=args.batch_events, learning_rate=args.learning_rate,
                          device=args.device, optimizer=args.optimizer, init=args.init,
                          init_iterations=args.init_iterations)
            if args.optimizer == "hessian-free":
                config.update(cg_tolerance=args.cg_tolerance, cg_iterations=args.cg_iterations,
                              preconditioner=args.preconditioner, coarse_level=args.coarse_level,
                              aggregate_size=args.aggregate_size, cg_chi2=args.cg_chi2)
        tracemalloc.start()
        if method == "ml":
            outcome = _align_ml(detector, train, config, not args.quiet)
        else:
            outcome = align(detector, train, config, progress=not args.quiet)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        report = write_outputs(out / method, detector, outcome, held, config, true_alignment=out / "true-alignment.csv")
        report["summary"]["peak_traced_MiB"] = round(peak / 2**20, 1)
        # Process peak RSS (torch's CPU allocator is not traced by tracemalloc; includes the events).
        report["summary"]["peak_rss_MiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        study["training_tracks"] = outcome.sample.n_tracks
        study["training_hits"] = outcome.sample.n_hits
        study["methods"][method] = {"summary": report["summary"], "parameter_errors": report["parameter_errors"],
                                    "residual_widths_um": report["residual_widths_um"]}
        print(json.dumps(report["summary"], indent=1), flush=True)
    (out / "study.json").write_text(json.dumps(study, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
