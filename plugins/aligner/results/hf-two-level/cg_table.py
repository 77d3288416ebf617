"""CG iterations of the hessian-free step with and without the coarse level, at the same
linearisation points of the full generic detector (measurement script of RESULTS.md, "Two-level").

    python plugins/aligner/results/hf-two-level/cg_table.py EVENTS K [K ...] [--aggregates N ...]

Simulates EVENTS training events exactly as ``python -m plugins.aligner.study --events EVENTS``
(same seeds and misalignment), takes the geometry after K global-fit iterations (K = 0: nominal),
builds the explicit profiled normal matrix C (the global fit's; the matrix-free H v equals it to
1e-7, tests/plugins/test_aligner_hf.py) plus the 1 mm presigma prior, and solves ``C d = b`` by the
projected PCG of the hessian-free aligner with block-Jacobi, two-level (layer / ring rigid bodies)
and, with ``--aggregates``, rigid bodies of aggregates of ~N neighbouring modules (per ring and phi
sector). Iterations to each relative residual are measured in the block-Jacobi metric for all.
Writes ``cg_table_EVENTS.json`` next to this file.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from plugins.aligner import global_fit as G
from plugins.aligner import residuals as R
from plugins.aligner.hessian_free import projected_pcg
from plugins.aligner.precondition import (
    BlockPreconditioner,
    TwoLevelPreconditioner,
    coarse_basis,
    curvature_blocks,
    rigid_body_space,
    structure_groups,
)
from plugins.aligner.study import pixel_detector, simulate_muons
from trackcore.geometry.alignment import apply_alignment, random_misalignment


def aggregates(det, target: int) -> np.ndarray:
    """Groups of ~``target`` modules: each ring of :func:`structure_groups` cut into phi sectors."""
    ring = structure_groups(det.volume_id, det.layer_id, det.centre, "ring")
    phi = np.arctan2(det.centre[:, 1], det.centre[:, 0])
    out, nxt = np.zeros(len(det), np.int64), 0
    for r in np.unique(ring):
        s = np.flatnonzero(ring == r)
        nb = max(1, round(len(s) / target))
        out[s] = nxt + np.floor((phi[s] + np.pi) / (2 * np.pi) * nb).astype(int) % nb
        nxt += nb
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("events", type=int)
    ap.add_argument("global_iterations", type=int, nargs="+")
    ap.add_argument("--aggregates", type=int, nargs="*", default=[])
    args = ap.parse_args()
    det = pixel_detector("generic")
    n = len(det)
    truth = random_misalignment(det, np.random.default_rng(1 + 7919))  # the study's seed 1
    sample = R.collect_tracks(det, simulate_muons(det, apply_alignment(det, truth), args.events, 1000, 1_000_000,
                                                  False))
    basis = G.mode_vectors(det, G.DEFAULT_MODES)
    rows = []
    for k in args.global_iterations:
        frames = R.Frames.from_detector(det) if k == 0 else G.global_fit(
            det, sample, G.GlobalFitConfig(iterations=k, spectrum=0)).frames
        fit = R.fit_tracks(sample, frames, 2.0, None, 4, 0.015, 0.005)
        ja = R.alignment_jacobian(fit.prediction.uv, fit.prediction.direction)
        ja[:, :, 3:] /= G.ROTATION_SCALE
        red = fit.chi2 / np.maximum(fit.ndf, 1)
        ok = np.isfinite(red) & (np.add.reduceat((~fit.ok).astype(np.int64), sample.offsets[:-1]) == 0)
        ok &= red < 5 * max(1.0, 100.0 / 10**k) * np.median(red[ok])  # the aligners' outlier cut
        group, m, _ = G.alignables(det, "module")
        c, b, _ = G.normal_equations(sample, fit, ja, group, m, n, ok, 0.015)
        c = (c + sparse.eye(6 * n)).tocsr()
        hit_ok = np.repeat(ok, np.diff(sample.offsets))
        free = np.bincount(sample.module[hit_ok], minlength=n) >= 20
        n_hits = int(hit_ok.sum())
        fine = BlockPreconditioner(curvature_blocks(sample, fit, hit_ok, n, 0.015), n_hits, free, basis)
        g = -b.reshape(-1, 6) * free[:, None]
        spaces = {level: structure_groups(det.volume_id, det.layer_id, det.centre, level) for level in ("layer", "ring")}
        spaces.update({f"aggregates of ~{t}": aggregates(det, t) for t in args.aggregates})
        pres = {"block-jacobi": (fine, None)}
        for name, grp in spaces.items():
            z = coarse_basis(rigid_body_space(det.centre, det.rotation, grp), free, basis)
            hz = (c @ z) * np.repeat(free, 6)[:, None]
            pres[f"two-level {name} (c={z.shape[1]})"] = (TwoLevelPreconditioner(fine, 2.0 / n_hits, z, hz), fine)
        for name, (pre, stop) in pres.items():
            _d, rep = projected_pcg(lambda v, c=c, free=free: (c @ v.reshape(-1)).reshape(-1, 6) * free[:, None], g, pre,
                                    np.zeros_like(g), free, 1e-5, 5000, stop)
            rel = np.array(rep["cg_relative_residuals"])
            row = {"global_iterations_before": k, "tracks": int(ok.sum()), "hits": n_hits,
                   "free_modules": int(free.sum()), "preconditioner": name,
                   "iterations_to": {f"{t:.0e}": int(np.argmax(rel <= t)) if (rel <= t).any() else None
                                     for t in (1e-2, 1e-3, 1e-4, 1e-5)},
                   "relative_residual_after_150": float(rel[min(150, len(rel) - 1)])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (Path(__file__).parent / f"cg_table_{args.events}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
