"""Cluster conditions, cluster observables and the vectorised cluster renderer of the fast simulation.

One crossing of a sensitive module makes one cluster. Its *conditions* (what the generator is
conditioned on) come from the crossing alone: module class, the projected path's extent in cells
along u and v (incidence angles x sensor thickness), where the entry, exit and mid points lie
inside their cells, the deposited charge over the readout threshold and log momentum. Its
*observables* (what the generator produces) are relative to the straight-path geometry:

``d_width_u``, ``d_width_v``: cluster width in cells minus the cells the straight path spans;
``d_size``: (width_u + width_v - 1) - number of cells (0 for a 4-connected staircase; larger when
small corner clips fall below threshold); ``log_charge``: log(cluster value / value of the deposited
charge) for analogue pixels (0 for binary strips); ``res_u``, ``res_v``: charge centroid minus the
true mid-plane crossing, in units of the pitch.

:func:`render` turns observables back into cells (a staircase of cells with the generated widths
and size, its charge ramped along the path so that its value-weighted centroid lands on the
generated centroid) and hits, all in numpy (no per-cluster Python loop).
"""
from __future__ import annotations

import numpy as np

from trackcore.errors import InputError
from trackcore.geometry.detector import Detector, LONG_STRIP_VOLUMES, PIXEL_VOLUMES, SHORT_STRIP_VOLUMES
from trackcore.sim.digitization import DigitizationConfig

MODULE_CLASSES = ("pixel_barrel", "pixel_endcap", "short_strip", "long_strip")
CONDITION_NAMES = ("pixel_barrel", "pixel_endcap", "short_strip", "long_strip", "log1p_extent_u",
                   "log1p_extent_v", "entry_frac_u", "entry_frac_v", "exit_frac_u", "exit_frac_v", "mid_frac_u",
                   "mid_frac_v", "log_charge_over_threshold", "log_p")
N_CONDITIONS = len(CONDITION_NAMES)
OBSERVABLE_NAMES = ("d_width_u", "d_width_v", "d_size", "log_charge", "res_u", "res_v")
N_OBSERVABLES = len(OBSERVABLE_NAMES)
#: Integer observables (rounded after generation; dequantised with uniform noise for training).
INTEGER_OBSERVABLES = (0, 1, 2)


def module_classes(detector: Detector) -> np.ndarray:
    """(n_modules,) int8 index into :data:`MODULE_CLASSES` (-1: a volume of none of them)."""
    cls = np.full(len(detector), -1, np.int8)
    barrel_layer = np.array([lay.kind == "barrel" for lay in detector.layers])
    barrel = barrel_layer[detector.layer_index(np.arange(len(detector)))]
    pixel = np.isin(detector.volume_id, PIXEL_VOLUMES)
    cls[pixel & barrel] = 0
    cls[pixel & ~barrel] = 1
    cls[np.isin(detector.volume_id, SHORT_STRIP_VOLUMES)] = 2
    cls[np.isin(detector.volume_id, LONG_STRIP_VOLUMES)] = 3
    return cls


class ModuleTables:
    """Per-module arrays the conditions and the renderer need (built once per detector)."""

    def __init__(self, detector: Detector, config: DigitizationConfig | None = None):
        config = config or DigitizationConfig()
        self.detector = detector
        self.config = config
        self.cls = module_classes(detector)
        if (self.cls < 0).any():
            m = int(np.flatnonzero(self.cls < 0)[0])
            raise InputError(f"fastsim: module row {m} (volume {detector.volume_id[m]}) is neither pixel nor strip")
        self.threshold, _, self.binary = config.module_readout(detector)
        self.pitch_u, self.pitch_v = detector.pitch_u.astype(np.float64), detector.pitch_v.astype(np.float64)
        self.max_hu, self.hv = detector.max_hu.astype(np.float64), detector.hv.astype(np.float64)
        self.n_u = np.ceil(2.0 * self.max_hu / self.pitch_u - 1e-9).astype(np.int64)
        self.n_v = np.ceil(2.0 * self.hv / self.pitch_v - 1e-9).astype(np.int64)


