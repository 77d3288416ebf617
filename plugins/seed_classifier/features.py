"""Per-seed features and truth labels of the seed classifier.

Features come from the three hits of a triplet only (positions, detector layer, cluster shape),
never from the seed finder's own score: the *medium* training seeds are made by moving a hit, so
they have no seed-finder weight, and that weight is the non-ML baseline the network must beat.

Units: mm, GeV, rad; cluster charge in the simulation's charge units (electrons).
"""
from __future__ import annotations

import math

import numpy as np

from trackcore.errors import InputError
from trackcore.event import Event
from trackcore.hookspecs import SEED_BAD, SEED_GOOD, SEED_MEDIUM

#: Solenoid field (T) the curvature -> pT conversion assumes (the built-in TrackML-like detector).
BZ_TESLA = 2.0
#: c in GeV / (T mm).
C_LIGHT = 0.299792458e-3
#: A particle with at least this many truth hits is reconstructable (as in ``tracking_rates``).
MIN_RECONSTRUCTABLE_HITS = 4

_HIT_FEATURES = ("r", "z", "volume", "layer", "cells", "log_charge", "span0", "span1")
#: Names of the feature columns, in order.
FEATURE_NAMES: tuple[str, ...] = (
    ("curvature", "log10_pt", "d0", "z0", "eta", "cot_bm", "cot_mt", "dcot", "dphi_bm", "dphi_mt",
     "local_yb", "local_yt", "local_xb", "local_xt")
    + tuple(f"{h}_{name}" for h in ("b", "m", "t") for name in _HIT_FEATURES)
    + ("n_bm", "n_mt", "n_bt", "n_bm_compat", "n_mt_compat", "n_bt_compat", "b_n_seeds", "m_n_seeds", "t_n_seeds")
)
#: Two seeds sharing a hit pair are "compatible" when their curvatures differ by less than this (1/mm):
#: a real particle's other triplets (next layer, module overlaps) bend alike, random tops do not.
COMPAT_CURVATURE = 1.5e-4
N_FEATURES = len(FEATURE_NAMES)


def _wrap(phi: np.ndarray) -> np.ndarray:
    return (phi + math.pi) % (2.0 * math.pi) - math.pi


def check_hit_index(event: Event, hit_index: np.ndarray) -> np.ndarray:
    """``hit_index`` as (N, 3) int64 rows of ``event.hits``; :class:`InputError` otherwise."""
    hit_index = np.asarray(hit_index)
    if hit_index.ndim != 2 or hit_index.shape[1] != 3:
        raise InputError(f"seed classifier: seed hit_index must have shape (N, 3), got {hit_index.shape}")
    if hit_index.size and not np.issubdtype(hit_index.dtype, np.integer):
        raise InputError(f"seed classifier: seed hit_index must be integer, got {hit_index.dtype}")
    hit_index = hit_index.astype(np.int64, copy=False)
    n_hits = len(event.hits)
    if hit_index.size and (hit_index.min() < 0 or hit_index.max() >= n_hits):
        bad = int(np.flatnonzero((hit_index < 0).any(1) | (hit_index >= n_hits).any(1))[0])
        raise InputError(f"seed classifier: {event.name} seed {bad} refers to hit rows {hit_index[bad].tolist()}, "
                         f"but the event has {n_hits} hits")
    return hit_index


def cluster_table(event: Event) -> np.ndarray:
    """(n_hits, 4) float64 per row of ``event.hits``: cells, total charge, ch0 span, ch1 span.

    Hits without cells (or an event without a cells table) get zeros.
    """
    out = np.zeros((len(event.hits), 4))
    cells = event.cells
    if cells is None or len(cells) == 0 or len(event.hits) == 0:
        return out
    for col in ("hit_id", "ch0", "ch1", "value"):
        if col not in cells:
            raise InputError(f"seed classifier: {event.name} cells: missing column {col!r}")
    hit_id = np.asarray(event.hits["hit_id"], np.int64)
    order = np.argsort(hit_id, kind="stable")
    pos = np.searchsorted(hit_id, np.asarray(cells["hit_id"], np.int64), sorter=order)
    pos = np.minimum(pos, len(hit_id) - 1)
    row = order[pos]
    known = hit_id[row] == np.asarray(cells["hit_id"], np.int64)
    row = row[known]
    ch0, ch1 = np.asarray(cells["ch0"], np.int64)[known], np.asarray(cells["ch1"], np.int64)[known]
    n = len(hit_id)
    out[:, 0] = np.bincount(row, minlength=n)
    out[:, 1] = np.bincount(row, weights=np.asarray(cells["value"], np.float64)[known], minlength=n)
    for k, ch in ((2, ch0), (3, ch1)):
        hi = np.full(n, np.iinfo(np.int64).min)
        lo = np.full(n, np.iinfo(np.int64).max)
        np.maximum.at(hi, row, ch)
        np.minimum.at(lo, row, ch)
        has = out[:, 0] > 0
        out[has, k] = hi[has] - lo[has] + 1
    return out


