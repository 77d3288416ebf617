"""Readable numpy building blocks of the Kalman filter (the reference of csrc/src/kalman.cpp,
navigator.cpp and geometry.cpp): module bin grid, stepper, bound-state transport with the analytic
helix Jacobian, material, the 2-D update and the perigee. Used by :mod:`trackcore.reco.ckf_numpy`."""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

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
    "skip_used_seeds": bool, "skip_used_hits": int, "refine": bool, "rescue_min_measurements": int,
    "threads": int,  # the compiled kernel's worker threads; the reference runs on one
}
CONFIG_DEFAULTS = {
    "chi2_max": 15.0, "max_branches": 2, "max_candidates": 4, "max_holes": 2, "min_measurements": 5, "max_shared": 2,
    "mass": 0.13957, "max_step": 100.0, "max_turn": 0.2, "max_path": 4500.0, "sigma_phi": 0.02, "sigma_theta": 0.02,
    "sigma_qop_rel": 0.25, "edge_tolerance": 1.0, "layer_depth": 30.0, "skip_used_seeds": True, "skip_used_hits": 3,
    "refine": True, "rescue_min_measurements": 0, "threads": 1,
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
        ra, rb = math.sqrt(a[0] * a[0] + a[1] * a[1]), math.sqrt(b[0] * b[0] + b[1] * b[1])
        za, zb = a[2], b[2]
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
            sa = pa[2] if barrel else math.sqrt(pa[0] * pa[0] + pa[1] * pa[1])
            sb = pb[2] if barrel else math.sqrt(pb[0] * pb[0] + pb[1] * pb[1])
            self.candidates(lay, math.atan2(pa[1], pa[0]), sa, math.atan2(pb[1], pb[0]), sb, out)


def grid_geometry(detector: Detector) -> GridGeometry:
    """The reference view of ``detector`` for the CKF (built once per Detector object, then cached)."""
    return detector.cached_view("ckf_grid_geometry", GridGeometry)


# --- stepping (navigator.hpp Stepper) -------------------------------------------------------------
class Stepper:
    """Exact helix in a constant Bz; RK4 with Newton on the RK transport for field maps."""

    def __init__(self, field: Field, scan_fallback: bool = False) -> None:
        self.field, self.rk = field, not field.constant
        self.scan_fallback = scan_fallback  # helix_plane_intersect's scan where Newton fails (the fit)

    def local_bz(self, pos) -> float:
        return self.field.local_bz(pos)

    def advance(self, pos, d, qop: float, s: float):
        if self.rk:
            return rk4_step(pos, d, qop, self.field, s)
        return helix_advance(pos, d, qop * KB * self.field.bz, s)

    def intersect(self, pos, d, qop: float, c, n, s_min: float, s_max: float):
        """(s, pos, dir) where the track meets the plane (c, n) with s in (s_min, s_max], else None."""
        hit = helix_plane_intersect(pos, d, qop * KB * self.local_bz(pos), c, n, s_min - 1.0, s_max + 1.0,
                                    self.scan_fallback)
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


