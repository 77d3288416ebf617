"""MillePede-style global alignment fit.

Each iteration: fit every track on the current module frames, linearise the hit residuals in the
track parameters (5 per track) and the alignment parameters (6 per alignable), eliminate each
track's parameters exactly (Schur complement of its 5x5 block), sum the reduced normal equations
``C . dg = b`` into a sparse matrix, add Lagrange constraints against the weak modes (or fix a
reference layer), solve with scipy (SuperLU ``spsolve`` or ``minres``), move the frames, repeat.

Alignables are modules, layers or volumes (rigid bodies). Module parameters live in the module's
local frame (du, dv, dw, wu, wv, ww); layer/volume parameters in the global frame about the
structure's centroid (dx, dy, dz, wx, wy, wz). Inside the solver rotations are scaled by
:data:`ROTATION_SCALE` (mm) so that every column of C has units of mm.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from trackcore.errors import InputError
from trackcore.geometry.detector import Detector

from .residuals import Frames, TrackSample, alignment_jacobian, fit_tracks

#: Length (mm) that turns a rotation (rad) into a displacement inside the solver (a module half-length).
ROTATION_SCALE = 10.0
#: Weak modes of a helix fit in a solenoid that the constraints can remove (see :func:`mode_vectors`).
MODES = ("tx", "ty", "tz", "rx", "ry", "rz", "sxy", "sz", "curl", "twist", "telescope")
#: Default constrained modes: the rigid body (exactly unobservable) and the distortions that a
#: helix fit with free curvature and dip absorbs (scales, curl, twist, telescope).
DEFAULT_MODES = MODES
LEVELS = ("module", "layer", "volume")


@dataclass
class GlobalFitConfig:
    """Settings of :func:`global_fit`. ``bz`` in T; ``chi2_cut``: tracks with chi2/ndf above
    ``chi2_cut`` times the median are left out of an iteration (outliers, failed fits)."""

    iterations: int = 8
    level: str = "module"
    solver: str = "spsolve"  #: "spsolve" (direct) or "minres" (iterative)
    modes: tuple[str, ...] = DEFAULT_MODES  #: weak modes constrained to zero by Lagrange multipliers
    fixed_layers: tuple[tuple[int, int], ...] = ()  #: (volume, layer) reference layers held fixed
    min_hits: int = 20  #: alignables with fewer hits are held fixed
    chi2_cut: float = 5.0
    track_iterations: int = 4
    bz: float = 2.0
    spectrum: int = 12  #: smallest eigenvalues of C to report (0: none)
    #: transverse beam-spot size (mm) of a d0 = 0 pseudo-measurement per track; None: d0 free
    beam_spot: float | None = 0.015
    #: effective x/X0 per module crossing for multiple-scattering hit weights; None: off. Smaller
    #: than the simulated 0.015 because the fit follows part of the scattering (tuned to chi2/ndf ~ 1).
    scattering: float | None = 0.005
    #: MillePede "presigma" (mm, with rotations scaled by ROTATION_SCALE): a Gaussian prior on the
    #: total correction that keeps weakly measured parameters from running away; None: no prior
    presigma: float | None = 1.0
    #: largest step per iteration (mm at ROTATION_SCALE); larger steps are scaled down as a whole
    max_step: float = 1e9
    #: fit every track from its seed at each iteration instead of from its last parameters (the
    #: hessian-free aligner's rule): warm starts keep ~2 % of the tracks in bad fits from the first,
    #: mm-scale steps, outside the chi2 cut for good; False keeps the published study's behaviour
    refit_from_seed: bool = False

    def check(self) -> GlobalFitConfig:
        if self.level not in LEVELS:
            raise InputError(f"global fit: level must be one of {LEVELS}, got {self.level!r}")
        if self.solver not in ("spsolve", "minres"):
            raise InputError(f"global fit: solver must be 'spsolve' or 'minres', got {self.solver!r}")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise InputError(f"global fit: unknown weak mode(s) {unknown}; known: {', '.join(MODES)}")
        if self.iterations < 1 or self.min_hits < 0 or self.chi2_cut <= 0:
            raise InputError("global fit: iterations >= 1, min_hits >= 0 and chi2_cut > 0 are required")
        return self


@dataclass
class GlobalFitResult:
    """The aligned frames, the local module corrections (N, 6) relative to the nominal detector,
    per-iteration history and the eigen-spectrum of the last C (mm^-2 units, see module doc)."""

    frames: Frames
    corrections: np.ndarray
    history: list[dict] = field(default_factory=list)
    spectrum: dict = field(default_factory=dict)


# -- alignables and weak modes -------------------------------------------------------------------
def alignables(detector: Detector, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group of each module (N,), per-module map M (N, 6, 6) from group to local module
    parameters, group centroids (G, 3)). Module level: M = identity."""
    n = len(detector)
    if level == "module":
        return np.arange(n), np.broadcast_to(np.eye(6), (n, 6, 6)).copy(), detector.centre.copy()
    key = detector.volume_id.astype(np.int64) * 1000 + (detector.layer_id if level == "layer" else 0)
    _, group = np.unique(key, return_inverse=True)
    counts = np.bincount(group)
    centroid = np.stack([np.bincount(group, weights=detector.centre[:, k]) / counts for k in range(3)], axis=1)
    rt = np.transpose(detector.rotation, (0, 2, 1))
    arm = detector.centre - centroid[group]
    m = np.zeros((n, 6, 6))
    m[:, :3, :3] = rt
    # A rotation w about the centroid moves the module centre by w x arm: -[arm]x w.
    skew = np.zeros((n, 3, 3))
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -arm[:, 2], arm[:, 1], -arm[:, 0]
    skew[:, 1, 0], skew[:, 2, 0], skew[:, 2, 1] = arm[:, 2], -arm[:, 1], arm[:, 0]
    m[:, :3, 3:] = -rt @ skew
    m[:, 3:, 3:] = rt
    return group, m, centroid


