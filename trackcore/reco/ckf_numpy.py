"""The ``numpy`` kernel ``ckf``: a readable reference of the compiled combinatorial Kalman filter.

Step for step the algorithm of ``csrc/src/ckf.cpp`` (seed state, beam search layer by layer,
greedy ambiguity resolution, refinement, backward filter to the perigee) with the building blocks
of ``kalman.cpp``, ``navigator.cpp`` and ``geometry.cpp``, one track at a time in Python floats with
the C++ operation order and the same libm calls (``hypot`` too, through ctypes: Python's own
``math.hypot`` rounds differently), so tracks, hit lists and fitted parameters agree to rounding.

The candidate modules of a step come from a port of the compiled per-layer (phi, z|r) bin grid,
not from a brute-force search: the layer-overlap search after a layer's first crossing skips every
module already looked at during the step, so the candidate *set* of the step changes the result.
Where the C++ sorts with ``std::sort`` (not stable) this uses a stable sort: the two differ only
for exactly equal keys (chi2 of two hits, or two trajectories), which real events do not produce.
Kept from the C++ as it is: a module of the layer looked at during the step but crossed only
after the step's end is not looked at again by the overlap search; it comes up as the next layer.

Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from ..errors import InputError
from ..geometry.detector import Detector
from ..sim.transport_numpy import (KB, SI_X0_MM, Field, bethe_bloch_si, helix_advance, helix_plane_intersect,
                                   highland_theta0, rk4_step)

PI = math.pi
TWO_PI = 2.0 * PI
GRID_PAD = 2.0  # mm of slack on every module extent in the bin grid (geometry.cpp kPad)



def _libm_hypot():
    """The C library's hypot (the C++ std::hypot); math.hypot where no C math library can be loaded."""
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6").hypot
    except (OSError, AttributeError):
        return math.hypot  # then parity holds to ~1e-6 relative in the covariance, not bit for bit
    fn.restype, fn.argtypes = ctypes.c_double, (ctypes.c_double, ctypes.c_double)
    return fn


hypot = _libm_hypot()

CONFIG_TYPES = {
    "chi2_max": float, "max_branches": int, "max_candidates": int, "max_holes": int, "min_measurements": int,
    "max_shared": int, "mass": float, "max_step": float, "max_turn": float, "max_path": float, "sigma_phi": float,
    "sigma_theta": float, "sigma_qop_rel": float, "edge_tolerance": float, "layer_depth": float,
    "skip_used_seeds": bool, "skip_used_hits": int, "refine": bool,
}
CONFIG_DEFAULTS = {
    "chi2_max": 15.0, "max_branches": 2, "max_candidates": 4, "max_holes": 2, "min_measurements": 5, "max_shared": 2,
    "mass": 0.13957, "max_step": 50.0, "max_turn": 0.05, "max_path": 3000.0, "sigma_phi": 0.02, "sigma_theta": 0.02,
    "sigma_qop_rel": 0.25, "edge_tolerance": 1.0, "layer_depth": 30.0, "skip_used_seeds": True, "skip_used_hits": 3,
    "refine": True,
}


# --- small helpers (track_params.hpp, geometry.cpp) -----------------------------------------------
def wrap_phi(phi: float) -> float:
    """Into (-pi, pi] (track parameters)."""
    while phi > PI:
        phi -= 2 * PI
    while phi <= -PI:
        phi += 2 * PI
    return phi


def _wrap_grid(phi: float) -> float:
    """Into [-pi, pi) (the bin grid's convention)."""
    while phi < -PI:
        phi += TWO_PI
    while phi >= PI:
        phi -= TWO_PI
    return phi


def _ifloor(x: float) -> int:
    """static_cast<int>(std::floor(x)), with x86's INT_MIN for NaN and out-of-range values (Python raises)."""
    return math.floor(x) if -2147483648.0 <= x < 2147483648.0 else -2147483648


def _phi_bin(phi: float, nphi: int) -> int:
    return min(max(_ifloor((_wrap_grid(phi) + PI) / TWO_PI * nphi), 0), nphi - 1)


def _lround(x: float) -> int:
    """std::lround for x >= 0 (halves away from zero; Python's round() rounds them to even)."""
    i = int(x)
    return i + 1 if x - i >= 0.5 else i


def _asin(x: float) -> float:
    return math.asin(x) if -1.0 <= x <= 1.0 else math.nan  # libm gives NaN, Python raises


def _global(c, r, l0: float, l1: float, l2: float) -> list[float]:
    return [c[0] + r[0] * l0 + r[1] * l1 + r[2] * l2, c[1] + r[3] * l0 + r[4] * l1 + r[5] * l2,
            c[2] + r[6] * l0 + r[7] * l1 + r[8] * l2]


def _local(c, r, g) -> list[float]:
    d0, d1, d2 = g[0] - c[0], g[1] - c[1], g[2] - c[2]
    return [r[0] * d0 + r[3] * d1 + r[6] * d2, r[1] * d0 + r[4] * d1 + r[7] * d2, r[2] * d0 + r[5] * d1 + r[8] * d2]


def _direction(phi: float, theta: float) -> list[float]:
    return [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)]


