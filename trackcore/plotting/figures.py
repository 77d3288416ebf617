"""Matplotlib figures: event display, efficiency and fake rate vs pT and eta.

matplotlib is imported only inside these functions, and only its object API (``Figure``), never
``pyplot``: no global backend is switched and no window opens. Each function writes one file
whose format follows its suffix (``.png`` or ``.pdf``) and returns its path.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

FORMATS = (".png", ".pdf")
PT_BINS = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 100])  # GeV
ETA_BINS = np.linspace(-4.0, 4.0, 17)


def new_figure(*, figsize: tuple[float, float], nrows: int = 1, ncols: int = 1):
    """(figure, axes) without pyplot; a clear error when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise InputError("plots need matplotlib: pip install 'trackcore[plots]'") from exc
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (.png or .pdf; folders created; the file appears complete or not at all).

    PNGs are stored with a 256-colour palette: plots have few colours, and this makes them 2-4x
    smaller (small enough to check into a repository) with no visible change.
    """
    import io

    from ..event.io.atomic import write_bytes

    path = Path(path)
    fmt = path.suffix.lower()
    if fmt not in FORMATS:
        raise InputError(f"{path}: plots are written as {' or '.join(FORMATS)}; got suffix {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt[1:], dpi=dpi)
    data = buf.getvalue()
    if fmt == ".png":
        data = _palette_png(data)
    write_bytes(path, data)
    return path


def _palette_png(data: bytes) -> bytes:
    import io

    try:
        from PIL import Image
    except ImportError:  # Pillow comes with matplotlib; without it keep the full-colour PNG
        return data
    with Image.open(io.BytesIO(data)) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _truth_lines(event, min_pt: float, max_lines: int):
    """(x, y, z) hit sequences of the particles with pT > ``min_pt`` GeV, ordered by distance from their vertex."""
    if event.truth is None or event.particles is None:
        return []
    truth = event.truth_aligned()
    pid = np.asarray(truth["particle_id"])
    parts = event.particles
    pt = np.hypot(parts["px"], parts["py"])
    chosen = np.asarray(parts["particle_id"])[pt > min_pt][:max_lines]
    x, y, z = (np.asarray(event.hits[c]) for c in ("x", "y", "z"))
    rows = np.flatnonzero(np.isin(pid, chosen))
    order = rows[np.lexsort((x[rows] ** 2 + y[rows] ** 2 + z[rows] ** 2, pid[rows]))]
    groups = np.split(order, np.flatnonzero(np.diff(pid[order])) + 1) if len(order) else []
    return [(x[g], y[g], z[g]) for g in groups if len(g) >= 3]


def event_display(event, track_of_hit: np.ndarray, path: str | os.PathLike, *, max_tracks: int = 300,
                  truth_min_pt: float = 1.0, max_truth: int = 400) -> Path:
    """x-y and r-z views of the hits coloured by reconstructed track (grey: unassigned).

    With truth, particles above ``truth_min_pt`` GeV (at most ``max_truth``) are overlaid as thin
    black lines through their hits. Only the first ``max_tracks`` tracks are coloured.
    """
    track_of_hit = np.asarray(track_of_hit)
    if len(track_of_hit) != len(event.hits):
        raise InputError(f"{event.name}: track_of_hit has {len(track_of_hit)} entries for {len(event.hits)} hits")
    x, y, z = (np.asarray(event.hits[c], float) for c in ("x", "y", "z"))
    r = np.hypot(x, y)
    fig, axes = new_figure(figsize=(12, 5.5), ncols=2)
    free = track_of_hit < 0
    shown = (track_of_hit >= 0) & (track_of_hit < max_tracks)
    lines = _truth_lines(event, truth_min_pt, max_truth)
    for ax, (a, b, la, lb, view) in zip(axes[0], [(x, y, "x [mm]", "y [mm]", "xy"), (z, r, "z [mm]", "r [mm]", "rz")]):
        ax.scatter(a[free], b[free], s=0.2, c="0.8", linewidths=0, rasterized=True)
        ax.scatter(a[shown], b[shown], s=0.8, c=track_of_hit[shown] % 20, cmap="tab20", vmin=0, vmax=19,
                   linewidths=0, rasterized=True)
        for lx, ly, lz in lines:
            ax.plot(lx, ly, lw=0.3, c="k", alpha=0.6) if view == "xy" else ax.plot(lz, np.hypot(lx, ly), lw=0.3,
                                                                                     c="k", alpha=0.6)
        ax.set_xlabel(la)
        ax.set_ylabel(lb)
    axes[0, 0].set_aspect("equal")
    n_tracks = int(track_of_hit.max() + 1) if len(track_of_hit) and track_of_hit.max() >= 0 else 0
    axes[0, 0].set_title(f"{event.name}: {len(x)} hits, {n_tracks} tracks (colours), x-y view")
    truth_note = f"; black: truth particles pT > {truth_min_pt:g} GeV" if lines else ""
    axes[0, 1].set_title(f"r-z view (grey: unassigned hits{truth_note})", fontsize=9)
    return save(fig, path, dpi=90)


def _binned(values: np.ndarray, ok: np.ndarray, bins: np.ndarray):
    idx = np.digitize(values, bins) - 1
    n = np.bincount(idx[(idx >= 0) & (idx < len(bins) - 1)], minlength=len(bins) - 1)
    k = np.bincount(idx[(idx >= 0) & (idx < len(bins) - 1)], weights=ok[(idx >= 0) & (idx < len(bins) - 1)],
                    minlength=len(bins) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = k / n
        err = np.sqrt(frac * (1 - frac) / n)
    return frac, err, n


def _rate_plot(ax, values, ok, bins, xlabel, ylabel, log: bool, auto_y: bool = False) -> None:
    frac, err, n = _binned(values, ok, bins)
    centres = np.sqrt(bins[1:] * bins[:-1]) if log else 0.5 * (bins[1:] + bins[:-1])
    has = n > 0
    ax.errorbar(centres[has], frac[has], yerr=err[has], fmt="o-", ms=3, capsize=2)
    if log:
        ax.set_xscale("log")
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 100) if bins[0] <= t <= bins[-1]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    top = np.nanmax(np.r_[frac[has] + err[has], 0.0]) if auto_y else 1.0
    ax.set_ylim(0, 1.05 if not auto_y else max(0.05, min(1.05, 1.2 * top)))  # small rates stay visible
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def efficiency(recos, path: str | os.PathLike, *, min_hits: int = 4, min_pt_eta: float = 1.0) -> Path:
    """Efficiency vs particle pT and eta, fake rate vs track pT and eta, over the events in ``recos``.

    ``recos``: :class:`trackcore.plotting.data.EventReco` list (truth needed). Efficiency vs eta
    uses particles with pT > ``min_pt_eta`` GeV; track pT comes from the fit (tracks table).
    """
    from .data import match, track_eta_from_hits

    p_pt, p_eta, p_found, t_pt, t_eta, t_fake = [], [], [], [], [], []
    for er in recos:
        m = match(er, min_hits=min_hits)
        p_pt.append(m.particle_pt)
        p_eta.append(m.particle_eta)
        p_found.append(m.particle_found)
        counted = m.track_nhits >= 3
        n = len(m.track_nhits)
        pt = np.full(n, np.nan)
        if er.tracks is not None and "pt" in er.tracks:
            k = min(n, len(er.tracks))
            pt[:k] = np.asarray(er.tracks["pt"], float)[:k]
        t_pt.append(pt[counted])
        t_eta.append(track_eta_from_hits(er, n)[counted])
        t_fake.append(~m.track_matched[counted])
    p_pt, p_eta, p_found = map(np.concatenate, (p_pt, p_eta, p_found))
    t_pt, t_eta, t_fake = map(np.concatenate, (t_pt, t_eta, t_fake))
    fig, axes = new_figure(figsize=(10, 7), nrows=2, ncols=2)
    _rate_plot(axes[0, 0], p_pt, p_found.astype(float), PT_BINS, "particle pT [GeV]", "efficiency", True)
    sel = p_pt > min_pt_eta
    _rate_plot(axes[0, 1], p_eta[sel], p_found[sel].astype(float), ETA_BINS, "particle eta", "efficiency", False)
    axes[0, 1].set_title(f"particles with pT > {min_pt_eta:g} GeV", fontsize=9)
    _rate_plot(axes[1, 0], t_pt, t_fake.astype(float), PT_BINS, "track pT [GeV] (fit)", "fake rate", True, True)
    _rate_plot(axes[1, 1], t_eta, t_fake.astype(float), ETA_BINS, "track eta (hits)", "fake rate", False, True)
    names = recos[0].event.name if len(recos) == 1 else f"{len(recos)} events"
    axes[0, 0].set_title(f"{names}: {int(p_found.sum())}/{len(p_found)} particles (>= {min_hits} hits) found",
                         fontsize=9)
    axes[1, 0].set_title(f"{int(t_fake.sum())}/{len(t_fake)} tracks fake", fontsize=9)
    return save(fig, path)


def efficiency_vs_pt(event, track_of_hit: np.ndarray, path: str | os.PathLike, *, min_hits: int = 4) -> Path:
    """Efficiency vs particle pT of one event (the demo's plot)."""
    from .data import EventReco, match

    m = match(EventReco(event, np.asarray(track_of_hit)), min_hits=min_hits)
    fig, axes = new_figure(figsize=(6, 4))
    _rate_plot(axes[0, 0], m.particle_pt, m.particle_found.astype(float), PT_BINS, "particle pT [GeV]", "efficiency",
               True)
    axes[0, 0].set_title(f"{event.name}: efficiency vs pT (>= {min_hits} hits)")
    return save(fig, path, dpi=110)
