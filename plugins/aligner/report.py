"""Outputs of ``trackcore align``: aligned detector, delta tables, report JSON and plots."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trackcore.geometry.alignment import (
    apply_alignment,
    read_alignment,
    write_alignment,
)
from trackcore.geometry.detector import Detector
from trackcore.geometry.io import write_csv_columns, write_detector

from .evaluate import (
    parameter_errors,
    plot_curve,
    plot_recovered_vs_true,
    plot_residuals,
    residual_widths,
    strip_residuals,
)
from .residuals import (
    LOCAL_PARAMETER_NAMES,
    Frames,
    TrackSample,
    from_alignment,
    to_alignment,
)


def write_outputs(output: str | Path, detector: Detector, outcome, held: TrackSample, config: Mapping[str, Any],
                  true_alignment: str | Path | None = None) -> dict:
    """Write the alignment files, report.json and PNGs into ``output``; returns the report dict."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    params = to_alignment(detector, outcome.corrections)
    write_detector(apply_alignment(detector, params, name=f"{detector.name}-aligned"), out / "aligned-detectors.csv")
    write_alignment(params, out / "alignment-delta.csv")
    cols = {"volume_id": detector.volume_id, "layer_id": detector.layer_id, "module_id": detector.module_id}
    cols.update({k: outcome.corrections[:, j] for j, k in enumerate(LOCAL_PARAMETER_NAMES)})
    write_csv_columns(out / "alignment-local.csv", cols, int_columns=("volume_id", "layer_id", "module_id"))
    bz = float(config.get("bz", 2.0))
    widths = {"before": residual_widths(detector, held, Frames.from_detector(detector), bz=bz),
              "after": residual_widths(detector, held, outcome.frames, bz=bz)}
    report: dict[str, Any] = {"method": outcome.method, "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                                   for k, v in config.items()},
                              "tracks": outcome.sample.n_tracks, "hits": outcome.sample.n_hits,
                              "held_out_tracks": held.n_tracks, "seconds": outcome.seconds,
                              "details": outcome.details}
    modes = tuple(outcome.details.get("modes", ()))
    if true_alignment is not None:
        true = from_alignment(detector, read_alignment(true_alignment))
        widths["perfect"] = residual_widths(detector, held, Frames.from_detector(detector).corrected(true), bz=bz)
        hits = np.bincount(outcome.sample.module, minlength=len(detector))
        report["parameter_errors"] = parameter_errors(detector, outcome.corrections, true, modes, mask=hits >= 20)
        plot_recovered_vs_true(detector, outcome.corrections, true, modes, out / "recovered_vs_true.png",
                               title=f"{outcome.method}: recovered vs true (weak modes removed)")
    report["residual_widths_um"] = {k: strip_residuals(v) for k, v in widths.items()}
    plot_residuals(widths, out / "residuals.png", title=f"{outcome.method}: held-out hit residuals per volume")
    if outcome.method == "ml":
        plot_curve({"loss per step": outcome.details["loss"]}, out / "loss.png", "Adam step", "mean chi2 per hit")
    elif outcome.details.get("spectrum"):
        plot_curve({"smallest eigenvalues of C": outcome.details["spectrum"]["smallest"]}, out / "spectrum.png",
                   "index", "eigenvalue (mm^-2)")
    summary = {"method": outcome.method, "seconds": round(outcome.seconds, 2), "tracks": outcome.sample.n_tracks}
    for k, v in report["residual_widths_um"].items():
        summary[f"sigma_u_v_{k}_um"] = {vol: [round(e["sigma_u"], 2), round(e["sigma_v"], 2)] for vol, e in v.items()}
    if "parameter_errors" in report:
        summary["rms_recovered_minus_true"] = {k: round(x, 3) for k, x in report["parameter_errors"]["all"].items()}
    report["summary"] = summary
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_jsonable))
    return report


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
