"""Module alignment: six parameters per module (3 global shifts, 3 Euler angles x-z'-x'').

Convention (chosen to match the MLAligner study, whose misalignments are global x/y/z shifts and
rotations of each module about its own axes):

* ``dx, dy, dz`` (mm) shift the module centre in the **global** frame;
* ``alpha, beta, gamma`` (rad) rotate the module about its own centre, as intrinsic Euler angles
  x-z'-x'' in the module's **local** frame: first about local u (x) by alpha, then about the new
  w (z') by beta, then about the new u (x'') by gamma. The rotation matrix is
  ``dR = Rx(alpha) @ Rz(beta) @ Rx(gamma)``.

A misaligned module has ``centre' = centre + (dx, dy, dz)`` and ``rotation' = rotation @ dR``,
so a local point maps to ``centre + d + rotation @ dR @ uvw``.

Beware: x-z'-x'' is at gimbal lock when beta = 0, so for small misalignments alpha and gamma are
nearly the same rotation (about u) and only their sum is well measured at first order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from .detector import Detector
from .io import read_csv_columns, write_csv_columns

__all__ = ["PARAMETER_NAMES", "euler_xzx", "euler_xzx_angles", "AlignmentParameters", "apply_alignment",
           "random_misalignment", "read_alignment", "write_alignment"]

#: Column order of :attr:`AlignmentParameters.values` and of the alignment CSV after the ids.
PARAMETER_NAMES = ("dx", "dy", "dz", "alpha", "beta", "gamma")
_ID_COLUMNS = ("volume_id", "layer_id", "module_id")
_GIMBAL_EPS = 1e-12


def _rx(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    m[..., 0, 0] = 1.0
    m[..., 1, 1], m[..., 1, 2], m[..., 2, 1], m[..., 2, 2] = c, -s, s, c
    return m


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    m[..., 2, 2] = 1.0
    m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1] = c, -s, s, c
    return m


def euler_xzx(alpha, beta, gamma) -> np.ndarray:
    """Rotation matrices ``Rx(alpha) Rz(beta) Rx(gamma)`` (intrinsic x-z'-x''), shape (N, 3, 3).

    Angles in radians; scalars or 1-D arrays of equal length.
    """
    a, b, g = (np.atleast_1d(np.asarray(x, np.float64)) for x in (alpha, beta, gamma))
    a, b, g = np.broadcast_arrays(a, b, g)
    return _rx(a) @ _rz(b) @ _rx(g)


def euler_xzx_angles(rotation) -> np.ndarray:
    """Inverse of :func:`euler_xzx`: (N, 3) angles (alpha, beta, gamma) of (N, 3, 3) rotations.

    Of the two solutions the one with alpha in [-pi/2, pi/2] is returned, so small angles of
    either sign come back unchanged; beta is then in (-pi, pi]. At gimbal lock (sin beta = 0)
    only one combination of alpha and gamma is defined: it is returned in alpha (gamma = 0) at
    beta = 0, in gamma (alpha = 0) at beta = pi. Near it, alpha and gamma are ill-conditioned
    separately (their sum is not).
    """
    r = np.asarray(rotation, np.float64).reshape(-1, 3, 3)
    # R = [[cb, -sb cg, sb sg], [ca sb, ...], [sa sb, ...]]
    sb = np.hypot(r[:, 1, 0], r[:, 2, 0])
    alpha = np.arctan2(r[:, 2, 0], r[:, 1, 0])
    beta = np.arctan2(sb, r[:, 0, 0])
    gamma = np.arctan2(r[:, 0, 2], -r[:, 0, 1])
    flip = np.abs(alpha) > np.pi / 2  # take the twin solution (alpha - pi, -beta, gamma - pi)
    alpha = np.where(flip, alpha - np.copysign(np.pi, alpha), alpha)
    beta = np.where(flip, -beta, beta)
    gamma = np.where(flip, gamma - np.copysign(np.pi, gamma), gamma)
    lock = sb < _GIMBAL_EPS
    if lock.any():
        # beta = 0: R = Rx(alpha + gamma); beta = pi: R = Rz(pi) Rx(gamma - alpha). Both have
        # (R21, R22) = (sin t, cos t), t being the one defined combination.
        t = np.arctan2(r[lock, 2, 1], r[lock, 2, 2])
        at_pi = r[lock, 0, 0] < 0
        alpha[lock] = np.where(at_pi, 0.0, t)
        beta[lock] = np.where(at_pi, np.pi, 0.0)
        gamma[lock] = np.where(at_pi, t, 0.0)
    return np.stack([alpha, beta, gamma], axis=1)


@dataclass
class AlignmentParameters:
    """Alignment of N modules: ids and ``values`` (N, 6) = dx, dy, dz (mm), alpha, beta, gamma (rad)."""

    volume_id: np.ndarray
    layer_id: np.ndarray
    module_id: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        self.volume_id, self.layer_id, self.module_id = (
            np.asarray(x, np.int64).reshape(-1) for x in (self.volume_id, self.layer_id, self.module_id))
        self.values = np.asarray(self.values, np.float64)
        n = len(self.volume_id)
        if self.values.shape != (n, 6) or len(self.layer_id) != n or len(self.module_id) != n:
            raise InputError(f"alignment parameters: ids of length {n}, {len(self.layer_id)}, {len(self.module_id)} "
                             f"and values of shape {self.values.shape}; expected (N,) ids and (N, 6) values")
        bad = ~np.isfinite(self.values).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"alignment parameters: non-finite values at row {i}: {self.values[i].tolist()}")

    def __len__(self) -> int:
        return len(self.volume_id)

    @classmethod
    def zeros(cls, detector: Detector) -> "AlignmentParameters":
        """Nominal (all-zero) parameters for every module of ``detector``."""
        return cls(detector.volume_id, detector.layer_id, detector.module_id, np.zeros((len(detector), 6)))

    @property
    def translations(self) -> np.ndarray:
        """(N, 3) global shifts dx, dy, dz in mm."""
        return self.values[:, :3]

    @property
    def angles(self) -> np.ndarray:
        """(N, 3) Euler angles alpha, beta, gamma (x-z'-x'', local frame) in rad."""
        return self.values[:, 3:]

    def rotations(self) -> np.ndarray:
        """(N, 3, 3) local rotations ``dR`` of the modules."""
        a = self.angles
        return euler_xzx(a[:, 0], a[:, 1], a[:, 2])

    def inverse(self) -> "AlignmentParameters":
        """Parameters that undo these: shift by -d, rotate by dR^T = Rx(-gamma) Rz(-beta) Rx(-alpha)."""
        inv = np.concatenate([-self.values[:, :3], -self.values[:, :2:-1]], axis=1)
        return AlignmentParameters(self.volume_id.copy(), self.layer_id.copy(), self.module_id.copy(), inv)


def apply_alignment(detector: Detector, params: AlignmentParameters, name: str | None = None) -> Detector:
    """``detector`` with each listed module moved and rotated by ``params`` (others unchanged).

    ``centre' = centre + d`` and ``rotation' = rotation @ dR`` (see the module docstring).
    Raises :class:`GeometryError` for modules not in the detector or listed twice.
    """
    idx = detector.index(params.volume_id, params.layer_id, params.module_id)
    if len(np.unique(idx)) != len(idx):
        s = np.sort(idx)
        i = int(s[np.flatnonzero(s[1:] == s[:-1])[0]])
        raise GeometryError(f"alignment parameters list module (volume {detector.volume_id[i]}, layer "
                            f"{detector.layer_id[i]}, module {detector.module_id[i]}) more than once")
    centre = detector.centre.copy()
    rotation = detector.rotation.copy()
    centre[idx] += params.translations
    rotation[idx] = rotation[idx] @ params.rotations()
    return detector.with_modules(centre, rotation, name=name or f"{detector.name}-aligned")


def random_misalignment(detector: Detector, rng: np.random.Generator | int | None = None,
                        sigma_translation: tuple[float, float, float] = (0.1, 0.1, 0.05),
                        sigma_rotation: float | tuple[float, float, float] = 0.02) -> AlignmentParameters:
    """Gaussian misalignment of every module: global shifts with ``sigma_translation`` (mm) and
    Euler angles with ``sigma_rotation`` (rad). Defaults are the MLAligner study's 100/100/50 µm, 20 mrad.
    """
    rng = np.random.default_rng(rng)
    sig_t = np.broadcast_to(np.asarray(sigma_translation, np.float64), (3,))
    sig_r = np.broadcast_to(np.asarray(sigma_rotation, np.float64), (3,))
    sigma = np.concatenate([sig_t, sig_r])
    if np.any(sigma < 0) or not np.all(np.isfinite(sigma)):
        raise InputError(f"random_misalignment: sigmas must be finite and >= 0, got {sigma.tolist()}")
    values = rng.normal(size=(len(detector), 6)) * sigma
    return AlignmentParameters(detector.volume_id, detector.layer_id, detector.module_id, values)


def read_alignment(path: str | os.PathLike) -> AlignmentParameters:
    """Read ``volume_id,layer_id,module_id,dx,dy,dz,alpha,beta,gamma`` (mm, rad) from CSV[.gz]."""
    cols = read_csv_columns(path, (*_ID_COLUMNS, *PARAMETER_NAMES), what="alignment",
                            int_columns=_ID_COLUMNS, error=GeometryError)
    key = (cols["volume_id"] << 40) | (cols["layer_id"] << 24) | cols["module_id"]
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise GeometryError(f"{path}: module (volume {cols['volume_id'][a]}, layer {cols['layer_id'][a]}, "
                            f"module {cols['module_id'][a]}) appears on lines {cols['_line'][a]} and {cols['_line'][b]}")
    return AlignmentParameters(cols["volume_id"], cols["layer_id"], cols["module_id"],
                               np.stack([cols[k] for k in PARAMETER_NAMES], axis=1))


def write_alignment(params: AlignmentParameters, path: str | os.PathLike) -> Path:
    """Write alignment parameters as CSV (gzip when ``path`` ends in ``.gz``); atomic and exact."""
    cols = {"volume_id": params.volume_id, "layer_id": params.layer_id, "module_id": params.module_id}
    cols.update({k: params.values[:, j] for j, k in enumerate(PARAMETER_NAMES)})
    return write_csv_columns(path, cols, int_columns=_ID_COLUMNS)
