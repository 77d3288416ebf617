"""The numpy reference of the space-point grid and of triplet seeding (kernels of the ``numpy`` backend).

Readable rather than fast: one Python iteration per middle space point, all of its bottom x top
pairs at once. It searches more widely than the compiled kernel (every z bin of all the phi
neighbours; every bottom/top pair instead of a cot-theta window) and applies the same cuts with
the same floating-point operations, so the two must return the same seeds in the same order; the
parity tests thereby also check that the compiled search windows lose nothing.

Units: mm, rad; ``params`` is the dict of :func:`trackcore.reco.seeding.derived_parameters`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: c in GeV / (T mm): pT = C_LIGHT * B * R.
C_LIGHT = 0.299792458e-3


@dataclass
class SpacePointGrid:
    """Space points binned in (phi, z): ``order`` lists input indices cell by cell (each cell by r,
    then index), cell ``c = phi_bin * n_z + z_bin`` holds ``order[offsets[c]:offsets[c + 1]]``."""

    n_phi: int
    phi_neighbours: int  # bins on each side of a middle's phi bin that hold all its partners
    n_z: int
    inv_phi_bin: float  # bins per rad
    z_lo: float  # mm
    inv_z_bin: float  # bins per mm
    order: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, phi: np.ndarray, z: np.ndarray, r: np.ndarray, params: dict) -> "SpacePointGrid":
        """Counting sort into cells (bincount + cumulative sum), cells ordered by (r, index)."""
        g = cls(int(params["n_phi"]), int(params["phi_neighbours"]), int(params["n_z"]), float(params["inv_phi_bin"]), float(params["z_lo"]),
                float(params["inv_z_bin"]), np.zeros(0, np.int64), np.zeros(1, np.int64))
        cell = g.cell(phi, z)
        counts = np.bincount(cell, minlength=g.n_phi * g.n_z)
        g.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        g.order = np.lexsort((np.arange(len(r)), r, cell)).astype(np.int64)
        return g

    def phi_bin(self, phi) -> np.ndarray:
        b = np.floor((np.asarray(phi, np.float64) + np.pi) * self.inv_phi_bin)
        return np.clip(b, 0, self.n_phi - 1).astype(np.int64)

    def z_bin(self, z) -> np.ndarray:
        b = np.floor((np.asarray(z, np.float64) - self.z_lo) * self.inv_z_bin)
        return np.clip(b, 0, self.n_z - 1).astype(np.int64)

    def cell(self, phi, z) -> np.ndarray:
        return self.phi_bin(phi) * self.n_z + self.z_bin(z)

    def neighbour_phi_bins(self, phi_bin: int) -> list[int]:
        """The phi bin and ``phi_neighbours`` bins each side (wrapping at +-pi), each bin once."""
        k = self.phi_neighbours
        if 2 * k + 1 >= self.n_phi:
            return list(range(self.n_phi))
        return [(phi_bin + d) % self.n_phi for d in range(-k, k + 1)]

    def points(self, phi_bins, z_bin_lo: int = 0, z_bin_hi: int | None = None) -> np.ndarray:
        """Input indices in the given phi bins and the z bins ``z_bin_lo..z_bin_hi`` (inclusive)."""
        z_bin_hi = self.n_z - 1 if z_bin_hi is None else z_bin_hi
        parts = [self.order[self.offsets[b * self.n_z + z_bin_lo]:self.offsets[b * self.n_z + z_bin_hi + 1]]
                 for b in phi_bins]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def seeding_grid_numpy(phi, z, r, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ``seeding_grid``: (order, offsets) of :class:`SpacePointGrid`."""
    g = SpacePointGrid.build(np.asarray(phi, np.float64), np.asarray(z, np.float64), np.asarray(r, np.float64), params)
    return g.order, g.offsets


def _wrap(d: np.ndarray) -> np.ndarray:
    return np.where(d > np.pi, d - 2 * np.pi, np.where(d < -np.pi, d + 2 * np.pi, d))


