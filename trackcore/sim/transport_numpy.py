"""The ``numpy`` kernel ``transport``: a readable reference of the compiled transport engine.

Same algorithm and arithmetic as ``csrc/src/transport.cpp`` (and the headers it includes), written
one particle at a time with Python floats so the operations, their order and the libm calls are
those of the C++ code: results agree to rounding, with material effects on as well, because the
random numbers come from the same counter-based splitmix64 stream per (seed, particle index).

One deliberate difference: instead of the per-layer (phi, z|r) bin grid of the compiled geometry,
the candidate modules of a step are found by brute force (every module of each layer whose r/z
shell the step's chord overlaps, kept when its bounding sphere comes near the chord). That set
holds every module the step can cross, so a crossing the core's lookup misses shows up as a parity
difference. One such case is known: a chord whose closest approach to the beam line falls inside a
barrel layer while both its ends lie outside (a displaced track cutting through a layer); the core
tests the endpoints' r only (tests/sim/test_transport.py, test_chord_grazing_a_layer_*).

Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..geometry.detector import Detector

KB = 0.299792458e-3  # GeV / (T mm)
MAX_TURN = 0.05  # rad of helix turning per step (TransportConfig::max_turn, fixed in the core)
WORLD_MARGIN = 5.0  # mm beyond the outermost module corner where particles stop
MASK64 = (1 << 64) - 1

# Silicon (csrc/include/trackcore/material.hpp; PDG 2024).
SI_Z_OVER_A, SI_DENSITY, SI_X0_MM, SI_I_GEV = 0.49848, 2.329, 93.70, 173e-9
SI_X0, SI_X1, SI_A, SI_K, SI_C, SI_DELTA0 = 0.2015, 2.8716, 0.1492, 3.2546, 4.4355, 0.14
ELECTRON_MASS, K_BETHE = 0.51099895e-3, 0.307075e-3


# --- random numbers ------------------------------------------------------------------------------
def splitmix64(x: int) -> int:
    """splitmix64 finaliser on unsigned 64-bit integers (wraparound emulated with a mask)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class Stream:
    """Counter-based stream: draw k of particle i depends only on (seed, i, k)."""

    def __init__(self, seed: int, index: int) -> None:
        self.key = splitmix64((seed & MASK64) ^ splitmix64((index + 0x632BE59BD9B4E019) & MASK64))
        self.counter = 0

    def uniform(self) -> float:
        """Uniform in (0, 1) from 53 random bits, never exactly 0."""
        x = splitmix64((self.key + self.counter) & MASK64)
        self.counter += 1
        return (float(x >> 11) + 0.5) * (1.0 / 9007199254740992.0)

    def normal(self) -> float:
        """Standard normal by Box-Muller (one value per two uniforms)."""
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


# --- material ------------------------------------------------------------------------------------
def density_effect_si(betagamma: float) -> float:
    """Sternheimer density correction delta for silicon."""
    x = math.log10(betagamma)
    if x >= SI_X1:
        return 2.0 * 2.302585093 * x - SI_C
    if x >= SI_X0:
        return 2.0 * 2.302585093 * x - SI_C + SI_A * math.pow(SI_X1 - x, SI_K)
    return SI_DELTA0 * math.pow(10.0, 2.0 * (x - SI_X0))


def bethe_bloch_si(p: float, mass: float) -> float:
    """Mean energy loss of a charge-1 particle in silicon, GeV/mm (PDG Eq. 34.5)."""
    bg = p / mass
    g = math.sqrt(1.0 + bg * bg)
    b2 = bg * bg / (g * g)
    me_ratio = ELECTRON_MASS / mass
    wmax = 2.0 * ELECTRON_MASS * bg * bg / (1.0 + 2.0 * g * me_ratio + me_ratio * me_ratio)
    arg = 2.0 * ELECTRON_MASS * bg * bg * wmax / (SI_I_GEV * SI_I_GEV)
    dedx_mass = K_BETHE * SI_Z_OVER_A / b2 * (0.5 * math.log(arg) - b2 - 0.5 * density_effect_si(bg))
    # Below beta*gamma ~ 0.013 the formula (valid down to ~0.05) turns negative: never gain energy.
    return max(dedx_mass, 0.0) * SI_DENSITY * 0.1


