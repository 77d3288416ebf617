"""Hessian-free Gauss-Newton for the ML aligner (``optimizer="hessian-free"``).

Outer iterations: re-fit every track on the current geometry (numpy, per mini-batch of events),
linearise each mini-batch in torch, take the autograd gradient of the whole-sample chi2 with the
track parameters profiled out, and solve ``H d = -g`` by projected, preconditioned conjugate
gradients. ``H v`` is never formed as a matrix: per mini-batch it is

    J_a^T W (J_a v - J_p Gamma^-1 J_p^T W J_a v)         (+ the presigma prior w v)

where each hit's rows of ``J_a`` (H, 2, 6: a hit moves only with its own module) and ``J_p`` (H, 2, 5)
come from forward-mode products (:func:`torch.func.jvp`) of the differentiable track-plane
intersection once per outer iteration (six along the alignment parameters of all modules at once,
five along the track parameters; the helix replaced by its tangent at the linearisation point, the
same first derivatives), with the tracks' 5x5 ``Gamma^-1``; each product is then a few einsums and
scatter-adds over the hits (:meth:`ProfiledChi2.hvp_many`, many vectors at once).
:meth:`ProfiledChi2.hvp_autograd` (one jvp and one vjp per mini-batch) is the reference. Memory is
O(hits), ~250 B per hit, plus one mini-batch's autograd graph for the gradient.

Units: the corrections are (N, 6) ``du, dv, dw`` (mm) and ``wu, wv, ww`` scaled by
:data:`~.global_fit.ROTATION_SCALE` (mm), so H is in mm^-2 (half the chi2's second derivative,
as the global fit's C) and g in mm^-1. The preconditioner (:mod:`.precondition`) is the per-module
6x6 blocks, by default with a coarse level: an exact Galerkin solve on the rigid-body motions of
every layer and disk, ring, or patch of ~6 neighbouring modules (:mod:`.coarse`; ``H Z`` assembled hit
by hit, :meth:`ProfiledChi2.coarse_columns`), the slow directions of block-Jacobi CG on the full detector. The weak-mode constraints ``B^T (a + d) = 0`` (the global fit's gauge) and
the frozen modules are imposed exactly on every CG iterate (projected PCG, Gould-Hribar-Nocedal).
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .coarse import CoarseSpace, LowRank
from .precondition import (
    BlockPreconditioner,
    TwoLevelPreconditioner,
    curvature_blocks,
    structure_groups,
)
from .residuals import Frames, TrackFit, TrackSample, fit_tracks


@dataclass
class Linearisation:
    """One mini-batch of accepted tracks linearised at the current corrections (torch tensors).

    ``params`` (T, 5) fitted perigee, ``track`` (H,) row of params per hit, ``used``/``inverse``
    the batch's modules and each hit's index into them, ``s`` (H,) converged path lengths (mm),
    ``meas`` (H, 2) mm, ``w`` (H, 2) hit weights (mm^-2), ``jp`` (H, 2, 5) d(u, v)/d(params),
    ``gamma_inv`` (T, 5, 5) inverse track normal matrices (beam spot included), ``x``/``t`` (H, 3)
    helix point (mm) and direction at ``s`` (constants of :meth:`ProfiledChi2.hvp`'s model).
    """

    params: object
    track: object
    used: object
    inverse: object
    s: object
    meas: object
    w: object
    jp: object
    gamma_inv: object
    x: object = None
    t: object = None
    ja: object = None  #: (H, 2, 6) d(u, v)/d(own module's corrections), scaled units
    module: object = None  #: (H,) module index of every hit


class ProfiledChi2:
    """Gradient and matrix-free Gauss-Newton products of the whole-sample profiled chi2 / 2.

    ``centre`` (N, 3) mm and ``rotation`` (N, 3, 3) nominal frames as tensors, ``bz`` (T),
    ``beam_spot`` (mm) of the d0 = 0 pseudo-measurement or None.
    """

    def __init__(self, centre, rotation, bz: float, beam_spot: float | None) -> None:
        self.centre, self.rotation, self.bz = centre, rotation, bz
        self.bs_w = 0.0 if beam_spot is None else 1.0 / beam_spot**2
        self.batches: list[Linearisation] = []
        self.corrections = None

    def _uv(self, lin: Linearisation, corrections, params=None):
        from .ml_aligner import local_uv_torch, module_frames_torch

        c, rot = module_frames_torch(self.centre, self.rotation, corrections, lin.used)
        p = lin.params if params is None else params
        return local_uv_torch(p[lin.track], lin.s, c[lin.inverse], rot[lin.inverse], self.bz)

    def _uv_tangent(self, lin: Linearisation, corrections):
        """The intersection with the helix replaced by its tangent line at the linearisation point:
        ``x + t ds`` with the Newton step ``ds`` onto the moved plane. Same value and first derivatives
        in ``corrections`` as :meth:`_uv` there (the helix's curvature enters at second order), without
        the per-hit trigonometry, so the products of :meth:`hvp` cost less."""
        from .ml_aligner import module_frames_torch

        c, rot = module_frames_torch(self.centre, self.rotation, corrections, lin.used)
        c, rot = c[lin.inverse], rot[lin.inverse]
        n = rot[:, :, 2]
        ds = -((lin.x - c) * n).sum(1) / (lin.t * n).sum(1)
        return (rot[:, :, :2] * (lin.x + lin.t * ds[:, None] - c)[:, :, None]).sum(1)

    def linearise(self, corrections, batches: list[tuple[TrackSample, TrackFit]]) -> tuple[np.ndarray, float, int]:
        """Linearise ``batches`` (accepted tracks of each mini-batch with their fit) at ``corrections``
        (N, 6 scaled tensor); returns the gradient of chi2 / 2 (N, 6, mm^-1), chi2 and the hit count."""
        import torch
        from torch.func import jvp, vjp

        from .ml_aligner import _helix, module_frames_torch, path_lengths_torch

        dev, dt = corrections.device, corrections.dtype
        self.corrections = corrections.detach()
        self.batches = []
        grad = torch.zeros_like(self.corrections)
        chi2, n_hits = 0.0, 0
        for sample, fit in batches:
            if sample.n_tracks == 0:
                continue
            module = torch.tensor(sample.module, device=dev)
            used, inverse = torch.unique(module, return_inverse=True)
            track = torch.tensor(sample.track, device=dev)
            params = torch.tensor(fit.params, dtype=dt, device=dev)
            with torch.no_grad():
                c, rot = module_frames_torch(self.centre, self.rotation, self.corrections, used)
                s = path_lengths_torch(params[track], c[inverse], rot[inverse][:, :, 2], self.bz)
                x, t = _helix(params[track], s, self.bz)
            lin = Linearisation(params, track, used, inverse, s, torch.tensor(sample.meas, dtype=dt, device=dev),
                                torch.tensor(1.0 / fit.var, dtype=dt, device=dev), None, None, x, t)
            # J_p column by column: forward-mode products along each track parameter.
            cols = []
            for k in range(5):
                tangent = torch.zeros_like(params)
                tangent[:, k] = 1.0
                cols.append(jvp(lambda p, lin=lin: self._uv(lin, self.corrections, p), (params,), (tangent,))[1])
            lin.jp = torch.stack(cols, dim=2)
            gam = torch.zeros((sample.n_tracks, 5, 5), dtype=dt, device=dev)
            gam.index_add_(0, track, torch.einsum("hki,hk,hkj->hij", lin.jp, lin.w, lin.jp))
            gam[:, 0, 0] += self.bs_w
            gam += torch.eye(5, dtype=dt, device=dev) * (1e-12 * gam.diagonal(dim1=1, dim2=2).sum(1))[:, None, None]
            lin.gamma_inv = torch.linalg.inv(gam)
            # J_a (H, 2, 6): each hit moves with its own module only, so one forward-mode product per
            # alignment parameter (all modules at once) gives every hit's row (for H Z, :meth:`hvp_many`).
            cols = []
            for k in range(6):
                tangent = torch.zeros_like(self.corrections)
                tangent[:, k] = 1.0
                cols.append(jvp(lambda a, lin=lin: self._uv_tangent(lin, a), (self.corrections,), (tangent,))[1])
            lin.ja = torch.stack(cols, dim=2)
            lin.module = module
            uv, pullback = vjp(lambda a, lin=lin: self._uv(lin, a), self.corrections)
            r = lin.meas - uv
            # Profiled gradient: d/da of chi2/2 with each track's response to a at first order,
            # g_a - J_a^T W J_p Gamma^-1 g_p (exact also when the track fit is not fully converged).
            g_p = torch.zeros_like(params).index_add_(0, track, -torch.einsum("hki,hk,hk->hi", lin.jp, lin.w, r))
            g_p[:, 0] += self.bs_w * params[:, 0]
            delta = torch.einsum("tij,tj->ti", lin.gamma_inv, g_p)
            cot = -lin.w * (r + torch.einsum("hki,hi->hk", lin.jp, delta[track]))
            grad += pullback(cot)[0]
            chi2 += float((lin.w * r * r).sum()) + self.bs_w * float((params[:, 0] ** 2).sum())
            n_hits += sample.n_hits
            self.batches.append(lin)
        return grad.cpu().numpy(), chi2, n_hits

    def hvp(self, v: np.ndarray) -> np.ndarray:
        """Gauss-Newton product H v (N, 6) of the profiled chi2 / 2 (no prior), summed over the batches,
        from the stored per-hit J_a (:meth:`hvp_many`; ~6x cheaper than :meth:`hvp_autograd`)."""
        return self.hvp_many(np.asarray(v)[None])[0]

    def hvp_autograd(self, v: np.ndarray) -> np.ndarray:
        """:meth:`hvp` by one forward- and one reverse-mode product through the tangent model per batch
        (the reference for the stored J_a)."""
        import torch
        from torch.func import jvp, vjp

        a = self.corrections
        v_t = torch.as_tensor(v, dtype=a.dtype, device=a.device)
        out = torch.zeros_like(a)
        for lin in self.batches:
            f = lambda x, lin=lin: self._uv_tangent(lin, x)
            u = jvp(f, (a,), (v_t,))[1]
            wu = lin.w * u
            beta = torch.zeros_like(lin.params).index_add_(0, lin.track, torch.einsum("hki,hk->hi", lin.jp, wu))
            dp = torch.einsum("tij,tj->ti", lin.gamma_inv, beta)
            e = u - torch.einsum("hki,hi->hk", lin.jp, dp[lin.track])
            _, pullback = vjp(f, a)
            out += pullback(lin.w * e)[0]
        return out.cpu().numpy()

    def hvp_many(self, v: np.ndarray, chunk: int = 16) -> np.ndarray:
        """H V for ``v`` (k, N, 6) (the Gauss-Newton matrix of :meth:`hvp`, no prior) from the stored
        per-hit J_a, ``chunk`` columns at a time: the coarse level's H Z in one pass over the hits."""
        import torch

        a = self.corrections
        v_t = torch.as_tensor(np.asarray(v), dtype=a.dtype, device=a.device)
        out = torch.zeros_like(v_t)
        for lo in range(0, v_t.shape[0], chunk):
            vc = v_t[lo:lo + chunk]
            for lin in self.batches:
                u = torch.einsum("hka,bha->bhk", lin.ja, vc[:, lin.module])
                wu = lin.w * u
                beta = torch.zeros((vc.shape[0],) + tuple(lin.params.shape), dtype=a.dtype, device=a.device)
                beta.index_add_(1, lin.track, torch.einsum("hki,bhk->bhi", lin.jp, wu))
                dp = torch.einsum("tij,btj->bti", lin.gamma_inv, beta)
                e = u - torch.einsum("hki,bhi->bhk", lin.jp, dp[:, lin.track])
                out[lo:lo + chunk].index_add_(1, lin.module, torch.einsum("hka,hk,bhk->bha", lin.ja, lin.w, e))
        return out.cpu().numpy()

    def coarse_columns(self, space: CoarseSpace, pair_chunk: int = 1 << 19):
        """H Z0 (6N, 6G) scipy BSR (no prior) for the block coarse space of ``space``
        (:class:`.coarse.CoarseSpace`: module m's 6x6 block ``transform[m]`` in group ``group[m]``'s
        columns, -1 for none), assembled hit by hit instead of one :meth:`hvp_many` product per column:

            sum over hits of J_a^T W J_a T_m  -  sum over pairs of hits (h, h') of one track of
            (J_p^T W J_a)_h^T Gamma^-1 (J_p^T W J_a T_m')_h'

        into the (module of h, group of h') block. Cost ~ the pairs of hits on a track (~30 per track),
        whatever the number of coarse columns. Rows of modules outside Z0 are zero (CG masks them)."""
        import torch

        a = self.corrections
        n, n_groups = a.shape[0], space.n_groups
        tm = torch.as_tensor(space.transform, dtype=a.dtype, device=a.device)
        grp = torch.as_tensor(space.group, device=a.device)
        out = torch.zeros((n * n_groups, 6, 6), dtype=a.dtype, device=a.device)
        for lin in self.batches:
            keep = grp[lin.module] >= 0  # hits on modules of Z0 (free modules) only
            track, order = torch.sort(lin.track[keep], stable=True)
            hit = torch.nonzero(keep).flatten()[order]
            module = lin.module[hit]
            row = module * n_groups + grp[module]
            w_ja = lin.w[hit][:, :, None] * lin.ja[hit]
            t = tm[module]
            out.index_add_(0, row, torch.einsum("hka,hkc,hcb->hab", w_ja, lin.ja[hit], t))
            jwj = torch.einsum("hki,hka->hia", lin.jp[hit], w_ja)  # (J_p^T W J_a)_h, (H, 5, 6)
            x = torch.einsum("hij,hjc,hcb->hib", lin.gamma_inv[track], jwj, t)  # Gamma^-1 (J_p^T W J_a T)_h
            # Every ordered pair of kept hits on one track: hit i pairs with its track's run [start, start + len).
            counts = torch.bincount(track, minlength=lin.params.shape[0])
            start = torch.cumsum(counts, 0) - counts
            per_hit = counts[track]
            first = torch.cumsum(per_hit, 0) - per_hit
            bounds = np.r_[np.searchsorted(first.cpu().numpy(), np.arange(0, int(per_hit.sum()), pair_chunk)),
                           len(track)]
            for lo, hi in itertools.pairwise(bounds):
                if hi <= lo:
                    continue
                h1 = torch.repeat_interleave(torch.arange(lo, hi, device=a.device), per_hit[lo:hi])
                h2 = start[track[h1]] + torch.arange(len(h1), device=a.device) - (first[h1] - first[lo])
                out.index_add_(0, module[h1] * n_groups + grp[module[h2]],
                               -torch.einsum("pia,pib->pab", jwj[h1], x[h2]))
        blocks = out.cpu().numpy()
        nz = np.flatnonzero(np.abs(blocks).reshape(len(blocks), -1).max(1) > 0)
        indptr = np.r_[0, np.cumsum(np.bincount(nz // max(n_groups, 1), minlength=n))]
        return sparse.bsr_matrix((blocks[nz], nz % max(n_groups, 1), indptr), shape=(6 * n, 6 * n_groups))


def coarse_products(problem: ProfiledChi2, space: CoarseSpace, prior: float, free: np.ndarray) -> LowRank:
    """H Z for ``space``'s ``Z = Z0 - Q S`` with H the Gauss-Newton matrix of ``problem`` plus ``prior``
    (mm^-2) times the identity, rows of modules not ``free`` zero: ``(H Z0) - (H Q) S``, H Z0 assembled
    per hit (:meth:`ProfiledChi2.coarse_columns`), H Q by matrix-free products (one per weak mode)."""
    n = len(free)
    mask = np.repeat(free, 6).astype(float)
    hz0 = (problem.coarse_columns(space) + prior * space.z0).tobsr(blocksize=(6, 6))
    q = space.q
    hq = (problem.hvp_many(q.T.reshape(-1, n, 6)).reshape(q.shape[1], -1).T + prior * q) * mask[:, None] \
        if q.shape[1] else q
    return LowRank(hz0, hq, space.s)


def projected_pcg(hvp: Callable[[np.ndarray], np.ndarray], g: np.ndarray,
                  precond: BlockPreconditioner | TwoLevelPreconditioner, current: np.ndarray, free: np.ndarray,
                  tol: float, max_iterations: int,
                  stop_metric: BlockPreconditioner | None = None,
                  chi2_floor: float | None = None) -> tuple[np.ndarray, dict]:
    """Minimise ``g.d + d H d / 2`` over (N, 6) steps ``d`` with ``B^T (current + d) = 0`` and
    ``d = 0`` on modules not ``free``, by CG preconditioned with ``precond``'s 6x6 blocks and
    projected onto the constraints in that metric. Stops when ``sqrt(r.z)`` (r = g + H d, z its
    projected preconditioned image) falls below ``tol`` times its start. Returns d and a report
    (iterations, relative residual norms, predicted chi2/2 decrease).

    ``stop_metric``: measure the residual (stopping test and reported norms) with this
    preconditioner's projection instead of ``precond``'s, so that runs with different
    preconditioners stop at the same accuracy (costs one more block application per iteration).
    ``chi2_floor``: also go on while ``r.M^-1 r`` (an estimate, from below, of the chi2 decrease the
    rest of the solve would still give) exceeds it: a relative tolerance alone stops the first
    steps, whose right-hand side is huge, far from their solution."""
    mask = free[:, None].astype(float)
    basis = precond.basis

    def project(r: np.ndarray, pre=precond) -> np.ndarray:
        z = pre.apply_raw(r * mask).reshape(-1)
        if basis.shape[1]:
            z = z - pre.p_basis @ (pre.gram_inv @ (basis.T @ z))
        return z.reshape(-1, 6) * mask

    def size(r: np.ndarray, z: np.ndarray) -> float:
        return float((r * (z if stop_metric is None else project(r, stop_metric))).sum())

    d = np.zeros_like(g)
    if basis.shape[1]:  # a particular solution of the constraints (zero once the gauge holds)
        d = -(precond.p_basis @ (precond.gram_inv @ (basis.T @ current.reshape(-1)))).reshape(-1, 6) * mask
    r = g * mask + (hvp(d) * mask if np.any(d) else 0.0)
    z = project(r)
    rz = float((r * z).sum())
    rs = rs0 = size(r, z)
    norms = [1.0]
    p = -z
    k = 0
    def done(rs: float) -> bool:
        return np.sqrt(max(rs, 0.0) / rs0) <= tol and (chi2_floor is None or rs <= chi2_floor)

    while k < max_iterations and rs0 > 0 and not done(rs):
        hp = hvp(p) * mask
        curv = float((p * hp).sum())
        if curv <= 0:  # cannot happen for a Gauss-Newton matrix with a prior; stop rather than diverge
            break
        alpha = rz / curv
        d = d + alpha * p
        r = r + alpha * hp
        z = project(r)
        rz_new = float((r * z).sum())
        p = -z + (rz_new / rz) * p
        rz = rz_new
        rs = size(r, z)
        k += 1
        norms.append(float(np.sqrt(max(rs, 0.0) / rs0)) if rs0 > 0 else 0.0)
    # chi2/2 model change g.d + d H d / 2 = (g + r).d / 2 since r = g + H d.
    decrease = -0.5 * float(((g * mask + r) * d).sum())
    return d, {"cg_iterations": k, "cg_residual_start": float(np.sqrt(max(rs0, 0.0))),
               "cg_relative_residuals": norms, "cg_converged": bool(rs0 <= 0 or done(rs)),
               "predicted_chi2_decrease": 2.0 * decrease}


def hessian_free_fit(detector, sample: TrackSample, config, start: np.ndarray, movable: np.ndarray,
                     basis: np.ndarray, centre, rotation, progress: bool = False) -> tuple[np.ndarray, list[dict]]:
    """Outer Gauss-Newton iterations from ``start`` (N, 6 scaled); ``config`` an
    :class:`~.ml_aligner.MLAlignerConfig` (``epochs`` = most outer iterations, ``batch_events`` events
    per mini-batch, ``cg_tolerance``, ``cg_iterations``; stops early once a step's predicted chi2
    decrease is below ``chi2_tolerance``). Returns the corrections (N, 6 scaled) and one
    history entry per outer iteration."""
    import torch

    from .ml_aligner import _unscale

    nominal = Frames.from_detector(detector)
    n = len(detector)
    events = np.unique(sample.event)
    n_batches = max(1, int(np.ceil(len(events) / config.batch_events)))
    batches = [sample.select_tracks(np.isin(sample.event, ev)) for ev in np.array_split(events, n_batches)]
    problem = ProfiledChi2(centre, rotation, config.bz, config.beam_spot)
    w_pre = 0.0 if not config.presigma else 1.0 / config.presigma**2
    a = np.array(start, np.float64)
    history: list[dict] = []
    two_level = config.preconditioner != "block-jacobi"
    if two_level:  # the collective rigid-body motions of every layer/disk, ring or aggregate, fixed per run
        group = structure_groups(detector.volume_id, detector.layer_id, detector.centre, config.coarse_level,
                                 config.aggregate_size)
    for it in range(config.epochs):
        t0 = time.perf_counter()
        frames = nominal.corrected(_unscale(a))
        # Every track is fitted afresh from its seed (``track_iterations`` Gauss-Newton steps) and cut
        # against the median chi2/ndf of the whole sample. Warm starts from the last outer step left
        # ~2 % of the tracks stuck in bad fits from the first steps (geometry mm off): they failed the
        # cut for good, and with 2 refit steps (multiple-scattering weights from a step without them) and
        # per-batch medians the accepted set drifted every step; the loop then stalled short of the
        # optimum of the full track set (RESULTS.md). Seeds do not depend on the geometry (nominal hit
        # positions), so the chi2 minimised is a function of the corrections alone.
        fits, red_all, ok_all = [], [], []
        for batch in batches:
            fit = fit_tracks(batch, frames, config.bz, None, config.track_iterations, config.beam_spot,
                             config.scattering)
            red = fit.chi2 / np.maximum(fit.ndf, 1)
            ok = np.isfinite(red) & (fit.ndf > 0) & (np.add.reduceat((~fit.ok).astype(np.int64),
                                                                     batch.offsets[:-1]) == 0)
            fits.append(fit)
            red_all.append(red)
            ok_all.append(ok)
        median = float(np.median(np.concatenate([r[o] for r, o in zip(red_all, ok_all)]))) \
            if any(o.any() for o in ok_all) else np.inf
        # The global fit's outlier cut: loose far from the solution, tightening.
        factor = config.chi2_cut * (max(1.0, 100.0 / 10**it) if config.init == "zero" else 1.0)
        accepted, blocks, used, ndf = [], np.zeros((n, 6, 6)), np.zeros(n, np.int64), 0
        for batch, fit, red, ok in zip(batches, fits, red_all, ok_all):
            ok = ok & (red < factor * median)
            hit_ok = np.repeat(ok, np.diff(batch.offsets))
            blocks += curvature_blocks(batch, fit, hit_ok, n, config.beam_spot)
            used += np.bincount(batch.module[hit_ok], minlength=n)
            ndf += int(fit.ndf[ok].sum())
            accepted.append((batch.select_tracks(ok), _select_fit(fit, ok, hit_ok)))
        del fits
        t1 = time.perf_counter()
        corr_t = torch.tensor(a, dtype=centre.dtype, device=centre.device)
        grad, chi2, n_hits = problem.linearise(corr_t, accepted)
        del accepted
        free = movable & (used >= max(config.min_hits, 1))
        g = (grad + w_pre * a) * free[:, None]
        precond = fine = BlockPreconditioner(blocks, n_hits, free, basis, config.damping, config.presigma)
        coarse_dim, coarse_s = 0, 0.0
        if two_level:
            tc = time.perf_counter()
            space = CoarseSpace(nominal.centre, nominal.rotation, group, free, basis)
            hz = coarse_products(problem, space, w_pre, free)
            kind = "additive" if config.preconditioner == "two-level-additive" else "balancing"
            precond = TwoLevelPreconditioner(precond, 2.0 / max(n_hits, 1), space.z, hz, kind, space.null)
            coarse_dim, coarse_s = precond.dim - space.null.shape[1], time.perf_counter() - tc
        t2 = time.perf_counter()

        def hvp(v: np.ndarray) -> np.ndarray:
            return problem.hvp(v) + w_pre * v

        # The tolerance is always measured in the block-Jacobi metric: the same accuracy for either level.
        d, cg = projected_pcg(hvp, g, precond, a, free, config.cg_tolerance, config.cg_iterations,
                              fine if two_level else None, config.cg_chi2)
        a = a + d
        t3 = time.perf_counter()
        entry = {"iteration": it, "tracks": int(sum(b.params.shape[0] for b in problem.batches)),
                 "hits": n_hits, "chi2_ndf": chi2 / max(ndf, 1), "chi2_per_hit": chi2 / max(n_hits, 1),
                 "free_modules": int(free.sum()), "gradient_norm": float(np.linalg.norm(g)), **cg,
                 "max_step_um": float(1e3 * np.abs(d[:, :3]).max()),
                 "max_step_mrad": float(1e3 * np.abs(_unscale(d)[:, 3:]).max()),
                 "preconditioner": config.preconditioner, "coarse_dim": coarse_dim, "coarse_s": coarse_s,
                 "fit_s": t1 - t0, "linearise_s": t2 - t1, "cg_s": t3 - t2}
        history.append(entry)
        if progress:
            print(f"  hessian-free iteration {it}: {entry['tracks']} tracks, chi2/ndf {entry['chi2_ndf']:.3f}, "
                  f"CG {cg['cg_iterations']} it. (rel. residual {cg['cg_relative_residuals'][-1]:.1e}), "
                  f"max step {entry['max_step_um']:.1f} um / {entry['max_step_mrad']:.2f} mrad, "
                  f"fit {t1 - t0:.1f} s, linearise {t2 - t1:.1f} s, CG {t3 - t2:.1f} s", flush=True)
        if cg["predicted_chi2_decrease"] < config.chi2_tolerance:  # converged: the step is far below 1 sigma
            break
    return a, history


def _select_fit(fit: TrackFit, ok: np.ndarray, hit_ok: np.ndarray) -> TrackFit:
    """The parts of ``fit`` for the tracks ``ok`` (T,) and their hits ``hit_ok`` (H,)."""
    pr = fit.prediction
    from .residuals import Prediction

    return TrackFit(fit.params[ok], fit.chi2[ok], fit.ndf[ok], fit.residual[hit_ok], fit.ok[hit_ok],
                    Prediction(pr.uv[hit_ok], pr.direction[hit_ok], pr.ok[hit_ok],
                               None if pr.track_jacobian is None else pr.track_jacobian[hit_ok]), fit.var[hit_ok])
