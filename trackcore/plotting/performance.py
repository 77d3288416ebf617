"""Fit residuals and pulls, seeding and timing summaries (matplotlib, PNG or PDF)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError
from .figures import new_figure, save

_LABELS = (("d0", "mm"), ("z0", "mm"), ("phi", "rad"), ("theta", "rad"), ("q/p", "e/GeV"))


def robust_width(x: np.ndarray) -> float:
    """1.4826 x median absolute deviation: the Gaussian sigma, insensitive to tails."""
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else float("nan")


def _histograms(values: np.ndarray, path, title: str, xlabels: Sequence[str], ranges: Sequence[float],
                gaussian: bool) -> Path:
    fig, axes = new_figure(figsize=(14, 3.2), ncols=5)
    for i, ax in enumerate(axes[0]):
        v = values[:, i][np.isfinite(values[:, i])]
        lim = ranges[i]
        ax.hist(np.clip(v, -lim, lim), bins=60, range=(-lim, lim), histtype="stepfilled", alpha=0.7)
        inner = v[np.abs(v) < lim]
        ax.set_xlabel(xlabels[i])
        ax.set_title(f"mean {np.mean(inner) if len(inner) else np.nan:.3g}, width {robust_width(v):.3g}", fontsize=8)
        if gaussian and len(v):
            x = np.linspace(-lim, lim, 200)
            ax.plot(x, len(v) * (2 * lim / 60) * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi), "k--", lw=0.8)
    axes[0, 0].set_ylabel(title)
    return save(fig, path)


def residuals(data: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Histograms of fit - truth of the perigee parameters (from :func:`trackcore.plotting.data.fit_residuals`).

    The range of each panel is 5 robust widths; overflow is put into the edge bins.
    """
    res = np.asarray(data["residual"])
    if not len(res):
        raise InputError("no matched, fitted tracks of primary particles: nothing to histogram")
    ranges = [5 * robust_width(res[:, i]) or 1.0 for i in range(5)]
    labels = [f"{n} fit - truth [{u}]" for n, u in _LABELS]
    return _histograms(res, path, f"tracks ({len(res)})", labels, ranges, gaussian=False)


def pulls(data: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Histograms of (fit - truth) / sigma with the unit Gaussian (dashed) they should follow."""
    pull = np.asarray(data["pull"])
    if not len(pull):
        raise InputError("no matched, fitted tracks of primary particles: nothing to histogram")
    return _histograms(pull, path, f"tracks ({len(pull)})", [f"pull {n}" for n, _ in _LABELS], [5.0] * 5,
                       gaussian=True)


def seeds(recos, path: str | os.PathLike) -> Path:
    """Seeding summary: weights of true and fake seeds, purity vs eta, pT estimate, seeds per particle.

    A seed is *true* when its three hits come from one (non-noise) particle. Needs seeds, i.e.
    reconstructions run now (:func:`trackcore.plotting.data.reconstruct_for_plots`).
    """
    w, true, eta, rel_pt, per_particle, n_seeds = [], [], [], [], [], 0
    for er in recos:
        if er.seeds is None or er.seed_hits is None:
            raise InputError(f"{er.event.name}: no seeds (seeding plots need the reconstruction run now, "
                             "not read from an output folder)")
        if er.event.truth is None:
            raise InputError(f"{er.event.name}: no truth, cannot tell true seeds from fake ones")
        pid = np.asarray(er.event.truth_aligned()["particle_id"])[er.seed_hits]
        t = (pid[:, 0] == pid[:, 1]) & (pid[:, 1] == pid[:, 2]) & (pid[:, 0] != 0)
        s = er.seeds
        n_seeds += len(s)
        w.append(s.weight)
        true.append(t)
        eta.append(-np.log(np.tan(np.clip(s.theta, 1e-9, np.pi - 1e-9) / 2)))
        parts = er.event.particles
        if parts is not None and t.any():
            order = np.argsort(parts["particle_id"])
            rows = order[np.searchsorted(np.asarray(parts["particle_id"])[order], pid[t, 0])]
            rows = np.minimum(rows, len(parts) - 1)
            ok = np.asarray(parts["particle_id"])[rows] == pid[t, 0]
            true_pt = np.hypot(parts["px"], parts["py"])[rows]
            rel_pt.append(((s.pt[t] - true_pt) / true_pt)[ok])
        per_particle.append(np.unique(pid[t, 0], return_counts=True)[1])
    w, true, eta = map(np.concatenate, (w, true, eta))
    fig, axes = new_figure(figsize=(11, 7), nrows=2, ncols=2)
    ax = axes[0, 0]
    lo, hi = (np.percentile(w, [0.5, 99.5]) if len(w) else (0, 1))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)
    ax.hist([w[true], w[~true]], bins=bins, label=["true", "fake"], histtype="step")
    ax.set_xlabel("seed weight")
    ax.set_ylabel("seeds")
    ax.legend(fontsize=8)
    ax.set_title(f"{n_seeds} seeds, {true.mean() if len(true) else np.nan:.1%} true", fontsize=9)
    from .figures import ETA_BINS, _rate_plot

    _rate_plot(axes[0, 1], eta, true.astype(float), ETA_BINS, "seed eta", "purity (true fraction)", False)
    ax = axes[1, 0]
    rel = np.concatenate(rel_pt) if rel_pt else np.zeros(0)
    ax.hist(np.clip(rel, -0.5, 0.5), bins=60, range=(-0.5, 0.5), histtype="stepfilled", alpha=0.7)
    ax.set_xlabel("(seed pT - true pT) / true pT, true seeds")
    ax.set_title(f"width {robust_width(rel):.3f}", fontsize=9)
    ax = axes[1, 1]
    counts = np.concatenate(per_particle) if per_particle else np.zeros(0, int)
    ax.hist(np.minimum(counts, 30), bins=np.arange(0.5, 31.5), histtype="stepfilled", alpha=0.7)
    ax.set_xlabel("true seeds per seeded particle (30: 30 or more)")
    ax.set_title(f"{len(counts)} particles seeded", fontsize=9)
    return save(fig, path)


def timing(timings: Sequence[Mapping[str, float]], path: str | os.PathLike, *,
           n_hits: Sequence[int] | None = None) -> Path:
    """Mean wall time per stage (bars, with the per-event spread) and total time per event.

    ``timings``: one ``{stage: seconds}`` per event (``total`` is drawn in the second panel, against
    ``n_hits`` when given).
    """
    if not timings:
        raise InputError("no timings to plot")
    stages = [k for k in timings[0] if k != "total"]
    for t in timings[1:]:
        stages += [k for k in t if k != "total" and k not in stages]
    ms = np.array([[1000 * t.get(k, np.nan) for k in stages] for t in timings])
    total = np.array([1000 * t.get("total", sum(t.values())) for t in timings])
    fig, axes = new_figure(figsize=(11, 4), ncols=2)
    ax = axes[0, 0]
    mean = np.nanmean(ms, axis=0)
    ax.barh(stages, mean, xerr=np.nanstd(ms, axis=0) if len(ms) > 1 else None, capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel("mean wall time per event [ms]")
    ax.set_title(f"{len(timings)} events; mean total {np.mean(total):.0f} ms", fontsize=9)
    ax = axes[0, 1]
    if n_hits is not None and len(n_hits) == len(total):
        ax.plot(np.asarray(n_hits), total, "o", ms=4)
        ax.set_xlabel("hits in the event")
    else:
        ax.plot(np.arange(len(total)), total, "o", ms=4)
        ax.set_xlabel("event (in order)")
    ax.set_ylabel("total reconstruction time [ms]")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return save(fig, path)