def _doublets(m: int, side: int, cand: np.ndarray, sp: dict, p: dict) -> dict:
    """Bottom (side -1) or top (+1) partners of middle ``m`` among ``cand``, with their conformal terms."""
    x, y, z, r, phi, layer = (sp[k] for k in ("x", "y", "z", "r", "phi", "layer"))
    xm, ym, zm, rm = x[m], y[m], z[m], r[m]
    o = cand[layer[cand] != layer[m]]
    dr = rm - r[o] if side < 0 else r[o] - rm
    keep = (dr >= p["dr_min"]) & (dr <= p["dr_max"])
    o, dr = o[keep], dr[keep]
    cot = (zm - z[o]) / dr if side < 0 else (z[o] - zm) / dr
    z0 = zm - rm * cot
    # The phi window: min-pT bending between the two radii plus the d0 term (see seeding.py).
    inner, outer = (o, m) if side < 0 else (m, o)
    window = p["phi_scale"] * (dr * p["k_bend"] * sp["bend"][outer]
                               + p["d0_max"] * (sp["inv_r"][inner] - sp["inv_r"][outer])) + p["phi_margin"]
    keep = (~(np.abs(cot) > p["cot_max"]) & ~((z0 < p["z0_min"]) | (z0 > p["z0_max"]))
            & ~(np.abs(_wrap(phi[o] - phi[m])) > window))
    o, z0 = o[keep], z0[keep]
    # Conformal transform about the middle, in the middle's radial frame (as ACTS).
    cos_m, sin_m = xm / rm, ym / rm
    dx, dy, dz = x[o] - xm, y[o] - ym, z[o] - zm
    xn = dx * cos_m + dy * sin_m
    yn = dy * cos_m - dx * sin_m
    inv_d2 = 1.0 / (xn * xn + yn * yn)
    inv_d = np.sqrt(inv_d2)
    cotc = -(dz * inv_d) if side < 0 else dz * inv_d
    err = ((p["var_z"] + p["var_z"]) + cotc * cotc * (p["var_r"] + p["var_r"])) * inv_d2
    return {"index": o, "layer": layer[o], "cot": cotc, "err": err, "u": xn * inv_d2, "v": yn * inv_d2,
            "inv_d": inv_d, "z0": z0}


def _triplets(m: int, b: dict, t: dict, rm: float, p: dict):
    """All bottom x top pairs of one middle through the triplet cuts: (bottom row, top row, curv, impact)."""
    bc, tc = b["cot"][:, None], t["cot"][None, :]
    dcot = bc - tc
    dcot2 = dcot * dcot
    error2 = t["err"][None, :] + b["err"][:, None] + 2.0 * (bc * tc * p["var_r"] + p["var_z"]) \
        * b["inv_d"][:, None] * t["inv_d"][None, :]
    isin2 = 1.0 + bc * tc
    du = t["u"][None, :] - b["u"][:, None]
    ok = ~(dcot2 > error2 + p["scatter_min2"] * isin2) & (du != 0.0)
    a = (t["v"][None, :] - b["v"][:, None]) / np.where(du != 0.0, du, 1.0)
    s2 = 1.0 + a * a
    bb = b["v"][:, None] - a * b["u"][:, None]
    b2 = bb * bb
    ok &= ~(s2 < b2 * p["min_helix_diameter2"])  # pT >= min pT
    ihd2 = b2 / s2
    ok &= ~(dcot2 > error2 + ihd2 * p["scatter_per_curv2"] * isin2)
    impact = np.abs((a - bb * rm) * rm)
    ok &= ~(impact > p["d0_max"])
    bi, ti = np.nonzero(ok)
    return bi, ti, bb[bi, ti] / np.sqrt(s2[bi, ti]), impact[bi, ti]


def _compatible_layers(bi: np.ndarray, layer: np.ndarray, curv: np.ndarray, p: dict) -> np.ndarray:
    """Per triplet: distinct other-layer tops of the same bottom with a compatible curvature, capped."""
    n = len(bi)
    pair = ((bi[:, None] == bi[None, :]) & (layer[:, None] != layer[None, :])
            & (np.abs(curv[:, None] - curv[None, :]) < p["delta_inv_helix_diameter"]))
    i, j = np.nonzero(pair)
    distinct = np.unique(np.stack([i, layer[j]], axis=1), axis=0) if len(i) else np.zeros((0, 2), np.int64)
    counts = np.bincount(distinct[:, 0], minlength=n) if len(distinct) else np.zeros(n, np.int64)
    return np.minimum(counts, int(p["compat_limit"])).astype(np.float64)


def estimate_parameters_numpy(x, y, z, hits, bz: float, xp=np) -> tuple:
    """(pt GeV, charge, phi rad, theta rad, z0 mm, d0 mm, cot theta) of triplets ``hits`` (N, 3 rows of
    x, y, z in mm) from their circle in x-y and the z slope along its arc; charge from the bending
    sense under ``bz`` (T). The reference of the compiled seedmath::estimate_seed; ``xp`` is numpy or
    CuPy (the ``cupy`` kernel runs this on the device)."""
    b, m, t = (xp.stack([x[hits[:, k]], y[hits[:, k]]], axis=1) for k in range(3))
    mb, tb = m - b, t - b
    cross = mb[:, 0] * tb[:, 1] - mb[:, 1] * tb[:, 0]  # > 0: counter-clockwise b -> m -> t
    d = 2.0 * xp.where(cross == 0.0, 1e-12, cross)  # collinear: a huge circle, not a division by zero
    mb2, tb2 = mb[:, 0] * mb[:, 0] + mb[:, 1] * mb[:, 1], tb[:, 0] * tb[:, 0] + tb[:, 1] * tb[:, 1]
    centre = b + xp.stack([(tb[:, 1] * mb2 - mb[:, 1] * tb2) / d, (mb[:, 0] * tb2 - tb[:, 0] * mb2) / d], axis=1)
    radius = xp.hypot(b[:, 0] - centre[:, 0], b[:, 1] - centre[:, 1])
    sense = xp.where(cross >= 0.0, 1.0, -1.0)  # +1 counter-clockwise
    # Under Bz > 0 a positive particle turns clockwise.
    charge = (-sense * float(np.sign(bz))).astype(np.int32)

    def tangent(point):  # unit direction of motion at a point on the circle
        n = (point - centre) / radius[:, None]
        return sense[:, None] * xp.stack([-n[:, 1], n[:, 0]], axis=1)

    def arc(p, q):  # x-y path length between two points of the circle (shorter arc)
        s = xp.hypot(q[:, 0] - p[:, 0], q[:, 1] - p[:, 1]) / (2.0 * radius)
        return 2.0 * radius * xp.arcsin(xp.clip(s, 0.0, 1.0))

    z_b, z_t = z[hits[:, 0]], z[hits[:, 2]]
    cot = (z_t - z_b) / arc(b, t)
    dir_b = tangent(b)
    dist = xp.hypot(centre[:, 0], centre[:, 1])
    pca = centre * (1.0 - radius / xp.where(dist == 0.0, 1e-12, dist))[:, None]
    dir_p = tangent(pca)
    d0 = -pca[:, 0] * dir_p[:, 1] + pca[:, 1] * dir_p[:, 0]
    along = b - pca
    ahead = xp.sign(along[:, 0] * dir_p[:, 0] + along[:, 1] * dir_p[:, 1])  # bottom after the PCA along the track
    z0 = z_b - cot * ahead * arc(pca, b)
    return (C_LIGHT * abs(bz) * radius, charge, xp.arctan2(dir_b[:, 1], dir_b[:, 0]), xp.arctan2(1.0, cot), z0,
            d0, cot)


