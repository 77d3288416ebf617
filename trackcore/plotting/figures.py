"""Matplotlib figures: event display and efficiency vs pT. matplotlib is imported only here."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InputError("plots need matplotlib: pip install 'trackcore[plots]'") from exc
    return plt


def event_display(event, track_of_hit: np.ndarray, path: Path, *, max_tracks: int = 300) -> Path:
    """x-y and r-z views of the hits, coloured by reconstructed track (grey: unassigned)."""
    plt = _pyplot()
    x, y, z = event.hits["x"], event.hits["y"], event.hits["z"]
    r = np.hypot(x, y)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    free = track_of_hit < 0
    for ax, (a, b, la, lb) in zip(axes, [(x, y, "x [mm]", "y [mm]"), (z, r, "z [mm]", "r [mm]")]):
        ax.scatter(a[free], b[free], s=0.3, c="0.8", label="unassigned")
        shown = track_of_hit >= 0
        shown &= track_of_hit < max_tracks
        ax.scatter(a[shown], b[shown], s=0.6, c=track_of_hit[shown] % 20, cmap="tab20")
        ax.set_xlabel(la)
        ax.set_ylabel(lb)
    axes[0].set_aspect("equal")
    axes[0].set_title(f"{event.name}: {len(x)} hits, {int(track_of_hit.max() + 1) if len(x) else 0} tracks")
    axes[1].set_title("r-z view")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def efficiency_vs_pt(event, track_of_hit: np.ndarray, path: Path, *, min_hits: int = 4) -> Path:
    """Fraction of reconstructable particles whose majority-matched track exists, in pT bins."""
    plt = _pyplot()
    truth = event.truth_aligned()
    pid = truth["particle_id"]
    parts = event.particles
    pt_of = dict(zip(parts["particle_id"].tolist(), np.hypot(parts["px"], parts["py"]).tolist()))
    # A particle is found when some track has > 50% of its hits from it.
    found = set()
    order = np.argsort(track_of_hit)
    tids, starts = np.unique(track_of_hit[order], return_index=True)
    for t, s, e in zip(tids, starts, np.r_[starts[1:], len(order)]):
        if t < 0:
            continue
        vals, counts = np.unique(pid[order[s:e]], return_counts=True)
        k = counts.argmax()
        if vals[k] != 0 and counts[k] * 2 > e - s:
            found.add(int(vals[k]))
    ids, nh = np.unique(pid[pid != 0], return_counts=True)
    ids = ids[nh >= min_hits]
    pts = np.array([pt_of.get(int(i), np.nan) for i in ids])
    ok = np.array([int(i) in found for i in ids])
    bins = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 100])
    idx = np.digitize(pts, bins) - 1
    eff = [ok[idx == b].mean() if (idx == b).any() else np.nan for b in range(len(bins) - 1)]
    fig, ax = plt.subplots(figsize=(6, 4))
    centres = np.sqrt(bins[1:] * bins[:-1])
    ax.plot(centres, eff, "o-")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("particle pT [GeV]")
    ax.set_ylabel("efficiency")
    ax.set_title(f"{event.name}: efficiency vs pT (>= {min_hits} hits)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
