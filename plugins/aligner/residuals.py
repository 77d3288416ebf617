"""Track model and residual derivatives for alignment.

Tracks are helices in a constant field ``(0, 0, bz)`` (T) with perigee parameters
``(d0, z0, phi, theta, qop)`` (mm, mm, rad, rad, e/GeV) at the z axis: the perigee point is
``(-d0 sin phi, d0 cos phi, z0)``. A track is intersected exactly with each module plane it has
a hit on (Newton on the transverse arc length), so residuals are exact for the current module
frames; derivatives are analytic (first order), as MillePede needs them.

Alignment parameters of a module, in its **local** frame (u, v, w): a translation ``(du, dv, dw)``
(mm) and a small rotation vector ``(wu, wv, ww)`` (rad) about the local axes, so that
``centre' = centre + R @ d`` and ``R' = R @ exp([w]x)``. Unlike x-z'-x'' Euler angles (which are
at gimbal lock at zero: alpha and gamma are the same rotation to first order and rotations about
v are second order), this parametrisation is regular at zero; Euler angles are only computed
for the output (see :func:`to_alignment`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trackcore.errors import InputError
from trackcore.geometry.alignment import AlignmentParameters, euler_xzx_angles
from trackcore.geometry.detector import Detector

#: GeV per (T mm e): pT = C_LIGHT * B * R * |q|.
C_LIGHT = 0.299792458e-3
#: Names and units of the six local alignment parameters, in column order.
LOCAL_PARAMETER_NAMES = ("du", "dv", "dw", "wu", "wv", "ww")
LOCAL_PARAMETER_UNITS = ("mm", "mm", "mm", "rad", "rad", "rad")
_SMALL = 1e-3  # below this |omega s| the series of sin(a)/a and (1 - cos a)/a are used


# -- rotations ---------------------------------------------------------------------------------
def _skew(w: np.ndarray) -> np.ndarray:
    k = np.zeros(w.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = w[..., 2], -w[..., 1], w[..., 0]
    return k


def rotvec_to_matrix(w: np.ndarray) -> np.ndarray:
    """(N, 3) rotation vectors (rad) to (N, 3, 3) rotation matrices (Rodrigues)."""
    w = np.asarray(w, np.float64).reshape(-1, 3)
    th = np.linalg.norm(w, axis=1)
    small = th < 1e-8
    ths = np.where(small, 1.0, th)
    a = np.where(small, 1.0 - th**2 / 6, np.sin(ths) / ths)
    b = np.where(small, 0.5 - th**2 / 24, (1 - np.cos(ths)) / ths**2)
    k = _skew(w)
    return np.eye(3) + a[:, None, None] * k + b[:, None, None] * (k @ k)


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices to (N, 3) rotation vectors (rad); angles below pi."""
    r = np.asarray(r, np.float64).reshape(-1, 3, 3)
    cos = np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    th = np.arccos(cos)
    v = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], axis=1)
    sin = np.sin(th)
    f = np.where(th < 1e-8, 0.5 + th**2 / 12, th / (2 * np.where(th < 1e-8, 1.0, sin)))
    return v * f[:, None]


@dataclass
class Frames:
    """Module frames being aligned: centres (N, 3) mm and rotations (N, 3, 3), rows as the detector's."""

    centre: np.ndarray
    rotation: np.ndarray

    @classmethod
    def from_detector(cls, detector: Detector) -> Frames:
        return cls(detector.centre.copy(), detector.rotation.copy())

    def corrected(self, delta: np.ndarray) -> Frames:
        """Frames moved by local corrections ``delta`` (N, 6): du, dv, dw (mm), wu, wv, ww (rad)."""
        delta = np.asarray(delta, np.float64)
        centre = self.centre + np.einsum("nij,nj->ni", self.rotation, delta[:, :3])
        return Frames(centre, self.rotation @ rotvec_to_matrix(delta[:, 3:]))

    def relative_to(self, nominal: Frames) -> np.ndarray:
        """(N, 6) local parameters that move ``nominal`` onto these frames (exact, not additive)."""
        d = np.einsum("nji,nj->ni", nominal.rotation, self.centre - nominal.centre)
        w = matrix_to_rotvec(np.einsum("nji,njk->nik", nominal.rotation, self.rotation))
        return np.concatenate([d, w], axis=1)


