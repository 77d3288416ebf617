"""The ``numpy`` kernel ``ckf``: a readable reference of the compiled combinatorial Kalman filter.

Step for step the algorithm of ``csrc/src/ckf.cpp`` (seed state, beam search layer by layer,
greedy ambiguity resolution, refinement, backward filter to the perigee) with the building blocks
of ``kalman.cpp``, ``navigator.cpp`` and ``geometry.cpp``, one track at a time in Python floats with
the C++ operation order and the same libm calls (``hypot`` too, through ctypes: Python's own
``math.hypot`` rounds differently), so tracks, hit lists and fitted parameters agree to rounding.

The track following of one seed (trajectories, layer search, refinement) is in
:mod:`trackcore.reco.ckf_numpy_search`; this module runs it over the seeds, resolves ambiguities,
fits, and packs the kernel's output. The candidate modules of a step come from a port of the compiled per-layer (phi, z|r) bin grid
(:mod:`trackcore.reco.kalman_numpy`), so the candidate sets match the C++ exactly. Where the C++
sorts with ``std::sort`` (not stable) this uses a stable sort: the two differ only for exactly
equal keys (chi2 of two hits, or two trajectories), which real events do not produce.

Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..geometry.detector import Detector
from ..sim.transport_numpy import Field
from .ckf_numpy_search import Trajectory, _Ckf
from .kalman_numpy import CONFIG_DEFAULTS, CONFIG_TYPES, grid_geometry


def _better(a: Trajectory, b: Trajectory) -> bool:
    return a.n_meas > b.n_meas if a.n_meas != b.n_meas else a.chi2 < b.chi2


def _better_key(t: Trajectory) -> tuple:
    return (-t.n_meas, t.chi2)


def _ambiguity_key(t: Trajectory, k: int) -> tuple:
    """Best first, as the ambiguity order in csrc: measurements less two per unit of chi2/ndf above 1,
    then chi2/ndf, then seed order."""
    c = t.chi2 / max(1, 2 * t.n_meas - 5)
    return (-(t.n_meas - 2.0 * max(0.0, c - 1.0)), c, k)


def _run_ckf(ctx: _Ckf, seeds: list, stats: dict) -> list:
    """Tracks as (seed, hits, perigee, covariance, chi2, ndf, fitted), as ``run_ckf``."""
    cfg = ctx.cfg
    used = [0] * len(ctx.module)
    found, found_seed = [], []
    for i, s in enumerate(seeds):
        if cfg["skip_used_seeds"] and used[s[0]] + used[s[1]] + used[s[2]] >= cfg["skip_used_hits"]:
            stats["seeds_skipped"] += 1
            continue
        stats["seeds_used"] += 1
        tr = ctx.start_from_seed(s)
        if tr is None:
            continue
        active, finished = [tr], []
        for _ in range(80):
            if not active:
                break
            children: list = []
            for a in active:
                ctx.extend(a, children, finished, cfg["max_branches"])
            children.sort(key=_better_key)  # beam: the best max_candidates trajectories go on
            active = children[:cfg["max_candidates"]]
            stats["candidates"] += len(active)
        finished += active
        if not finished:
            continue
        best = finished[0]
        for t in finished[1:]:
            if _better(t, best):
                best = t
        best = best.copy()
        while best.steps and best.steps[-1][1] < 0:
            best.steps.pop()
        # A seed near the outer end of its track finds few hits outward; try the refinement first.
        if (best.n_meas < cfg["min_measurements"] and cfg["refine"] and cfg["rescue_min_measurements"] > 0
                and best.n_meas >= cfg["rescue_min_measurements"]):
            best = ctx.refine(best)
            stats["rescued"] += 1
        if best.n_meas < cfg["min_measurements"]:
            continue
        for _, h, _ in best.steps:
            if h >= 0:
                used[h] = 1
        found.append(best)
        found_seed.append(i)
    stats["tracks_before_ambiguity"] = len(found)

    # Greedy ambiguity resolution: best tracks first; a track sharing too many hits is dropped, shared
    # hits stay with the better track.
    order = sorted(range(len(found)), key=lambda k: _ambiguity_key(found[k], k))
    owner = [-1] * len(ctx.module)
    accepted = []
    for idx in order:
        hits = [h for _, h, _ in found[idx].steps if h >= 0]
        shared = sum(1 for h in hits if owner[h] >= 0)
        if shared > cfg["max_shared"] or found[idx].n_meas - shared < cfg["min_measurements"]:
            continue
        for h in hits:
            if owner[h] < 0:
                owner[h] = idx
        accepted.append(idx)
    # Refinement of the accepted tracks only; a hit stays with the track that owned it first.
    out = []
    final_owner = [False] * len(ctx.module)
    for idx in accepted:
        tr = ctx.refine(found[idx]) if cfg["refine"] and not found[idx].refined else found[idx]
        hits = []
        for _, h, _ in tr.steps:
            if h < 0 or final_owner[h] or (owner[h] >= 0 and owner[h] != idx):
                continue
            final_owner[h] = True
            hits.append(h)
        if len(hits) < min(cfg["min_measurements"], 3):  # its hits went to better tracks
            for h in hits:
                final_owner[h] = False
            continue
        out.append((found_seed[idx], hits) + ctx.smooth_to_perigee(tr))
    return out


def _fit(ctx: _Ckf, track_hits: list) -> list:
    """Forward filter, backward filter and perigee of given hit sequences, as ``fit_tracks``."""
    out = []
    for h in track_hits:
        res = ([0.0] * 5, [0.0] * 25, 0.0, 0, False)
        tr = ctx.start_from_seed(h) if len(h) >= 3 else None
        ok = tr is not None
        for k in range(3, len(h)) if ok else ():
            m = ctx.module[h[k]]
            if m == tr.state.module:
                continue  # a split cluster: one hit per module crossing
            step = ctx.transport(tr.state, m, +1, 3000.0, fit=True)
            if step is None:
                ok = False
                break
            chi2 = ctx.update(step[0], h[k], False)
            ctx.add_measurement(tr, step[0], h[k], chi2)
        if ok:
            res = ctx.smooth_to_perigee(tr)
        out.append((-1, list(h)) + res)
    return out


def _tracks_dict(tracks: list) -> dict:
    n = len(tracks)
    lengths = np.array([len(t[1]) for t in tracks], np.int64)
    return {
        "offsets": np.r_[0, np.cumsum(lengths)].astype(np.int64),
        "hits": np.array([h for t in tracks for h in t[1]], np.int64),
        "perigee": np.array([t[2] for t in tracks], np.float64).reshape(n, 5),
        "covariance": np.array([t[3] for t in tracks], np.float64).reshape(n, 5, 5),
        "chi2": np.array([t[4] for t in tracks], np.float64),
        "ndf": np.array([t[5] for t in tracks], np.int64),
        "seed": np.array([t[0] for t in tracks], np.int64),
        "fitted": np.array([t[6] for t in tracks], bool),
    }


# --- input checks and the kernels -----------------------------------------------------------------
def _settings(config: dict | None) -> dict:
    """The CKF settings with defaults filled in; unknown keys, wrong types or bad ranges are InputErrors."""
    cfg = dict(CONFIG_DEFAULTS)
    for key, val in (config or {}).items():
        if key not in CONFIG_TYPES:
            raise InputError(f"unknown CKF setting {key!r}")
        kind = CONFIG_TYPES[key]
        ok = isinstance(val, (bool, np.bool_)) if kind is bool else (
            isinstance(val, (int, np.integer)) and not isinstance(val, (bool, np.bool_)) if kind is int else
            isinstance(val, (int, float, np.integer, np.floating)) and not isinstance(val, (bool, np.bool_)))
        if not ok:
            raise InputError(f"CKF setting {key!r} must be {kind.__name__}, got {val!r}")
        cfg[key] = kind(val)
    if (cfg["max_branches"] < 1 or cfg["max_candidates"] < 1 or cfg["min_measurements"] < 3 or not cfg["chi2_max"] > 0
            or not cfg["mass"] > 0):
        raise InputError("CKF settings out of range (max_branches, max_candidates >= 1, min_measurements >= 3, "
                         "chi2_max > 0, mass > 0)")
    return cfg


def _context(detector: Detector, measurements, layer_x0, bz: float, field_map, config: dict | None) -> _Ckf:
    geo = grid_geometry(detector)
    n = len(measurements.module_index)
    module = np.asarray(measurements.module_index)
    xyz = np.asarray(measurements.xyz, np.float64)
    if xyz.shape != (n, 3):
        raise InputError(f"hit positions must have shape ({n}, 3), got {xyz.shape}")
    for name in ("u", "v", "var_u", "var_v"):
        if np.shape(getattr(measurements, name)) != (n,):
            raise InputError(f"hit {name} must have shape ({n},), got {np.shape(getattr(measurements, name))}")
    bad = (module < 0) | (module >= len(detector))
    if bad.any():
        raise InputError(f"hit {int(np.flatnonzero(bad)[0])} has module index outside the geometry")
    bad = ~((np.asarray(measurements.var_u) > 0) & (np.asarray(measurements.var_v) > 0))
    if bad.any():
        raise InputError(f"hit {int(np.flatnonzero(bad)[0])} has a non-positive variance")
    layer_x0 = np.asarray(layer_x0, np.float64)
    if layer_x0.shape != (geo.n_layers,):
        raise InputError(f"layer_x0 must have shape ({geo.n_layers},), got {layer_x0.shape}")
    if not math.isfinite(float(bz)):
        raise InputError(f"bz = {bz} T must be finite")
    return _Ckf(geo, Field(float(bz), field_map), measurements, layer_x0.tolist(), _settings(config))


def ckf_numpy(detector: Detector, measurements, seeds, layer_x0, bz: float, config: dict | None,
              field_map: tuple | None = None) -> dict:
    """Reference of the compiled ``ckf``: track finding from triplet seeds, ambiguity resolution, perigee fit.

    ``measurements``: a :class:`~trackcore.reco.measurements.Measurements` (module row, local u, v mm,
    variances mm^2, global xyz mm); ``seeds`` (N, 3) rows of it, best first; ``layer_x0`` x/X0 per layer
    of ``detector``; ``bz`` Tesla (used without ``field_map``, the ``(r0, dr, nr, z0, dz, nz, Br, Bz)``
    tuple of ``transport.field_arguments``); ``config`` a ``CkfConfig.as_dict()`` (missing keys take the
    defaults). Returns ``offsets``, ``hits`` (rows, path order), ``perigee`` (d0, z0 mm, phi, theta rad,
    q/p 1/GeV), ``covariance`` (N, 5, 5), ``chi2``, ``ndf``, ``seed`` (row of ``seeds``), ``fitted`` and
    ``stats`` (seeds_used, seeds_skipped, candidates, tracks_before_ambiguity).
    """
    ctx = _context(detector, measurements, layer_x0, bz, field_map, config)
    seeds = np.asarray(seeds)
    if seeds.size and not np.issubdtype(seeds.dtype, np.integer):
        raise InputError(f"seeds must be integer hit rows, got dtype {seeds.dtype}")
    if seeds.ndim != 2 or seeds.shape[1] != 3:
        raise InputError(f"seeds must have shape (N, 3), got {seeds.shape}")
    if seeds.size and (seeds.min() < 0 or seeds.max() >= len(ctx.module)):
        raise InputError("seed hit index outside the hits")
    stats = {"seeds_used": 0, "seeds_skipped": 0, "candidates": 0, "tracks_before_ambiguity": 0, "rescued": 0}
    out = _tracks_dict(_run_ckf(ctx, seeds.astype(np.int64).tolist(), stats))
    out["stats"] = stats
    return out


def fit_tracks_numpy(detector: Detector, measurements, offsets, hit_index, layer_x0, bz: float, config: dict | None,
                     field_map: tuple | None = None) -> dict:
    """Reference of the compiled ``fit_tracks``: Kalman fit of given hit sequences (inner to outer).

    Track t holds rows ``hit_index[offsets[t]:offsets[t + 1]]`` of ``measurements``; the other arguments
    and the returned dict are those of :func:`ckf_numpy` (``seed`` is -1, no ``stats``). A track that
    cannot be fitted (fewer than 3 hits, a module not reached) keeps its hits with ``fitted`` False.
    """
    ctx = _context(detector, measurements, layer_x0, bz, field_map, config)
    offsets, hit_index = np.asarray(offsets), np.asarray(hit_index)
    for name, a in (("offsets", offsets), ("hit_index", hit_index)):
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise InputError(f"{name} must be a 1-D integer array, got shape {a.shape} dtype {a.dtype}")
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(hit_index):
        raise InputError("offsets must start at 0 and end at len(hit_index)")
    if np.any(np.diff(offsets) < 0):
        raise InputError("offsets must be non-decreasing")
    if hit_index.size and (hit_index.min() < 0 or hit_index.max() >= len(ctx.module)):
        raise InputError("hit index outside the hits")
    hits = hit_index.tolist()
    return _tracks_dict(_fit(ctx, [hits[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]))
