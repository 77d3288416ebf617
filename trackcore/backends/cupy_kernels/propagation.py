"""Kernel ``helix_to_plane`` on the GPU: many tracks, each carried to its own plane at once.

Exact helix in a constant field Bz (Tesla) with the Newton plane intersection of
trackcore/helix.hpp, the arithmetic of the compiled transport. Its numpy twin is
:func:`trackcore.backends.cupy_kernels.reference.helix_to_plane_numpy`.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import InputError
from . import inputs, outputs


def helix_to_plane(pos, direction, qop, bz: float, plane_point, plane_normal, s_min: float = 0.0,
                   s_max: float = 1e5, *, runtime):
    """Propagate tracks (``pos`` (N, 3) mm, unit ``direction`` (N, 3), ``qop`` (N,) charge/momentum
    1/GeV) to planes through ``plane_point`` (N, 3) mm with unit ``plane_normal`` (N, 3).

    Returns ``(ok (N,) bool, s (N,) mm, pos (N, 3) mm, direction (N, 3))``: the path length in
    ``(s_min, s_max]`` and the state on the plane; tracks that do not reach it have ok False and NaN.
    """
    rt = runtime
    host, (p, d, q, c, nrm) = inputs(rt, pos, direction, qop, plane_point, plane_normal, dtype=np.float64)
    n = len(q)
    for name, a, shape in (("pos", p, (n, 3)), ("direction", d, (n, 3)), ("qop", q, (n,)),
                           ("plane_point", c, (n, 3)), ("plane_normal", nrm, (n, 3))):
        if a.shape != shape:
            raise InputError(f"helix_to_plane: {name} has shape {a.shape}, expected {shape}")
    if not all(math.isfinite(v) for v in (bz, s_min)) or not s_max > s_min:
        raise InputError(f"helix_to_plane: need finite bz and s_min < s_max, got {bz}, {s_min}, {s_max}")
    ok = rt.xp.empty(n, rt.xp.uint8)
    s = rt.xp.empty(n, rt.xp.float64)
    pos_out, dir_out = rt.xp.empty((n, 3), rt.xp.float64), rt.xp.empty((n, 3), rt.xp.float64)
    rt.launch(rt.function("propagation", "tc_helix_to_plane"), n,
              (np.int64(n), p, d, q, np.float64(bz), c, nrm, np.float64(s_min), np.float64(s_max), ok, s, pos_out,
               dir_out))
    return outputs(rt, host, ok.astype(bool), s, pos_out, dir_out)