def mode_vectors(detector: Detector, modes: tuple[str, ...]) -> np.ndarray:
    """(N*6, k) unit vectors of the named global distortions in local module parameters (rotations
    scaled by :data:`ROTATION_SCALE`). Displacement D and rotation W at module centre c:
    t*: D = e; r*: D = e x c, W = e; sxy: D = (cx, cy, 0); sz: D = (0, 0, cz); curl: a rotation
    about z by an angle prop. to r; twist: by an angle prop. to z; telescope: D = (0, 0, r)."""
    c = detector.centre
    r = np.hypot(c[:, 0], c[:, 1])
    ez = np.array([0.0, 0.0, 1.0])
    out = []
    for name in modes:
        d, w = np.zeros_like(c), np.zeros_like(c)
        if name[0] == "t" and len(name) == 2:
            d[:, "xyz".index(name[1])] = 1.0
        elif name[0] == "r" and len(name) == 2:
            e = np.eye(3)["xyz".index(name[1])]
            d, w = np.cross(e, c), np.broadcast_to(e, c.shape).copy()
        elif name == "sxy":
            d[:, :2] = c[:, :2]
        elif name == "sz":
            d[:, 2] = c[:, 2]
        elif name in ("curl", "twist"):
            angle = r if name == "curl" else c[:, 2]
            d, w = angle[:, None] * np.cross(ez, c), angle[:, None] * ez
        elif name == "telescope":
            d[:, 2] = r
        else:
            raise InputError(f"unknown weak mode {name!r}")
        loc = np.concatenate([np.einsum("nji,nj->ni", detector.rotation, d),
                              ROTATION_SCALE * np.einsum("nji,nj->ni", detector.rotation, w)], axis=1)
        v = loc.reshape(-1)
        out.append(v / np.linalg.norm(v))
    return np.stack(out, axis=1) if out else np.zeros((6 * len(detector), 0))


