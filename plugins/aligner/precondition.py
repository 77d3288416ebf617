"""Block-Jacobi (per-module 6x6 Gauss-Newton) preconditioner for the ML aligner.

Plain Adam scales every parameter by its own gradient history; the profiled chi2 of alignment has
a curvature spectrum of ~10 decades with strongly correlated parameters inside each module (dw
and the rotations against du/dv through the track angles), so Adam's steps along the flat
directions are ~lr whatever the curvature and mini-batch noise random-walks them. Here the
gradient from autograd is multiplied by the inverse of each module's 6x6 block of the profiled
chi2's Gauss-Newton curvature (the diagonal blocks of MillePede's C after eliminating the track
parameters), and the step is projected onto the weak-mode constraints in that metric, so the
gauge is exactly the global fit's at every step.
"""
from __future__ import annotations

import numpy as np

from .choices import COARSE_LEVELS  # re-exported
from .coarse import LowRank, aggregate_groups, rigid_body_maps
from .global_fit import ROTATION_SCALE
from .residuals import TrackFit, TrackSample, alignment_jacobian


def curvature_blocks(sample: TrackSample, fit: TrackFit, hit_ok: np.ndarray, n_modules: int,
                     beam_spot: float | None) -> np.ndarray:
    """(n_modules, 6, 6) diagonal blocks of the profiled chi2's Gauss-Newton matrix (mm^-2; rotations
    scaled by :data:`ROTATION_SCALE`, the units of the ML aligner's tensor) summed over the hits
    with ``hit_ok`` of ``sample``: ``J_a^T W J_a - (J_a^T W J_p) Gamma^-1 (J_p^T W J_a)`` per hit,
    with ``Gamma`` the track's 5x5 normal matrix (beam-spot term included)."""
    w = np.where((fit.ok & hit_ok)[:, None], 1.0 / fit.var, 0.0)
    ja = alignment_jacobian(fit.prediction.uv, fit.prediction.direction)
    ja[:, :, 3:] /= ROTATION_SCALE
    jp = np.where(fit.ok[:, None, None], fit.prediction.track_jacobian, 0.0)
    gam = np.add.reduceat(np.einsum("hki,hk,hkj->hij", jp, w, jp), sample.offsets[:-1], axis=0)
    if beam_spot is not None:
        gam[:, 0, 0] += 1.0 / beam_spot**2
    gam += np.eye(5) * (1e-12 * np.trace(gam, axis1=1, axis2=2) + 1e-30)[:, None, None]
    ginv = np.linalg.inv(gam)[sample.track]
    mix = np.einsum("hka,hk,hki->hai", ja, w, jp)
    block = np.einsum("hka,hk,hkb->hab", ja, w, ja) - np.einsum("hai,hij,hbj->hab", mix, ginv, mix)
    out = np.zeros((n_modules, 6, 6))
    np.add.at(out, sample.module, block)
    return out


class BlockPreconditioner:
    """Inverse per-module blocks ``(H_m + damping)^-1`` with ``H`` normalised like the loss (per hit,
    factor 2 of the chi2's gradient) and the weak-mode projection in that metric.

    ``blocks`` (N, 6, 6) summed over ``n_hits`` hits; ``trainable`` (N,) modules allowed to move;
    ``basis`` (N*6, k) weak-mode vectors (scaled units); ``damping``: Levenberg term relative to
    each block's mean diagonal; ``presigma`` (mm, scaled units): the Gaussian prior on the total
    correction of the global fit (its gradient is added to the step's).
    """

    def __init__(self, blocks: np.ndarray, n_hits: int, trainable: np.ndarray, basis: np.ndarray,
                 damping: float = 1e-4, presigma: float | None = 1.0) -> None:
        # MillePede's presigma prior (as in the global fit): weakly seen parameters stay finite.
        self.prior = 0.0 if not presigma else 2.0 / presigma**2 / max(n_hits, 1)
        h = 2.0 * blocks / max(n_hits, 1) + self.prior * np.eye(6)
        scale = np.trace(h, axis1=1, axis2=2) / 6.0
        h = h + np.eye(6) * (damping * scale + 1e-300)[:, None, None]
        self.inverse = np.zeros_like(h)
        ok = trainable & (scale > 0)
        self.inverse[ok] = np.linalg.inv(h[ok])
        self.basis = basis
        if basis.shape[1]:
            self.p_basis = self.apply_raw(basis.T.reshape(basis.shape[1], -1, 6)).reshape(basis.shape[1], -1).T
            gram = basis.T @ self.p_basis
            # Modes touching only frozen modules give a zero row: a pseudo-inverse leaves them be.
            self.gram_inv = np.linalg.pinv(gram, rcond=1e-12)

    def apply_raw(self, g: np.ndarray) -> np.ndarray:
        """H^-1 g for g (..., N, 6)."""
        return np.einsum("nab,...nb->...na", self.inverse, g)

    def step(self, grad: np.ndarray, current: np.ndarray, lr: float) -> np.ndarray:
        """The constrained step (N, 6) for gradient ``grad`` (N, 6) of the loss at ``current`` (N, 6):
        minimises ``lr g.d + d H d / 2`` subject to ``B^T (current + d) = 0``."""
        d = -lr * self.apply_raw(grad + self.prior * current).reshape(-1)
        if self.basis.shape[1]:
            # d = -H^-1 (lr g + B lam) with B^T (a + d) = 0.
            lam = self.gram_inv @ (self.basis.T @ (current.reshape(-1) + d))
            d = d - self.p_basis @ lam
        return d.reshape(-1, 6)