def highland_theta0(p: float, mass: float, x_over_x0: float) -> float:
    """Highland width (rad) of the projected scattering angle."""
    if x_over_x0 <= 0:
        return 0.0
    e = math.sqrt(p * p + mass * mass)
    beta = p / e
    return 0.0136 / (beta * p) * math.sqrt(x_over_x0) * (1.0 + 0.038 * math.log(x_over_x0 / (beta * beta)))


def scatter_direction(d: list[float], theta0: float, rng: Stream) -> list[float]:
    """``d`` turned by two Gaussian angles of width theta0 about axes perpendicular to it."""
    if theta0 <= 0:
        return d
    if abs(d[2]) < 0.9:
        n = math.sqrt(d[0] * d[0] + d[1] * d[1])
        u = (-d[1] / n, d[0] / n, 0.0)
    else:
        n = math.sqrt(d[1] * d[1] + d[2] * d[2])
        u = (0.0, d[2] / n, -d[1] / n)
    v = (d[1] * u[2] - d[2] * u[1], d[2] * u[0] - d[0] * u[2], d[0] * u[1] - d[1] * u[0])
    ta = math.tan(theta0 * rng.normal())
    tb = math.tan(theta0 * rng.normal())
    out = [d[i] + ta * u[i] + tb * v[i] for i in range(3)]
    inv = 1.0 / math.sqrt(out[0] * out[0] + out[1] * out[1] + out[2] * out[2])
    return [c * inv for c in out]


def landau_deposit_si(p: float, mass: float, len_mm: float, rng: Stream) -> float:
    """Energy (GeV) deposited in len_mm of silicon: Landau MPV plus a Moyal fluctuation."""
    bg = p / mass
    g = math.sqrt(1.0 + bg * bg)
    b2 = bg * bg / (g * g)
    xi = 0.5 * K_BETHE * SI_Z_OVER_A * SI_DENSITY * (len_mm * 0.1) / b2
    mpv = xi * (math.log(2.0 * ELECTRON_MASS * bg * bg / SI_I_GEV) + math.log(xi / SI_I_GEV) + 0.2 - b2
                - density_effect_si(bg))
    gn = rng.normal()
    dep = mpv + xi * -math.log(gn * gn + 1e-300)
    return dep if dep > 0 else 0.0


# --- field and stepping --------------------------------------------------------------------------
class Field:
    """Constant Bz, or the (r0, dr, nr, z0, dz, nz, Br, Bz) grid map, bilinear, zero outside."""

    def __init__(self, bz: float, field_map: tuple | None) -> None:
        self.constant = field_map is None
        self.bz = float(bz)
        if not self.constant:
            r0, dr, nr, z0, dz, nz, br, bzg = field_map
            self.r0, self.dr, self.nr = float(r0), float(dr), int(nr)
            self.z0, self.dz, self.nz = float(z0), float(dz), int(nz)
            self.br_grid = np.asarray(br, np.float64)
            self.bz_grid = np.asarray(bzg, np.float64)
            if self.br_grid.shape != (self.nr, self.nz) or self.bz_grid.shape != (self.nr, self.nz):
                raise InputError(f"field map Br/Bz have shapes {self.br_grid.shape}/{self.bz_grid.shape}, "
                                 f"expected ({self.nr}, {self.nz})")
            if self.nr < 2 or self.nz < 2 or not (self.dr > 0) or not (self.dz > 0):
                raise InputError("field map needs at least 2x2 points and positive spacing")
            self.br_list, self.bz_list = self.br_grid.tolist(), self.bz_grid.tolist()

    def __call__(self, p) -> tuple[float, float, float]:
        if self.constant:
            return 0.0, 0.0, self.bz
        r = math.sqrt(p[0] * p[0] + p[1] * p[1])
        fi, fj = (r - self.r0) / self.dr, (p[2] - self.z0) / self.dz
        if not (fi >= 0 and fj >= 0 and fi <= self.nr - 1 and fj <= self.nz - 1):
            return 0.0, 0.0, 0.0
        i, j = min(int(fi), self.nr - 2), min(int(fj), self.nz - 2)
        a, c = fi - i, fj - j

        def lerp(g):
            return ((1 - a) * (1 - c) * g[i][j] + a * (1 - c) * g[i + 1][j]
                    + (1 - a) * c * g[i][j + 1] + a * c * g[i + 1][j + 1])

        brv, bz = lerp(self.br_list), lerp(self.bz_list)
        if r > 0:
            return brv * p[0] / r, brv * p[1] / r, bz
        return 0.0, 0.0, bz

    def local_bz(self, pos) -> float:
        return self.bz if self.constant else self(pos)[2]


