"""Kernel ``seeding_grid`` on the GPU: counting sort of space points into (phi, z) cells.

Same result as ``trackcore.reco.seeding_numpy.seeding_grid_numpy`` and the compiled core: ``order``
lists input indices cell by cell (cell = phi_bin * n_z + z_bin), each cell by (r, index);
``offsets`` (n_phi * n_z + 1) are the cell starts. Units: rad, mm.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from . import inputs, outputs

#: Order of the packed parameters; must match DoubleSlot / IntSlot in trackcore/seeding_math.hpp.
DOUBLE_KEYS = ("inv_phi_bin", "z_lo", "inv_z_bin", "dr_min", "dr_max", "cot_max", "z0_min", "z0_max", "k_bend",
               "d0_max", "phi_scale", "phi_margin", "min_helix_diameter2", "var_r", "var_z", "scatter_per_curv2",
               "scatter_min2", "delta_inv_helix_diameter", "compat_weight", "impact_weight", "z0_weight")
INT_KEYS = ("n_phi", "phi_neighbours", "n_z", "compat_limit", "max_seeds_per_middle", "max_seeds")


def pack_params(rt, params: dict) -> tuple:
    """The derived seeding parameters as (float64[21], int64[6]) arrays on ``rt``, checked as the core does."""
    missing = [k for k in DOUBLE_KEYS + INT_KEYS if k not in params]
    if missing:
        raise InputError(f"seeding params: missing key(s) {', '.join(repr(k) for k in missing)}")
    d = np.array([float(params[k]) for k in DOUBLE_KEYS], np.float64)
    i = np.array([int(params[k]) for k in INT_KEYS], np.int64)
    n_phi, n_z = int(params["n_phi"]), int(params["n_z"])
    if n_phi < 1 or n_z < 1 or n_phi * n_z > (1 << 26):
        raise InputError("seeding params: n_phi and n_z must be >= 1 and n_phi * n_z <= 2^26")
    if min(int(params["max_seeds_per_middle"]), int(params["max_seeds"]), int(params["compat_limit"])) < 0 \
            or int(params["phi_neighbours"]) < 1:
        raise InputError("seeding params: limits must be >= 0 and phi_neighbours >= 1")
    if not (params["dr_min"] > 0) or not (params["dr_max"] >= params["dr_min"]):
        raise InputError("seeding params: need 0 < dr_min <= dr_max")
    return rt.xp.asarray(d), rt.xp.asarray(i)


def check_finite(rt, arrays: dict) -> None:
    """Raise :class:`InputError` naming the first non-finite entry of each named array."""
    for name, a in arrays.items():
        bad = ~rt.xp.isfinite(a)
        if bool(bad.any()):
            i = int(rt.xp.flatnonzero(bad)[0])
            raise InputError(f"{name}[{i}] is not finite ({float(a[i])})")


def grid_on_device(rt, phi, z, r, pd, pi, n_cells: int):
    """(order, offsets) of device arrays ``phi, z, r`` (float64) with packed parameters ``pd, pi``."""
    xp = rt.xp
    n = len(phi)
    cell = xp.empty(n, xp.int64)
    counts = xp.zeros(n_cells, xp.uint64)
    rt.launch(rt.function("grid", "tc_grid_cells"), n, (np.int64(n), phi, z, pd, pi, cell, counts))
    offsets = xp.zeros(n_cells + 1, xp.int64)
    offsets[1:] = xp.cumsum(counts.astype(xp.int64))
    fill = offsets[:-1].astype(xp.uint64)
    order = xp.empty(n, xp.int64)
    rt.launch(rt.function("grid", "tc_grid_scatter"), n, (np.int64(n), cell, fill, order))
    rt.launch(rt.function("grid", "tc_grid_sort"), n_cells, (np.int64(n_cells), offsets, r, order))
    return order, offsets


def seeding_grid(phi, z, r, params: dict, *, runtime):
    """Kernel ``seeding_grid``: (order int64, offsets int64) as the numpy reference."""
    rt = runtime
    host, (phi, z, r) = inputs(rt, phi, z, r, dtype=np.float64)
    n = len(phi)
    for name, a in (("z", z), ("r", r)):
        if a.shape != (n,):
            raise InputError(f"seeding_grid: {name} has shape {a.shape}, expected ({n},) like phi")
    check_finite(rt, {"phi": phi, "z": z, "r": r})
    pd, pi = pack_params(rt, params)
    order, offsets = grid_on_device(rt, phi, z, r, pd, pi, int(params["n_phi"]) * int(params["n_z"]))
    return outputs(rt, host, order, offsets)
