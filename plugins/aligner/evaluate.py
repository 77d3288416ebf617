"""Evaluation of an alignment: recovered minus true parameters, residual widths, PNG plots.

Recovered and true corrections are compared in the local parametrisation of
:mod:`.residuals` (du, dv, dw in mm; rotation vector wu, wv, ww in rad about the local axes),
after removing from their difference the weak modes the fit was constrained in
(:func:`.global_fit.remove_modes`): the data cannot tell those apart, the constraints only choose
one member of the family, so the truth is compared in the same gauge.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trackcore.geometry.detector import Detector

from .global_fit import mode_vectors, remove_modes
from .residuals import LOCAL_PARAMETER_NAMES, Frames, TrackSample, fit_tracks

#: Sensitive directions of a planar pixel module: in-plane shifts and the in-plane rotation.
SENSITIVE = ("du", "dv", "ww")


def parameter_errors(detector: Detector, recovered: np.ndarray, true: np.ndarray, modes: tuple[str, ...],
                     mask: np.ndarray | None = None) -> dict:
    """RMS of recovered - true (um for shifts, mrad for rotations) per parameter, for all modules
    and per volume, raw and with the weak ``modes`` removed. ``mask`` (N,) limits the modules
    (e.g. to those with enough hits)."""
    diff_raw = np.asarray(recovered) - np.asarray(true)
    diff = remove_modes(diff_raw, mode_vectors(detector, tuple(modes)))
    mask = np.ones(len(detector), bool) if mask is None else np.asarray(mask, bool)
    unit = np.r_[np.full(3, 1e3), np.full(3, 1e3)]  # mm -> um, rad -> mrad

    def rms(d: np.ndarray, sel: np.ndarray) -> dict:
        return {k: float(np.sqrt(np.mean(d[sel, j] ** 2)) * unit[j]) for j, k in enumerate(LOCAL_PARAMETER_NAMES)}

    out = {"units": "um (du, dv, dw), mrad (wu, wv, ww)", "modules": int(mask.sum()),
           "all": rms(diff, mask), "all_raw": rms(diff_raw, mask), "true_rms": rms(np.asarray(true), mask),
           "per_volume": {}}
    for vol in np.unique(detector.volume_id):
        sel = mask & (detector.volume_id == vol)
        if sel.any():
            out["per_volume"][str(int(vol))] = rms(diff, sel)
    return out


def residual_widths(detector: Detector, sample: TrackSample, frames: Frames, *, bz: float = 2.0,
                    beam_spot: float | None = 0.015, scattering: float | None = 0.005) -> dict:
    """Hit residuals (measured - fitted, um) per volume after re-fitting the tracks on ``frames``:
    RMS (within 1 mm), robust sigma (1.4826 MAD) and the residuals themselves for plotting."""
    fit = fit_tracks(sample, frames, bz, None, 6, beam_spot, scattering)
    vol = detector.volume_id[sample.module]
    out: dict = {}
    for v in np.unique(vol):
        sel = (vol == v) & fit.ok
        r = fit.residual[sel] * 1e3
        entry = {"hits": int(sel.sum())}
        for j, axis in enumerate("uv"):
            x = r[:, j]
            core = x[np.abs(x) < 1000.0]
            entry[f"rms_{axis}"] = float(np.sqrt(np.mean(core**2))) if len(core) else float("nan")
            entry[f"sigma_{axis}"] = float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else float("nan")
        entry["residuals"] = r
        out[str(int(v))] = entry
    return out


def strip_residuals(widths: dict) -> dict:
    """``widths`` without the residual arrays (for JSON)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "residuals"} for k, v in widths.items()}


def plot_residuals(widths: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Histograms of u and v residuals per volume for each labelled geometry (e.g. before, after, perfect)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(widths)
    volumes = sorted(widths[labels[0]])
    fig, axes = plt.subplots(2, len(volumes), figsize=(4 * len(volumes), 6.5), squeeze=False)
    for i, axis in enumerate("uv"):
        for j, v in enumerate(volumes):
            ax = axes[i, j]
            # Zoom on the narrowest distribution; wider ones pile up in the edge bins (log scale).
            lim = 8 * min(widths[lab][v][f"sigma_{axis}"] for lab in labels if v in widths[lab])
            bins = np.linspace(-lim, lim, 81)
            ax.set_yscale("log")
            for lab in labels:
                e = widths[lab].get(v)
                if e is None:
                    continue
                ax.hist(np.clip(e["residuals"][:, i], -lim, lim), bins=bins, histtype="step",
                        label=f"{lab}: sigma {e[f'sigma_{axis}']:.1f} um")
            ax.set_xlabel(f"residual {axis} (um)")
            ax.set_title(f"volume {v}")
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_recovered_vs_true(detector: Detector, recovered: np.ndarray, true: np.ndarray, modes: tuple[str, ...],
                           path: str | Path, title: str = "") -> Path:
    """Scatter of recovered vs true per local parameter (weak modes removed from both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    basis = mode_vectors(detector, tuple(modes))
    rec, tru = remove_modes(recovered, basis), remove_modes(true, basis)
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    for j, name in enumerate(LOCAL_PARAMETER_NAMES):
        ax = axes.flat[j]
        unit = "um" if j < 3 else "mrad"
        x, y = tru[:, j] * 1e3, rec[:, j] * 1e3
        ax.scatter(x, y, s=2, alpha=0.4)
        lim = np.percentile(np.abs(np.r_[x, y]), 99.5)
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel(f"true {name} ({unit})")
        ax.set_ylabel(f"recovered {name} ({unit})")
        ax.set_title(f"{name}: RMS(rec - true) {np.sqrt(np.mean((y - x) ** 2)):.2f} {unit}")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curve(values: dict[str, list[float]], path: str | Path, xlabel: str, ylabel: str, log: bool = True) -> Path:
    """Line plot of named series (loss curves, eigen-spectra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, ys in values.items():
        ax.plot(np.arange(len(ys)), ys, label=name, marker="." if len(ys) < 60 else None)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
