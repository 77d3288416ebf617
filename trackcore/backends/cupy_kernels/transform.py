"""Kernels ``global_to_local`` / ``local_to_global`` on the GPU (trackcore/transform.hpp).

``centres`` (M, 3) mm, ``rotations`` (M, 3, 3) with the local u, v, w axes as columns,
``module_index`` (N,) rows of those, ``points`` (N, 3) mm. Same signatures as the numpy backend.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from . import inputs, outputs


def _run(kernel: str, centres, rotations, module_index, points, runtime):
    rt = runtime
    host_f, (c, rot, p) = inputs(rt, centres, rotations, points, dtype=np.float64)
    host_i, (idx,) = inputs(rt, module_index, dtype=np.int64)
    m, n = len(c), len(idx)
    if c.shape != (m, 3) or rot.shape != (m, 3, 3):
        raise InputError(f"{kernel}: centres must be (M, 3) and rotations (M, 3, 3), got {c.shape} and {rot.shape}")
    if p.shape != (n, 3) or idx.shape != (n,):
        raise InputError(f"{kernel}: points must be (N, 3) and module_index (N,), got {p.shape} and {idx.shape}")
    bad = (idx < 0) | (idx >= m)
    if bool(bad.any()):
        i = int(rt.xp.flatnonzero(bad)[0])
        raise InputError(f"{kernel}: module_index[{i}] = {int(idx[i])} is outside 0..{m - 1}")
    out = rt.xp.empty((n, 3), rt.xp.float64)
    rt.launch(rt.function("transform", f"tc_{kernel}"), n, (np.int64(n), c, rot, idx, p, out))
    return outputs(rt, host_f and host_i, out)


def global_to_local(centres, rotations, module_index, points, *, runtime):
    """Local (u, v, w) mm of global ``points`` on the modules ``module_index``."""
    return _run("global_to_local", centres, rotations, module_index, points, runtime)


def local_to_global(centres, rotations, module_index, points, *, runtime):
    """Global (x, y, z) mm of local ``points`` on the modules ``module_index``."""
    return _run("local_to_global", centres, rotations, module_index, points, runtime)