def geometry(tables: ModuleTables, crossings: dict) -> dict:
    """Straight-path geometry of digitisation crossings (``crossings_for_digitization`` keys), in cell units."""
    m = np.asarray(crossings["module_index"], np.int64)
    pu, pv, ou, ov = tables.pitch_u[m], tables.pitch_v[m], tables.max_hu[m], tables.hv[m]
    cu0, cu1 = (crossings["u0"] + ou) / pu, (crossings["u1"] + ou) / pu
    cv0, cv1 = (crossings["v0"] + ov) / pv, (crossings["v1"] + ov) / pv
    width_u = np.abs(np.floor(cu1) - np.floor(cu0)).astype(np.int64) + 1
    width_v = np.abs(np.floor(cv1) - np.floor(cv0)).astype(np.int64) + 1
    return {"module": m, "cu0": cu0, "cu1": cu1, "cv0": cv0, "cv1": cv1, "mid_u": 0.5 * (cu0 + cu1),
            "mid_v": 0.5 * (cv0 + cv1), "width_u": width_u, "width_v": width_v,
            "sign_u": np.where(cu1 >= cu0, 1, -1), "sign_v": np.where(cv1 >= cv0, 1, -1)}


def conditions(tables: ModuleTables, crossings: dict, momentum: np.ndarray, geo: dict | None = None) -> np.ndarray:
    """(N, :data:`N_CONDITIONS`) float32 generator conditions of N crossings.

    ``crossings``: ``crossings_for_digitization`` output (mm, GeV); ``momentum``: (N, 3) GeV at the crossing.
    """
    geo = geo if geo is not None else geometry(tables, crossings)
    m = geo["module"]
    n = len(m)
    momentum = np.asarray(momentum, np.float64).reshape(-1, 3)
    if len(momentum) != n:
        raise InputError(f"fastsim: momentum has {len(momentum)} rows for {n} crossings")
    x = np.empty((n, N_CONDITIONS), np.float32)
    x[:, :4] = tables.cls[m][:, None] == np.arange(4)[None, :]
    x[:, 4] = np.log1p(np.abs(geo["cu1"] - geo["cu0"]))
    x[:, 5] = np.log1p(np.abs(geo["cv1"] - geo["cv0"]))
    for k, key in enumerate(("cu0", "cv0", "cu1", "cv1", "mid_u", "mid_v")):
        c = geo[key]
        x[:, 6 + k] = c - np.floor(c)
    charge = np.asarray(crossings["edep"], np.float64) * tables.config.electrons_per_gev
    x[:, 12] = np.log(np.maximum(charge, 1.0) / tables.threshold[m])
    x[:, 13] = np.log(np.maximum(np.linalg.norm(momentum, axis=1), 1e-3))
    return x