def _curvature(lx: np.ndarray, ly: np.ndarray, r_mid: np.ndarray) -> tuple[np.ndarray, ...]:
    """(signed curvature 1/mm, radius mm, |d0| mm) of the circle through the seed-local points
    (bottom, origin = middle, top)."""
    (xb, xt), (yb, yt) = (lx[:, 0], lx[:, 2]), (ly[:, 0], ly[:, 2])
    cross = xb * yt - yb * xt
    d = 2.0 * np.where(np.abs(cross) < 1e-12, 1e-12, cross)
    b2, t2 = xb * xb + yb * yb, xt * xt + yt * yt
    cx, cy = (yt * b2 - yb * t2) / d, (xb * t2 - xt * b2) / d  # centre, relative to the middle
    radius = np.hypot(cx, cy)
    curvature = np.sign(-cross) / radius  # the path b -> m -> t turns counter-clockwise when cross < 0
    # Transverse impact parameter: distance of the circle from the beam line (origin at (-r_m, 0)).
    d0 = np.abs(np.hypot(cx + r_mid, cy) - radius)
    return curvature, radius, d0


def seed_curvature(event: Event, hit_index: np.ndarray) -> np.ndarray:
    """(N,) signed curvature (1/mm) of the x-y circle through each triplet."""
    x, y = (np.asarray(event.hits[c], np.float64)[hit_index] for c in ("x", "y"))
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    c, s = np.cos(phi[:, 1]), np.sin(phi[:, 1])
    lx = c[:, None] * x + s[:, None] * y - r[:, 1:2]
    ly = -s[:, None] * x + c[:, None] * y
    return _curvature(lx, ly, r[:, 1])[0]


def seed_context(hit_index: np.ndarray, curvature: np.ndarray, reference: np.ndarray,
                 reference_curvature: np.ndarray, n_hits: int, *, in_reference: bool) -> np.ndarray:
    """(N, 9) counts of how each seed sits among the event's seed list ``reference`` (M, 3).

    Per hit pair (b-m, m-t, b-t): the seeds sharing it, and those of them whose curvature is within
    :data:`COMPAT_CURVATURE`; per hit: the seeds using it. A seed counts itself, so a seed that is not
    in ``reference`` (``in_reference=False``: a made-up medium seed) is counted as if added to it.
    This is what the seed finder's confirmation sees (compatible second tops), computed here from the
    seed list the pipeline hands the hook.
    """
    n = len(hit_index)
    out = np.zeros((n, 9))
    if n == 0:
        return out
    extra = 0.0 if in_reference else 1.0
    scale = 1.0 / COMPAT_CURVATURE
    # Curvatures folded into (-4, 4) compatibility units so that key * 10 + curvature sorts by key first.
    fold = lambda k: np.clip(k * scale, -4e4, 4e4) / 1e4  # noqa: E731 - |k| <= 6 1/mm is any realistic seed
    for col, (a, b) in enumerate(((0, 1), (1, 2), (0, 2))):
        ref_key = reference[:, a] * np.int64(n_hits) + reference[:, b]
        key = hit_index[:, a] * np.int64(n_hits) + hit_index[:, b]
        uniq, inv = np.unique(np.concatenate([ref_key, key]), return_inverse=True)
        ref_rank, rank = inv[:len(ref_key)], inv[len(ref_key):]
        counts = np.bincount(ref_rank, minlength=len(uniq))
        out[:, col] = counts[rank] + extra
        # Compatible: same pair and |delta curvature| < COMPAT_CURVATURE (one unit after the fold, x1e4).
        comp = np.sort(ref_rank * 10.0 + fold(reference_curvature))
        q = rank * 10.0 + fold(curvature)
        out[:, 3 + col] = np.searchsorted(comp, q + 1e-4, "right") - np.searchsorted(comp, q - 1e-4, "left") + extra
    per_hit = np.bincount(reference.ravel(), minlength=n_hits)
    out[:, 6:9] = per_hit[hit_index] + extra
    return out


