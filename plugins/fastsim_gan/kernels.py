"""The fast simulation's two per-crossing kernels, numpy reference and dispatch to the compiled twin.

``fastsim_conditions`` (generator conditions) and ``fastsim_render`` (one staircase cluster per
crossing from observables) run as ``trackcore._core`` kernels on the ``cpu`` backend
(``csrc/src/fastsim_render.cpp``) and as the numpy functions below otherwise; both give identical
cells (tests/plugins/test_fastsim_gan.py checks it). Arrays, for N crossings on a detector of M modules:

* ``module_index`` (N,) int64 detector rows; ``segments`` (N, 4) local u0, v0, u1, v1 (mm);
  ``edep`` (N,) deposited energy (GeV); ``momentum`` (N, 3) GeV;
* ``modules`` (M, 9) float64: max_hu, hv, pitch_u, pitch_v (mm), cells along u and v, binary readout
  (0/1), module class (index into ``MODULE_CLASSES``), threshold (electrons): :attr:`ModuleTables.packed`;
* ``obs`` (N, 6) observables (float32 or float64; the integer ones are rounded here; the charge one,
  column 3, is not read: ``electrons`` (N,), the charge of each cluster, carries it, so that both
  kernels scale by the same numpy ``exp``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from trackcore.errors import InputError

N_CONDITIONS = 14
N_OBSERVABLES = 6
MODULE_COLUMNS = ("max_hu", "hv", "pitch_u", "pitch_v", "n_u", "n_v", "binary", "class", "threshold")
#: Smallest cell weight of the renderer's charge plane, relative to the cluster's mean cell value.
MIN_WEIGHT = 0.1
#: Gain and upper bound of the staircase's phase (where it turns; see render_numpy).
PHASE_GAIN, MAX_PHASE = 1.0, 0.99
#: Clusters of up to this many staircase cells are rendered in exact-width blocks; longer ones share one padded block.
EXACT_WIDTH = 12


def kernel(name: str, backend=None) -> Callable:
    """The backend's kernel ``name`` (``fastsim_conditions`` / ``fastsim_render``), else the numpy reference.

    The numpy reference also serves backends without the kernel (numpy; cupy, whose arrays stay on the host here).
    """
    from trackcore.backends import get_backend

    compiled = get_backend(backend).kernels.get(name)
    if compiled is not None:
        return compiled
    return {"fastsim_conditions": conditions_numpy, "fastsim_render": render_numpy}[name]


def fused_kernel(backend=None) -> Callable | None:
    """The backend's compiled ``fastsim_generate`` (conditions -> generator -> cells in one pass), else None
    (the numpy backend: :func:`conditions_numpy` -> ``model.NumpyGenerator.generate_seeded`` -> :func:`render_numpy`)."""
    from trackcore.backends import get_backend

    return get_backend(backend).kernels.get("fastsim_generate")


def _geometry(module_index: np.ndarray, segments: np.ndarray, modules: np.ndarray) -> dict:
    m = module_index
    ou, ov, pu, pv = (modules[m, k] for k in range(4))
    cu0, cu1 = (segments[:, 0] + ou) / pu, (segments[:, 2] + ou) / pu
    cv0, cv1 = (segments[:, 1] + ov) / pv, (segments[:, 3] + ov) / pv
    return {"cu0": cu0, "cu1": cu1, "cv0": cv0, "cv1": cv1, "pu": pu, "pv": pv, "ou": ou, "ov": ov}


def conditions_numpy(module_index, segments, edep, momentum, modules, electrons_per_gev: float) -> np.ndarray:
    """(N, 14) float32 generator conditions (see ``clusters.CONDITION_NAMES``); reference of the compiled kernel."""
    m = np.asarray(module_index, np.int64)
    g = _geometry(m, np.asarray(segments, np.float64).reshape(-1, 4), modules)
    x = np.empty((len(m), N_CONDITIONS), np.float32)
    x[:, :4] = modules[m, 7][:, None] == np.arange(4)[None, :]
    x[:, 4] = np.log1p(np.abs(g["cu1"] - g["cu0"]))
    x[:, 5] = np.log1p(np.abs(g["cv1"] - g["cv0"]))
    mid_u, mid_v = 0.5 * (g["cu0"] + g["cu1"]), 0.5 * (g["cv0"] + g["cv1"])
    for k, c in enumerate((g["cu0"], g["cv0"], g["cu1"], g["cv1"], mid_u, mid_v)):
        x[:, 6 + k] = c - np.floor(c)
    charge = np.asarray(edep, np.float64) * electrons_per_gev
    x[:, 12] = np.log(np.maximum(charge, 1.0) / modules[m, 8])
    p = np.asarray(momentum, np.float64)
    x[:, 13] = np.log(np.maximum(np.sqrt(p[:, 0] * p[:, 0] + p[:, 1] * p[:, 1] + p[:, 2] * p[:, 2]), 1e-3))
    return x


def render_numpy(module_index, segments, electrons, obs, modules, value_per_electron: float):
    """Cells of one staircase cluster per crossing; reference of the compiled ``fastsim_render``.

    Returns (cluster, size, ch0, ch1, value, charge, local): the crossing row and cell count of each
    cluster (crossing order; clusters left without cells are omitted), its cells grouped by cluster
    (int32 channels; value in MIP-equivalent mm, 1 for binary readout), its charge (``electrons``) and
    (K, 2) value-weighted centroid (local mm). The staircase has the generated widths, corners
    dropped for the size deficit and cells off the module dropped; it turns where the generated
    centroid lies (``phase``), and its charge is spread over the kept cells with weights linear in
    both cell coordinates (:func:`_plane_values`) so that the centroid lands on the generated one. Clusters with the same number of cells form
    one dense (clusters x cells) block, so each step is one broadcast numpy operation.
    """
    m = np.asarray(module_index, np.int64)
    n = len(m)
    obs = np.asarray(obs, np.float64)
    if obs.shape != (n, N_OBSERVABLES):
        raise InputError(f"fastsim: observables must have shape ({n}, {N_OBSERVABLES}), got {obs.shape}")
    if n == 0:
        e_int, e_float = np.zeros(0, np.int64), np.zeros(0)
        return e_int, e_int, e_int.astype(np.int32), e_int.astype(np.int32), e_float, e_float, np.zeros((0, 2))
    g = _geometry(m, np.asarray(segments, np.float64).reshape(-1, 4), modules)
    pu, pv, n_u, n_v = g["pu"], g["pv"], modules[m, 4].astype(np.int64), modules[m, 5].astype(np.int64)
    width_u = np.abs(np.floor(g["cu1"]) - np.floor(g["cu0"])).astype(np.int64) + 1
    width_v = np.abs(np.floor(g["cv1"]) - np.floor(g["cv0"])).astype(np.int64) + 1
    su, sv = np.where(g["cu1"] >= g["cu0"], 1, -1), np.where(g["cv1"] >= g["cv0"], 1, -1)
    wu = np.maximum(width_u + np.rint(obs[:, 0]).astype(np.int64), 1)
    wv = np.maximum(width_v + np.rint(obs[:, 1]).astype(np.int64), 1)
    full = wu + wv - 1  # cells of a 4-connected staircase from corner to corner
    # Step j of the staircase goes along u when floor(j * slope + phase) increases (slope <= 1).
    slope = (wu - 1) / np.maximum(full - 1, 1)
    target_u = 0.5 * (g["cu0"] + g["cu1"]) + obs[:, 4]  # residuals in pitch = cell units
    target_v = 0.5 * (g["cv0"] + g["cv1"]) + obs[:, 5]
    # Placement: cell centres centred on the generated centroid (cell units), walked in the path's direction.
    lo_u = np.rint(target_u - 0.5 - 0.5 * (wu - 1)).astype(np.int64)
    lo_v = np.rint(target_v - 0.5 - 0.5 * (wv - 1)).astype(np.int64)
    # A path within one cell makes a one-cell-wide cluster on that cell (as in the full digitisation):
    # a generated centroid near the cell's edge does not move it to the neighbour.
    lo_u = np.where((wu == 1) & (width_u == 1), np.floor(g["cu0"]).astype(np.int64), lo_u)
    lo_v = np.where((wv == 1) & (width_v == 1), np.floor(g["cv0"]).astype(np.int64), lo_v)
    base_u = lo_u + np.where(su > 0, 0, wu - 1)
    base_v = lo_v + np.where(sv > 0, 0, wv - 1)
    # Cell offsets from the base are x = su * ju, y = sv * (j - ju); the target centroid in those offsets:
    tu = target_u - 0.5 - base_u
    tv = target_v - 0.5 - base_v
    electrons = np.asarray(electrons, np.float64)
    binary = modules[m, 6] != 0
    # The staircase turns early in u (phase -> 1) when the target lies ahead in u of the diagonal
    # (offsets as fractions of the widths), late when behind: its cells then surround the target.
    fu = su * tu / np.maximum(wu - 1, 1)
    fv = sv * tv / np.maximum(wv - 1, 1)
    phase = np.minimum(np.maximum(0.5 + PHASE_GAIN * (fu - fv), 0.0), MAX_PHASE)
    # Corners dropped (below threshold in the full digitisation) and cells off the module: rare, masked.
    drop = np.clip(np.rint(obs[:, 2]).astype(np.int64), 0, np.minimum(wu, wv) // 2)
    off = (lo_u < 0) | (lo_u + wu > n_u) | (lo_v < 0) | (lo_v + wv > n_v)
    special = (drop > 0) | off

    group = np.minimum(full, EXACT_WIDTH + 1)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(1, EXACT_WIDTH + 3))
    cluster, size, ch0, ch1, val, vsum, su_v, sv_v = [], [], [], [], [], [], [], []
    for b in range(EXACT_WIDTH + 1):
        idx = order[bounds[b]:bounds[b + 1]]
        if not len(idx):
            continue
        j = np.arange(int(full[idx].max()))[None, :]
        ju = np.floor(j * slope[idx, None] + phase[idx, None]).astype(np.int64)
        c0 = base_u[idx, None] + su[idx, None] * ju
        c1 = base_v[idx, None] + sv[idx, None] * (j - ju)
        mask = np.broadcast_to(j < full[idx, None], c0.shape).copy()
        sp = special[idx]
        if sp.any():
            mask[sp] &= _special_mask(ju[sp], full[idx[sp]], drop[idx[sp]], c0[sp], c1[sp], n_u[idx[sp], None],
                                      n_v[idx[sp], None])
        x = ((c0 - base_u[idx, None]) * mask).astype(np.float64)
        y = ((c1 - base_v[idx, None]) * mask).astype(np.float64)
        value = _plane_values(x, y, mask, tu[idx], tv[idx], electrons[idx] * value_per_electron, binary[idx])
        cluster.append(idx), size.append(mask.sum(1)), vsum.append(value.sum(1))
        su_v.append((value * c0).sum(1)), sv_v.append((value * c1).sum(1))
        ch0.append(c0[mask]), ch1.append(c1[mask]), val.append(value[mask])
    cluster, size, vsum = np.concatenate(cluster), np.concatenate(size), np.concatenate(vsum)
    su_v, sv_v = np.concatenate(su_v), np.concatenate(sv_v)
    ch0, ch1, val = np.concatenate(ch0), np.concatenate(ch1), np.concatenate(val)
    # Back to crossing order (the compiled kernel's natural order): clusters, then their cells.
    back = np.argsort(cluster)
    cell_order = np.argsort(np.repeat(cluster, size), kind="stable")
    cluster, size, vsum, su_v, sv_v = cluster[back], size[back], vsum[back], su_v[back], sv_v[back]
    ch0, ch1, val = ch0[cell_order], ch1[cell_order], val[cell_order]
    live = size > 0
    cluster, size, vsum, su_v, sv_v = cluster[live], size[live], vsum[live], su_v[live], sv_v[live]
    local = np.stack([(su_v / vsum + 0.5) * pu[cluster] - g["ou"][cluster],
                      (sv_v / vsum + 0.5) * pv[cluster] - g["ov"][cluster]], axis=1)
    return (cluster, size, ch0.astype(np.int32), ch1.astype(np.int32), val, electrons[cluster], local)


def _plane_values(x, y, mask, tu, tv, charge_value, binary) -> np.ndarray:
    """Cell values of a block of clusters: the charge spread over the kept cells with weights linear in
    the cell offsets (x, y), w = 1 + a X + b Y (X = s x - Sx, Y = s y - Sy: sum zero), a and b solved
    so that the value-weighted centroid is (tu, tv), then both scaled down until every w >= MIN_WEIGHT.
    Two free slopes let the centroid move across the path as well as along it. Sums over the cells
    are of small integers, hence exact in any order (the compiled twin adds them in another order)."""
    s = mask.sum(1).astype(np.float64)
    sx, sy = x.sum(1), y.sum(1)
    sxx, sxy, syy = (x * x).sum(1), (x * y).sum(1), (y * y).sum(1)
    kxx, kxy, kyy = s * sxx - sx * sx, s * sxy - sx * sy, s * syy - sy * sy
    ru, rv = s * tu - sx, s * tv - sy
    det = kxx * kyy - kxy * kxy
    two = det > 0
    only_u = ~two & (kxx >= kyy) & (kxx > 0)
    only_v = ~two & ~only_u & (kyy > 0)
    safe = np.where(two, det, 1.0)
    a = np.where(two, (ru * kyy - rv * kxy) / safe, np.where(only_u, ru / np.where(only_u, kxx, 1.0), 0.0))
    b = np.where(two, (rv * kxx - ru * kxy) / safe, np.where(only_v, rv / np.where(only_v, kyy, 1.0), 0.0))
    xx = s[:, None] * x - sx[:, None]
    yy = s[:, None] * y - sy[:, None]
    t = np.where(mask, a[:, None] * xx + b[:, None] * yy, np.inf).min(1)
    squeeze = t < MIN_WEIGHT - 1.0
    f = np.where(squeeze, (1.0 - MIN_WEIGHT) / np.where(squeeze, -t, 1.0), 1.0)
    a, b = np.where(squeeze, a * f, a), np.where(squeeze, b * f, b)
    scale = charge_value / np.maximum(s, 1.0)
    ku, kv = scale * a, scale * b
    value = (scale[:, None] + ku[:, None] * xx) + kv[:, None] * yy
    return np.where(binary[:, None], 1.0, value) * mask


def _special_mask(ju, full, drop, c0, c1, n_u, n_v) -> np.ndarray:
    """Cells kept of a block of clusters with corners to drop or cells off the module."""
    j = np.arange(ju.shape[1])[None, :]
    step = np.diff(ju, axis=1, prepend=ju[:, :1])
    nxt = np.concatenate([step[:, 1:], step[:, -1:]], axis=1)
    # A corner: the steps into and out of the cell go along different axes; dropping every other
    # corner (ranks 0, 2, 4, ...) keeps the cluster 8-connected.
    corner = (j > 0) & (j < full[:, None] - 1) & (step != nxt)
    rank = np.cumsum(corner, axis=1) - 1
    dropped = corner & (rank % 2 == 0) & (rank // 2 < drop[:, None])
    inside = (c0 >= 0) & (c0 < n_u) & (c1 >= 0) & (c1 < n_v)
    return ~dropped & inside