def helix_advance(pos, d, h: float, s: float) -> tuple[list[float], list[float]]:
    """Exact helix in Bz over path s with curvature h; series near hs = 0 keeps straight lines exact."""
    hs = h * s
    if abs(hs) < 1e-4:
        hs2 = hs * hs
        sn = s * (1.0 - hs2 / 6.0)
        cs1 = s * hs * (0.5 - hs2 / 24.0)
    else:
        sn = math.sin(hs) / h
        cs1 = (1.0 - math.cos(hs)) / h
    c, sh = math.cos(hs), math.sin(hs)
    tx, ty = d[0], d[1]
    return ([pos[0] + tx * sn + ty * cs1, pos[1] + ty * sn - tx * cs1, pos[2] + d[2] * s],
            [tx * c + ty * sh, ty * c - tx * sh, d[2]])


def rk4_step(pos, d, qop: float, field: Field, s: float) -> tuple[list[float], list[float]]:
    """One Runge-Kutta-Nystrom step of d2r/ds2 = qop kB (dir x B); the direction is renormalised."""
    lam = qop * KB

    def accel(p, t):
        b = field(p)
        return (lam * (t[1] * b[2] - t[2] * b[1]), lam * (t[2] * b[0] - t[0] * b[2]),
                lam * (t[0] * b[1] - t[1] * b[0]))

    k1 = accel(pos, d)
    p = [pos[i] + 0.5 * s * d[i] + 0.125 * s * s * k1[i] for i in range(3)]
    k2 = accel(p, [d[i] + 0.5 * s * k1[i] for i in range(3)])
    k3 = accel(p, [d[i] + 0.5 * s * k2[i] for i in range(3)])
    p = [pos[i] + s * d[i] + 0.5 * s * s * k3[i] for i in range(3)]
    k4 = accel(p, [d[i] + s * k3[i] for i in range(3)])
    out_p = [pos[i] + s * d[i] + s * s / 6.0 * (k1[i] + k2[i] + k3[i]) for i in range(3)]
    out_d = [d[i] + s / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(3)]
    inv = 1.0 / math.sqrt(out_d[0] * out_d[0] + out_d[1] * out_d[1] + out_d[2] * out_d[2])
    return out_p, [c * inv for c in out_d]


def _dot_plane(p, c, n) -> float:
    return (p[0] - c[0]) * n[0] + (p[1] - c[1]) * n[1] + (p[2] - c[2]) * n[2]


def helix_plane_scan(pos, d, h: float, c, n, s_min: float, s_max: float):
    """The first crossing of the plane in (s_min, s_max]: scan in steps of at most a quarter turn,
    then bisect the first sign change (the fallback of :func:`helix_plane_intersect`)."""
    def dist(s):
        at_p, at_d = helix_advance(pos, d, h, s)
        return _dot_plane(at_p, c, n)

    ah = abs(h)
    step = 0.25 / ah if ah * 50.0 > 0.25 else 50.0
    a = s_min
    fa = dist(a)
    while a < s_max:
        b = a + step if a + step < s_max else s_max
        fb = dist(b)
        if (fa < 0) != (fb < 0) or fb == 0:
            lo, hi, flo = a, b, fa
            it = 0
            while it < 60 and hi - lo > 1e-9:
                mid = 0.5 * (lo + hi)
                fm = dist(mid)
                if (fm < 0) == (flo < 0) and fm != 0:
                    lo, flo = mid, fm
                else:
                    hi = mid
                it += 1
            if not (s_min < hi <= s_max):
                return None
            at_p, at_d = helix_advance(pos, d, h, hi)
            return hi, at_p, at_d
        a, fa = b, fb
    return None


