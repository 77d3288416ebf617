"""Numpy twins of the GPU kernels that have no entry in the numpy kernel table yet.

``helix_to_plane_numpy``, ``rk_to_plane_numpy``, ``kalman_update_numpy``, ``lsh_keys_numpy`` and
``lsh_buckets_numpy`` have the signatures of their GPU versions (without ``runtime``) and repeat the
arithmetic of the shared headers (helix.hpp, field.hpp, kalman_math.hpp, hash_math.hpp) so parity
tests can compare them.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...sim.transport_numpy import KB, Field, helix_plane_intersect, rk4_step
from .lsh import check_lsh_inputs

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
LSH_KEY_SEED = np.uint64(0x243F6A8885A308D3)  # kLshKeySeed in hash_math.hpp


def _tracks_to_planes(pos, direction, qop, plane_point, plane_normal) -> tuple:
    """The inputs as float64 arrays, and the outputs of no crossing: ok False, NaN s, position, direction."""
    arrays = tuple(np.asarray(a, np.float64) for a in (pos, direction, qop, plane_point, plane_normal))
    n = len(arrays[2])
    return (*arrays, (np.zeros(n, bool), np.full(n, np.nan), np.full((n, 3), np.nan), np.full((n, 3), np.nan)))


def helix_to_plane_numpy(pos, direction, qop, bz: float, plane_point, plane_normal, s_min: float = 0.0,
                         s_max: float = 1e5):
    """Numpy twin of :func:`trackcore.backends.cupy_kernels.propagation.helix_to_plane`."""
    pos, d, qop, c, nrm, (ok, s, pos_out, dir_out) = _tracks_to_planes(pos, direction, qop, plane_point, plane_normal)
    for i in range(len(qop)):
        hit = helix_plane_intersect(pos[i].tolist(), d[i].tolist(), float(qop[i]) * KB * bz, c[i].tolist(),
                                    nrm[i].tolist(), s_min, s_max)
        if hit is not None:
            ok[i] = True
            s[i], pos_out[i], dir_out[i] = hit[0], hit[1], hit[2]
    return ok, s, pos_out, dir_out


def rk_to_plane_numpy(pos, direction, qop, field_map, plane_point, plane_normal, s_min: float = 0.0,
                      s_max: float = 1e3):
    """Numpy twin of :func:`trackcore.backends.cupy_kernels.propagation.rk_to_plane`
    (``trackcore::rk_plane_intersect``: helix guess in the starting Bz, Newton on one RK4 step)."""
    constant = isinstance(field_map, (int, float, np.integer, np.floating))
    field = Field(float(field_map) if constant else 0.0, None if constant else field_map)
    pos, d, qop, c, nrm, (ok, s_out, pos_out, dir_out) = _tracks_to_planes(pos, direction, qop, plane_point,
                                                                          plane_normal)
    for i in range(len(qop)):
        p0, d0, q = pos[i].tolist(), d[i].tolist(), float(qop[i])
        ci, ni = c[i].tolist(), nrm[i].tolist()
        hit = helix_plane_intersect(p0, d0, q * KB * field(p0)[2], ci, ni, s_min - 1.0, s_max + 1.0)
        if hit is None:
            continue
        s, at_p, at_d = hit
        for _ in range(8):
            at_p, at_d = rk4_step(p0, d0, q, field, s)
            f = (at_p[0] - ci[0]) * ni[0] + (at_p[1] - ci[1]) * ni[1] + (at_p[2] - ci[2]) * ni[2]
            dn = at_d[0] * ni[0] + at_d[1] * ni[1] + at_d[2] * ni[2]
            if abs(f) < 1e-10 or abs(dn) < 1e-12:
                break
            s -= f / dn
        if s_min < s <= s_max:
            ok[i], s_out[i], pos_out[i], dir_out[i] = True, s, at_p, at_d
    return ok, s_out, pos_out, dir_out


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    phi = phi.copy()
    while np.any(phi > np.pi):
        phi = np.where(phi > np.pi, phi - 2 * np.pi, phi)
    while np.any(phi <= -np.pi):
        phi = np.where(phi <= -np.pi, phi + 2 * np.pi, phi)
    return phi


def kalman_update_numpy(params, cov, meas, var, dry_run: bool = False):
    """Numpy twin of :func:`trackcore.backends.cupy_kernels.kalman.kalman_update` (kalman_math.hpp)."""
    p = np.array(params, np.float64, copy=True)
    C = np.array(cov, np.float64, copy=True)
    m, v = np.asarray(meas, np.float64), np.asarray(var, np.float64)
    r0, r1 = m[:, 0] - p[:, 0], m[:, 1] - p[:, 1]
    s00, s01, s11 = C[:, 0, 0] + v[:, 0], C[:, 0, 1], C[:, 1, 1] + v[:, 1]
    det = s00 * s11 - s01 * s01
    good = det > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        i00, i01, i11 = s11 / det, -s01 / det, s00 / det
    chi2 = np.where(good, r0 * (i00 * r0 + i01 * r1) + r1 * (i01 * r0 + i11 * r1), 1e30)
    if dry_run:
        return p, C, chi2
    k0 = C[:, :, 0] * i00[:, None] + C[:, :, 1] * i01[:, None]
    k1 = C[:, :, 0] * i01[:, None] + C[:, :, 1] * i11[:, None]
    new_p = p + (k0 * r0[:, None] + k1 * r1[:, None])
    new_p[:, 2] = _wrap_phi(new_p[:, 2])
    N = C - (k0[:, :, None] * C[:, None, 0, :] + k1[:, :, None] * C[:, None, 1, :])
    iu = np.triu_indices(5, 1)
    sym = 0.5 * (N[:, iu[1], iu[0]] + N[:, iu[0], iu[1]])
    N[:, iu[0], iu[1]] = sym
    N[:, iu[1], iu[0]] = sym
    p[good], C[good] = new_p[good], N[good]
    return p, C, chi2


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def lsh_keys_numpy(points, projections, offsets, width: float) -> np.ndarray:
    """Numpy twin of :func:`trackcore.backends.cupy_kernels.lsh.lsh_keys`: (T, N) uint64 keys."""
    x, a, b = (np.asarray(v, np.float64) for v in (points, projections, offsets))
    check_lsh_inputs(x, a, b, width)
    for name, v in (("points", x), ("projections", a), ("offsets", b)):
        if not np.isfinite(v).all():
            raise InputError(f"lsh: {name} has a non-finite entry at flat index {int(np.flatnonzero(~np.isfinite(v))[0])}")
    t, k, dim = a.shape
    lim = 4611686018427387904.0
    keys = np.full((t, len(x)), LSH_KEY_SEED, np.uint64)
    for ti in range(t):
        for ki in range(k):
            acc = np.zeros(len(x))
            for d in range(dim):  # index order, as hash_math.hpp: no BLAS reordering
                acc = acc + a[ti, ki, d] * x[:, d]
            q = np.clip(np.floor((acc + b[ti, ki]) / width), -lim, lim).astype(np.int64)
            keys[ti] = _splitmix64(keys[ti] ^ q.view(np.uint64))
    return keys


def lsh_buckets_numpy(points, projections, offsets, width: float):
    """Numpy twin of :func:`trackcore.backends.cupy_kernels.lsh.lsh_buckets`."""
    keys = lsh_keys_numpy(points, projections, offsets, width)
    order = np.argsort(keys, axis=1, kind="stable").astype(np.int64)
    sk = np.take_along_axis(keys, order, axis=1)
    starts = np.ones(keys.shape, bool)
    starts[:, 1:] = sk[:, 1:] != sk[:, :-1]
    return keys, order, starts