def seed_features(event: Event, hit_index: np.ndarray, clusters: np.ndarray | None = None,
                  reference: np.ndarray | None = None) -> np.ndarray:
    """(N, :data:`N_FEATURES`) float32 features of triplets ``hit_index`` (rows of ``event.hits``).

    The triplet's circle in x-y gives the signed curvature (1/mm, > 0 counter-clockwise), pT (GeV,
    at :data:`BZ_TESLA`) and d0 (mm); the bottom-top line in r-z gives z0 (mm) and eta. Positions
    are in the seed-local frame: rotated so that the middle hit lies on the +x axis, relative to
    it. ``clusters`` is :func:`cluster_table` of the event (computed when not given). The last
    columns (:func:`seed_context`) count neighbours in the event's seed list: ``hit_index`` itself
    (the pipeline's case), or ``reference`` (M, 3) when the seeds are not part of it (training's
    medium seeds).
    """
    hits = event.hits
    for col in ("x", "y", "z", "volume_id", "layer_id"):
        if col not in hits:
            raise InputError(f"seed classifier: {event.name} hits: missing column {col!r}")
    hit_index = check_hit_index(event, hit_index)
    if len(hit_index) == 0:
        return np.zeros((0, N_FEATURES), np.float32)
    if clusters is None:
        clusters = cluster_table(event)
    x, y, z = (np.asarray(hits[c], np.float64)[hit_index] for c in ("x", "y", "z"))  # (N, 3) each
    r = np.hypot(x, y)
    phi = np.arctan2(y, x)
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(z).all()):
        bad = int(np.flatnonzero(~np.isfinite(x + y + z).all(1))[0])
        raise InputError(f"seed classifier: {event.name} seed {bad} has a non-finite hit coordinate "
                         f"(hit rows {hit_index[bad].tolist()})")

    # Seed-local frame: rotate by -phi_middle, origin at the middle hit.
    c, s = np.cos(phi[:, 1]), np.sin(phi[:, 1])
    lx = c[:, None] * x + s[:, None] * y - r[:, 1:2]
    ly = -s[:, None] * x + c[:, None] * y
    (xb, xt), (yb, yt) = (lx[:, 0], lx[:, 2]), (ly[:, 0], ly[:, 2])
    curvature, radius, d0 = _curvature(lx, ly, r[:, 1])
    pt = C_LIGHT * BZ_TESLA * radius
    dr_bm, dr_mt = r[:, 1] - r[:, 0], r[:, 2] - r[:, 1]
    cot_bm = (z[:, 1] - z[:, 0]) / np.where(np.abs(dr_bm) < 1e-9, 1e-9, dr_bm)
    cot_mt = (z[:, 2] - z[:, 1]) / np.where(np.abs(dr_mt) < 1e-9, 1e-9, dr_mt)
    dr_bt = r[:, 2] - r[:, 0]
    cot = (z[:, 2] - z[:, 0]) / np.where(np.abs(dr_bt) < 1e-9, 1e-9, dr_bt)
    z0 = z[:, 0] - cot * r[:, 0]
    eta = np.arcsinh(cot)

    vol = np.asarray(hits["volume_id"], np.float64)[hit_index]
    lay = np.asarray(hits["layer_id"], np.float64)[hit_index]
    cl = clusters[hit_index]  # (N, 3, 4)
    per_hit = np.stack([r, z, vol, lay, cl[..., 0], np.log1p(np.maximum(cl[..., 1], 0.0)), cl[..., 2], cl[..., 3]],
                       axis=2)  # (N, 3, 8)
    seed_level = np.column_stack([
        curvature, np.log10(np.maximum(pt, 1e-3)), d0, z0, eta, cot_bm, cot_mt, cot_mt - cot_bm,
        _wrap(phi[:, 1] - phi[:, 0]), _wrap(phi[:, 2] - phi[:, 1]), yb, yt, xb, xt,
    ])
    if reference is None:
        context = seed_context(hit_index, curvature, hit_index, curvature, len(hits), in_reference=True)
    else:
        reference = check_hit_index(event, reference)
        context = seed_context(hit_index, curvature, reference, seed_curvature(event, reference), len(hits),
                               in_reference=False)
    feats = np.concatenate([seed_level, per_hit.reshape(len(hit_index), -1), context], axis=1)
    # Straight triplets give huge radii; clip so that one seed cannot dominate a batch.
    return np.clip(np.nan_to_num(feats, nan=0.0, posinf=1e6, neginf=-1e6), -1e6, 1e6).astype(np.float32)