def helix_plane_intersect(pos, d, h: float, c, n, s_min: float, s_max: float, scan: bool = False):
    """(s, pos, dir) where the helix meets the plane (c, n) with s in (s_min, s_max], else None.

    Newton from the straight-line guess; with ``scan``, where Newton fails or lands outside the
    range (a curling track near its turning radius, almost parallel to the plane),
    :func:`helix_plane_scan` (the fit uses it; the track search does not)."""
    f0 = _dot_plane(pos, c, n)
    d0 = d[0] * n[0] + d[1] * n[1] + d[2] * n[2]
    if abs(d0) < 1e-12:
        return helix_plane_scan(pos, d, h, c, n, s_min, s_max) if scan else None
    s = -f0 / d0
    for it in range(30):
        at_p, at_d = helix_advance(pos, d, h, s)
        f = _dot_plane(at_p, c, n)
        dn = at_d[0] * n[0] + at_d[1] * n[1] + at_d[2] * n[2]
        if abs(f) < 1e-10:
            break
        if abs(dn) < 1e-12 or it == 29:
            return helix_plane_scan(pos, d, h, c, n, s_min, s_max) if scan else None
        s -= f / dn
    if not (s_min < s <= s_max):
        return helix_plane_scan(pos, d, h, c, n, s_min, s_max) if scan else None
    return s, at_p, at_d


class Stepper:
    """Exact helix in a constant field; RK4 (with Newton on RK transport for crossings) otherwise."""

    def __init__(self, field: Field, rk: bool) -> None:
        self.field, self.rk = field, rk

    def advance(self, pos, d, qop: float, s: float):
        if self.rk:
            return rk4_step(pos, d, qop, self.field, s)
        return helix_advance(pos, d, qop * KB * self.field.bz, s)

    def intersect(self, pos, d, qop: float, c, n, s_max: float):
        """(s, pos, dir) of the crossing of plane (c, n) with s in (0, s_max], else None."""
        h = qop * KB * self.field.local_bz(pos)
        hit = helix_plane_intersect(pos, d, h, c, n, -1.0, s_max + 1.0)
        if hit is None:
            return None
        s, at_p, at_d = hit
        if self.rk:
            for _ in range(8):
                at_p, at_d = rk4_step(pos, d, qop, self.field, s)
                f = _dot_plane(at_p, c, n)
                dn = at_d[0] * n[0] + at_d[1] * n[1] + at_d[2] * n[2]
                if abs(f) < 1e-10 or abs(dn) < 1e-12:
                    break
                s -= f / dn
        return (s, at_p, at_d) if 0.0 < s <= s_max else None


