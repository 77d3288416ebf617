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