# -- truth labels (training and evaluation only) -------------------------------------------
def hit_particles(event: Event) -> np.ndarray:
    """particle_id of every row of ``event.hits`` (0 for noise); needs truth."""
    if event.truth is None:
        raise InputError(f"seed classifier: {event.name} has no truth; labels need it")
    return np.asarray(event.truth_aligned()["particle_id"], np.int64)


def truth_labels(event: Event, hit_index: np.ndarray, particle_of_hit: np.ndarray | None = None) -> np.ndarray:
    """(N,) int8 labels of real seeds: good when all three hits come from one reconstructable
    particle (>= :data:`MIN_RECONSTRUCTABLE_HITS` truth hits), bad otherwise (mixed particles,
    noise, or a particle too short to make a track)."""
    hit_index = check_hit_index(event, hit_index)
    pid = hit_particles(event) if particle_of_hit is None else particle_of_hit
    if len(hit_index) == 0:
        return np.zeros(0, np.int8)
    p = pid[hit_index]
    same = (p[:, 0] == p[:, 1]) & (p[:, 1] == p[:, 2]) & (p[:, 0] != 0)
    ids, counts = np.unique(pid[pid != 0], return_counts=True)
    n_hits = np.zeros(len(p), np.int64)
    where = np.searchsorted(ids, p[:, 0])
    found = (where < len(ids)) & (ids[np.minimum(where, len(ids) - 1)] == p[:, 0])
    n_hits[found] = counts[where[found]]
    good = same & (n_hits >= MIN_RECONSTRUCTABLE_HITS)
    return np.where(good, SEED_GOOD, SEED_BAD).astype(np.int8)


def medium_seeds(event: Event, good_seeds: np.ndarray, rng: np.random.Generator,
                 particle_of_hit: np.ndarray | None = None) -> np.ndarray:
    """Distorted copies of ``good_seeds`` (M, 3): one hit (chosen at random) moved to the nearest
    hit of another particle (or noise) on the same layer (volume_id, layer_id), 3-D distance.

    Seeds whose chosen layer holds no such hit are left out, so fewer than M rows may come back.
    """
    from scipy.spatial import cKDTree  # training-only dependency

    good_seeds = check_hit_index(event, good_seeds)
    pid = hit_particles(event) if particle_of_hit is None else particle_of_hit
    if len(good_seeds) == 0:
        return np.zeros((0, 3), np.int64)
    hits = event.hits
    xyz = np.column_stack([np.asarray(hits[c], np.float64) for c in ("x", "y", "z")])
    layer_key = np.asarray(hits["volume_id"], np.int64) * 1000 + np.asarray(hits["layer_id"], np.int64)
    which = rng.integers(0, 3, len(good_seeds))
    moved = good_seeds[np.arange(len(good_seeds)), which]
    out = good_seeds.copy()
    keep = np.zeros(len(good_seeds), bool)
    k = 8  # neighbours searched: enough to skip the particle's own doublet hits on module overlaps
    for key in np.unique(layer_key[moved]):
        rows = np.flatnonzero(layer_key == key)
        if len(rows) < 2:
            continue
        sel = np.flatnonzero(layer_key[moved] == key)
        _, nn = cKDTree(xyz[rows]).query(xyz[moved[sel]], k=min(k, len(rows)))
        cand = rows[np.atleast_2d(nn)]  # (len(sel), k)
        other = pid[cand] != pid[moved[sel]][:, None]
        other &= (pid[cand] == 0) | (pid[moved[sel]][:, None] != 0)
        has = other.any(1)
        first = np.argmax(other, axis=1)
        out[sel[has], which[sel[has]]] = cand[has, first[has]]
        keep[sel[has]] = True
    return out[keep]


def training_examples(event: Event, hit_index: np.ndarray, rng: np.random.Generator, *,
                      medium_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of one event: its real seeds labelled by truth, plus medium seeds made
    from ``medium_fraction`` x (number of good seeds) distorted good seeds."""
    pid = hit_particles(event)
    hit_index = check_hit_index(event, hit_index)
    labels = truth_labels(event, hit_index, pid)
    good = hit_index[labels == SEED_GOOD]
    n_medium = int(round(medium_fraction * len(good)))
    pick = rng.choice(len(good), size=min(n_medium, len(good)), replace=False) if len(good) else np.zeros(0, int)
    medium = medium_seeds(event, good[np.sort(pick)], rng, pid)
    clusters = cluster_table(event)
    x = np.concatenate([seed_features(event, hit_index, clusters),
                        seed_features(event, medium, clusters, reference=hit_index)])
    y = np.concatenate([labels, np.full(len(medium), SEED_MEDIUM, np.int8)])
    return x, y