# --- geometry ------------------------------------------------------------------------------------
class ReferenceGeometry:
    """Modules as Python lists for scalar access, plus per-layer corner extents (as the core computes them)."""

    def __init__(self, detector: Detector) -> None:
        n = len(detector)
        self.n_layers = len(detector.layers)
        self.module_layer = detector.layer_index(np.arange(n)).astype(np.int64)
        c, rot = detector.centre, detector.rotation.reshape(n, 9)
        self.centre, self.rot = c.tolist(), rot.tolist()
        self.normal = rot[:, [2, 5, 8]].tolist()
        self.hv, self.min_hu, self.max_hu = detector.hv.tolist(), detector.min_hu.tolist(), detector.max_hu.tolist()
        self.half_t = detector.thickness.tolist()
        self.layer_x0_index = self.module_layer.tolist()
        # Corner extents of every module (same formula as Geometry's constructor), then per layer.
        r_lo = np.full(self.n_layers, np.inf)
        r_hi, z_lo, z_hi = np.full(self.n_layers, -np.inf), np.full(self.n_layers, np.inf), np.full(self.n_layers, -np.inf)
        for su in (-1.0, 1.0):
            for sv in (-1.0, 1.0):
                for sw in (-1.0, 1.0):
                    v = sv * detector.hv
                    hw = detector.min_hu + (detector.max_hu - detector.min_hu) * (v + detector.hv) / (2.0 * detector.hv)
                    loc = (su * hw, v, sw * detector.thickness)
                    g = [c[:, k] + rot[:, 3 * k] * loc[0] + rot[:, 3 * k + 1] * loc[1] + rot[:, 3 * k + 2] * loc[2]
                         for k in range(3)]
                    r = np.hypot(g[0], g[1])
                    np.minimum.at(r_lo, self.module_layer, r)
                    np.maximum.at(r_hi, self.module_layer, r)
                    np.minimum.at(z_lo, self.module_layer, g[2])
                    np.maximum.at(z_hi, self.module_layer, g[2])
        self.r_lo, self.r_hi, self.z_lo, self.z_hi = r_lo, r_hi, z_lo, z_hi
        self.world_r = float(r_hi.max())
        self.world_z = float(max(np.abs(z_lo).max(), np.abs(z_hi).max()))
        # Per layer: module rows, centres and bounding-sphere radii for the brute-force search.
        self.layer_rows = [np.arange(lay.module_slice.start, lay.module_slice.stop) for lay in detector.layers]
        self.layer_centre = [c[rows] for rows in self.layer_rows]
        radius = np.sqrt(detector.hv ** 2 + np.maximum(detector.min_hu, detector.max_hu) ** 2 + detector.thickness ** 2)
        self.layer_radius = [radius[rows] for rows in self.layer_rows]

    def candidates(self, a, b, margin: float) -> list[int]:
        """Rows of the modules whose bounding sphere lies within ``margin`` mm of the chord a-b, in
        layers whose r/z extent overlaps the chord's r/z range +- 1 mm.

        The r range includes the chord's closest approach to the z axis when that lies inside the
        step (the core looks at the endpoints only and so misses such a layer)."""
        ra, rb = math.hypot(a[0], a[1]), math.hypot(b[0], b[1])
        rmin, rmax = min(ra, rb) - 1.0, max(ra, rb) + 1.0
        dx, dy = b[0] - a[0], b[1] - a[1]
        t = -(a[0] * dx + a[1] * dy) / (dx * dx + dy * dy) if dx * dx + dy * dy > 0 else 0.0
        if 0.0 < t < 1.0:
            rmin = min(rmin, math.hypot(a[0] + t * dx, a[1] + t * dy) - 1.0)
        zmin, zmax = min(a[2], b[2]) - 1.0, max(a[2], b[2]) + 1.0
        hit = ~((rmax < self.r_lo) | (rmin > self.r_hi) | (zmax < self.z_lo) | (zmin > self.z_hi))
        a_arr = np.array(a)
        ab = np.array(b) - a_arr
        ab2 = float(ab @ ab)
        out = []
        for layer in np.flatnonzero(hit):
            rel = self.layer_centre[layer] - a_arr
            t = np.clip(rel @ ab / ab2, 0.0, 1.0) if ab2 > 0 else np.zeros(len(rel))
            dist = np.linalg.norm(rel - t[:, None] * ab, axis=1)
            out.append(self.layer_rows[layer][dist <= self.layer_radius[layer] + margin])
        return np.concatenate(out).tolist() if out else []

    def to_local(self, m: int, g) -> list[float]:
        c, r = self.centre[m], self.rot[m]
        d0, d1, d2 = g[0] - c[0], g[1] - c[1], g[2] - c[2]
        return [r[0] * d0 + r[3] * d1 + r[6] * d2, r[1] * d0 + r[4] * d1 + r[7] * d2, r[2] * d0 + r[5] * d1 + r[8] * d2]

    def rotate_to_local(self, m: int, d) -> list[float]:
        r = self.rot[m]
        return [r[0] * d[0] + r[3] * d[1] + r[6] * d[2], r[1] * d[0] + r[4] * d[1] + r[7] * d[2],
                r[2] * d[0] + r[5] * d[1] + r[8] * d[2]]

    def inside(self, m: int, loc) -> bool:
        hv, lo, hi = self.hv[m], self.min_hu[m], self.max_hu[m]
        return abs(loc[1]) <= hv and abs(loc[0]) <= lo + (hi - lo) * (loc[1] + hv) / (2.0 * hv)