def from_alignment(detector: Detector, params: AlignmentParameters) -> np.ndarray:
    """(N, 6) local parameters (module rows of ``detector``) of global-shift/Euler ``params``."""
    out = np.zeros((len(detector), 6))
    idx = detector.index(params.volume_id, params.layer_id, params.module_id)
    out[idx, :3] = np.einsum("nji,nj->ni", detector.rotation[idx], params.translations)
    out[idx, 3:] = matrix_to_rotvec(params.rotations())
    return out


def to_alignment(detector: Detector, local: np.ndarray) -> AlignmentParameters:
    """Global-shift / x-z'-x'' Euler :class:`AlignmentParameters` of (N, 6) local parameters.

    Exact: ``apply_alignment(detector, to_alignment(detector, a))`` gives the frames
    ``Frames.from_detector(detector).corrected(a)``. Euler angles near the identity are
    ill-conditioned (see :mod:`trackcore.geometry.alignment`), so compare rotations as matrices.
    """
    local = np.asarray(local, np.float64)
    shift = np.einsum("nij,nj->ni", detector.rotation, local[:, :3])
    euler = euler_xzx_angles(rotvec_to_matrix(local[:, 3:]))
    return AlignmentParameters(detector.volume_id, detector.layer_id, detector.module_id,
                               np.concatenate([shift, euler], axis=1))