# -- two-level (coarse rigid-body) correction -------------------------------------------------------


def structure_groups(volume_id: np.ndarray, layer_id: np.ndarray, centre: np.ndarray, level: str,
                     size: int = 6) -> np.ndarray:
    """(N,) group index of every module: its layer/disk (``level="layer"``), its ring inside the
    layer/disk (``"ring"``: modules at the same |z| to 1 mm in a barrel layer, same radius to 1 mm
    in a disk, told apart by which coordinate varies less inside the layer), or a patch of ~``size``
    neighbouring modules inside the layer/disk (``"aggregate"``, :func:`.coarse.aggregate_groups`)."""
    from trackcore.errors import InputError

    if level not in COARSE_LEVELS:
        raise InputError(f"two-level preconditioner: coarse level must be one of {COARSE_LEVELS}, got {level!r}")
    if level == "aggregate":
        return aggregate_groups(volume_id, layer_id, centre, size)
    key = volume_id.astype(np.int64) * 1000 + layer_id
    if level == "ring":
        _, layer = np.unique(key, return_inverse=True)
        r = np.hypot(centre[:, 0], centre[:, 1])
        # A barrel layer spans a range of z at ~constant r, a disk a range of r at ~constant z.
        spread_r = np.array([np.ptp(r[layer == k]) for k in range(layer.max() + 1)])
        spread_z = np.array([np.ptp(centre[layer == k, 2]) for k in range(layer.max() + 1)])
        barrel = (spread_r < spread_z)[layer]
        ring = np.where(barrel, np.round(centre[:, 2]), np.round(r)).astype(np.int64)
        key = key * 100_000 + (ring - ring.min())
    return np.unique(key, return_inverse=True)[1]