def reference_geometry(detector: Detector) -> ReferenceGeometry:
    """The reference view of ``detector`` (built once per Detector object, then cached)."""
    return detector.cached_view("reference_geometry", ReferenceGeometry)


# --- the kernel ----------------------------------------------------------------------------------
def _check_inputs(geo: ReferenceGeometry, vertex, momentum, charge, mass, layer_x0, seed):
    """The checks of the compiled binding, as InputError (a ValueError) naming the particle."""
    vertex = np.asarray(vertex, np.float64)
    if vertex.ndim != 2 or vertex.shape[1] != 3:
        raise InputError(f"vertex must have shape (N, 3), got {vertex.shape}")
    n = len(vertex)
    momentum, mass, layer_x0 = (np.asarray(a, np.float64) for a in (momentum, mass, layer_x0))
    charge = np.asarray(charge)
    for name, a, shape in (("momentum", momentum, (n, 3)), ("charge", charge, (n,)), ("mass", mass, (n,)),
                           ("layer_x0", layer_x0, (geo.n_layers,))):
        if a.shape != shape:
            raise InputError(f"{name} must have shape {shape}, got {a.shape}")
    bad = ~(np.isfinite(vertex).all(1) & np.isfinite(momentum).all(1))
    if bad.any():
        raise InputError(f"particle {int(np.flatnonzero(bad)[0])} has a non-finite vertex or momentum")
    bad = (charge == 0) | (np.einsum("ij,ij->i", momentum, momentum) <= 0) | ~(mass > 0)
    if bad.any():
        raise InputError(f"particle {int(np.flatnonzero(bad)[0])} needs charge != 0, |p| > 0 and mass > 0")
    if not (0 <= int(seed) <= MASK64):
        raise InputError(f"seed must be an unsigned 64-bit integer, got {seed}")
    return vertex, momentum, charge.astype(np.int64), mass, layer_x0


