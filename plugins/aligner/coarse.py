"""Coarse spaces of the two-level CG preconditioner (:class:`.precondition.TwoLevelPreconditioner`).

A coarse space is the rigid-body motions of groups of modules (whole layers/disks, their rings, or
``aggregate`` patches of ~k neighbouring modules inside one layer/disk), written as local module
parameters. With ~350 aggregates on the 2,072-module pixel detector it has ~2,000 columns, so it is
never stored as a dense matrix:

    Z = Z0 - Q S

``Z0`` (6N, 6G) is block-sparse (module m's 6x6 block in its group's columns, orthonormalised per
group, zero on frozen modules), ``Q`` (6N, k) an orthonormal basis of the weak modes on the free
modules and ``S = Q^T Z0``: Z is ``Z0`` without its weak-mode components, so the coarse problem lives
on the constraints ``B^T d = 0`` where CG runs. The combinations of groups that are pure weak modes
(the global rigid body: the sum of the groups') have ``Z a = 0``; they are listed in
:attr:`CoarseSpace.null` for the coarse solve to ignore. ``H Z`` is assembled hit by hit
(:meth:`.hessian_free.ProfiledChi2.coarse_columns`) rather than by one matrix-free product per column.
Units as in :mod:`.hessian_free`: translations mm, rotations scaled by ROTATION_SCALE (mm).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from .global_fit import ROTATION_SCALE


def aggregate_groups(volume_id: np.ndarray, layer_id: np.ndarray, centre: np.ndarray, size: int = 6) -> np.ndarray:
    """(N,) group of every module: patches of ~``size`` neighbouring modules inside one layer/disk.

    Each layer/disk is tiled in (ring coordinate, phi): z for a barrel layer, r for a disk (a barrel
    layer spans a range of z at ~constant r, a disk a range of r at ~constant z). Its rings (modules at
    the same z or r to 1 mm) are cut into ``b`` contiguous bins and every bin into ``round(n / size)``
    equal phi sectors, with ``b`` chosen so that the tiles are as square as possible in mm (the soft
    directions are smooth deformations: a patch should be equally small in both directions). On the
    generic detector: one ring by ~5-6 staves in the barrel, one ring by ~6 modules in the disks."""
    from trackcore.errors import InputError

    if int(size) < 1:
        raise InputError(f"aggregate coarse level: size must be >= 1 module, got {size!r}")
    key = volume_id.astype(np.int64) * 1000 + layer_id
    _, layer = np.unique(key, return_inverse=True)
    r = np.hypot(centre[:, 0], centre[:, 1])
    phi = np.arctan2(centre[:, 1], centre[:, 0])
    out = np.empty(len(key), np.int64)
    next_group = 0
    for k in range(layer.max() + 1 if len(layer) else 0):
        idx = np.flatnonzero(layer == k)
        along = centre[idx, 2] if np.ptp(r[idx]) < np.ptp(centre[idx, 2]) else r[idx]
        rings, ring = np.unique(np.round(along), return_inverse=True)
        pitch = np.ptp(rings) / (len(rings) - 1) if len(rings) > 1 else 0.0
        best = None
        for n_bins in range(1, len(rings) + 1):
            bin_of = (ring * n_bins) // len(rings)
            sectors = [max(1, round(int((bin_of == b).sum()) / size)) for b in range(n_bins)]
            radius = [r[idx][bin_of == b].mean() for b in range(n_bins)]
            # Tile extent along the rings (mm) against along phi (mm); 0 when a layer has one ring.
            width = [len(np.unique(ring[bin_of == b])) * pitch for b in range(n_bins)]
            score = np.mean([abs(np.log(max(w, 1e-9) / (2 * np.pi * rad / s))) if pitch > 0 else 0.0
                             for w, rad, s in zip(width, radius, sectors)])
            if best is None or score < best[0] - 1e-12:
                best = (score, bin_of, sectors)
        _, bin_of, sectors = best
        for b, n_sec in enumerate(sectors):
            sel = idx[bin_of == b]
            # Sector edges half a module spacing before the first module: no module sits on an edge.
            start = phi[sel].min() - np.pi / len(sel)
            sector = np.floor(np.mod(phi[sel] - start, 2 * np.pi) / (2 * np.pi / n_sec)).astype(np.int64)
            out[sel] = next_group + np.minimum(sector, n_sec - 1)
            next_group += n_sec
    return np.unique(out, return_inverse=True)[1]


def rigid_body_maps(centre: np.ndarray, rotation: np.ndarray, group: np.ndarray,
                    weight: np.ndarray | None = None) -> np.ndarray:
    """(N, 6, 6) each module's local parameters (du, dv, dw mm; wu, wv, ww scaled) for the 6 rigid-body
    parameters of its group (shifts dx, dy, dz mm and rotations about the group's centroid of the
    modules with ``weight`` > 0 (default all), scaled by ROTATION_SCALE)."""
    n, n_groups = len(group), int(group.max()) + 1 if len(group) else 0
    wt = np.ones(n) if weight is None else np.asarray(weight, float)
    counts = np.bincount(group, wt, minlength=n_groups)
    centroid = np.stack([np.bincount(group, wt * centre[:, k], n_groups) / np.maximum(counts, 1e-300)
                         for k in range(3)], 1)
    arm = centre - centroid[group]
    rt = np.transpose(rotation, (0, 2, 1))
    skew = np.zeros((n, 3, 3))
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -arm[:, 2], arm[:, 1], -arm[:, 0]
    skew[:, 1, 0], skew[:, 2, 0], skew[:, 2, 1] = arm[:, 2], -arm[:, 1], arm[:, 0]
    m = np.zeros((n, 6, 6))
    m[:, :3, :3] = rt
    # A rotation w (scaled: w * ROTATION_SCALE) about the centroid moves the centre by w x arm.
    m[:, :3, 3:] = -rt @ skew / ROTATION_SCALE
    m[:, 3:, 3:] = rt
    return m


class LowRank:
    """The matrix ``base - u @ s`` (``base`` dense or scipy sparse (m, c), ``u`` (m, k), ``s`` (k, c)),
    kept in factors: ``@`` with dense vectors/matrices and ``.T`` as for an ndarray."""

    def __init__(self, base, u: np.ndarray, s: np.ndarray) -> None:
        self.base, self.u, self.s = base, u, s
        self.shape = base.shape

    @property
    def T(self) -> LowRank:
        return LowRank(self.base.T, self.s.T, self.u.T)

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.base @ x) - self.u @ (self.s @ x)

    def gram(self, other: LowRank | np.ndarray) -> np.ndarray:
        """Dense ``self.T @ other`` (c, c') without forming either matrix."""
        if not isinstance(other, LowRank):
            return np.asarray(self.T @ other)
        ab = self.base.T @ other.base
        ab = ab.toarray() if sparse.issparse(ab) else np.asarray(ab)
        a_v = np.asarray(self.base.T @ other.u)
        u_b = np.asarray(other.base.T @ self.u).T
        return ab - a_v @ other.s - self.s.T @ u_b + self.s.T @ ((self.u.T @ other.u) @ other.s)

    def toarray(self) -> np.ndarray:
        base = self.base.toarray() if sparse.issparse(self.base) else np.asarray(self.base)
        return base - self.u @ self.s


class CoarseSpace:
    """``Z = Z0 - Q S`` for the rigid-body motions of ``group`` (N,) on the ``free`` (N,) modules,
    without the weak modes ``basis`` (6N, k) (see the module docstring).

    Attributes: ``group`` (N,) compact group of every free module (-1: frozen, not in Z),
    ``n_groups``, ``transform`` (N, 6, 6) module block of Z0 (orthonormal columns per group), ``z0``
    (6N, 6 n_groups) BSR, ``q``, ``s``, ``z`` (:class:`LowRank`), ``null`` (6 n_groups, j) orthonormal
    coefficient vectors with ``Z a = 0`` (to ``null_tol`` in ``|Z a|^2``)."""

    def __init__(self, centre: np.ndarray, rotation: np.ndarray, group: np.ndarray, free: np.ndarray,
                 basis: np.ndarray, null_tol: float = 1e-6) -> None:
        n = len(group)
        _, compact = np.unique(np.where(free, group, -1), return_inverse=True)
        self.group = np.where(free, compact - (0 if free.all() else 1), -1)
        self.n_groups = int(self.group.max()) + 1 if free.any() else 0
        g = np.where(free, self.group, 0)
        maps = rigid_body_maps(centre, rotation, g, free.astype(float)) * free[:, None, None]
        # Orthonormal per group: T_m = R_m G^-1/2 with G = sum over the group's free modules of R_m^T R_m.
        gram = np.zeros((max(self.n_groups, 1), 6, 6))
        np.add.at(gram, g[free], np.einsum("nka,nkb->nab", maps[free], maps[free]))
        vals, vecs = np.linalg.eigh(gram)
        inv_sqrt = np.einsum("gab,gb,gcb->gac", vecs, 1.0 / np.sqrt(np.maximum(vals, 1e-300)), vecs)
        self.transform = maps @ inv_sqrt[g] * free[:, None, None]
        rows = np.flatnonzero(free)
        self.z0 = sparse.bsr_matrix((self.transform[rows], self.group[rows], np.r_[0, np.cumsum(free)]),
                                    shape=(6 * n, 6 * self.n_groups))
        mask = np.repeat(free, 6).astype(float)
        if basis.shape[1]:
            q, sv, _ = np.linalg.svd(basis * mask[:, None], full_matrices=False)
            self.q = q[:, sv > 1e-9 * max(sv.max(), 1e-300)] * mask[:, None]
        else:
            self.q = np.zeros((6 * n, 0))
        self.s = np.asarray(self.z0.T @ self.q).T
        self.z = LowRank(self.z0, self.q, self.s)
        # |Z a|^2 = |a|^2 - |S a|^2: right singular vectors of S with singular value ~1 are lost in Z.
        if self.s.size:
            _, sv, vt = np.linalg.svd(self.s, full_matrices=False)
            self.null = vt[1.0 - sv**2 < null_tol].T
        else:
            self.null = np.zeros((6 * self.n_groups, 0))

    @property
    def shape(self) -> tuple[int, int]:
        return self.z.shape