def remove_modes(values: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(N, 6) local parameters with their components along ``basis`` (N*6, k) removed
    (least squares in the scaled metric of :data:`ROTATION_SCALE`)."""
    x = np.asarray(values, np.float64).copy()
    x[:, 3:] *= ROTATION_SCALE
    flat = x.reshape(-1)
    if basis.shape[1]:
        coef, *_ = np.linalg.lstsq(basis, flat, rcond=None)
        flat = flat - basis @ coef
    out = flat.reshape(-1, 6)
    out[:, 3:] /= ROTATION_SCALE
    return out


# -- normal equations ------------------------------------------------------------------------
def _derivatives(sample: TrackSample, frames: Frames, bz: float, params: np.ndarray | None, iterations: int,
                 beam_spot: float | None = None, scattering: float | None = None):
    fit = fit_tracks(sample, frames, bz, params, iterations, beam_spot, scattering)
    ja = alignment_jacobian(fit.prediction.uv, fit.prediction.direction)
    ja[:, :, 3:] /= ROTATION_SCALE
    return fit, ja


def normal_equations(sample: TrackSample, fit, ja_local: np.ndarray, group: np.ndarray, m: np.ndarray,
                     n_groups: int, track_ok: np.ndarray, beam_spot: float | None = None, chunk: int = 20000):
    """Sparse C (6G x 6G) and b (6G,) after eliminating the 5 parameters of each accepted track."""
    from scipy import sparse

    g_hit = group[sample.module]
    # d(pred)/d(group params) = d(pred)/d(local) . M (with the rotation scaling on both sides).
    scale = np.r_[np.ones(3), np.full(3, ROTATION_SCALE)]
    mh = m[sample.module] * scale[:, None] / scale[None, :]
    jg = np.einsum("hkl,hlj->hkj", ja_local, mh)
    w = np.where(fit.ok[:, None], 1.0 / fit.var, 0.0)
    r = fit.residual
    jp = np.where(fit.ok[:, None, None], fit.prediction.track_jacobian, 0.0)
    lengths = np.diff(sample.offsets)
    c_total = sparse.csr_matrix((6 * n_groups, 6 * n_groups))
    b = np.zeros(6 * n_groups)
    chi2 = 0.0
    for n in np.unique(lengths):
        tracks = np.flatnonzero((lengths == n) & track_ok)
        for lo in range(0, len(tracks), chunk):
            t = tracks[lo:lo + chunk]
            rows = (sample.offsets[t][:, None] + np.arange(n)).reshape(-1)
            jp_t = jp[rows].reshape(len(t), n, 2, 5)
            jg_t = jg[rows].reshape(len(t), n, 2, 6)
            w_t = w[rows].reshape(len(t), n, 2)
            r_t = r[rows].reshape(len(t), n, 2)
            gam = np.einsum("tnki,tnk,tnkj->tij", jp_t, w_t, jp_t)
            beta = np.einsum("tnki,tnk,tnk->ti", jp_t, w_t, r_t)
            gmix = np.einsum("tnka,tnk,tnkj->tnaj", jg_t, w_t, jp_t).reshape(len(t), 6 * n, 5)
            cdiag = np.einsum("tnka,tnk,tnkb->tnab", jg_t, w_t, jg_t)
            bb = np.einsum("tnka,tnk,tnk->tna", jg_t, w_t, r_t).reshape(len(t), 6 * n)
            if beam_spot is not None:  # the d0 = 0 pseudo-measurement: no alignment derivative
                gam[:, 0, 0] += 1.0 / beam_spot**2
                beta[:, 0] -= fit.params[t, 0] / beam_spot**2
            gam += np.eye(5) * (1e-12 * np.trace(gam, axis1=1, axis2=2))[:, None, None]
            ginv = np.linalg.inv(gam)
            k = -np.einsum("tai,tij,tbj->tab", gmix, ginv, gmix)
            for h in range(n):
                k[:, 6 * h:6 * h + 6, 6 * h:6 * h + 6] += cdiag[:, h]
            bb -= np.einsum("tai,tij,tj->ta", gmix, ginv, beta)
            idx = (g_hit[rows].reshape(len(t), n)[:, :, None] * 6 + np.arange(6)).reshape(len(t), 6 * n)
            c_total = c_total + sparse.coo_matrix(
                (k.reshape(-1), (np.repeat(idx, 6 * n, axis=1).reshape(-1), np.tile(idx, (1, 6 * n)).reshape(-1))),
                shape=c_total.shape).tocsr()
            np.add.at(b, idx.reshape(-1), bb.reshape(-1))
            chi2 += float(np.einsum("tnk,tnk,tnk->", r_t, w_t, r_t))
    return c_total, b, chi2


def _solve(c, b, a, rhs_a, solver: str):
    """Solve [[C, A^T], [A, 0]] [x, lambda] = [b, rhs_a]; returns x."""
    from scipy import sparse
    from scipy.sparse.linalg import minres, spsolve

    k = a.shape[0]
    big = sparse.bmat([[c, sparse.csr_matrix(a.T)], [sparse.csr_matrix(a), None]], format="csc") if k else c.tocsc()
    rhs = np.r_[b, rhs_a]
    if solver == "spsolve":
        x = spsolve(big, rhs)
    else:
        # Block-Jacobi preconditioner (SPD as MINRES needs): 1/diag(C) for the parameters and the
        # inverse of the Schur complement diagonal, diag(A diag(C)^-1 A^T), for the multipliers.
        d = np.abs(c.diagonal())
        dinv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 1.0)
        schur = np.einsum("kj,j,kj->k", a, dinv, a) if k else np.zeros(0)
        precond = sparse.diags(np.r_[dinv, 1.0 / np.where(schur > 0, schur, 1.0)])
        x, info = minres(big, rhs, M=precond, rtol=1e-14, maxiter=20 * big.shape[0])
        if info < 0:
            raise InputError(f"global fit: MINRES failed (info {info})")
        if info > 0:
            import warnings

            warnings.warn(f"global fit: MINRES stopped after {info} iterations before converging", stacklevel=3)
    if not np.all(np.isfinite(x)):
        raise InputError("global fit: the constrained normal equations are singular; constrain more weak modes, "
                         "fix a reference layer or raise min_hits")
    return x[:c.shape[0]]


def eigen_spectrum(c, n_smallest: int) -> dict:
    """Smallest ``n_smallest`` and the largest eigenvalue of the symmetric sparse C, with eigenvectors."""
    from scipy.sparse.linalg import eigsh

    n = c.shape[0]
    if n_smallest <= 0 or n < 3:
        return {}
    largest = float(eigsh(c, k=1, which="LA", return_eigenvectors=False)[0])
    k = min(n_smallest, n - 2)
    # Shift-invert just below zero: C - sigma I is positive definite even when C is singular.
    vals, vecs = eigsh(c, k=k, sigma=-1e-6 * largest, which="LM")
    order = np.argsort(vals)
    return {"smallest": vals[order], "largest": largest, "vectors": vecs[:, order]}


# -- driver -----------------------------------------------------------------------------------
def global_fit(detector: Detector, sample: TrackSample, config: GlobalFitConfig | None = None,
               progress: bool = False) -> GlobalFitResult:
    """Align ``detector`` (nominal frames) to the tracks of ``sample``; see the module docstring."""
    from scipy import sparse

    config = (config or GlobalFitConfig()).check()
    nominal = Frames.from_detector(detector)
    frames = nominal
    group, m, _ = alignables(detector, config.level)
    n_groups = int(group.max()) + 1
    # Constraints are written on the module parameters: B^T (a_total + M dg) = 0.
    basis = mode_vectors(detector, tuple(config.modes))
    scale = np.r_[np.ones(3), np.full(3, ROTATION_SCALE)]
    m_scaled = m * scale[:, None] / scale[None, :]
    m_big = sparse.block_diag(list(m_scaled), format="csr") @ sparse.csr_matrix(
        (np.ones(6 * len(detector)), ((np.arange(6 * len(detector))),
                                     (group[:, None] * 6 + np.arange(6)).reshape(-1))),
        shape=(6 * len(detector), 6 * n_groups))
    hits_per_group = np.bincount(group[sample.module], minlength=n_groups)
    fixed = np.repeat(hits_per_group < config.min_hits, 6)
    for vol, lay in config.fixed_layers:
        sel = (detector.volume_id == vol) & (detector.layer_id == lay)
        if not sel.any():
            raise InputError(f"global fit: no layer (volume {vol}, layer {lay}) to fix")
        fixed[(np.unique(group[sel])[:, None] * 6 + np.arange(6)).reshape(-1)] = True
    free = np.flatnonzero(~fixed)
    result = GlobalFitResult(frames, np.zeros((len(detector), 6)))
    params = None
    for it in range(config.iterations):
        t0 = time.perf_counter()
        fit, ja = _derivatives(sample, frames, config.bz, None if config.refit_from_seed else params,
                               config.track_iterations, config.beam_spot, config.scattering)
        params = fit.params
        ndf = np.maximum(fit.ndf, 1)
        red = fit.chi2 / ndf
        all_ok = np.add.reduceat((~fit.ok).astype(np.int64), sample.offsets[:-1]) == 0
        track_ok = all_ok & np.isfinite(red) & (fit.ndf > 0)
        # Far from the solution every track through a badly misaligned module has a large chi2, so
        # the outlier cut starts loose and tightens (as MillePede's chi2 cut factor does).
        factor = config.chi2_cut * max(1.0, 100.0 / 10 ** it)
        track_ok &= red < factor * np.median(red[track_ok])
        c, b, chi2 = normal_equations(sample, fit, ja, group, m, n_groups, track_ok, config.beam_spot)
        t1 = time.perf_counter()
        # Alignables seen by too few accepted tracks this iteration stay where they are.
        used = np.bincount(group[sample.module[np.repeat(track_ok, np.diff(sample.offsets))]], minlength=n_groups)
        free = np.flatnonzero(~fixed & np.repeat(used >= max(config.min_hits, 1), 6))
        cf = c[free][:, free]
        a_total = frames.relative_to(nominal) * scale
        a = (basis.T @ m_big)[:, free] if basis.shape[1] else np.zeros((0, len(free)))
        rhs_a = -(basis.T @ a_total.reshape(-1)) if basis.shape[1] else np.zeros(0)
        bf = b[free]
        if config.presigma:
            g_total = (m_big.T @ a_total.reshape(-1))[free] if config.level == "module" else None
            w_pre = 1.0 / config.presigma**2
            cf = cf + w_pre * sparse.identity(len(free), format="csr")
            if g_total is not None:  # the prior is on the total module correction
                bf = bf - w_pre * g_total
        dg = np.zeros(6 * n_groups)
        dg[free] = _solve(cf, bf, a, rhs_a, config.solver)
        biggest = np.abs(dg).max()
        if biggest > config.max_step:  # far from the solution: a damped step along the same direction
            dg *= config.max_step / biggest
        da = (m_big @ dg).reshape(-1, 6) / scale
        frames = frames.corrected(da)
        t2 = time.perf_counter()
        entry = {"iteration": it, "tracks": int(track_ok.sum()), "chi2_ndf": float(chi2 / max(
            1, int(fit.ndf[track_ok].sum()))), "max_step_mm": float(np.abs(da[:, :3]).max()),
                 "max_step_mrad": float(1e3 * np.abs(da[:, 3:]).max()), "build_s": t1 - t0, "solve_s": t2 - t1,
                 "nnz": int(cf.nnz), "parameters": len(free)}
        result.history.append(entry)
        if progress:
            print(f"  global fit iteration {it}: {entry['tracks']} tracks, chi2/ndf {entry['chi2_ndf']:.3f}, "
                  f"max step {1e3 * entry['max_step_mm']:.1f} um / {entry['max_step_mrad']:.2f} mrad, "
                  f"build {entry['build_s']:.1f} s, solve {entry['solve_s']:.1f} s", flush=True)
        if it == config.iterations - 1 and config.spectrum:
            result.spectrum = eigen_spectrum(cf, config.spectrum)
            result.spectrum["free"] = free
    result.frames = frames
    result.corrections = frames.relative_to(nominal)
    return result