def transport_numpy(detector: Detector, vertex, momentum, charge, mass, layer_x0, bz: float, field_map, seed: int,
                    config, threads: int = 1) -> dict:
    """Reference of the ``cpu`` kernel ``transport`` (same arguments, same output dict; one thread,
    whatever ``threads`` says).

    ``vertex`` (N, 3) mm, ``momentum`` (N, 3) GeV, ``charge`` (N,) e, ``mass`` (N,) GeV,
    ``layer_x0`` x/X0 per layer of ``detector``, ``bz`` Tesla (used when ``field_map`` is None),
    ``field_map`` the tuple ``(r0, dr, nr, z0, dz, nz, Br, Bz)`` of ``transport.field_arguments``,
    ``config`` a :class:`~trackcore.sim.transport.TransportConfig`. Returns the crossings in path
    order per particle: ``particle_index``, ``module_index``, ``position`` (mm), ``momentum`` (GeV,
    before that layer's material), ``local`` (u, v, w), ``local_direction``, ``edep`` (GeV), ``path`` (mm).
    """
    geo = reference_geometry(detector)
    vertex, momentum, charge, mass, layer_x0 = _check_inputs(geo, vertex, momentum, charge, mass, layer_x0, seed)
    field = Field(bz, field_map)
    stepper = Stepper(field, bool(config.use_rk) or not field.constant)
    world_r, world_z = geo.world_r + WORLD_MARGIN, geo.world_z + WORLD_MARGIN
    x0_of_layer = layer_x0.tolist()
    loop_fraction = float(getattr(config, "loop_fraction", 0.0))
    rows: dict[str, list] = {k: [] for k in ("particle_index", "module_index", "position", "momentum", "local",
                                              "local_direction", "edep", "path")}
    for ip in range(len(vertex)):
        m_ip = float(mass[ip])
        rng = Stream(int(seed), ip)
        px, py, pz = momentum[ip].tolist()
        p0 = math.sqrt(px * px + py * py + pz * pz)
        pos, d, qop = vertex[ip].tolist(), [px / p0, py / p0, pz / p0], int(charge[ip]) / p0
        travelled, n_cross, last_module = 0.0, 0, -1
        # Loop protection (as ACTS): stop after loop_fraction of a turn at the vertex's curvature.
        path_limit = config.max_path
        if loop_fraction > 0:
            h0 = abs(qop * KB * field.local_bz(pos))
            if h0 > 0:
                path_limit = min(path_limit, loop_fraction * 6.283185307179586 / h0)
        while travelled < path_limit and n_cross < config.max_crossings:
            h = qop * KB * field.local_bz(pos)
            ds = config.max_step
            if abs(h) > 0:
                ds = min(ds, MAX_TURN / abs(h))
            next_pos, next_dir = stepper.advance(pos, d, qop, ds)
            # Margin: the arc strays from its chord by at most the sagitta (<= MAX_TURN ds / 8).
            best = None
            for m in geo.candidates(pos, next_pos, 1.0 + MAX_TURN * ds):
                if m == last_module:
                    continue
                hit = stepper.intersect(pos, d, qop, geo.centre[m], geo.normal[m], ds)
                if hit is None or (best is not None and hit[0] >= best[0]):
                    continue
                if geo.inside(m, geo.to_local(m, hit[1])):
                    best = (hit[0], m, hit[1], hit[2])
            if best is None:
                pos, d = next_pos, next_dir
                travelled += ds
                last_module = -1
            else:
                s, m, at_p, at_d = best
                p = 1.0 / abs(qop)
                loc, dloc = geo.to_local(m, at_p), geo.rotate_to_local(m, at_d)
                cos_inc = max(abs(dloc[2]), 1e-3)
                rows["particle_index"].append(ip)
                rows["module_index"].append(m)
                rows["position"].append(at_p)
                rows["momentum"].append([c * p for c in at_d])
                rows["local"].append(loc)
                rows["local_direction"].append(dloc)
                rows["edep"].append(landau_deposit_si(p, m_ip, 2.0 * geo.half_t[m] / cos_inc, rng))
                rows["path"].append(travelled + s)
                n_cross += 1
                # The whole layer's material (sensor + support) is lumped at the sensor crossing.
                x0 = x0_of_layer[geo.layer_x0_index[m]] / cos_inc
                if config.multiple_scattering:
                    at_d = scatter_direction(at_d, highland_theta0(p, m_ip, x0), rng)
                if config.energy_loss:
                    e = math.sqrt(p * p + m_ip * m_ip) - bethe_bloch_si(p, m_ip) * x0 * SI_X0_MM
                    p_new = math.sqrt(e * e - m_ip * m_ip) if e > m_ip else 0.0
                    if p_new < config.min_p:
                        break
                    qop = (1.0 if qop > 0 else -1.0) / p_new
                pos, d = at_p, at_d
                travelled += s
                last_module = m
            if math.hypot(pos[0], pos[1]) > world_r or abs(pos[2]) > world_z:
                break
    return {
        "particle_index": np.array(rows["particle_index"], np.int64),
        "module_index": np.array(rows["module_index"], np.int64),
        "position": np.array(rows["position"], np.float64).reshape(-1, 3),
        "momentum": np.array(rows["momentum"], np.float64).reshape(-1, 3),
        "local": np.array(rows["local"], np.float64).reshape(-1, 3),
        "local_direction": np.array(rows["local_direction"], np.float64).reshape(-1, 3),
        "edep": np.array(rows["edep"], np.float64),
        "path": np.array(rows["path"], np.float64),
    }
