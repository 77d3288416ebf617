"""The aligner plugin: ``trackcore_align`` and the ``trackcore align`` command (entry point ``aligner``).

Two methods on the same track model (:mod:`.residuals`) and the same weak-mode gauge:
``global`` (MillePede-style linearised fit with Schur elimination, :mod:`.global_fit`, needs
scipy) and ``ml`` (Adam on the chi2 with PyTorch, :mod:`.ml_aligner`). The alignment is the
output of a fit, not a trained model, so the plugin ships none.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from trackcore.errors import InputError
from trackcore.geometry.detector import Detector
from trackcore.plugins import hookimpl

from .choices import COARSE_LEVELS, OPTIMIZERS, PRECONDITIONERS
from .global_fit import DEFAULT_MODES, GlobalFitConfig, global_fit
from .residuals import Frames, TrackSample, collect_tracks, rotvec_to_matrix

METHODS = ("global", "ml")


@dataclass
class AlignOutcome:
    """What :func:`align` gives: aligned ``frames``, local ``corrections`` (N, 6: du, dv, dw mm;
    wu, wv, ww rad), the track ``sample`` used, wall time (s), peak memory (MiB, Python heap
    of the fit) and a method-specific ``details`` dict (history, spectrum or loss curve)."""

    method: str
    frames: Frames
    corrections: np.ndarray
    sample: TrackSample
    seconds: float
    details: dict = field(default_factory=dict)


def _config_for(cls, config: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in names}
    if "fixed_layers" in kwargs:
        kwargs["fixed_layers"] = tuple(tuple(x) for x in kwargs["fixed_layers"])
    return cls(**kwargs)


def align(detector: Detector, events: list, config: Mapping[str, Any] | None = None,
          progress: bool = False) -> AlignOutcome:
    """Align ``detector`` with the tracks of ``events``.

    ``config``: ``method`` ("global" or "ml"), ``tracks`` ("truth" or "reco"), ``min_track_hits``,
    and the fields of :class:`.global_fit.GlobalFitConfig` or :class:`.ml_aligner.MLAlignerConfig`
    (unknown keys are an :class:`InputError`).
    """
    config = dict(config or {})
    method = config.pop("method", "global")
    if method not in METHODS:
        raise InputError(f"aligner: method must be one of {METHODS}, got {method!r}")
    tracks = config.pop("tracks", "truth")
    min_track_hits = int(config.pop("min_track_hits", 4))
    if not events:
        raise InputError("aligner: no events to align with")
    if method == "global":
        cls = GlobalFitConfig
    else:
        from .ml_aligner import MLAlignerConfig as cls
    unknown = sorted(set(config) - {f.name for f in fields(cls)})
    if unknown:
        raise InputError(f"aligner ({method}): unknown setting(s) {unknown}; known: "
                         f"{', '.join(f.name for f in fields(cls))}")
    sample = collect_tracks(detector, events, tracks=tracks, min_hits=min_track_hits)
    t0 = time.perf_counter()
    if method == "global":
        res = global_fit(detector, sample, _config_for(cls, config), progress=progress)
        spectrum = {k: (v.tolist() if k == "smallest" else v) for k, v in res.spectrum.items()
                    if k in ("smallest", "largest")}
        details = {"history": res.history, "spectrum": spectrum, "modes": list(_config_for(cls, config).modes)}
        frames, corr = res.frames, res.corrections
    else:
        from .ml_aligner import ml_align

        cfg = _config_for(cls, config)
        res = ml_align(detector, sample, cfg, progress=progress)
        details = {"loss": res.loss, "epoch_loss": res.epoch_loss, "device": res.device, "modes": list(cfg.modes),
                   "history": res.history}
        frames, corr = res.frames, res.corrections
    return AlignOutcome(method, frames, corr, sample, time.perf_counter() - t0, details)


def hook_corrections(corrections: np.ndarray) -> np.ndarray:
    """(N, 6) local corrections (rotation vectors) as the hook returns them: du, dv, dw (mm) and
    x-z'-x'' Euler angles (rad) of the same rotation."""
    from trackcore.geometry.alignment import euler_xzx_angles

    corrections = np.asarray(corrections, np.float64)
    return np.concatenate([corrections[:, :3], euler_xzx_angles(rotvec_to_matrix(corrections[:, 3:]))], axis=1)


@hookimpl
def trackcore_align(detector, events, config) -> np.ndarray:
    """Module corrections (N, 6) in row order of ``detector``; ``config`` as in :func:`align`."""
    return hook_corrections(align(detector, list(events), config).corrections)


@hookimpl
def trackcore_model_status() -> list[dict]:
    """No trained model: the alignment is fitted from the data each time."""
    return []


