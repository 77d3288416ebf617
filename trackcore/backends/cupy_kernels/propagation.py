"""Kernels ``helix_to_plane`` and ``rk_to_plane`` on the GPU: many tracks, each carried to its own plane at once.

``helix_to_plane``: exact helix in a constant field Bz (Tesla) with the Newton plane intersection of
trackcore/helix.hpp, the arithmetic of the compiled transport. ``rk_to_plane``: in an (r, z) field
map, the helix crossing in the Bz at the start refined by Newton steps on a Runge-Kutta step
(``trackcore::rk_plane_intersect``, the track search's transport in a field map). Their numpy twins
are :func:`~trackcore.backends.cupy_kernels.reference.helix_to_plane_numpy` and
:func:`~trackcore.backends.cupy_kernels.reference.rk_to_plane_numpy`.
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
    host, (p, d, q, c, nrm) = _track_inputs("helix_to_plane", rt, pos, direction, qop, plane_point, plane_normal,
                                            bz, s_min, s_max)
    n = len(q)
    ok, s, pos_out, dir_out = _outputs(rt, n)
    rt.launch(rt.function("propagation", "tc_helix_to_plane"), n,
              (np.int64(n), p, d, q, np.float64(bz), c, nrm, np.float64(s_min), np.float64(s_max), ok, s, pos_out,
               dir_out))
    return outputs(rt, host, ok.astype(bool), s, pos_out, dir_out)


def rk_to_plane(pos, direction, qop, field_map, plane_point, plane_normal, s_min: float = 0.0, s_max: float = 1e3,
                *, runtime):
    """As :func:`helix_to_plane` in a magnetic field map: ``field_map`` is the tuple
    ``(r0, dr, nr, z0, dz, nz, Br, Bz)`` of :func:`trackcore.sim.transport.field_arguments` (Br, Bz
    (nr, nz) Tesla, bilinear in (r, z), zero outside), or a number, a constant Bz. One Runge-Kutta
    step spans the whole path: meant for the distance between neighbouring layers (s_max 1 m by default).
    """
    rt = runtime
    if isinstance(field_map, (int, float, np.integer, np.floating)):
        bz_const, grid = float(field_map), None
    else:
        try:
            r0, dr, nr, z0, dz, nz, br, bzg = field_map
        except (TypeError, ValueError):
            raise InputError("rk_to_plane: field_map must be a Bz in Tesla or the tuple (r0, dr, nr, z0, dz, nz, Br, "
                             "Bz) of trackcore.sim.transport.field_arguments") from None
        bz_const, grid = 0.0, (float(r0), float(dr), int(nr), float(z0), float(dz), int(nz))
        if not (grid[2] >= 2 and grid[5] >= 2 and grid[1] > 0 and grid[4] > 0
                and all(math.isfinite(v) for v in grid)):
            raise InputError(f"rk_to_plane: field map grid {grid[:6]} needs nr, nz >= 2 and finite, positive spacing")
        _, (br, bzg) = inputs(rt, br, bzg, dtype=np.float64)
        for name, g in (("Br", br), ("Bz", bzg)):
            if g.shape != (grid[2], grid[5]):
                raise InputError(f"rk_to_plane: field map {name} has shape {g.shape}, expected ({grid[2]}, {grid[5]})")
            if not bool(rt.xp.isfinite(g).all()) or float(rt.xp.abs(g).max()) > 1e4:
                raise InputError(f"rk_to_plane: field map {name} must be finite, |B| <= 1e4 T")
    host, (p, d, q, c, nrm) = _track_inputs("rk_to_plane", rt, pos, direction, qop, plane_point, plane_normal,
                                            bz_const, s_min, s_max)
    n = len(q)
    ok, s, pos_out, dir_out = _outputs(rt, n)
    if grid is None:  # no map: the kernel reads no grid (nr = 0), any array stands in for it
        grid, br, bzg = (0.0, 1.0, 0, 0.0, 1.0, 0), q, q
    r0, dr, nr, z0, dz, nz = grid
    rt.launch(rt.function("propagation", "tc_rk_to_plane"), n,
              (np.int64(n), p, d, q, np.float64(bz_const), np.float64(r0), np.float64(dr), np.int32(nr),
               np.float64(z0), np.float64(dz), np.int32(nz), br, bzg, c, nrm, np.float64(s_min), np.float64(s_max),
               ok, s, pos_out, dir_out))
    return outputs(rt, host, ok.astype(bool), s, pos_out, dir_out)


def _track_inputs(kernel: str, rt, pos, direction, qop, plane_point, plane_normal, bz: float, s_min: float,
                  s_max: float):
    """The tracks and planes as contiguous float64 arrays on ``rt``, shapes and limits checked."""
    host, arrays = inputs(rt, pos, direction, qop, plane_point, plane_normal, dtype=np.float64)
    p, d, q, c, nrm = arrays
    n = len(q)
    for name, a, shape in (("pos", p, (n, 3)), ("direction", d, (n, 3)), ("qop", q, (n,)),
                           ("plane_point", c, (n, 3)), ("plane_normal", nrm, (n, 3))):
        if a.shape != shape:
            raise InputError(f"{kernel}: {name} has shape {a.shape}, expected {shape}")
    if not all(math.isfinite(v) for v in (bz, s_min)) or not s_max > s_min:
        raise InputError(f"{kernel}: need finite bz and s_min < s_max, got {bz}, {s_min}, {s_max}")
    return host, arrays


def _outputs(rt, n: int):
    """ok, s, position and direction arrays of n tracks on ``rt``."""
    xp = rt.xp
    return xp.empty(n, xp.uint8), xp.empty(n, xp.float64), xp.empty((n, 3), xp.float64), xp.empty((n, 3), xp.float64)