# -- helix -----------------------------------------------------------------------------------
def _sc(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """S = sin(a)/a, C = (1 - cos a)/a and their derivatives, with series near a = 0."""
    small = np.abs(a) < _SMALL
    x = np.where(small, 1.0, a)
    a2 = a * a
    s = np.where(small, 1 - a2 / 6 + a2 * a2 / 120, np.sin(x) / x)
    c = np.where(small, a / 2 - a * a2 / 24 + a * a2 * a2 / 720, (1 - np.cos(x)) / x)
    ds = np.where(small, -a / 3 + a * a2 / 30, (x * np.cos(x) - np.sin(x)) / x**2)
    dc = np.where(small, 0.5 - a2 / 8 + a2 * a2 / 144, (x * np.sin(x) - 1 + np.cos(x)) / x**2)
    return s, c, ds, dc


def curvature(params: np.ndarray, bz: float) -> np.ndarray:
    """Signed transverse curvature dphi/ds_t (1/mm) of perigee ``params`` (N, 5)."""
    return -C_LIGHT * bz * params[:, 4] / np.sin(params[:, 3])


def helix_point(params: np.ndarray, s: np.ndarray, bz: float, derivatives: bool = False):
    """Position (N, 3) at transverse arc length ``s`` (mm), direction dx/ds (N, 3) and, with
    ``derivatives``, d position / d params at fixed s (N, 3, 5)."""
    d0, z0, phi, theta, _qop = params.T
    om = curvature(params, bz)
    a = om * s
    sv, cv, dsv, dcv = _sc(a)
    cp, sp = np.cos(phi), np.sin(phi)
    cot = np.cos(theta) / np.sin(theta)
    pos = np.stack([-d0 * sp + s * (cp * sv - sp * cv), d0 * cp + s * (sp * sv + cp * cv), z0 + s * cot], axis=1)
    direction = np.stack([np.cos(phi + a), np.sin(phi + a), cot], axis=1)
    if not derivatives:
        return pos, direction
    jac = np.zeros((len(s), 3, 5))
    jac[:, 0, 0], jac[:, 1, 0] = -sp, cp
    jac[:, 2, 1] = 1.0
    jac[:, 0, 2] = -d0 * cp - s * (sp * sv + cp * cv)
    jac[:, 1, 2] = -d0 * sp + s * (cp * sv - sp * cv)
    # omega depends on theta and qop: d omega/d theta = -omega cot(theta), d omega/d qop = omega/qop.
    dx_dom = s * s * (cp * dsv - sp * dcv)
    dy_dom = s * s * (sp * dsv + cp * dcv)
    dom_dth = -om * cot
    dom_dq = -C_LIGHT * bz / np.sin(theta)
    jac[:, 0, 3], jac[:, 1, 3] = dx_dom * dom_dth, dy_dom * dom_dth
    jac[:, 2, 3] = -s / np.sin(theta) ** 2
    jac[:, 0, 4], jac[:, 1, 4] = dx_dom * dom_dq, dy_dom * dom_dq
    return pos, direction, jac


@dataclass
class Prediction:
    """Track-surface intersections of the hits: local (u, v) (H, 2) mm, local direction (H, 3)
    (dx/ds in the module frame), ``ok`` (H,) where the intersection converged, and optionally
    d(u, v)/d(track params) (H, 2, 5)."""

    uv: np.ndarray
    direction: np.ndarray
    ok: np.ndarray
    track_jacobian: np.ndarray | None = None


def predict(params: np.ndarray, frames: Frames, module: np.ndarray, track: np.ndarray, bz: float,
            derivatives: bool = True, newton_steps: int = 6) -> Prediction:
    """Intersect track ``track[h]`` (rows of ``params``) with the plane of module ``module[h]``."""
    p = params[track]
    c, rot = frames.centre[module], frames.rotation[module]
    n = rot[:, :, 2]
    # Start from the straight line of the perigee direction, then Newton on f(s) = (x(s) - c).n.
    x0, t0 = helix_point(p, np.zeros(len(p)), bz)
    denom0 = np.einsum("ni,ni->n", t0, n)
    s = np.einsum("ni,ni->n", c - x0, n) / np.where(np.abs(denom0) < 1e-12, 1e-12, denom0)
    for _ in range(newton_steps):
        x, t = helix_point(p, s, bz)
        f = np.einsum("ni,ni->n", x - c, n)
        df = np.einsum("ni,ni->n", t, n)
        s = s - f / np.where(np.abs(df) < 1e-12, 1e-12, df)
    if derivatives:
        x, t, jx = helix_point(p, s, bz, derivatives=True)
    else:
        x, t = helix_point(p, s, bz)
    local = np.einsum("nji,nj->ni", rot, x - c)
    ldir = np.einsum("nji,nj->ni", rot, t)
    ok = (np.abs(local[:, 2]) < 1e-6) & (np.abs(ldir[:, 2]) > 1e-3) & np.isfinite(local).all(axis=1) & (s > 0)
    tj = None
    if derivatives:
        # Moving along the track to stay on the plane: dX = (I - t n^T / (t.n)) dx.
        tn = np.einsum("ni,ni->n", t, n)
        tn = np.where(np.abs(tn) < 1e-12, 1e-12, tn)
        proj = np.eye(3) - t[:, :, None] * n[:, None, :] / tn[:, None, None]
        tj = np.einsum("nji,njk,nkl->nil", rot[:, :, :2], proj, jx)
    return Prediction(local[:, :2], ldir, ok, tj)


def alignment_jacobian(uv: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """d(predicted u, v)/d(du, dv, dw, wu, wv, ww) (H, 2, 6) at intersection ``uv`` with local direction.

    Moving the plane by ``R d`` and rotating it by ``exp([w]x)``: the local point becomes
    ``q - d - w x q`` and the track slides along itself back onto the plane.
    """
    u, v = uv[:, 0], uv[:, 1]
    tu, tv = direction[:, 0] / direction[:, 2], direction[:, 1] / direction[:, 2]
    j = np.zeros((len(u), 2, 6))
    j[:, 0, 0] = -1.0
    j[:, 1, 1] = -1.0
    j[:, 0, 2], j[:, 1, 2] = tu, tv
    j[:, 0, 3], j[:, 1, 3] = tu * v, tv * v
    j[:, 0, 4], j[:, 1, 4] = -tu * u, -tv * u
    j[:, 0, 5], j[:, 1, 5] = v, -u
    return j


# -- track sample ------------------------------------------------------------------------------
@dataclass
class TrackSample:
    """Hits on tracks for alignment, all events concatenated, grouped by track (inner to outer).

    ``module`` (H,) detector rows, ``meas`` (H, 2) measured local (u, v) (mm), ``var`` (H, 2)
    their variances (mm^2), ``offsets`` (T + 1,) so that track i has hits offsets[i]:offsets[i+1],
    ``event`` (T,) index of each track's event in the input list, ``xyz`` (H, 3) hit positions in
    the nominal frames (mm; for the starting track parameters).
    """

    module: np.ndarray
    meas: np.ndarray
    var: np.ndarray
    offsets: np.ndarray
    event: np.ndarray
    xyz: np.ndarray

    def __post_init__(self) -> None:
        if self.offsets[-1] != len(self.module) or len(self.meas) != len(self.module):
            raise InputError("track sample: offsets and hit arrays disagree")

    @property
    def n_tracks(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_hits(self) -> int:
        return len(self.module)

    @property
    def track(self) -> np.ndarray:
        """(H,) track index of each hit."""
        return np.repeat(np.arange(self.n_tracks), np.diff(self.offsets))

    def select_tracks(self, keep: np.ndarray) -> TrackSample:
        """The tracks where boolean ``keep`` (T,) is True (or the listed track indices)."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        lengths = np.diff(self.offsets)[idx]
        rows = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx]) if len(idx) else \
            np.zeros(0, np.int64)
        return TrackSample(self.module[rows], self.meas[rows], self.var[rows], np.r_[0, np.cumsum(lengths)],
                           self.event[idx], self.xyz[rows])


def initial_params(sample: TrackSample, bz: float) -> np.ndarray:
    """Starting perigee parameters (T, 5) from each track's first, middle and last hit (circle in
    x-y through them and the mean z slope); the fit refines them."""
    o = sample.offsets
    first, last = o[:-1], o[1:] - 1
    # Middle point: the hit nearest half-way in distance (overlapping modules of one layer would
    # make a degenerate circle).
    dist = np.linalg.norm(sample.xyz - sample.xyz[np.repeat(first, np.diff(o))], axis=1)
    half = 0.5 * dist[last]
    gap = np.abs(dist - np.repeat(half, np.diff(o)))
    order = np.lexsort((gap, sample.track))
    mid = order[o[:-1]]
    p1, p2, p3 = sample.xyz[first], sample.xyz[mid], sample.xyz[last]
    # Circle through three points in x-y.
    ax, ay, bx, by, cx, cy = p1[:, 0], p1[:, 1], p2[:, 0], p2[:, 1], p3[:, 0], p3[:, 1]
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    d = np.where(np.abs(d) < 1e-9, 1e-9, d)
    ux = ((ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)) / d
    uy = ((ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)) / d
    radius = np.hypot(ax - ux, ay - uy)
    # Sense of rotation from the cross product of the chords: > 0 counter-clockwise (omega > 0).
    turn = np.sign((bx - ax) * (cy - by) - (by - ay) * (cx - bx))
    turn = np.where(turn == 0, 1.0, turn)
    omega = turn / radius
    # Perigee: point of the circle closest to the origin; phi is the direction of motion there.
    dist = np.hypot(ux, uy)
    ex, ey = ux / np.where(dist > 0, dist, 1.0), uy / np.where(dist > 0, dist, 1.0)
    px, py = ux - ex * radius, uy - ey * radius  # on the line origin-centre, inside or outside the circle
    # Direction of motion at the perigee: perpendicular to the radius, sense given by the turn.
    rx, ry = px - ux, py - uy
    tx, ty = -ry * turn, rx * turn
    phi = np.arctan2(ty, tx)
    d0 = -px * np.sin(phi) + py * np.cos(phi)
    # z slope from the transverse arc lengths of first and last hit (straight approximation is fine).
    st1 = np.hypot(ax - px, ay - py)
    st3 = np.hypot(cx - px, cy - py)
    cot = (p3[:, 2] - p1[:, 2]) / np.maximum(st3 - st1, 1e-6)
    z0 = p1[:, 2] - cot * st1
    theta = np.arctan2(1.0, cot)
    qop = -omega * np.sin(theta) / (C_LIGHT * bz) if bz != 0 else np.full(len(omega), 1e-3)
    return np.stack([d0, z0, phi, theta, qop], axis=1)


# -- track fit ---------------------------------------------------------------------------------
@dataclass
class TrackFit:
    """Fitted tracks: ``params`` (T, 5) perigee, ``chi2`` (T,), ``ndf`` (T,), hit ``residual``
    (H, 2) = measured - predicted (mm), ``ok`` (H,) hits whose intersection converged."""

    params: np.ndarray
    chi2: np.ndarray
    ndf: np.ndarray
    residual: np.ndarray
    ok: np.ndarray
    prediction: Prediction
    var: np.ndarray  #: (H, 2) hit variances used (mm^2), multiple scattering included


def scattering_variance(sample: TrackSample, frames: Frames, params: np.ndarray, uv: np.ndarray,
                        x_over_x0: float) -> np.ndarray:
    """(H,) extra hit variance (mm^2) from multiple scattering in the modules crossed before each hit.

    Highland angle per crossing (muon mass, ``x_over_x0`` at normal incidence, divided by the
    incidence cosine) times the distance to the hit, summed in quadrature; correlations between
    hits are neglected, so this only re-weights hits (low-momentum tracks and outer hits count less).
    """
    lengths = np.diff(sample.offsets)
    n_t, n_max = len(lengths), int(lengths.max())
    slot = np.arange(sample.n_hits) - np.repeat(sample.offsets[:-1], lengths)
    track = sample.track
    c, rot = frames.centre[sample.module], frames.rotation[sample.module]
    xyz = c + np.einsum("nij,nj->ni", rot[:, :, :2], uv)
    p = 1.0 / np.maximum(np.abs(params[:, 4]), 1e-6)
    beta = p / np.sqrt(p * p + 0.10566**2)
    theta = params[:, 3]
    direction = np.stack([np.cos(params[:, 2]) * np.sin(theta), np.sin(params[:, 2]) * np.sin(theta),
                          np.cos(theta)], axis=1)[track]
    cos_inc = np.maximum(np.abs(np.einsum("ni,ni->n", direction, rot[:, :, 2])), 0.05)
    x = x_over_x0 / cos_inc
    theta0 = 13.6e-3 / (beta * p)[track] * np.sqrt(x) * (1 + 0.038 * np.log(x))
    pos = np.zeros((n_t, n_max, 3))
    th2 = np.zeros((n_t, n_max))
    pos[track, slot] = xyz
    th2[track, slot] = theta0**2
    dist2 = ((pos[:, :, None, :] - pos[:, None, :, :]) ** 2).sum(-1)  # (T, i, j)
    earlier = np.tril(np.ones((n_max, n_max), bool), -1)
    var = (dist2 * th2[:, None, :] * earlier).sum(-1)
    return var[track, slot]


def fit_tracks(sample: TrackSample, frames: Frames, bz: float, params: np.ndarray | None = None,
               iterations: int = 4, beam_spot: float | None = None, scattering: float | None = None) -> TrackFit:
    """Least-squares helix fit (Gauss-Newton) of every track to its hits on ``frames``.

    Starts from ``params`` (T, 5) or :func:`initial_params`. Hits whose intersection fails get
    zero weight. No material: multiple scattering only widens the residuals. ``beam_spot`` (mm):
    the transverse beam-spot size, added as a pseudo-measurement d0 = 0 (tracks from the beam
    line; it keeps short endcap tracks stiff); ``None`` leaves d0 free. ``scattering``: x/X0 per
    module crossing for the hit weights (:func:`scattering_variance`); ``None``: hit errors only.
    """
    bs_w = 0.0 if beam_spot is None else 1.0 / float(beam_spot) ** 2
    params = initial_params(sample, bz) if params is None else np.array(params, np.float64)
    track = sample.track
    starts = sample.offsets[:-1]
    var = sample.var
    weight = 1.0 / var
    for it in range(iterations):
        pr = predict(params, frames, sample.module, track, bz)
        if scattering and it in (1, iterations - 1):  # once the momentum is roughly known, and at the end
            var = sample.var + scattering_variance(sample, frames, params, pr.uv, scattering)[:, None]
            weight = 1.0 / var
        w = weight * pr.ok[:, None]
        r = np.where(pr.ok[:, None], sample.meas - pr.uv, 0.0)
        j = np.where(pr.ok[:, None, None], pr.track_jacobian, 0.0)
        a = np.add.reduceat(np.einsum("hki,hk,hkj->hij", j, w, j), starts, axis=0)
        g = np.add.reduceat(np.einsum("hki,hk,hk->hi", j, w, r), starts, axis=0)
        a[:, 0, 0] += bs_w
        g[:, 0] -= bs_w * params[:, 0]
        # A tiny Levenberg term keeps tracks with degenerate hits solvable.
        a += np.eye(5) * (1e-12 * np.trace(a, axis1=1, axis2=2))[:, None, None] + np.eye(5) * 1e-30
        step = np.linalg.solve(a, g[:, :, None])[:, :, 0]
        params = params + step
        params[:, 3] = np.clip(params[:, 3], 1e-3, np.pi - 1e-3)
    pr = predict(params, frames, sample.module, track, bz)
    r = np.where(pr.ok[:, None], sample.meas - pr.uv, 0.0)
    chi2 = np.add.reduceat((r * r * weight * pr.ok[:, None]).sum(1), starts) + bs_w * params[:, 0] ** 2
    ndf = np.add.reduceat(2 * pr.ok.astype(np.int64), starts) - 5 + (beam_spot is not None)
    return TrackFit(params, chi2, ndf, r, pr.ok, pr, var)


# -- from events ------------------------------------------------------------------------------
def measured_local(event, detector: Detector, module: np.ndarray) -> np.ndarray:
    """(H, 2) measured local (u, v) (mm) of ``event.hits``.

    With cells, the charge-weighted centroid of the readout channels: that is what the sensor
    measures, whatever frame the hit's x, y, z were computed in (a misaligned simulation writes
    them in the true frames). Without cells, x, y, z projected on the nominal module planes.
    """
    hits, cells = event.hits, event.cells
    n = len(hits)
    if cells is None or len(cells) == 0:
        xyz = np.stack([hits["x"], hits["y"], hits["z"]], axis=1).astype(np.float64)
        return detector.global_to_local(module, xyz)[:, :2]
    hid = np.asarray(hits["hit_id"])
    order = np.argsort(hid, kind="stable")
    pos = np.minimum(np.searchsorted(hid[order], cells["hit_id"]), n - 1)
    row = order[pos]
    if not np.array_equal(hid[row], np.asarray(cells["hit_id"])):
        raise InputError(f"{event.name} cells: hit_id(s) not in the hits table")
    m = module[row]
    value = np.asarray(cells["value"], np.float64)
    u = -detector.max_hu[m] + (np.asarray(cells["ch0"]) + 0.5) * detector.pitch_u[m]
    v = -detector.hv[m] + (np.asarray(cells["ch1"]) + 0.5) * detector.pitch_v[m]
    wsum = np.bincount(row, weights=value, minlength=n)
    if np.any(wsum <= 0):
        bad = int(np.flatnonzero(wsum <= 0)[0])
        raise InputError(f"{event.name}: hit_id {hid[bad]} has no cells with positive charge")
    return np.stack([np.bincount(row, weights=value * u, minlength=n) / wsum,
                     np.bincount(row, weights=value * v, minlength=n) / wsum], axis=1)


#: mm, the smallest hit error the track finding of ``tracks="reco"`` assumes: an "alignment
#: position error" as in CMS. Before alignment, hits sit up to ~0.5 mm off their nominal modules (the
#: seed study's 100 um shifts and 20 mrad rotations), so with the hits' own errors the CKF's chi2 cut
#: rejects them: on 1,000 muons through the misaligned generic detector it finds 3 tracks with the
#: reconstruction's errors, 29 with a 0.1 mm floor and 251 with 0.3 mm (323 on the aligned detector
#: with the same floor). The alignment fit itself then uses the hits' real errors.
RECO_ALIGNMENT_ERROR = 0.3


def _alignment_reco_config():
    from trackcore.reco.measurements import CLUSTER_RESOLUTION, HitErrorModel
    from trackcore.reco.pipeline import ReconstructionConfig

    return ReconstructionConfig(hit_errors=HitErrorModel(CLUSTER_RESOLUTION, RECO_ALIGNMENT_ERROR))


def _track_rows(event, source: str, detector: Detector, nominal_xyz: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(rows of event.hits, track label) of the hits on tracks, from truth or reconstruction.

    ``nominal_xyz``: the hits' measured local positions placed on ``detector``'s (nominal) modules.
    The reconstruction runs on those, as a real detector reports its hits through the geometry it
    assumes; simulated misaligned events record the true positions, which lie off the nominal modules.
    """
    hits = event.hits
    if source == "truth":
        if event.truth is None:
            raise InputError(f"{event.name}: tracks from truth need a truth table (or use tracks='reco')")
        truth = event.truth
        order = np.argsort(np.asarray(truth["hit_id"]), kind="stable")
        pos = np.searchsorted(np.asarray(truth["hit_id"])[order], hits["hit_id"])
        pos = np.minimum(pos, len(truth) - 1)
        found = np.asarray(truth["hit_id"])[order][pos] == np.asarray(hits["hit_id"])
        pid = np.where(found, np.asarray(truth["particle_id"])[order][pos], 0)
        rows = np.flatnonzero(pid != 0)
        return rows, pid[rows]
    if source == "reco":
        from trackcore.reco.pipeline import reconstruct

        if nominal_xyz is not None:
            hits = event.hits.copy()
            hits["x"], hits["y"], hits["z"] = (np.ascontiguousarray(nominal_xyz[:, i]) for i in range(3))
            event = replace(event, hits=hits)
        tracks = reconstruct(event, detector, _alignment_reco_config()).tracks
        return tracks.hits, np.repeat(np.arange(len(tracks)), tracks.n_hits)
    raise InputError(f"aligner: tracks must be 'truth' or 'reco', got {source!r}")


def collect_tracks(detector: Detector, events: list, *, tracks: str = "truth", min_hits: int = 4,
                   errors=None) -> TrackSample:
    """Hits on tracks of ``events`` (recorded with ``detector``'s module ids) as a :class:`TrackSample`.

    ``errors``: the hit error model (:class:`trackcore.reco.measurements.HitErrorModel`); default
    ``ISOLATED_MUON_ERRORS``, since alignment uses isolated high-pT tracks.

    ``tracks``: "truth" (group hits by truth particle; studies) or "reco" (the default pipeline).
    Tracks with fewer than ``min_hits`` distinct modules are dropped; a track keeps one hit per
    module (its first), ordered by distance from the origin.
    """
    from trackcore.reco.measurements import ISOLATED_MUON_ERRORS, cluster_widths, resolution_in_pitch

    errors = errors or ISOLATED_MUON_ERRORS

    if min_hits < 3:
        raise InputError(f"aligner: min_hits must be >= 3 (5 track parameters), got {min_hits}")
    parts = []
    for k, event in enumerate(events):
        hits = event.hits
        if len(hits) == 0:
            continue
        for col in ("hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"):
            if col not in hits:
                raise InputError(f"{event.name} hits: missing column {col!r}")
        module = detector.index(hits["volume_id"], hits["layer_id"], hits["module_id"])
        meas = measured_local(event, detector, module)
        xyz = detector.local_to_global(module, np.c_[meas, np.zeros(len(meas))])
        k_res = resolution_in_pitch(detector, module, cluster_widths(hits, event.cells), errors.table)
        sig = np.maximum(np.stack([detector.pitch_u[module], detector.pitch_v[module]], 1) * k_res, errors.floor)
        rows, label = _track_rows(event, tracks, detector, xyz)
        if not len(rows):
            continue
        dist = np.linalg.norm(xyz[rows], axis=1)
        order = np.lexsort((dist, label))
        rows, label = rows[order], label[order]
        # One hit per (track, module): the first one.
        _, first = np.unique(np.stack([label, module[rows]], axis=1), axis=0, return_index=True)
        first = np.sort(first)
        rows, label = rows[first], label[first]
        starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
        counts = np.diff(np.r_[starts, len(label)])
        good = np.repeat(counts >= min_hits, counts)
        rows, label = rows[good], label[good]
        counts = counts[counts >= min_hits]
        if not len(counts):
            continue
        parts.append((module[rows], meas[rows], sig[rows] ** 2, counts, np.full(len(counts), k), xyz[rows]))
    if not parts:
        raise InputError(f"aligner: no track with >= {min_hits} hits in {len(events)} event(s)")
    counts = np.concatenate([p[3] for p in parts])
    return TrackSample(np.concatenate([p[0] for p in parts]).astype(np.int64), np.concatenate([p[1] for p in parts]),
                       np.concatenate([p[2] for p in parts]), np.r_[0, np.cumsum(counts)].astype(np.int64),
                       np.concatenate([p[4] for p in parts]).astype(np.int64), np.concatenate([p[5] for p in parts]))
