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
and size, its charge spread with weights linear in both cell coordinates so that its value-weighted
centroid lands on the generated centroid) and hits. :func:`conditions` and :func:`render` run the kernels of
:mod:`.kernels`: compiled on the ``cpu`` backend, their numpy references otherwise.
"""
from __future__ import annotations

import numpy as np

from trackcore.errors import InputError
from trackcore.geometry.detector import Detector, LONG_STRIP_VOLUMES, PIXEL_VOLUMES, SHORT_STRIP_VOLUMES
from trackcore.sim.digitization import DigitizationConfig

from .kernels import kernel

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
        #: (n_modules, 9) float64 table of the kernels (columns: :data:`.kernels.MODULE_COLUMNS`).
        self.packed = np.ascontiguousarray(np.stack(
            [self.max_hu, self.hv, self.pitch_u, self.pitch_v, self.n_u, self.n_v, self.binary, self.cls,
             self.threshold], axis=1), dtype=np.float64)


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


def conditions(tables: ModuleTables, crossings: dict, momentum: np.ndarray, backend=None) -> np.ndarray:
    """(N, :data:`N_CONDITIONS`) float32 generator conditions of N crossings (kernel ``fastsim_conditions``).

    ``crossings``: ``crossings_for_digitization`` output (mm, GeV); ``momentum``: (N, 3) GeV at the crossing.
    """
    m = np.asarray(crossings["module_index"], np.int64)
    momentum = np.asarray(momentum, np.float64).reshape(-1, 3)
    if len(momentum) != len(m):
        raise InputError(f"fastsim: momentum has {len(momentum)} rows for {len(m)} crossings")
    return np.asarray(kernel("fastsim_conditions", backend)(m, segments(crossings), crossings["edep"], momentum,
                                                           tables.packed, tables.config.electrons_per_gev))


def segments(crossings: dict) -> np.ndarray:
    """(N, 4) local u0, v0, u1, v1 (mm) of digitisation crossings."""
    return np.stack([crossings["u0"], crossings["v0"], crossings["u1"], crossings["v1"]], axis=1).astype(np.float64)


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


def render(tables: ModuleTables, crossings: dict, obs: np.ndarray, backend=None, seg: np.ndarray | None = None) -> dict:
    """Cells and hits of one cluster per crossing from observables ``obs`` (N, :data:`N_OBSERVABLES`).

    Runs the kernel ``fastsim_render`` (see :mod:`.kernels`; ``seg``: :func:`segments` if already made).
    Returns ``cluster`` (crossing row of each kept cluster, in crossing order), ``size`` (its number of
    cells), ``ch0``, ``ch1`` (int32), ``value`` (MIP-equivalent mm; 1 for binary strips; cells grouped
    by cluster), ``charge`` (electrons per cluster) and ``local`` ((K, 2) value-weighted centroid in mm).
    Cells outside the module are dropped, and so are clusters left without cells.
    """
    m = np.asarray(crossings["module_index"], np.int64)
    if obs.shape != (len(m), N_OBSERVABLES):
        raise InputError(f"fastsim: observables must have shape ({len(m)}, {N_OBSERVABLES}), got {obs.shape}")
    electrons = np.asarray(crossings["edep"], np.float64) * tables.config.electrons_per_gev
    if obs[:, 3].any():
        electrons = electrons * np.exp(obs[:, 3].astype(np.float64))
    out = kernel("fastsim_render", backend)(m, segments(crossings) if seg is None else seg, electrons, obs,
                                            tables.packed, tables.config.value_per_electron)
    return dict(zip(("cluster", "size", "ch0", "ch1", "value", "charge", "local"), out))
