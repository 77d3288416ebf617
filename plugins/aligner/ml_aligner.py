"""MLAligner: alignment as gradient descent (PyTorch, Adam) on the hit chi2.

The module corrections (N, 6: du, dv, dw in mm and wu, wv, ww scaled by
:data:`~.global_fit.ROTATION_SCALE`) and the per-track helix parameters (T, 5) are tensors. For
each mini-batch of events the batch's tracks are re-fitted on the current geometry (Gauss-Newton,
numpy), then the chi2 of their hits (measurement minus exact helix-plane intersection, over the
hit variance) is back-propagated to the module corrections and Adam takes a step. Because the
tracks sit at their chi2 minimum, the gradient with respect to the modules is that of the
profiled chi2 (the tracks' response is included at first order). A penalty on the weak-mode
components (the modes the global fit constrains) keeps gradient descent from wandering along
them; at the end they are projected out exactly, so both methods give results in one gauge. Runs on CUDA when available (``device="auto"``).

``optimizer="block-newton"`` replaces Adam by a preconditioned gradient step: the autograd gradient
times the inverse of each module's 6x6 block of the profiled chi2's Gauss-Newton curvature
(:mod:`.precondition`, rebuilt every epoch from the fits of that epoch), projected onto the weak-mode
constraints in that metric (exact at every step), with optional heavy-ball momentum and the same
cosine learning-rate decay. ``init="global"`` starts from ``init_iterations`` of the global fit.

``optimizer="hessian-free"`` (:mod:`.hessian_free`) solves the whole-sample Gauss-Newton system of
the profiled chi2 at each outer iteration by conjugate gradients with matrix-free autograd products
H v (jvp / vjp per mini-batch), the 6x6 blocks as preconditioner and the weak-mode constraints
exact on every iterate: the soft collective directions that block-Jacobi misses are solved too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from trackcore.errors import InputError
from trackcore.geometry.detector import Detector

from .choices import (  # re-exported: the config's allowed values
    OPTIMIZERS,
    PRECONDITIONERS,
)
from .global_fit import (
    DEFAULT_MODES,
    MODES,
    ROTATION_SCALE,
    GlobalFitConfig,
    global_fit,
    mode_vectors,
)
from .precondition import COARSE_LEVELS, BlockPreconditioner, curvature_blocks
from .residuals import C_LIGHT, Frames, TrackSample, fit_tracks


@dataclass
class MLAlignerConfig:
    """Settings of :func:`ml_align`: ``epochs`` over all tracks, ``batch_events`` events per step,
    Adam ``learning_rate`` (mm per step at the start; cosine decay to ``final_lr_fraction`` of it).
    For ``optimizer="hessian-free"``: ``epochs`` outer Gauss-Newton iterations, ``batch_events``
    events per mini-batch of the gradient and H v sums, full constrained steps (``learning_rate``,
    ``momentum`` and ``max_step`` unused)."""

    epochs: int = 20
    batch_events: int = 20
    learning_rate: float = 3e-3
    final_lr_fraction: float = 0.005
    refit_iterations: int = 2
    #: hessian-free: Gauss-Newton steps of every track refit per outer iteration (the global fit's
    #: ``track_iterations``; fewer leave the multiple-scattering weights of a fit without them)
    track_iterations: int = 4
    modes: tuple[str, ...] = DEFAULT_MODES
    min_hits: int = 20
    bz: float = 2.0
    beam_spot: float | None = 0.015
    scattering: float | None = 0.005
    device: str = "auto"  #: "auto" (CUDA when present), "cpu" or "cuda"
    seed: int = 1
    chi2_cut: float = 5.0
    #: weight of the weak-mode penalty |Q^T a|^2 (mm^-2, a in scaled units) added to the mean chi2 per
    #: hit; the corrections are projected onto the constraints exactly at the end
    constraint_weight: float = 1e4
    #: "hessian-free" (whole-sample Gauss-Newton, matrix-free CG through autograd; epochs = most outer
    #: steps), "adam" (lr in mm per step) or "block-newton" (lr: fraction of the per-module Gauss-Newton
    #: step). Hessian-free is the default because it is the one that reaches the alignment targets (300
    #: muon events, and 250 <mu> = 50 events: plugins/aligner/RESULTS.md); Adam random-walks along the
    #: weakly constrained directions and stays tens of um off.
    optimizer: str = "hessian-free"
    momentum: float = 0.0  #: heavy-ball momentum of the block-newton steps (0: none)
    damping: float = 1e-4  #: Levenberg term of the 6x6 blocks, relative to their mean diagonal
    init: str = "zero"  #: "zero" (nominal geometry) or "global" (start from the global fit)
    init_iterations: int = 2  #: global-fit iterations for init="global"
    presigma: float | None = 1.0  #: block-newton: the global fit's prior on the corrections (mm, scaled)
    #: block-newton: largest change of one module per step (mm, rotations scaled); larger steps are
    #: scaled down per module (a module whose tracks fail the chi2 cut must not run away)
    max_step: float = 0.05
    #: hessian-free: CG stops when its preconditioned residual falls below this fraction of the start
    cg_tolerance: float = 1e-4
    cg_iterations: int = 300  #: hessian-free: most CG iterations per outer iteration
    #: hessian-free: CG also goes on until r.M^-1 r (block-Jacobi metric; an estimate from below of the
    #: chi2 decrease left in the step) is below this; None: the relative tolerance alone
    cg_chi2: float | None = None
    #: hessian-free: stop the outer iterations once a step's predicted chi2 decrease is below this
    #: (absolute chi2 units: 0.01 means the step is ~0.1 standard deviation along its direction)
    chi2_tolerance: float = 0.01
    #: hessian-free: CG preconditioner, one of :data:`PRECONDITIONERS` ("two-level": the 6x6 blocks plus
    #: an exact coarse solve on the rigid-body motions of groups of modules, balancing form)
    preconditioner: str = "two-level"
    #: hessian-free two-level: coarse groups, "aggregate" (6 per patch of ~``aggregate_size`` neighbouring
    #: modules inside a layer/disk; 2.1x fewer CG iterations than "layer" on 100 full-detector events),
    #: "layer" (6 per layer/disk) or "ring"
    coarse_level: str = "aggregate"
    aggregate_size: int = 6  #: hessian-free two-level, coarse_level="aggregate": modules per patch

    def check(self) -> MLAlignerConfig:
        if self.epochs < 1 or self.batch_events < 1 or not self.learning_rate > 0 or self.track_iterations < 1:
            raise InputError("ml aligner: epochs >= 1, batch_events >= 1, learning_rate > 0 and track_iterations >= 1 "
                             "are required")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"ml aligner: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0.0 < self.cg_tolerance < 1.0 or self.cg_iterations < 1 or not self.chi2_tolerance >= 0.0:
            raise InputError("ml aligner: cg_tolerance in (0, 1), cg_iterations >= 1 and chi2_tolerance >= 0 "
                             "are required")
        if self.cg_chi2 is not None and not self.cg_chi2 > 0:
            raise InputError(f"ml aligner: cg_chi2 must be > 0 or None, got {self.cg_chi2!r}")
        if self.preconditioner not in PRECONDITIONERS:
            raise InputError(f"ml aligner: preconditioner must be one of {PRECONDITIONERS}, got {self.preconditioner!r}")
        if self.coarse_level not in COARSE_LEVELS or int(self.aggregate_size) < 1:
            raise InputError(f"ml aligner: coarse_level must be one of {COARSE_LEVELS} and aggregate_size >= 1, "
                             f"got {self.coarse_level!r} / {self.aggregate_size!r}")
        if self.init not in ("zero", "global") or self.init_iterations < 1:
            raise InputError(f"ml aligner: init must be 'zero' or 'global' (init_iterations >= 1), got {self.init!r}")
        if not 0.0 <= self.momentum < 1.0 or not self.damping >= 0.0:
            raise InputError("ml aligner: momentum in [0, 1) and damping >= 0 are required")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise InputError(f"ml aligner: unknown weak mode(s) {unknown}; known: {', '.join(MODES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"ml aligner: device must be auto, cpu or cuda, got {self.device!r}")
        return self


@dataclass
class MLAlignResult:
    """Aligned frames, local corrections (N, 6) and the loss curve (mean chi2 per hit, per step)."""

    frames: Frames
    corrections: np.ndarray
    loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    #: hessian-free: per outer iteration tracks, chi2/ndf, CG iterations and relative residual norms, timings
    history: list[dict] = field(default_factory=list)


def _device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("ml aligner: device 'cuda' requested but torch sees no CUDA device")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _skew(w):
    import torch

    z = torch.zeros_like(w[:, 0])
    return torch.stack([torch.stack([z, -w[:, 2], w[:, 1]], 1), torch.stack([w[:, 2], z, -w[:, 0]], 1),
                        torch.stack([-w[:, 1], w[:, 0], z], 1)], 1)


def _helix(p, s, bz: float):
    """Torch twin of :func:`.residuals.helix_point` (position and direction)."""
    import torch

    d0, z0, phi, theta, qop = p.unbind(1)
    om = -C_LIGHT * bz * qop / torch.sin(theta)
    a = om * s
    small = a.abs() < 1e-3
    x = torch.where(small, torch.ones_like(a), a)
    a2 = a * a
    sv = torch.where(small, 1 - a2 / 6 + a2 * a2 / 120, torch.sin(x) / x)
    cv = torch.where(small, a / 2 - a * a2 / 24 + a * a2 * a2 / 720, (1 - torch.cos(x)) / x)
    cp, sp = torch.cos(phi), torch.sin(phi)
    cot = torch.cos(theta) / torch.sin(theta)
    pos = torch.stack([-d0 * sp + s * (cp * sv - sp * cv), d0 * cp + s * (sp * sv + cp * cv), z0 + s * cot], 1)
    direction = torch.stack([torch.cos(phi + a), torch.sin(phi + a), cot], 1)
    return pos, direction


def module_frames_torch(centre, rotation, corrections, used):
    """Centres (M, 3) and rotations (M, 3, 3) of modules ``used`` (M,) moved by ``corrections`` (N, 6, scaled)."""
    import torch

    d = corrections[used]
    c = centre[used] + torch.einsum("nij,nj->ni", rotation[used], d[:, :3])
    return c, rotation[used] @ torch.linalg.matrix_exp(_skew(d[:, 3:] / ROTATION_SCALE))


def path_lengths_torch(p, c, n, bz: float, newton_steps: int = 6):
    """Transverse arc length (H,) where helices ``p`` (H, 5) cross the planes (centre ``c``, normal ``n``),
    by Newton from the straight line, without gradient."""
    import torch

    with torch.no_grad():
        x0, t0 = _helix(p, torch.zeros_like(p[:, 0]), bz)
        s = ((c - x0) * n).sum(1) / (t0 * n).sum(1)
        for _ in range(newton_steps):
            x, t = _helix(p, s, bz)
            s = s - ((x - c) * n).sum(1) / (t * n).sum(1)
    return s


def local_uv_torch(p, s, c, rot, bz: float):
    """Local (u, v) (H, 2) of helices ``p`` (H, 5) on the planes (``c``, ``rot``) from a converged path
    length ``s`` (no gradient): one Newton step with gradient gives the exact first derivatives
    (implicit function) in ``p``, ``c`` and ``rot``."""
    import torch

    n = rot[:, :, 2]
    x, t = _helix(p, s, bz)
    s = s - ((x - c) * n).sum(1) / (t * n).sum(1)
    x, _ = _helix(p, s, bz)
    return torch.einsum("nji,nj->ni", rot[:, :, :2], x - c)


def predict_torch(params, centre, rotation, corrections, module, track, bz: float, newton_steps: int = 6):
    """Local (u, v) (H, 2) of the track-plane intersections, differentiable in ``corrections``
    (N, 6, scaled) and ``params`` (T, 5). The path length is found by Newton without gradient;
    one last Newton step with gradient gives the exact first derivatives (implicit function)."""
    import torch

    # Move every module once (N of them), then pick the hits' modules (H >> N).
    used, inverse = torch.unique(module, return_inverse=True)
    c_all, rot_all = module_frames_torch(centre, rotation, corrections, used)
    c, rot = c_all[inverse], rot_all[inverse]
    p = params[track]
    s = path_lengths_torch(p, c, rot[:, :, 2], bz, newton_steps)
    return local_uv_torch(p, s, c, rot, bz)


def ml_align(detector: Detector, sample: TrackSample, config: MLAlignerConfig | None = None,
             progress: bool = False) -> MLAlignResult:
    """Align ``detector`` to ``sample`` with Adam, the block-Newton step or hessian-free Gauss-Newton;
    see the module docstring."""
    import torch

    config = (config or MLAlignerConfig()).check()
    t_start = time.perf_counter()
    device = _device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dt = torch.float64  # hit residuals of microns on positions of metres need double precision
    nominal = Frames.from_detector(detector)
    centre = torch.tensor(nominal.centre, dtype=dt, device=device)
    rotation = torch.tensor(nominal.rotation, dtype=dt, device=device)
    start = np.zeros((len(detector), 6))
    if config.init == "global":
        gf = global_fit(detector, sample, GlobalFitConfig(
            iterations=config.init_iterations, modes=tuple(config.modes), min_hits=config.min_hits, bz=config.bz,
            spectrum=0, beam_spot=config.beam_spot, scattering=config.scattering))
        start = gf.corrections.copy()
        start[:, 3:] *= ROTATION_SCALE
    corrections = torch.tensor(start, dtype=dt, device=device, requires_grad=True)
    hits = np.bincount(sample.module, minlength=len(detector))
    movable = hits >= config.min_hits
    trainable = torch.tensor(np.repeat(movable, 6).reshape(-1, 6), device=device)
    basis = mode_vectors(detector, tuple(config.modes))
    if basis.shape[1]:
        q, _ = np.linalg.qr(basis)
        q_t = torch.tensor(q, dtype=dt, device=device)
    else:
        q_t = None
    result = MLAlignResult(nominal, np.zeros((len(detector), 6)), device=str(device))
    if config.optimizer == "hessian-free":
        from .hessian_free import hessian_free_fit

        final, result.history = hessian_free_fit(detector, sample, config, start, movable, basis, centre, rotation,
                                                 progress)
        result.epoch_loss = [h["chi2_per_hit"] for h in result.history]
        result.loss = list(result.epoch_loss)
        with torch.no_grad():
            corrections.copy_(torch.tensor(final, dtype=dt, device=device))
        return _finish(result, corrections, q_t, nominal, t_start)
    newton = config.optimizer == "block-newton"
    opt = torch.optim.Adam([corrections], lr=config.learning_rate) if not newton else None
    events = np.unique(sample.event)
    n_batches = max(1, int(np.ceil(len(events) / config.batch_events)))
    total_steps = config.epochs * n_batches

    def lr_at(k: int) -> float:
        return config.learning_rate * (config.final_lr_fraction + (1 - config.final_lr_fraction) * 0.5 * (
            1 + np.cos(np.pi * min(k, total_steps) / total_steps)))

    batches = [sample.select_tracks(np.isin(sample.event, ev)) for ev in np.array_split(events, n_batches)]
    params = [None] * n_batches

    def fit_batch(k: int, epoch: int):
        batch = batches[k]
        frames = nominal.corrected(_unscale(corrections.detach().cpu().numpy()))
        # Re-fit the batch's tracks on the current geometry (from their last parameters).
        fit = fit_tracks(batch, frames, config.bz, params[k], config.refit_iterations if params[k] is not None
                         else 4, config.beam_spot, config.scattering)
        params[k] = fit.params
        red = fit.chi2 / np.maximum(fit.ndf, 1)
        ok_track = np.isfinite(red) & (np.add.reduceat((~fit.ok).astype(np.int64), batch.offsets[:-1]) == 0)
        if ok_track.any():
            factor = config.chi2_cut * (100.0 if epoch == 0 and config.init == "zero" else 1.0)
            ok_track &= red < factor * np.median(red[ok_track])
        return fit, np.repeat(ok_track, np.diff(batch.offsets))

    precond, blocks, block_hits = None, np.zeros((len(detector), 6, 6)), 0
    if newton:  # curvature of the starting geometry from a first pass over all batches
        for k in range(n_batches):
            fit, hit_ok = fit_batch(k, 0)
            blocks += curvature_blocks(batches[k], fit, hit_ok, len(detector), config.beam_spot)
            block_hits += int(hit_ok.sum())
        precond = BlockPreconditioner(blocks, block_hits, movable, basis, config.damping, config.presigma)
    velocity = np.zeros((len(detector), 6))
    step_no = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, desc=f"ml align ({config.optimizer})", unit="batch")
    for epoch in range(config.epochs):
        epoch_sum, epoch_n = 0.0, 0
        blocks, block_hits = np.zeros((len(detector), 6, 6)), 0
        for k in rng.permutation(n_batches):
            batch = batches[k]
            fit, hit_ok = fit_batch(k, epoch)
            if not hit_ok.any():
                continue
            if newton:
                blocks += curvature_blocks(batch, fit, hit_ok, len(detector), config.beam_spot)
                block_hits += int(hit_ok.sum())
            p_t = torch.tensor(fit.params, dtype=dt, device=device)
            mod = torch.tensor(batch.module[hit_ok], device=device)
            trk = torch.tensor(batch.track[hit_ok], device=device)
            meas = torch.tensor(batch.meas[hit_ok], dtype=dt, device=device)
            w = torch.tensor(1.0 / fit.var[hit_ok], dtype=dt, device=device)
            pred = predict_torch(p_t, centre, rotation, corrections, mod, trk, config.bz)
            loss = ((meas - pred) ** 2 * w).sum() / len(meas)
            total = loss
            if q_t is not None and not newton:
                # Soft Lagrange term: a hard projection after each Adam step fights Adam's per-parameter
                # scaling (the loss rose again in late epochs); the penalty lets Adam balance both.
                total = loss + config.constraint_weight * ((q_t.T @ corrections.view(-1)) ** 2).sum()
            if corrections.grad is not None:
                corrections.grad = None
            total.backward()
            corrections.grad *= trainable
            if newton:
                # Per-hit gradient of this batch, scaled to the batch's share of the curvature blocks
                # (which are per hit of the whole sample), so lr = 1 is a full Gauss-Newton step.
                grad = corrections.grad.detach().cpu().numpy()
                current = corrections.detach().cpu().numpy()
                d = precond.step(grad, current, lr_at(step_no))
                big = np.abs(d).max(axis=1, keepdims=True)
                d *= np.minimum(1.0, config.max_step / np.maximum(big, 1e-300))
                velocity = config.momentum * velocity + d
                with torch.no_grad():
                    corrections += torch.tensor(velocity, dtype=dt, device=device)
            else:
                for group in opt.param_groups:
                    group["lr"] = lr_at(step_no)
                opt.step()
            step_no += 1
            result.loss.append(float(loss.detach()))
            epoch_sum += float(loss.detach()) * len(meas)
            epoch_n += len(meas)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        result.epoch_loss.append(epoch_sum / max(epoch_n, 1))
        if newton and block_hits:  # the geometry moved: curvature of this epoch's fits
            precond = BlockPreconditioner(blocks, block_hits, movable, basis, config.damping, config.presigma)
    if bar is not None:
        bar.close()
    return _finish(result, corrections, q_t, nominal, t_start)


def _finish(result: MLAlignResult, corrections, q_t, nominal: Frames, t_start: float) -> MLAlignResult:
    """Project onto the weak-mode gauge, fill in frames and local corrections (rad)."""
    import torch

    with torch.no_grad():
        if q_t is not None:  # the gauge of the global fit, exactly
            flat = corrections.view(-1)
            flat -= q_t @ (q_t.T @ flat)
    result.corrections = _unscale(corrections.detach().cpu().numpy())
    result.frames = nominal.corrected(result.corrections)
    result.corrections = result.frames.relative_to(nominal)
    result.seconds = time.perf_counter() - t_start
    return result


def _unscale(a: np.ndarray) -> np.ndarray:
    out = np.array(a, np.float64)
    out[:, 3:] /= ROTATION_SCALE
    return out
