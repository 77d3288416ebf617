"""Inputs of the cluster splitter network: a charge map around each pixel cluster plus incidence angles and layer.

The map is a :data:`WINDOW_U` x :data:`WINDOW_V` grid of cells (channels ch0 along u, ch1 along v)
centred on the cell that holds the cluster's charge centroid; each entry is the cell ``value``
(MIP-equivalent path length, mm). Positions (network targets and outputs) are local (u, v) offsets
from the centre of that central cell, in units of the module's pitch. The window is taller in v
because barrel pixels (56 um along z) give clusters up to ~15 cells long at |eta| ~ 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trackcore.errors import InputError
from trackcore.event import Event
from trackcore.geometry.detector import Detector

#: Window size in cells along u (ch0) and v (ch1); odd, so that one cell is the centre.
WINDOW_U, WINDOW_V = 9, 15
#: Base scalars (``ClusterInputs.scalars``): tan of the incidence angles in u and v (from the beam spot),
#: barrel flag, radius and |z| of the module (m), cells in the cluster / 10, cluster charge (mm) / 0.3.
BASE_SCALAR_NAMES = ("tan_u", "tan_v", "barrel", "r_m", "abs_z_m", "n_cells", "charge")
N_BASE_SCALARS = len(BASE_SCALAR_NAMES)
#: Network scalars: the base ones plus the charge and size ratios of :mod:`.baseline` (:func:`model_scalars`).
SCALAR_NAMES = BASE_SCALAR_NAMES + ("log_charge_ratio", "log_size_ratio")
N_SCALARS = len(SCALAR_NAMES)
#: Incidence tangents are clipped here: grazing tracks all look alike.
MAX_TAN = 20.0
#: Radius (mm) of the neighbourhood in which :func:`neighbour_counts` counts other hits of the same module.
NEIGHBOUR_RADIUS = 1.0


@dataclass
class ClusterInputs:
    """Network inputs of ``n`` clusters and what is needed to turn its outputs back into hits.

    ``maps`` (n, 1, WINDOW_U, WINDOW_V) float32; ``scalars`` (n, N_BASE_SCALARS) float32; ``hit_row`` (n,)
    rows of ``event.hits``; ``module_index`` (n,) Detector rows; ``centre`` (n, 2) local (u, v) of the
    central cell's centre (mm); ``pitch`` (n, 2) pitch_u, pitch_v (mm); ``centre_cell`` (n, 2) its
    (ch0, ch1); ``cell_rows``: CSR (``cell_offsets``) rows of ``event.cells`` of each cluster.
    """

    maps: np.ndarray
    scalars: np.ndarray
    hit_row: np.ndarray
    module_index: np.ndarray
    centre: np.ndarray
    pitch: np.ndarray
    centre_cell: np.ndarray
    cell_offsets: np.ndarray
    cell_rows: np.ndarray
    captured: np.ndarray  #: fraction of each cluster's charge inside the window
    centroid: np.ndarray  #: (n, 2) local (u, v) of the charge centroid (mm), what the digitiser's hit is

    def __len__(self) -> int:
        return len(self.hit_row)

    def to_local(self, offsets: np.ndarray) -> np.ndarray:
        """(..., 2) offsets in pitch units -> local (u, v) in mm (broadcast over cluster rows)."""
        shape = (len(self),) + (1,) * (offsets.ndim - 2) + (2,)
        return self.centre.reshape(shape) + offsets * self.pitch.reshape(shape)


def model_scalars(base: np.ndarray, baseline) -> np.ndarray:
    """(N, N_SCALARS) float32 network scalars: ``base`` (N, N_BASE_SCALARS) plus the logs of the charge and
    size ratios of ``baseline`` (a fitted :class:`~.baseline.ChargeBaseline`; logs, because the ratios of
    >= 3-particle clusters reach ~15 and would squash the 1-vs-2 region after standardisation)."""
    base = np.asarray(base, np.float32)
    if base.ndim != 2 or base.shape[1] != N_BASE_SCALARS:
        raise InputError(f"cluster splitter: base scalars must have shape (N, {N_BASE_SCALARS}), got {base.shape}")
    ratios = np.c_[baseline.ratio(base), baseline.size_ratio(base)]
    return np.c_[base, np.log(np.maximum(ratios, 1e-3))].astype(np.float32)


def cluster_inputs(event: Event, detector: Detector, hit_rows: np.ndarray, module_index: np.ndarray | None = None,
                   with_maps: bool = True) -> ClusterInputs:
    """Charge maps and base scalars of the clusters of ``hit_rows`` (rows of ``event.hits``, pixel modules).

    ``with_maps=False`` leaves ``maps`` empty (N, 1, 0, 0): the scalars alone, for the pre-selection.

    :raises InputError: no cells table, or a hit of ``hit_rows`` without cells.
    """
    if event.cells is None:
        raise InputError(f"{event.name}: cluster splitter needs the cells table")
    hits, cells = event.hits, event.cells
    hit_rows = np.asarray(hit_rows, np.int64)
    if module_index is None:
        module_index = detector.index(hits["volume_id"][hit_rows], hits["layer_id"][hit_rows],
                                      hits["module_id"][hit_rows])
    n = len(hit_rows)
    # Cells of the selected hits, grouped by hit in hit_rows order.
    order = np.argsort(hits["hit_id"][hit_rows], kind="stable")
    sorted_ids = hits["hit_id"][hit_rows][order]
    pos = np.searchsorted(sorted_ids, cells["hit_id"])
    pos_c = np.minimum(pos, max(n - 1, 0))
    mine = (sorted_ids[pos_c] == cells["hit_id"]) if n else np.zeros(len(cells), bool)
    crow = np.flatnonzero(mine)
    which = order[pos_c[crow]]  # index into hit_rows of each selected cell
    o = np.argsort(which, kind="stable")
    crow, which = crow[o], which[o]
    counts = np.bincount(which, minlength=n)
    if n and (counts == 0).any():
        bad = hit_rows[int(np.flatnonzero(counts == 0)[0])]
        raise InputError(f"{event.name}: hit_id {int(hits['hit_id'][bad])} (row {bad}) has no cells")
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    value = np.asarray(cells["value"], np.float64)[crow]
    c0 = np.asarray(cells["ch0"], np.int64)[crow]
    c1 = np.asarray(cells["ch1"], np.int64)[crow]
    wsum = np.bincount(which, weights=value, minlength=n)
    safe = np.where(wsum > 0, wsum, 1.0)
    # Centroid in channel units (cell centres at ch + 0.5); the central cell is the one holding it.
    m0 = np.bincount(which, weights=value * (c0 + 0.5), minlength=n) / safe
    m1 = np.bincount(which, weights=value * (c1 + 0.5), minlength=n) / safe
    centre_cell = np.stack([np.floor(m0), np.floor(m1)], axis=1).astype(np.int64)
    du = c0 - centre_cell[which, 0] + WINDOW_U // 2
    dv = c1 - centre_cell[which, 1] + WINDOW_V // 2
    inside = (du >= 0) & (du < WINDOW_U) & (dv >= 0) & (dv < WINDOW_V)
    if with_maps:
        maps = np.zeros((n, 1, WINDOW_U, WINDOW_V), np.float32)
        np.add.at(maps, (which[inside], 0, du[inside], dv[inside]), value[inside])
    else:
        maps = np.zeros((n, 1, 0, 0), np.float32)
    captured = np.bincount(which[inside], weights=value[inside], minlength=n) / safe

    m = module_index
    pitch = np.stack([detector.pitch_u[m], detector.pitch_v[m]], axis=1)
    centre = np.stack([-detector.max_hu[m] + (centre_cell[:, 0] + 0.5) * pitch[:, 0],
                       -detector.hv[m] + (centre_cell[:, 1] + 0.5) * pitch[:, 1]], axis=1)
    xyz = np.stack([hits["x"][hit_rows], hits["y"][hit_rows], hits["z"][hit_rows]], axis=1).astype(np.float64)
    # Direction from the beam spot, in the module frame: the incidence of a prompt track.
    d = np.einsum("nji,nj->ni", detector.rotation[m], xyz)
    dw = np.where(np.abs(d[:, 2]) < 1e-9, 1e-9, d[:, 2])
    tan_u = np.clip(d[:, 0] / dw, -MAX_TAN, MAX_TAN)
    tan_v = np.clip(d[:, 1] / dw, -MAX_TAN, MAX_TAN)
    barrel = np.array([lay.kind == "barrel" for lay in detector.layers])[detector.layer_index(m)]
    scalars = np.stack([tan_u, tan_v, barrel.astype(np.float64), np.hypot(xyz[:, 0], xyz[:, 1]) / 1000.0,
                        np.abs(xyz[:, 2]) / 1000.0, counts / 10.0, wsum / 0.3], axis=1).astype(np.float32)
    centroid = np.stack([-detector.max_hu[m] + m0 * pitch[:, 0], -detector.hv[m] + m1 * pitch[:, 1]], axis=1)
    return ClusterInputs(maps, scalars, hit_rows, np.asarray(m, np.int64), centre, pitch, centre_cell, offsets,
                         crow, captured, centroid)


def neighbour_counts(event: Event, hit_rows: np.ndarray, radius: float = NEIGHBOUR_RADIUS) -> np.ndarray:
    """(N,) number of other hits on the same module as each hit of ``hit_rows`` within ``radius`` (mm, 3D).

    Merged clusters need two particles within a few pitches, so they sit where hits are dense (jet cores):
    in held-out-free training events 95% of gated merged jet clusters have >= 1 such neighbour, but 75% of
    the gated single clusters of <mu>=200 events (soft, secondary, looping particles) have none.
    """
    h = event.hits
    hit_rows = np.asarray(hit_rows, np.int64)
    if radius <= 0:
        raise InputError(f"cluster splitter: neighbour radius must be > 0 mm, got {radius!r}")
    if len(hit_rows) == 0 or len(h) == 0:
        return np.zeros(len(hit_rows), np.int64)
    xyz = np.stack([h["x"], h["y"], h["z"]], axis=1).astype(np.float64)
    # One sorted key: module first, then x; a module's hits within +-radius in x are one contiguous slice.
    _, module = np.unique(np.stack([h["volume_id"], h["layer_id"], h["module_id"]], axis=1), axis=0,
                          return_inverse=True)
    span = float(np.ptp(xyz[:, 0])) + 4.0 * radius
    key = module.ravel().astype(np.float64) * span + (xyz[:, 0] - xyz[:, 0].min() + 2.0 * radius)
    order = np.argsort(key, kind="stable")
    skey = key[order]
    lo = np.searchsorted(skey, key[hit_rows] - radius, side="left")
    hi = np.searchsorted(skey, key[hit_rows] + radius, side="right")
    n = hi - lo
    owner = np.repeat(np.arange(len(hit_rows)), n)
    cand = order[np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)]
    d2 = np.sum((xyz[cand] - xyz[hit_rows[owner]]) ** 2, axis=1)
    close = (d2 <= radius * radius) & (cand != hit_rows[owner])
    return np.bincount(owner[close], minlength=len(hit_rows)).astype(np.int64)