def _with_parameters(hits, w, x, y, z, bz):
    if bz is None:
        return hits, w
    est = estimate_parameters_numpy(np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(z, np.float64),
                                    hits, float(bz))
    return hits, w, np.stack([np.asarray(c, np.float64) for c in est], axis=1).reshape(-1, 7)


def find_seeds_numpy(x, y, z, r, phi, layer, params: dict, bz: float | None = None, middle=None) -> tuple:
    """Kernel ``find_seeds``: ((N, 3) int64 bottom/middle/top input indices, weight), best weight first
    (ties by middle, bottom, top); given ``bz`` (T) also the (N, 7) float64 track parameters of
    :func:`estimate_parameters_numpy` (charge as a float column). ``middle``: N bools, the points that
    may be the middle of a seed (None: all)."""
    if bz is not None and not (np.isfinite(bz) and bz != 0):
        raise ValueError("find_seeds: bz must be finite and non-zero (T)")
    sp = {k: np.asarray(v, np.float64) for k, v in dict(x=x, y=y, z=z, r=r, phi=phi).items()}
    sp["layer"] = np.asarray(layer, np.int64)
    p = params
    n = len(sp["x"])
    if n == 0:
        return _with_parameters(np.zeros((0, 3), np.int64), np.zeros(0), sp["x"], sp["y"], sp["z"], bz)
    grid = SpacePointGrid.build(sp["phi"], sp["z"], sp["r"], p)
    sp["inv_r"] = 1.0 / sp["r"]
    kr = p["k_bend"] * sp["r"]
    with np.errstate(divide="ignore", invalid="ignore"):
        sp["bend"] = np.where(kr < 1.0, 1.0 / np.sqrt(1.0 - kr * kr), np.inf)
    k_max = int(p["max_seeds_per_middle"])
    if middle is not None:
        middle = np.asarray(middle, bool)
        if middle.shape != (n,):
            raise ValueError(f"find_seeds: middle must be a 1-D array of {n} flags like x, got shape {middle.shape}")
    out_hits, out_w = [], []
    for m in range(n):
        if middle is not None and not middle[m]:
            continue
        cand = grid.points(grid.neighbour_phi_bins(int(grid.phi_bin(sp["phi"][m]))))
        b = _doublets(m, -1, cand, sp, p)
        if len(b["index"]) == 0:
            continue
        t = _doublets(m, +1, cand, sp, p)
        if len(t["index"]) == 0:
            continue
        bi, ti, curv, impact = _triplets(m, b, t, sp["r"][m], p)
        if len(bi) == 0:
            continue
        nc = _compatible_layers(bi, t["layer"][ti], curv, p)
        w = p["compat_weight"] * nc - p["impact_weight"] * impact - p["z0_weight"] * np.abs(b["z0"][bi])
        bottom, top = b["index"][bi], t["index"][ti]
        best = np.lexsort((top, bottom, -w))[:k_max]
        out_hits.append(np.stack([bottom[best], np.full(len(best), m), top[best]], axis=1))
        out_w.append(w[best])
    if not out_hits:
        return _with_parameters(np.zeros((0, 3), np.int64), np.zeros(0), sp["x"], sp["y"], sp["z"], bz)
    hits = np.concatenate(out_hits).astype(np.int64)
    w = np.concatenate(out_w)
    order = np.lexsort((hits[:, 2], hits[:, 0], hits[:, 1], -w))[:int(p["max_seeds"])]
    return _with_parameters(hits[order], w[order], sp["x"], sp["y"], sp["z"], bz)