def observables(tables: ModuleTables, digi, crossings: dict, true_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observables of the hits of a digitisation (:class:`DigitizedHits`) that have a crossing.

    ``crossings``: the digitisation crossings given to it; ``true_local``: (N_crossings, 2) mid-plane
    crossing (u, v) in mm. Returns (crossing row of each signal hit, (n, :data:`N_OBSERVABLES`) float64).
    """
    xc = np.asarray(digi.hit_crossing_index, np.int64)
    signal = np.flatnonzero(xc >= 0)
    hit_row = np.searchsorted(digi.hits["hit_id"], digi.cells["hit_id"])
    n = len(digi.hits)
    ch0, ch1, value = digi.cells["ch0"].astype(np.int64), digi.cells["ch1"].astype(np.int64), digi.cells["value"]
    big = np.iinfo(np.int64).max
    lo0, hi0 = np.full(n, big), np.full(n, -1)
    lo1, hi1 = np.full(n, big), np.full(n, -1)
    np.minimum.at(lo0, hit_row, ch0), np.maximum.at(hi0, hit_row, ch0)
    np.minimum.at(lo1, hit_row, ch1), np.maximum.at(hi1, hit_row, ch1)
    size = np.bincount(hit_row, minlength=n)
    total = np.bincount(hit_row, weights=value, minlength=n)
    geo = geometry(tables, crossings)
    x = xc[signal]
    m = geo["module"][x]
    y = np.empty((len(signal), N_OBSERVABLES))
    wu, wv = (hi0 - lo0 + 1)[signal], (hi1 - lo1 + 1)[signal]
    y[:, 0] = wu - geo["width_u"][x]
    y[:, 1] = wv - geo["width_v"][x]
    y[:, 2] = wu + wv - 1 - size[signal]
    expected = np.asarray(crossings["edep"])[x] * tables.config.electrons_per_gev * tables.config.value_per_electron
    y[:, 3] = np.where(tables.binary[m], 0.0, np.log(np.maximum(total[signal], 1e-9) / np.maximum(expected, 1e-9)))
    res = digi.hit_local[signal] - true_local[x]
    y[:, 4] = res[:, 0] / tables.pitch_u[m]
    y[:, 5] = res[:, 1] / tables.pitch_v[m]
    return x, y


def baseline_observables(n: int) -> np.ndarray:
    """The no-ML baseline: the straight path's cells, the deposited charge, the centroid on the crossing."""
    return np.zeros((n, N_OBSERVABLES))


#: Clusters of up to this many staircase cells are rendered in exact-width blocks; longer ones share one padded block.
EXACT_WIDTH = 12


def render(tables: ModuleTables, crossings: dict, obs: np.ndarray, geo: dict | None = None) -> dict:
    """Cells and hits of one cluster per crossing from observables ``obs`` (N, :data:`N_OBSERVABLES`).

    Returns ``cluster`` (crossing row of each kept cluster), ``size`` (its number of cells), ``ch0``,
    ``ch1``, ``value`` (MIP-equivalent mm; 1 for binary strips; cells grouped by cluster in ``cluster``
    order), ``charge`` (electrons per cluster) and ``local`` ((K, 2) value-weighted centroid in mm).
    Cells outside the module are dropped, and so are clusters left without cells. Clusters with the
    same number of staircase cells form one dense (clusters x cells) block, so every step is a
    broadcast numpy operation without per-cell gathers: this is the hot loop of the fast simulation.
    """
    geo = geo if geo is not None else geometry(tables, crossings)
    m = geo["module"]
    n = len(m)
    if obs.shape != (n, N_OBSERVABLES):
        raise InputError(f"fastsim: observables must have shape ({n}, {N_OBSERVABLES}), got {obs.shape}")
    if n == 0:
        e_int, e_float = np.zeros(0, np.int64), np.zeros(0)
        return {"cluster": e_int, "size": e_int, "ch0": e_int, "ch1": e_int, "value": e_float, "charge": e_float,
                "local": np.zeros((0, 2))}
    wu = np.maximum(geo["width_u"] + obs[:, 0].astype(np.int64), 1)
    wv = np.maximum(geo["width_v"] + obs[:, 1].astype(np.int64), 1)
    full = wu + wv - 1  # cells of a 4-connected staircase from corner to corner
    # Step k of the staircase goes along u when floor(k * slope + 0.5) increases (slope <= 1).
    slope = (wu - 1) / np.maximum(full - 1, 1)
    pu, pv = tables.pitch_u[m], tables.pitch_v[m]
    target_u, target_v = geo["mid_u"] + obs[:, 4], geo["mid_v"] + obs[:, 5]  # residuals in pitch = cell units
    su, sv = geo["sign_u"], geo["sign_v"]
    # Placement: cell centres centred on the generated centroid (cell units), walked in the path's direction.
    lo_u = np.rint(target_u - 0.5 - 0.5 * (wu - 1)).astype(np.int64)
    lo_v = np.rint(target_v - 0.5 - 0.5 * (wv - 1)).astype(np.int64)
    base_u = lo_u + np.where(su > 0, 0, wu - 1)
    base_v = lo_v + np.where(sv > 0, 0, wv - 1)
    # Charge ramp along the path, w = 1 + a (j - (s - 1) / 2): on a straight line of s cells with step
    # g = (wu - 1, wv - 1) / (s - 1) cells it moves the centroid by a g (s^2 - 1) / 12 from the middle.
    s = full.astype(np.float64)
    gu = su * (wu - 1) / np.maximum(s - 1, 1) * pu
    gv = sv * (wv - 1) / np.maximum(s - 1, 1) * pv
    g2 = (gu * gu + gv * gv) * (s * s - 1) / 12.0
    want = (target_u - lo_u - 0.5 * wu) * pu * gu + (target_v - lo_v - 0.5 * wv) * pv * gv
    a = np.where(g2 > 0, want / np.where(g2 > 0, g2, 1.0), 0.0)
    half = 0.5 * (s - 1)
    a = np.clip(a, -0.9 / np.maximum(half, 0.5), 0.9 / np.maximum(half, 0.5))  # weights stay > 0
    electrons = np.asarray(crossings["edep"], np.float64) * tables.config.electrons_per_gev * np.exp(obs[:, 3])
    scale = electrons * tables.config.value_per_electron / s
    binary = tables.binary[m]
    intercept = np.where(binary, 1.0, scale * (1.0 - a * half))
    ramp = np.where(binary, 0.0, scale * a)
    # Corners dropped (below threshold in the full digitisation) and cells off the module: rare, masked.
    drop = np.clip(obs[:, 2].astype(np.int64), 0, np.minimum(wu, wv) // 2)
    off = (lo_u < 0) | (lo_u + wu > tables.n_u[m]) | (lo_v < 0) | (lo_v + wv > tables.n_v[m])
    special = (drop > 0) | off

    order = np.argsort(np.minimum(full, EXACT_WIDTH + 1), kind="stable")
    bounds = np.searchsorted(np.minimum(full, EXACT_WIDTH + 1)[order], np.arange(1, EXACT_WIDTH + 3))
    parts = []
    for b in range(EXACT_WIDTH + 1):
        idx = order[bounds[b]:bounds[b + 1]]
        if not len(idx):
            continue
        k = int(full[idx].max())
        j = np.arange(k)[None, :]
        ju = np.floor(j * slope[idx, None] + 0.5).astype(np.int64)
        c0 = base_u[idx, None] + su[idx, None] * ju
        c1 = base_v[idx, None] + sv[idx, None] * (j - ju)
        value = intercept[idx, None] + ramp[idx, None] * j
        mask = None if b < EXACT_WIDTH else j < full[idx, None]
        sp = special[idx]
        if sp.any():
            mask = np.ones(c0.shape, bool) if mask is None else mask
            mask[sp] &= _special_mask(ju[sp], full[idx[sp]], drop[idx[sp]], c0[sp], c1[sp], tables.n_u[m[idx[sp]], None],
                                      tables.n_v[m[idx[sp]], None])
        parts.append((idx, c0, c1, value, mask))
    cluster, size, ch0, ch1, val, vsum, su_v, sv_v = [], [], [], [], [], [], [], []
    for idx, c0, c1, value, mask in parts:
        if mask is not None:
            value = value * mask
        # einsum: numpy's axis-1 sum of a narrow block is several times slower.
        cluster.append(idx), vsum.append(np.einsum("ij->i", value))
        su_v.append(np.einsum("ij,ij->i", value, c0.astype(np.float64)))
        sv_v.append(np.einsum("ij,ij->i", value, c1.astype(np.float64)))
        if mask is None:
            size.append(np.full(len(idx), c0.shape[1])), ch0.append(c0.ravel()), ch1.append(c1.ravel())
            val.append(value.ravel())
        else:
            size.append(mask.sum(1)), ch0.append(c0[mask]), ch1.append(c1[mask]), val.append(value[mask])
    cluster, size, vsum = np.concatenate(cluster), np.concatenate(size), np.concatenate(vsum)
    su_v, sv_v = np.concatenate(su_v), np.concatenate(sv_v)
    live = size > 0
    if not live.all():
        cluster, size, vsum, su_v, sv_v = cluster[live], size[live], vsum[live], su_v[live], sv_v[live]
    mk = m[cluster]
    local = np.stack([(su_v / vsum + 0.5) * pu[cluster] - tables.max_hu[mk],
                      (sv_v / vsum + 0.5) * pv[cluster] - tables.hv[mk]], axis=1)
    return {"cluster": cluster, "size": size, "ch0": np.concatenate(ch0), "ch1": np.concatenate(ch1),
            "value": np.concatenate(val), "charge": electrons[cluster], "local": local}


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