# --- the compiled Geometry: modules and per-layer bin grids ---------------------------------------
class GridGeometry:
    """Modules as lists plus the per-layer (phi, z|r) bin grids, built exactly as ``Geometry`` does."""

    def __init__(self, detector: Detector) -> None:
        n = len(detector)
        self.centre = detector.centre.tolist()
        self.rot = detector.rotation.reshape(n, 9).tolist()
        self.normal = [[r[2], r[5], r[8]] for r in self.rot]
        self.half_t, self.hv = detector.thickness.tolist(), detector.hv.tolist()
        self.min_hu, self.max_hu = detector.min_hu.tolist(), detector.max_hu.tolist()
        self.layer = detector.layer_index(np.arange(n)).astype(np.int64).tolist()
        self.n_layers = n_layers = len(detector.layers)
        self.kind = [0 if lay.kind == "barrel" else 1 for lay in detector.layers]
        ext = [None] * n
        count = [0] * n_layers
        self.r_lo, self.r_hi = [0.0] * n_layers, [0.0] * n_layers
        self.z_lo, self.z_hi = [0.0] * n_layers, [0.0] * n_layers
        seen = [False] * n_layers
        for i in range(n):
            c, r, lay, hv = self.centre[i], self.rot[i], self.layer[i], self.hv[i]
            phi_c = math.atan2(c[1], c[0])
            lo_phi, hi_phi, q_lo, q_hi = 1e9, -1e9, 1e18, -1e18
            for su in (-1, 1):
                for sv in (-1, 1):
                    for sw in (-1, 1):
                        v = sv * hv
                        g = _global(c, r, su * self.half_width(i, v), v, sw * self.half_t[i])
                        rr, z = hypot(g[0], g[1]), g[2]
                        dphi = _wrap_grid(math.atan2(g[1], g[0]) - phi_c)
                        lo_phi, hi_phi = min(lo_phi, dphi), max(hi_phi, dphi)
                        q = z if self.kind[lay] == 0 else rr
                        q_lo, q_hi = min(q_lo, q), max(q_hi, q)
                        if not seen[lay]:
                            self.r_lo[lay] = self.r_hi[lay] = rr
                            self.z_lo[lay] = self.z_hi[lay] = z
                            seen[lay] = True
                        self.r_lo[lay], self.r_hi[lay] = min(self.r_lo[lay], rr), max(self.r_hi[lay], rr)
                        self.z_lo[lay], self.z_hi[lay] = min(self.z_lo[lay], z), max(self.z_hi[lay], z)
            if hypot(c[0], c[1]) < max(hv, self.max_hu[i]):  # modules around the beam line span all phi
                lo_phi, hi_phi = -PI, PI
            ext[i] = (phi_c, lo_phi, hi_phi, q_lo, q_hi)
            count[lay] += 1
        self.q_lo, self.q_hi, self.nq, self.nphi = [0.0] * n_layers, [0.0] * n_layers, [1] * n_layers, [1] * n_layers
        self.world_r = self.world_z = 0.0
        for lay in range(n_layers):
            if not seen[lay]:
                continue
            barrel = self.kind[lay] == 0
            self.q_lo[lay] = (self.z_lo[lay] if barrel else self.r_lo[lay]) - GRID_PAD
            self.q_hi[lay] = (self.z_hi[lay] if barrel else self.r_hi[lay]) + GRID_PAD
            m = max(count[lay], 1)
            self.nq[lay] = max(1, _lround(math.sqrt(m / 8.0 if barrel else m / 16.0)))
            self.nphi[lay] = max(1, m // self.nq[lay])
            self.world_r = max(self.world_r, self.r_hi[lay])
            self.world_z = max(self.world_z, max(abs(self.z_lo[lay]), abs(self.z_hi[lay])))
        self.bins = [[[] for _ in range(self.nphi[lay] * self.nq[lay])] if seen[lay] else [] for lay in range(n_layers)]
        for i in range(n):  # modules in row order within each bin, as the CSR fill
            lay = self.layer[i]
            phi_c, lo_phi, hi_phi, q_lo, q_hi = ext[i]
            nphi, nq = self.nphi[lay], self.nq[lay]
            q_step = (self.q_hi[lay] - self.q_lo[lay]) / nq
            q0 = max(math.floor((q_lo - GRID_PAD - self.q_lo[lay]) / q_step), 0)
            q1 = min(math.floor((q_hi + GRID_PAD - self.q_lo[lay]) / q_step), nq - 1)
            phi_pad = GRID_PAD / max(1.0, self.r_lo[lay])
            if hi_phi - lo_phi + 2 * phi_pad >= TWO_PI:
                p0, nb = 0, nphi
            else:
                p0 = _phi_bin(phi_c + lo_phi - phi_pad, nphi)
                nb = (_phi_bin(phi_c + hi_phi + phi_pad, nphi) - p0 + nphi) % nphi + 1
            for k in range(nb):
                for q in range(q0, q1 + 1):
                    self.bins[lay][((p0 + k) % nphi) * nq + q].append(i)

    def half_width(self, m: int, v: float) -> float:
        """Local half width in u at local v (trapezoid), mm."""
        return self.min_hu[m] + (self.max_hu[m] - self.min_hu[m]) * (v + self.hv[m]) / (2.0 * self.hv[m])

    def candidates(self, layer: int, phi_a: float, q_a: float, phi_b: float, q_b: float, out: set) -> None:
        """Adds to ``out`` the modules of the bins spanned by (phi_a, q_a)-(phi_b, q_b) (Geometry::candidates)."""
        bins = self.bins[layer]
        if not bins:
            return
        nphi, nq = self.nphi[layer], self.nq[layer]
        q_step = (self.q_hi[layer] - self.q_lo[layer]) / nq
        q0 = max(_ifloor((min(q_a, q_b) - self.q_lo[layer]) / q_step), 0)
        q1 = min(_ifloor((max(q_a, q_b) - self.q_lo[layer]) / q_step), nq - 1)
        if q0 > q1:
            return
        d = _wrap_grid(phi_b - phi_a)
        lo = phi_a if d >= 0 else phi_b
        p0 = _phi_bin(lo, nphi)
        nb = (_phi_bin(lo + abs(d), nphi) - p0 + nphi) % nphi + 1
        for k in range(nb):
            base = ((p0 + k) % nphi) * nq
            for q in range(q0, q1 + 1):
                out.update(bins[base + q])

    def gather(self, a, b) -> set:
        """Modules of every layer whose shell the chord a->b passes (navigator.cpp gather_candidates)."""
        out: set = set()
        dx, dy = b[0] - a[0], b[1] - a[1]
        d2 = dx * dx + dy * dy
        t = -(a[0] * dx + a[1] * dy) / d2 if d2 > 0 else 0.0
        if 0 < t < 1:  # r is monotonic only on either side of the closest approach to the z axis
            m = [a[0] + t * dx, a[1] + t * dy, a[2] + t * (b[2] - a[2])]
            self._gather_monotonic(a, m, out)
            self._gather_monotonic(m, b, out)
        else:
            self._gather_monotonic(a, b, out)
        return out

    def _gather_monotonic(self, a, b, out: set) -> None:
        ra, rb, za, zb = hypot(a[0], a[1]), hypot(b[0], b[1]), a[2], b[2]
        rmin, rmax = min(ra, rb) - 1.0, max(ra, rb) + 1.0
        zmin, zmax = min(za, zb) - 1.0, max(za, zb) + 1.0
        for lay in range(self.n_layers):
            if (not self.bins[lay] or rmax < self.r_lo[lay] or rmin > self.r_hi[lay] or zmax < self.z_lo[lay]
                    or zmin > self.z_hi[lay]):
                continue
            barrel = self.kind[lay] == 0
            fa, fb = 0.0, 1.0
            qa, qb = (ra, rb) if barrel else (za, zb)
            lo, hi = (self.r_lo[lay], self.r_hi[lay]) if barrel else (self.z_lo[lay], self.z_hi[lay])
            if abs(qb - qa) > 1e-12:  # the fraction of the chord inside the layer's shell
                f1, f2 = (lo - qa) / (qb - qa), (hi - qa) / (qb - qa)
                if f1 > f2:
                    f1, f2 = f2, f1
                fa, fb = max(0.0, f1), min(1.0, f2)
                if fa > fb:
                    fa = fb = min(max(0.5 * (f1 + f2), 0.0), 1.0)
            pa = [a[k] + fa * (b[k] - a[k]) for k in range(3)]
            pb = [a[k] + fb * (b[k] - a[k]) for k in range(3)]
            sa = pa[2] if barrel else hypot(pa[0], pa[1])
            sb = pb[2] if barrel else hypot(pb[0], pb[1])
            self.candidates(lay, math.atan2(pa[1], pa[0]), sa, math.atan2(pb[1], pb[0]), sb, out)


def grid_geometry(detector: Detector) -> GridGeometry:
    """The reference view of ``detector`` for the CKF (built once per Detector object, then cached)."""
    cached = getattr(detector, "_ckf_grid_geometry", None)
    if cached is None:
        cached = GridGeometry(detector)
        detector._ckf_grid_geometry = cached
    return cached


# --- stepping (navigator.hpp Stepper) -------------------------------------------------------------
class Stepper:
    """Exact helix in a constant Bz; RK4 with Newton on the RK transport for field maps."""

    def __init__(self, field: Field) -> None:
        self.field, self.rk = field, not field.constant

    def local_bz(self, pos) -> float:
        return self.field.local_bz(pos)

    def advance(self, pos, d, qop: float, s: float):
        if self.rk:
            return rk4_step(pos, d, qop, self.field, s)
        return helix_advance(pos, d, qop * KB * self.field.bz, s)

    def intersect(self, pos, d, qop: float, c, n, s_min: float, s_max: float):
        """(s, pos, dir) where the track meets the plane (c, n) with s in (s_min, s_max], else None."""
        hit = helix_plane_intersect(pos, d, qop * KB * self.local_bz(pos), c, n, s_min - 1.0, s_max + 1.0)
        if hit is None:
            return None
        s, at_p, at_d = hit
        if self.rk:
            for _ in range(8):
                at_p, at_d = rk4_step(pos, d, qop, self.field, s)
                f = (at_p[0] - c[0]) * n[0] + (at_p[1] - c[1]) * n[1] + (at_p[2] - c[2]) * n[2]
                dn = at_d[0] * n[0] + at_d[1] * n[1] + at_d[2] * n[2]
                if abs(f) < 1e-10 or abs(dn) < 1e-12:
                    break
                s -= f / dn
        return (s, at_p, at_d) if s > s_min and s <= s_max else None

    def step_length(self, pos, qop: float, max_step: float, max_turn: float) -> float:
        h = qop * KB * self.local_bz(pos)
        return min(max_step, max_turn / abs(h)) if abs(h) > 0 else max_step


# --- Kalman building blocks (kalman.cpp) ----------------------------------------------------------
class Bound:
    """Bound parameters (loc0, loc1 mm, phi, theta rad, q/p 1/GeV) on a module, 5x5 covariance row-major."""

    __slots__ = ("p", "C", "module")

    def __init__(self, p: list, C: list, module: int) -> None:
        self.p, self.C, self.module = p, C, module

    def copy(self) -> "Bound":
        return Bound(self.p[:], self.C[:], self.module)


def _state(geo: GridGeometry, b: Bound):
    """(pos, dir, qop) of bound parameters on their module."""
    return (_global(geo.centre[b.module], geo.rot[b.module], b.p[0], b.p[1], 0.0), _direction(b.p[2], b.p[3]), b.p[4])


def _to_bound(geo: GridGeometry, m: int, pos, d, qop: float) -> list[float]:
    loc = _local(geo.centre[m], geo.rot[m], pos)
    return [loc[0], loc[1], math.atan2(d[1], d[0]), math.acos(max(-1.0, min(1.0, d[2]))), qop]


def _intersect_module(geo, stepper: Stepper, m: int, pos, d, qop: float, direction: int, max_path: float):
    if direction > 0:
        return stepper.intersect(pos, d, qop, geo.centre[m], geo.normal[m], 1e-9, max_path)
    # Backward: reverse the momentum, go forward, reverse back.
    hit = stepper.intersect(pos, [-d[0], -d[1], -d[2]], -qop, geo.centre[m], geo.normal[m], 1e-9, max_path)
    if hit is None:
        return None
    s, at_p, at_d = hit
    return -s, at_p, [-at_d[0], -at_d[1], -at_d[2]]


def _matmul(A: list, B: list, n: int, m: int, k: int) -> list:
    """(n x k) @ (k x m), nested lists, accumulated from 0 in index order like the C++ loops."""
    out = []
    for i in range(n):
        row = A[i]
        out.append([])
        for j in range(m):
            acc = 0.0
            for q in range(k):
                acc += row[q] * B[q][j]
            out[i].append(acc)
    return out


def sandwich(J: list, C: list) -> list:
    """J C J^T (flat row-major 5x5), symmetrised."""
    T = [0.0] * 25
    for i in range(5):
        for j in range(5):
            acc = 0.0
            for k in range(5):
                acc += J[5 * i + k] * C[5 * k + j]
            T[5 * i + j] = acc
    out = [0.0] * 25
    for i in range(5):
        for j in range(5):
            acc = 0.0
            for k in range(5):
                acc += T[5 * i + k] * J[5 * j + k]
            out[5 * i + j] = acc
    for i in range(5):
        for j in range(i):
            out[5 * i + j] = out[5 * j + i] = 0.5 * (out[5 * i + j] + out[5 * j + i])
    return out


def _fd_step(i: int, p) -> float:
    """Finite-difference step per parameter: loc (mm), angles (rad), q/p (relative)."""
    return 1e-4 if i < 2 else 1e-7 if i < 4 else 1e-6 * abs(p[4]) + 1e-12


def helix_jacobian(geo: GridGeometry, frm: int, to: int, p, d0, at_d, qop: float, s: float, bz: float) -> list:
    """Analytic bound-to-bound Jacobian of the helix in constant Bz (bound -> free, free transport over
    s, path correction onto the target plane, free -> bound), flat 5x5."""
    rf, rt = geo.rot[frm], geo.rot[to]
    B = [[0.0] * 5 for _ in range(7)]
    for k in range(3):
        B[k][0], B[k][1] = rf[3 * k], rf[3 * k + 1]
    sp, cp, st, ct = math.sin(p[2]), math.cos(p[2]), math.sin(p[3]), math.cos(p[3])
    B[3][2], B[4][2] = -st * sp, st * cp
    B[3][3], B[4][3], B[5][3] = ct * cp, ct * sp, -st
    B[6][4] = 1.0
    h = qop * KB * bz
    hs = h * s
    if abs(hs) < 1e-3:
        s2 = s * s
        s3 = s2 * s
        S = s - h * h * s3 / 6.0
        C1 = h * s2 / 2.0 - h * h * h * s2 * s2 / 24.0
        dS = -h * s3 / 3.0 + h * h * h * s3 * s2 / 30.0
        dC1 = s2 / 2.0 - h * h * s2 * s2 / 8.0
    else:
        c, sn = math.cos(hs), math.sin(hs)
        S = sn / h
        C1 = (1.0 - c) / h
        dS = (s * c - S) / h
        dC1 = (s * sn - C1) / h
    c, sn = math.cos(hs), math.sin(hs)
    tx, ty = d0[0], d0[1]
    dh = KB * bz
    T = [[1.0 if i == j else 0.0 for j in range(7)] for i in range(7)]
    T[0][3], T[0][4], T[1][3], T[1][4], T[2][5] = S, C1, -C1, S, s
    T[0][6] = (tx * dS + ty * dC1) * dh
    T[1][6] = (ty * dS - tx * dC1) * dh
    T[3][3], T[3][4], T[4][3], T[4][4], T[5][5] = c, sn, -sn, c, 1.0
    T[3][6] = (-tx * s * sn + ty * s * c) * dh
    T[4][6] = (-ty * s * sn - tx * s * c) * dh
    # Path correction: the transported track is moved along itself back onto the target plane.
    n = geo.normal[to]
    denom = n[0] * at_d[0] + n[1] * at_d[1] + n[2] * at_d[2]
    h_at = qop * KB * bz  # the crossing keeps q/p
    dfds = [at_d[0], at_d[1], at_d[2], h_at * at_d[1], -h_at * at_d[0], 0.0, 0.0]
    g = [(n[0] * T[0][j] + n[1] * T[1][j] + n[2] * T[2][j]) / denom for j in range(7)]
    for i in range(7):
        for j in range(7):
            T[i][j] -= dfds[i] * g[j]
    F = [[0.0] * 7 for _ in range(5)]
    for k in range(3):
        F[0][k], F[1][k] = rt[3 * k], rt[3 * k + 1]
    txy2 = at_d[0] * at_d[0] + at_d[1] * at_d[1]
    F[2][3], F[2][4] = -at_d[1] / txy2, at_d[0] / txy2
    F[3][5] = -1.0 / math.sqrt(max(1.0 - at_d[2] * at_d[2], 1e-300))
    F[4][6] = 1.0
    J = _matmul(F, _matmul(T, B, 7, 5, 7), 5, 5, 7)
    return [J[i][j] for i in range(5) for j in range(5)]


def transport_bound(geo: GridGeometry, stepper: Stepper, b: Bound, target: int, direction: int, max_path: float,
                    numeric: bool = False):
    """(Bound on ``target``, signed path mm, Jacobian) or None when the plane is not met within max_path."""
    pos, d, qop = _state(geo, b)
    hit = _intersect_module(geo, stepper, target, pos, d, qop, direction, max_path)
    if hit is None:
        return None
    s, at_p, at_d = hit
    out_p = _to_bound(geo, target, at_p, at_d, qop)
    if stepper.field.constant and not stepper.rk and not numeric:
        J = helix_jacobian(geo, b.module, target, b.p, d, at_d, qop, s, stepper.field.bz)
    else:  # field maps: finite differences through the same transport
        J = [0.0] * 25
        for i in range(5):
            q = b.p[:]
            h = _fd_step(i, b.p)
            q[i] += h
            qpos, qd, qqop = _state(geo, Bound(q, b.C, b.module))
            # The perturbed track meets the plane near the nominal path length.
            hq = _intersect_module(geo, stepper, target, qpos, qd, qqop, direction, abs(s) * 2 + 10.0)
            if hq is None:
                return None
            pq = _to_bound(geo, target, hq[1], hq[2], qqop)
            for r in range(5):
                dd = pq[r] - out_p[r]
                J[5 * r + i] = (wrap_phi(dd) if r == 2 else dd) / h
    return Bound(out_p, sandwich(J, b.C), target), s, J


def apply_material(geo: GridGeometry, b: Bound, x0: float, mass: float, direction: int) -> None:
    """Highland scattering and mean energy loss (direction -1: restored) of x0 at b's module, in place."""
    if x0 <= 0:
        return
    d, n, C = _direction(b.p[2], b.p[3]), geo.normal[b.module], b.C
    cos_inc = max(abs(d[0] * n[0] + d[1] * n[1] + d[2] * n[2]), 1e-3)
    x = x0 / cos_inc
    p = 1.0 / abs(b.p[4])
    t0 = highland_theta0(p, mass, x)
    sin_t = max(math.sin(b.p[3]), 1e-6)
    C[12] += t0 * t0 / (sin_t * sin_t)
    C[18] += t0 * t0
    e = math.sqrt(p * p + mass * mass)
    de = bethe_bloch_si(p, mass) * x * SI_X0_MM
    e_new = e - de if direction > 0 else e + de
    if e_new <= mass * 1.0001:
        return
    scale = p / math.sqrt(e_new * e_new - mass * mass)  # q/p and its covariance terms scale by p / p_new
    b.p[4] *= scale
    for i in range(5):
        C[20 + i] *= scale
        C[5 * i + 4] *= scale


def kalman_update(b: Bound, mu: float, mv: float, var_u: float, var_v: float, dry_run: bool) -> float:
    """2-D measurement update of b in place (unless dry_run); returns the chi2 increment (1e30: singular)."""
    p, C = b.p, b.C
    r0, r1 = mu - p[0], mv - p[1]
    s00, s01, s11 = C[0] + var_u, C[1], C[6] + var_v
    det = s00 * s11 - s01 * s01
    if not det > 0:
        return 1e30
    i00, i01, i11 = s11 / det, -s01 / det, s00 / det
    chi2 = r0 * (i00 * r0 + i01 * r1) + r1 * (i01 * r0 + i11 * r1)
    if dry_run:
        return chi2
    K = []
    for i in range(5):
        K += [C[5 * i] * i00 + C[5 * i + 1] * i01, C[5 * i] * i01 + C[5 * i + 1] * i11]
    for i in range(5):
        p[i] += K[2 * i] * r0 + K[2 * i + 1] * r1
    p[2] = wrap_phi(p[2])
    N = [C[5 * i + j] - (K[2 * i] * C[j] + K[2 * i + 1] * C[5 + j]) for i in range(5) for j in range(5)]
    for i in range(5):
        for j in range(i):
            N[5 * i + j] = N[5 * j + i] = 0.5 * (N[5 * i + j] + N[5 * j + i])
    b.C = N
    return chi2


def _perigee_path(pos, d, h: float):
    """Path to the point of closest approach to the z axis (Newton on x tx + y ty = 0), or None."""
    s = 0.0
    for _ in range(50):
        p, t = helix_advance(pos, d, h, s)
        g = p[0] * t[0] + p[1] * t[1]
        dg = t[0] * t[0] + t[1] * t[1] + h * (p[0] * t[1] - p[1] * t[0])
        if abs(g) < 1e-11:
            return s
        if abs(dg) < 1e-14:
            return None
        s -= g / dg
    return None


def to_perigee(geo: GridGeometry, stepper: Stepper, b: Bound):
    """(perigee (d0, z0, phi, theta, q/p), covariance, ok); the parameters may be set while ok is False."""
    field = stepper.field

    def perigee_of(bp):
        pos, d, qop = _state(geo, Bound(bp, b.C, b.module))
        h = qop * KB * (field.bz if field.constant else stepper.local_bz(pos))
        s = _perigee_path(pos, d, h)
        if s is None:
            return None
        p, t = helix_advance(pos, d, h, s)
        phi = math.atan2(t[1], t[0])
        return [-p[0] * math.sin(phi) + p[1] * math.cos(phi), p[2], phi, math.acos(max(-1.0, min(1.0, t[2]))), qop]

    per = perigee_of(b.p)
    if per is None:
        return [0.0] * 5, [0.0] * 25, False
    J = [0.0] * 25
    for i in range(5):
        q = b.p[:]
        h = _fd_step(i, b.p)
        q[i] += h
        pq = perigee_of(q)
        if pq is None:
            return per, [0.0] * 25, False
        for r in range(5):
            dd = pq[r] - per[r]
            J[5 * r + i] = (wrap_phi(dd) if r == 2 else dd) / h
    return per, sandwich(J, b.C), True


# --- the combinatorial Kalman filter (ckf.cpp) ----------------------------------------------------
class Trajectory:
    """Steps (module, hit or -1 for a hole, filtered state before material), the state after the last
    module's material, chi2 sum, measurements, consecutive holes, path (mm), eloss direction."""

    __slots__ = ("steps", "state", "chi2", "n_meas", "holes", "path", "eloss")

    def __init__(self) -> None:
        self.steps: list = []
        self.state = Bound([0.0] * 5, [0.0] * 25, -1)
        self.chi2, self.n_meas, self.holes, self.path, self.eloss = 0.0, 0, 0, 0.0, 1

    def copy(self) -> "Trajectory":
        t = Trajectory()
        t.steps, t.state = self.steps[:], self.state  # states are never changed once stored
        t.chi2, t.n_meas, t.holes, t.path, t.eloss = self.chi2, self.n_meas, self.holes, self.path, self.eloss
        return t


class _Ckf:
    """What the C++ Context holds: geometry, stepper, hits (as lists), material, settings."""

    def __init__(self, geo: GridGeometry, field: Field, meas, layer_x0: list, cfg: dict) -> None:
        self.geo, self.stepper, self.cfg = geo, Stepper(field), cfg
        self.module = np.asarray(meas.module_index, np.int64).tolist()
        self.u, self.v, self.var_u, self.var_v = (np.asarray(getattr(meas, k), np.float64).tolist()
                                                  for k in ("u", "v", "var_u", "var_v"))
        self.xyz = np.asarray(meas.xyz, np.float64).reshape(-1, 3).tolist()
        self.x0 = [layer_x0[lay] for lay in geo.layer]  # per module
        self.module_hits: dict[int, list[int]] = {}  # hits of each module in row order
        for i, m in enumerate(self.module):
            self.module_hits.setdefault(m, []).append(i)

    def update(self, b: Bound, h: int, dry_run: bool) -> float:
        return kalman_update(b, self.u[h], self.v[h], self.var_u[h], self.var_v[h], dry_run)

    def material(self, b: Bound, direction: int) -> None:
        apply_material(self.geo, b, self.x0[b.module], self.cfg["mass"], direction)

    def transport(self, b: Bound, target: int, direction: int, max_path: float):
        return transport_bound(self.geo, self.stepper, b, target, direction, max_path)

    def seed_state(self, b: int, m: int, t: int):
        """Bound state at hit b from the circle through b, m, t (signed Menger curvature), or None."""
        pb, pm, pt = self.xyz[b], self.xyz[m], self.xyz[t]
        ax, ay, bx, by = pm[0] - pb[0], pm[1] - pb[1], pt[0] - pb[0], pt[1] - pb[1]
        la, lb, lc = hypot(ax, ay), hypot(bx, by), hypot(bx - ax, by - ay)
        if la < 1e-6 or lb < 1e-6 or lc < 1e-6:
            return None
        kappa = 2.0 * (ax * by - ay * bx) / (la * lb * lc)  # > 0: turns counter-clockwise
        k_abs = max(abs(kappa), 1e-7)
        phi = math.atan2(ay, ax) - _asin(min(1.0, la * kappa / 2.0))
        arc = 2.0 * _asin(min(1.0, lb * k_abs / 2.0)) / k_abs
        theta = math.atan2(arc, pt[2] - pb[2])
        field = self.stepper.field
        bz = field.bz if field.constant else 2.0
        q = -1 if (kappa > 0) == (bz > 0) else 1  # Bz > 0 bends positive charges clockwise
        p = KB * abs(bz) / k_abs / math.sin(theta)
        out = Bound([self.u[b], self.v[b], phi, theta, q / p], [0.0] * 25, self.module[b])
        out.C[0], out.C[6] = self.var_u[b], self.var_v[b]
        sig_phi, sig_theta = self.cfg["sigma_phi"], self.cfg["sigma_theta"]
        out.C[12], out.C[18] = sig_phi * sig_phi, sig_theta * sig_theta
        # Sagitta error of the short lever arm: sigma(1/R) ~ 8 sigma / L^2, added to the relative q/p error.
        sig_hit = math.sqrt(max(self.var_u[m], 1e-6))
        sig_curv = 8.0 * sig_hit / (lb * lb) * math.sin(theta) / (KB * abs(bz))
        rel = self.cfg["sigma_qop_rel"] * out.p[4]
        out.C[24] = rel * rel + sig_curv * sig_curv  # std::pow(x, 2) compiles to x * x
        return out

    def add_measurement(self, tr: Trajectory, filtered: Bound, hit: int, chi2: float) -> None:
        tr.steps.append((filtered.module, hit, filtered))
        tr.chi2 += chi2
        tr.n_meas += 1
        tr.holes = 0
        tr.state = filtered.copy()
        self.material(tr.state, tr.eloss)

    def start_from_seed(self, s) -> Trajectory | None:
        st = self.seed_state(s[0], s[1], s[2])
        if st is None:
            return None
        tr = Trajectory()
        self.add_measurement(tr, st, s[0], 0.0)
        for k in (1, 2):
            m = self.module[s[k]]
            if m == tr.state.module:
                return None
            res = self.transport(tr.state, m, +1, 2000.0)
            if res is None:
                return None
            pred, path, _ = res
            chi2 = self.update(pred, s[k], False)
            tr.path += path
            self.add_measurement(tr, pred, s[k], chi2)
        return tr

    def _crossings(self, pos, d, qop, end, cand, seen: set, current: int, layer: int, s_max: float, walked: float,
                   h_abs: float, out: list) -> None:
        """Appends (walked + s, module) for the modules of cand (not yet seen) crossed within s_max."""
        geo, tol = self.geo, self.cfg["edge_tolerance"]
        margin = s_max * s_max * h_abs / 8.0 + 0.01  # the arc stays within its sagitta of the chord
        for m in cand:
            if m in seen or m == current or (layer >= 0 and geo.layer[m] != layer):
                continue
            seen.add(m)
            c, n = geo.centre[m], geo.normal[m]
            fa = (pos[0] - c[0]) * n[0] + (pos[1] - c[1]) * n[1] + (pos[2] - c[2]) * n[2]
            fb = (end[0] - c[0]) * n[0] + (end[1] - c[1]) * n[1] + (end[2] - c[2]) * n[2]
            if (fa > margin and fb > margin) or (fa < -margin and fb < -margin):
                continue  # both chord ends on one side of the plane: the arc cannot cross it
            hit = self.stepper.intersect(pos, d, qop, c, n, 1e-9, s_max)
            if hit is None:
                continue
            loc = _local(c, geo.rot[m], hit[1])
            if abs(loc[1]) > geo.hv[m] + tol or abs(loc[0]) > geo.half_width(m, loc[1]) + tol:
                continue
            out.append((walked + hit[0], m))

    def next_layer(self, tr: Trajectory):
        """Modules of the next layer crossed from tr.state as [(path estimate, module)], sorted; None: it leaves."""
        geo, cfg, stepper = self.geo, self.cfg, self.stepper
        cur = tr.state.module
        pos, d, qop = _state(geo, tr.state)
        world_r, world_z = geo.world_r + 5.0, geo.world_z + 5.0
        walked = 0.0
        while tr.path + walked < cfg["max_path"]:
            ds = stepper.step_length(pos, qop, cfg["max_step"], cfg["max_turn"])
            nxt_p, nxt_d = stepper.advance(pos, d, qop, ds)
            # Sets, not lists: which modules are looked at matters (the overlap search skips them), not their order.
            seen: set = set()
            h_abs = abs(qop * KB * stepper.local_bz(pos))
            crossed: list = []
            self._crossings(pos, d, qop, nxt_p, geo.gather(pos, nxt_p), seen, cur, -1, ds, walked, h_abs, crossed)
            if crossed:
                crossed.sort()
                layer = geo.layer[crossed[0][1]]
                # Overlapping modules of the same layer may be crossed just after the step's end.
                reach = crossed[0][0] - walked + cfg["layer_depth"]
                if reach > ds:
                    ext_p, _ = stepper.advance(pos, d, qop, reach)
                    self._crossings(pos, d, qop, ext_p, geo.gather(pos, ext_p), seen, cur, layer, reach, walked, h_abs,
                                    crossed)
                    crossed.sort()
                return [c for c in crossed if geo.layer[c[1]] == layer]
            pos, d = nxt_p, nxt_d
            walked += ds
            if hypot(pos[0], pos[1]) > world_r or abs(pos[2]) > world_z:
                return None
        return None

    def extend(self, tr: Trajectory, children: list, finished: list, max_branches: int) -> None:
        """Extends tr by one layer: children branch on compatible hits, or one child takes a hole."""
        cfg = self.cfg
        crossed = self.next_layer(tr)
        if crossed is None:
            finished.append(tr)
            return
        options = []  # (chi2, hit, predicted state, path)
        hole = None
        for s_est, m in crossed:
            res = self.transport(tr.state, m, +1, s_est + 100.0)
            if res is None:
                continue
            pred, s, _ = res
            if hole is None:
                hole = (pred, s)
            for h in self.module_hits.get(m, ()):
                chi2 = self.update(pred, h, True)  # dry run: pred unchanged
                if chi2 < cfg["chi2_max"]:
                    options.append((chi2, h, pred, s))
        if hole is None:
            finished.append(tr)
            return
        options.sort(key=lambda o: o[0])
        # Each branch takes one hit, then the best compatible hit on every other module of the layer
        # that the track crosses too (overlapping modules give a particle two hits in one layer).
        taken: list = []
        n_take = 0
        for o in options:
            if n_take >= max_branches:
                break
            if o[1] in taken:
                continue
            seq = [o]
            for _, m in crossed:
                if m == o[2].module:
                    continue
                best = next((x for x in options if x[2].module == m), None)  # sorted: the first is the best
                if best is not None:
                    seq.append(best)
            seq.sort(key=lambda x: x[3])
            child = tr.copy()
            first = True
            for x in seq:
                if first:
                    st, s = x[2].copy(), x[3]
                else:
                    res = self.transport(child.state, x[2].module, +1, 200.0)
                    if res is None:
                        continue
                    st, s, _ = res
                h = x[1]
                chi2 = self.update(st, h, first)
                if not first and chi2 >= cfg["chi2_max"]:
                    continue
                if first:
                    self.update(st, h, False)
                child.path += s
                self.add_measurement(child, st, h, chi2)
                taken.append(h)
                first = False
            children.append(child)
            n_take += 1
        if n_take == 0:
            pred, s = hole
            child = tr.copy()
            child.steps.append((pred.module, -1, pred))
            child.state = pred.copy()
            self.material(child.state, child.eloss)
            child.path += s
            child.holes += 1
            if child.holes > cfg["max_holes"]:
                finished.append(tr)
            else:
                children.append(child)

    def backward_filter(self, tr: Trajectory):
        """(state at the first hit carrying every hit's information, chi2, measurements), or None.

        Filters from the last measured step (covariance inflated) back to the first."""
        steps = list(tr.steps)
        while steps and steps[-1][1] < 0:
            steps.pop()
        if not steps:
            return None
        st = steps[-1][2].copy()
        st.C = [c * 100.0 for c in st.C]
        chi2, n_meas = 0.0, 0
        for k in range(len(steps) - 1, -1, -1):
            module, hit, _ = steps[k]
            if k != len(steps) - 1:
                res = self.transport(st, module, -1, 3000.0)
                if res is None:
                    return None
                st = res[0]
                # The material lumped at this module lies between its hit and the next one outward.
                self.material(st, -tr.eloss)
            if hit >= 0:
                chi2 += self.update(st, hit, False)
                n_meas += 1
        return st, chi2, n_meas

    def follow(self, tr: Trajectory) -> Trajectory:
        """Follows a trajectory greedily (one branch) until it stops; trailing holes dropped."""
        finished: list = []
        for _ in range(80):
            children: list = []
            self.extend(tr, children, finished, 1)
            if not children:
                break
            tr = children[0]
        if finished:
            tr = finished[-1]
        tr = tr.copy()
        while tr.steps and tr.steps[-1][1] < 0:
            tr.steps.pop()
        return tr

    def refine(self, best: Trajectory) -> Trajectory:
        """Collects the hits inward of the seed, then re-follows the track outward from its innermost hit."""
        res = self.backward_filter(best)
        if res is None:
            return best
        first = res[0]
        first_hit = next((h for _, h, _ in best.steps if h >= 0), -1)
        inward = Trajectory()
        inward.eloss = -1
        inward.state = reversed_state(first)
        inward = self.follow(inward)
        start, start_hit = first.copy(), first_hit
        if inward.steps:
            start, start_hit = reversed_state(inward.steps[-1][2]), inward.steps[-1][1]
        start.C = [c * 10.0 for c in start.C]  # it already holds these hits' information
        fwd = Trajectory()
        self.add_measurement(fwd, start, start_hit, 0.0)
        fwd = self.follow(fwd)
        return fwd if fwd.n_meas >= best.n_meas else best

    def smooth_to_perigee(self, tr: Trajectory) -> tuple:
        """(perigee, covariance, chi2, ndf, fitted) from the backward filter of tr."""
        res = self.backward_filter(tr)
        if res is None:
            return [0.0] * 5, [0.0] * 25, 0.0, 0, False
        first, chi2, n_meas = res
        per, cov, ok = to_perigee(self.geo, self.stepper, first)
        return per, cov, chi2, 2 * n_meas - 5, ok


def reversed_state(b: Bound) -> Bound:
    """The same track seen by a particle of opposite charge flying the other way."""
    p = [b.p[0], b.p[1], wrap_phi(b.p[2] + PI), PI - b.p[3], -b.p[4]]
    # Jacobian diag(1, 1, 1, -1, -1): flip the covariance terms between {theta, q/p} and the rest.
    C = [-b.C[5 * i + j] if (i >= 3) != (j >= 3) else b.C[5 * i + j] for i in range(5) for j in range(5)]
    return Bound(p, C, b.module)


def _better(a: Trajectory, b: Trajectory) -> bool:
    return a.n_meas > b.n_meas if a.n_meas != b.n_meas else a.chi2 < b.chi2


def _better_key(t: Trajectory) -> tuple:
    return (-t.n_meas, t.chi2)


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
    order = sorted(range(len(found)), key=lambda k: (-found[k].n_meas, found[k].chi2 / max(1, 2 * found[k].n_meas - 5)))
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
        tr = ctx.refine(found[idx]) if cfg["refine"] else found[idx]
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
            step = ctx.transport(tr.state, m, +1, 3000.0)
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
    stats = {"seeds_used": 0, "seeds_skipped": 0, "candidates": 0, "tracks_before_ambiguity": 0}
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
