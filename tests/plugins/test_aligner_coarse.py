"""Aggregate coarse level of the hessian-free aligner's two-level preconditioner: the patches are
neighbouring modules of one layer/disk, H Z assembled hit by hit equals the matrix-free products,
and on the full detector CG needs fewer iterations than with layer rigid bodies, for the same step."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")
torch = pytest.importorskip("torch")

from aligner_testdata import BZ, SIM

from plugins.aligner import global_fit as G
from plugins.aligner import residuals as R
from plugins.aligner.coarse import CoarseSpace
from plugins.aligner.hessian_free import (
    ProfiledChi2,
    _select_fit,
    coarse_products,
    projected_pcg,
)
from plugins.aligner.ml_aligner import MLAlignerConfig, ml_align
from plugins.aligner.precondition import (
    BlockPreconditioner,
    TwoLevelPreconditioner,
    coarse_basis,
    curvature_blocks,
    rigid_body_space,
    structure_groups,
)
from trackcore.errors import InputError
from trackcore.geometry.builders import generic_detector
from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import simulate_event


@pytest.fixture(scope="module")
def full():
    """All four barrel layers and six disks at the nominal geometry, 8 events of 1,000 muons (|eta| < 2.5,
    no material), linearised with every cleanly fitted track: the problem, the gradient, hit count,
    free modules (>= 10 hits), weak-mode basis and the 6x6 block preconditioner."""
    torch.set_num_threads(1)
    det = generic_detector()
    events = [simulate_event(det, particle_gun(1000, 50 + i, pt=(2.0, 20.0), eta=(-2.5, 2.5),
                                               vertex_sigma=(0.015, 0.015, 50.0)), config=SIM, seed=50 + i, event_id=i)
              for i in range(8)]
    sample = R.collect_tracks(det, events)
    frames = R.Frames.from_detector(det)
    fit = R.fit_tracks(sample, frames, BZ, None, 6, 0.015, 0.005)
    ok = np.add.reduceat((~fit.ok).astype(np.int64), sample.offsets[:-1]) == 0
    hit_ok = np.repeat(ok, np.diff(sample.offsets))
    sub, sub_fit = sample.select_tracks(ok), _select_fit(fit, ok, hit_ok)
    problem = ProfiledChi2(torch.tensor(frames.centre), torch.tensor(frames.rotation), BZ, 0.015)
    grad, _, n_hits = problem.linearise(torch.zeros((len(det), 6), dtype=torch.float64), [(sub, sub_fit)])
    free = np.bincount(sub.module, minlength=len(det)) >= 10
    basis = G.mode_vectors(det, G.DEFAULT_MODES)
    fine = BlockPreconditioner(curvature_blocks(sub, sub_fit, np.ones(sub.n_hits, bool), len(det), 0.015), n_hits,
                               free, basis)
    return det, frames, problem, grad * free[:, None], n_hits, free, basis, fine


@pytest.mark.parametrize("size", [6, 12])
def test_aggregates_are_patches_of_neighbouring_modules_inside_one_layer(size):
    det = generic_detector()
    group = structure_groups(det.volume_id, det.layer_id, det.centre, "aggregate", size)
    assert group.shape == (len(det),) and group.min() == 0
    counts = np.bincount(group)
    assert counts.min() >= 1 and np.all(counts > 0)  # groups numbered 0..G-1, none empty
    assert abs(counts.mean() - size) < 0.15 * size and counts.min() >= size // 2 and counts.max() <= 2 * size
    layer = det.volume_id * 1000 + det.layer_id
    r = np.hypot(det.centre[:, 0], det.centre[:, 1])
    phi = np.arctan2(det.centre[:, 1], det.centre[:, 0])
    for g in range(group.max() + 1):
        sel = group == g
        assert len(np.unique(layer[sel])) == 1
        # Neighbours: the patch spans few modules' spacing in phi (its layer's ring with the fewest modules).
        same = layer == layer[sel][0]
        per_ring = min(np.bincount(np.unique(np.round(det.centre[same, 2] if np.ptp(r[same]) < np.ptp(det.centre[same, 2])
                                                      else r[same]), return_inverse=True)[1]))
        d = np.sort(np.mod(phi[sel] - phi[sel][0], 2 * np.pi))
        extent = 2 * np.pi - np.max(np.diff(np.r_[d, 2 * np.pi]))  # smallest arc holding the patch
        assert extent <= (size + 1) * 2 * np.pi / per_ring, (g, extent)
    with pytest.raises(InputError, match="size"):
        structure_groups(det.volume_id, det.layer_id, det.centre, "aggregate", 0)
    with pytest.raises(InputError, match="coarse_level"):
        MLAlignerConfig(optimizer="hessian-free", coarse_level="aggregates").check()


def test_assembled_coarse_products_equal_the_matrix_free_ones(full):
    det, frames, problem, _g, n_hits, free, basis, fine = full
    n = len(det)
    rows = np.repeat(free, 6)
    for level in ("layer", "aggregate"):
        group = structure_groups(det.volume_id, det.layer_id, det.centre, level)
        space = CoarseSpace(frames.centre, frames.rotation, group, free, basis)
        c = space.shape[1]
        # Z0 orthonormal and zero on frozen modules; Z inside the constraints; Z a = 0 on the null vectors.
        np.testing.assert_allclose((space.z0.T @ space.z0).toarray(), np.eye(c), atol=1e-10)
        assert abs(space.z0.tocsr()[np.flatnonzero(~rows)]).max() == 0.0
        assert np.abs(space.z.T @ basis).max() < 1e-9
        assert space.null.shape[1] >= 6 and np.abs(space.z @ space.null).max() < 1e-3
        # A subset of the columns (~2,000 for the aggregates): the checks stay cheap.
        cols = np.random.default_rng(3).choice(c, 24, replace=False)
        pick = np.eye(c)[:, cols]
        z0, z = space.z0 @ pick, space.z @ pick
        if level == "layer":  # the same space as the dense coarse_basis
            dense = coarse_basis(rigid_body_space(det.centre, det.rotation, group), free, basis)
            assert np.linalg.norm(z - dense @ (dense.T @ z)) < 1e-10 * np.linalg.norm(z)
        # H Z0 hit by hit equals one matrix-free product per column.
        ref = problem.hvp_many(z0.T.reshape(-1, n, 6)).reshape(len(cols), -1).T * rows[:, None]
        np.testing.assert_allclose(problem.coarse_columns(space) @ pick, ref, atol=1e-9 * np.abs(ref).max())
        hz = coarse_products(problem, space, 1.0, free)
        ref = (problem.hvp_many(z.T.reshape(-1, n, 6)).reshape(len(cols), -1).T + z) * rows[:, None]
        np.testing.assert_allclose(hz @ pick, ref, atol=1e-9 * np.abs(ref).max())
        # Balancing form with the sparse / low-rank factors: the coarse directions are solved, M^-1 H Z = Z.
        pre = TwoLevelPreconditioner(fine, 2.0 / n_hits, space.z, hz, "balancing", space.null)
        out = pre.apply_raw(ref.T.reshape(-1, n, 6)).reshape(len(cols), -1).T
        np.testing.assert_allclose(out, z, atol=1e-4)
        x = np.random.default_rng(4).normal(size=(6, n, 6)) * free[:, None]
        gram = np.einsum("inj,knj->ik", x, pre.apply_raw(x))
        np.testing.assert_allclose(gram, gram.T, rtol=1e-8, atol=1e-10 * np.abs(gram).max())
        assert np.linalg.eigvalsh(0.5 * (gram + gram.T)).min() > 0


def test_aggregate_coarse_level_needs_fewer_cg_iterations_than_layers(full):
    det, frames, problem, g, n_hits, free, basis, fine = full
    assert free.sum() > 1000 and len(np.unique(det.volume_id[free] * 100 + det.layer_id[free])) == 10

    def hvp(x):
        return problem.hvp(x) + x  # with the 1 mm presigma prior, as in hessian_free_fit

    pres = {}
    for level in ("layer", "aggregate"):
        space = CoarseSpace(frames.centre, frames.rotation,
                            structure_groups(det.volume_id, det.layer_id, det.centre, level), free, basis)
        pres[level] = TwoLevelPreconditioner(fine, 2.0 / n_hits, space.z, coarse_products(problem, space, 1.0, free),
                                             "balancing", space.null)
    assert pres["aggregate"].dim > 1500 and pres["layer"].dim < 100
    # A random right-hand side (the gradient is dominated by the stiff per-module part: 142 -> 73).
    b = np.random.default_rng(12).normal(size=g.shape) * free[:, None]
    runs = {level: projected_pcg(hvp, b, pre, np.zeros_like(b), free, 1e-4, 2000, stop_metric=fine)
            for level, pre in pres.items()}
    (d_l, rep_l), (d_a, rep_a) = runs["layer"], runs["aggregate"]
    assert rep_l["cg_converged"] and rep_a["cg_converged"]
    # Measured 151 -> 76 iterations to 1e-4 (block-Jacobi 188).
    assert rep_a["cg_iterations"] < 0.7 * rep_l["cg_iterations"], (rep_l["cg_iterations"], rep_a["cg_iterations"])
    # The same step: equal in the H norm to the tolerance, and in the gauge.
    diff = d_a - d_l
    assert float((diff * hvp(diff)).sum()) < 1e-6 * float((d_l * hvp(d_l)).sum())
    assert rep_a["predicted_chi2_decrease"] == pytest.approx(rep_l["predicted_chi2_decrease"], rel=1e-6)
    assert np.abs(basis.T @ d_a.reshape(-1)).max() < 1e-9 and np.abs(d_a[~free]).max() == 0.0


def test_hessian_free_fit_runs_with_the_aggregate_level():
    # Wiring: MLAlignerConfig(coarse_level="aggregate") reaches the preconditioner (history's coarse_dim).
    torch.set_num_threads(1)
    det = generic_detector()
    events = [simulate_event(det, particle_gun(500, 70, pt=(2.0, 20.0), eta=(-2.5, 2.5),
                                               vertex_sigma=(0.015, 0.015, 50.0)), config=SIM, seed=70, event_id=0)]
    sample = R.collect_tracks(det, events)
    cfg = MLAlignerConfig(optimizer="hessian-free", epochs=1, device="cpu", min_hits=3, coarse_level="aggregate",
                          aggregate_size=12)
    res = ml_align(det, sample, cfg)
    hist = res.history[0]
    # ~6 coarse directions per patch (less the weak modes they represent) against 54 for layer rigid bodies.
    assert hist["free_modules"] > 200 and hist["coarse_dim"] > 3 * hist["free_modules"] / 12 * 6 / 2
    assert hist["preconditioner"] == "two-level" and hist["cg_converged"] and np.isfinite(res.corrections).all()