def rigid_body_space(centre: np.ndarray, rotation: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(N*6, 6G) the rigid-body motions of each group (shifts dx, dy, dz in mm and rotations about
    the group's centroid, scaled by :data:`ROTATION_SCALE`) written as local module parameters
    (du, dv, dw mm; wu, wv, ww scaled), one column per group parameter. Dense: for a few hundred
    columns; :class:`.coarse.CoarseSpace` keeps larger spaces sparse."""
    n, n_groups = len(group), int(group.max()) + 1
    z = np.zeros((n, 6, n_groups, 6))
    z[np.arange(n), :, group, :] = rigid_body_maps(centre, rotation, group)
    return z.reshape(6 * n, 6 * n_groups)


def coarse_basis(space: np.ndarray, free: np.ndarray, basis: np.ndarray, rcond: float = 1e-9) -> np.ndarray:
    """Orthonormal (N*6, c) coarse basis: the columns of ``space`` on the ``free`` modules only,
    without their components along the weak modes ``basis`` (so that the coarse problem lives where
    CG does, on ``B^T d = 0``), with the dependent combinations (the global rigid body, a sum of the
    groups') dropped."""
    rows = np.repeat(free, 6).astype(float)
    z = space * rows[:, None]
    norms = np.linalg.norm(z, axis=0)
    z = z[:, norms > 0] / norms[norms > 0]
    if basis.shape[1]:
        q, s, _ = np.linalg.svd(basis * rows[:, None], full_matrices=False)
        q = q[:, s > rcond * max(s.max(), 1e-300)]
        z = z - q @ (q.T @ z)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    # Frozen rows exactly zero (the SVD leaves ~1e-16 there): frozen modules must not move.
    return (u[:, s > 1e-6 * s.max()] if s.size else u) * rows[:, None]


class TwoLevelPreconditioner:
    """Two-level preconditioner for the projected CG of :mod:`.hessian_free`: the per-module 6x6
    blocks (fine level) plus an exact Galerkin solve on a coarse space ``Z`` of collective rigid-body
    motions, which are CG's slow directions under block-Jacobi.

    ``fine`` a :class:`BlockPreconditioner` (its blocks are normalised per hit: ``fine_scale``
    turns its inverse into that of the unnormalised H, ``2 / n_hits``); ``z`` (N*6, c) the coarse
    space, a dense array (:func:`coarse_basis`) or a :class:`.coarse.LowRank` (:class:`.coarse.CoarseSpace`),
    ``hz`` (N*6, c) = H z in the same form, with the same H as CG's products (mm^-2); ``null`` (c, j)
    orthonormal coefficient vectors with ``z a = 0`` (:attr:`.coarse.CoarseSpace.null`), left out of
    the coarse solve. ``kind``:

    * ``"balancing"`` (default; Mandel's balancing / deflation form)
      ``M^-1 = P^T D^-1 P + Z E^-1 Z^T`` with ``E = Z^T H Z`` and ``P = I - H Z E^-1 Z^T``: CG never
      sees the coarse directions again after they are solved exactly;
    * ``"additive"``: ``M^-1 = D^-1 + Z E^-1 Z^T``.

    Both are symmetric positive definite whenever ``E`` is (any ``hz``), and need no H v per
    application. ``E`` is factored by Cholesky after a Jacobi scaling (c^3 / 3: ~1 s at c = 2,000).
    Same interface as :class:`BlockPreconditioner` for :func:`.hessian_free.projected_pcg`.
    """

    def __init__(self, fine: BlockPreconditioner, fine_scale: float, z, hz, kind: str = "balancing",
                 null: np.ndarray | None = None) -> None:
        from scipy.linalg import LinAlgError, cho_factor

        from trackcore.errors import InputError

        if kind not in ("balancing", "additive"):
            raise InputError(f"two-level preconditioner: kind must be 'balancing' or 'additive', got {kind!r}")
        if z.shape != hz.shape or z.shape[0] != 6 * fine.inverse.shape[0]:
            raise InputError(f"two-level preconditioner: Z {z.shape} and H Z {hz.shape} must both be "
                             f"({6 * fine.inverse.shape[0]}, c)")
        self.fine, self.fine_scale, self.kind, self.z, self.hz = fine, fine_scale, kind, z, hz
        e = z.gram(hz) if isinstance(z, LowRank) else z.T @ hz
        e = 0.5 * (e + e.T)
        if null is not None and null.shape[1]:
            # Z a = 0 there: any positive weight leaves Z E^-1 Z^T unchanged and makes E invertible.
            e = e + null @ null.T * float(np.mean(np.abs(np.diag(e))))
        self.dim = e.shape[0]
        if self.dim:
            self.scale = 1.0 / np.sqrt(np.maximum(np.diag(e), 1e-300))
            es = e * self.scale[:, None] * self.scale[None, :]
            try:
                self.factor = cho_factor(es, lower=True)
            except LinAlgError:
                self.factor = None
            pivots = np.diag(self.factor[0]) ** 2 if self.factor is not None else np.zeros(1)
            if self.factor is None or pivots.min() <= 1e-12 * pivots.max():
                raise InputError(f"two-level preconditioner: coarse matrix Z^T H Z ({self.dim} x {self.dim}) is not "
                                 f"positive definite; drop frozen modules from Z")
        self.basis = fine.basis
        if self.basis.shape[1]:
            self.p_basis = self.apply_raw(self.basis.T.reshape(self.basis.shape[1], -1, 6)).reshape(
                self.basis.shape[1], -1).T
            self.gram_inv = np.linalg.pinv(self.basis.T @ self.p_basis, rcond=1e-12)

    def _fine(self, g: np.ndarray) -> np.ndarray:
        return self.fine_scale * self.fine.apply_raw(g)

    def coarse_solve(self, y: np.ndarray) -> np.ndarray:
        """E^-1 y for y (c, b)."""
        from scipy.linalg import cho_solve

        return self.scale[:, None] * cho_solve(self.factor, self.scale[:, None] * y)

    def apply_raw(self, g: np.ndarray) -> np.ndarray:
        """M^-1 g for g (..., N, 6) (mm^2 times g's units)."""
        shape = g.shape
        cols = g.reshape(-1, shape[-2] * 6).T  # (6N, batch)

        def fine(x: np.ndarray) -> np.ndarray:
            return self._fine(x.T.reshape((-1,) + shape[-2:])).reshape(-1, shape[-2] * 6).T

        if not self.dim:
            return self._fine(g)
        zr = self.z.T @ cols
        coef = self.coarse_solve(zr)
        if self.kind == "additive":
            out = fine(cols) + self.z @ coef
        else:
            # P^T D^-1 P r + Z E^-1 Z^T r = t + Z E^-1 (Z^T r - (H Z)^T t), t = D^-1 (r - H Z E^-1 Z^T r).
            t = fine(cols - self.hz @ coef)
            out = t + self.z @ (coef - self.coarse_solve(self.hz.T @ t))
        return out.T.reshape(shape)