# -- command line ------------------------------------------------------------------------------
@hookimpl
def trackcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """``trackcore align EVENTS --method global|ml ...``."""
    p = subparsers.add_parser(
        "align", help="align detector modules with tracks (MillePede-style global fit or PyTorch/Adam)",
        description="Fit module alignment corrections (6 per module: local shifts du, dv, dw and rotations) to the "
                    "tracks of the events in EVENTS, recorded with --detector's module ids. The last --held-out "
                    "events are kept out of the fit and used for the residual widths before/after. Writes "
                    "OUTPUT/aligned-detectors.csv (detectors.csv format), alignment-delta.csv (global shifts and "
                    "x-z'-x'' Euler angles, the trackcore alignment format), alignment-local.csv, report.json and "
                    "PNG plots. With --true-alignment (e.g. from `trackcore simulate --misalign`) it also reports "
                    "recovered minus true and the residual widths with the true geometry.")
    p.add_argument("source", help="events: a folder, a zip or one event prefix")
    p.add_argument("--detector", default="trackml", help="detectors.csv path or built-in name (default trackml)")
    p.add_argument("--method", choices=METHODS, default="global")
    p.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    p.add_argument("--true-alignment", type=Path, default=None, help="true-alignment.csv for the evaluation")
    p.add_argument("--tracks", choices=("truth", "reco"), default="truth",
                   help="hits on tracks from truth (studies) or from the reconstruction pipeline")
    p.add_argument("--held-out", type=int, default=None, help="events kept for evaluation (default 20%%, >= 1)")
    p.add_argument("--level", choices=("module", "layer", "volume"), default="module")
    p.add_argument("--iterations", type=int, default=None, help="global fit iterations (default 8)")
    p.add_argument("--solver", choices=("spsolve", "minres"), default="spsolve")
    p.add_argument("--refit-from-seed", action="store_true",
                   help="global: fit every track from its seed at each iteration (how the <mu> targets were met)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES),
                   help="weak modes to constrain, comma separated ('' for none)")
    p.add_argument("--fix-layer", action="append", default=[], metavar="VOLUME:LAYER",
                   help="hold a reference layer fixed (repeatable)")
    p.add_argument("--epochs", type=int, default=None, help="ml: epochs; hessian-free: most outer Gauss-Newton steps (default 20)")
    p.add_argument("--batch-events", type=int, default=None, help="ml: events per Adam step (default 20)")
    p.add_argument("--learning-rate", type=float, default=None, help="ml: initial Adam step (mm, default 3e-3)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help="ml: Adam, the per-module Gauss-Newton preconditioned step, or whole-sample Gauss-Newton "
                        "with matrix-free conjugate gradients (default hessian-free)")
    p.add_argument("--init", choices=("zero", "global"), default=None,
                   help="ml: start from the nominal geometry or from 2 global-fit iterations (default zero)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="ml: torch device")
    p.add_argument("--cg-tolerance", type=float, default=None,
                   help="ml hessian-free: relative CG residual per outer step (default 1e-4)")
    p.add_argument("--cg-iterations", type=int, default=None,
                   help="ml hessian-free: most CG iterations per outer step (default 300)")
    p.add_argument("--cg-chi2", type=float, default=None,
                   help="ml hessian-free: CG also runs until its chi2 estimate of what is left is below this")
    p.add_argument("--preconditioner", choices=PRECONDITIONERS, default=None,
                   help="ml hessian-free: CG preconditioner (default two-level)")
    p.add_argument("--coarse-level", choices=COARSE_LEVELS, default=None,
                   help="ml hessian-free two-level: rigid bodies of the coarse level (default aggregate)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run_align)


def _parse_layers(specs: list[str]) -> tuple[tuple[int, int], ...]:
    out = []
    for s in specs:
        try:
            vol, lay = (int(x) for x in s.split(":"))
        except ValueError:
            raise InputError(f"--fix-layer {s!r}: expected VOLUME:LAYER, e.g. 8:2") from None
        out.append((vol, lay))
    return tuple(out)


def _run_align(args: argparse.Namespace) -> int:
    from trackcore.event.io import iter_events
    from trackcore.geometry.io import load_detector

    from .report import write_outputs

    detector = load_detector(args.detector)
    parts = ("hits", "cells", "truth") if args.tracks == "truth" else ("hits", "cells")
    events = list(iter_events(args.source, parts=parts))
    if len(events) < 2:
        raise InputError(f"{args.source}: align needs at least 2 events (one is held out), found {len(events)}")
    n_held = args.held_out if args.held_out is not None else max(1, len(events) // 5)
    if not 1 <= n_held < len(events):
        raise InputError(f"--held-out must be in [1, {len(events) - 1}], got {n_held}")
    config: dict[str, Any] = {"method": args.method, "tracks": args.tracks,
                              "modes": tuple(m for m in args.modes.split(",") if m)}
    if args.method == "global":
        config.update(level=args.level, solver=args.solver, fixed_layers=_parse_layers(args.fix_layer))
        if args.iterations is not None:
            config["iterations"] = args.iterations
        if args.refit_from_seed:
            config["refit_from_seed"] = True
    else:
        config["device"] = args.device
        for key in ("epochs", "batch_events", "learning_rate", "optimizer", "init", "cg_tolerance", "cg_iterations",
                    "cg_chi2", "preconditioner", "coarse_level"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
    outcome = align(detector, events[:-n_held], config, progress=not args.quiet)
    held = collect_tracks(detector, events[-n_held:], tracks=args.tracks)
    report = write_outputs(args.output, detector, outcome, held, config, true_alignment=args.true_alignment)
    print(json.dumps(report["summary"], indent=2))
    return 0
