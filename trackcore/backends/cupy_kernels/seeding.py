"""Kernel ``find_seeds`` on the GPU: ACTS-like triplet seeding, one thread per middle space point.

Same seeds, in the same order, as ``trackcore.reco.seeding_numpy.find_seeds_numpy`` and the compiled
core (the kernels in csrc/cuda/seeding.cu repeat their cuts operation for operation). Steps: the
grid (grid.py), space points gathered into grid order, doublets counted then written into exactly
sized buffers, per-middle triplet search keeping the best ``max_seeds_per_middle`` seeds, and one
global sort (weight descending, then middle, bottom, top) cut at ``max_seeds``; given ``bz`` (T), the
seeds' track parameters from the numpy reference run over CuPy arrays. Units: mm, rad.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...reco.seeding_numpy import estimate_parameters_numpy
from . import inputs, outputs
from .grid import check_finite, grid_on_device, pack_params

DOUBLET_WORDS = 8  # sizeof(Doublet) / 8 in seeding.cu
TRIPLET_WORDS = 4  # sizeof(Triplet) / 8
MAX_COMPAT_LIMIT = 32  # size of the per-thread layer list in tc_seed_triplets


def _stable_argsort(xp, a):
    # CuPy's argsort is always stable (and takes no kind); numpy needs asking.
    return xp.argsort(a, kind="stable") if xp is np else xp.argsort(a)


def _exclusive_cumsum(xp, a):
    out = xp.zeros(len(a), xp.int64)
    if len(a) > 1:
        out[1:] = xp.cumsum(a[:-1])
    return out


def _with_parameters(rt, host, hits, w, x, y, z, bz):
    """The kernel's outputs; given ``bz`` (T) with the (N, 7) track parameters, estimated on the device by
    the numpy reference written over ``xp`` (pt, charge, phi, theta, z0, d0, cot theta)."""
    if bz is None:
        return outputs(rt, host, hits, w)
    xp = rt.xp
    est = estimate_parameters_numpy(x, y, z, hits, float(bz), xp=xp)
    track = xp.stack([c.astype(xp.float64) for c in est], axis=1).reshape(-1, 7)
    return outputs(rt, host, hits, w, track)


def find_seeds(x, y, z, r, phi, layer, params: dict, bz: float | None = None, middle=None, *, runtime):
    """Kernel ``find_seeds``: ((N, 3) int64 bottom/middle/top input indices, (N,) float64 weight), best first;
    given ``bz`` (T) also the (N, 7) float64 track parameters. ``middle``: N bools, the points that may be
    the middle of a seed (None: all)."""
    rt, xp = runtime, runtime.xp
    host_f, (x, y, z, r, phi) = inputs(rt, x, y, z, r, phi, dtype=np.float64)
    host_l, (layer,) = inputs(rt, layer, dtype=np.int64)
    host = host_f and host_l
    n = len(x)
    for name, a in (("y", y), ("z", z), ("r", r), ("phi", phi), ("layer", layer)):
        if a.shape != (n,):
            raise InputError(f"find_seeds: {name} has shape {a.shape}, expected ({n},) like x")
    if int(params.get("compat_limit", 0)) > MAX_COMPAT_LIMIT:
        raise InputError(f"find_seeds on the 'cupy' backend: compat_limit {params['compat_limit']} exceeds "
                         f"{MAX_COMPAT_LIMIT}")
    if bz is not None and not (np.isfinite(bz) and bz != 0):
        raise InputError("find_seeds: bz must be finite and non-zero (T)")
    pd, pi = pack_params(rt, params)
    if n == 0:
        return _with_parameters(rt, host, xp.zeros((0, 3), xp.int64), xp.zeros(0, xp.float64), x, y, z, bz)
    check_finite(rt, {"x": x, "y": y, "z": z, "r": r, "phi": phi})
    bad = ~(r > 0)
    if bool(bad.any()):
        i = int(xp.flatnonzero(bad)[0])
        raise InputError(f"r[{i}] = {float(r[i])} must be > 0")

    order, offsets = grid_on_device(rt, phi, z, r, pd, pi, int(params["n_phi"]) * int(params["n_z"]))
    s = {k: a[order] for k, a in dict(x=x, y=y, z=z, r=r, phi=phi, layer=layer).items()}
    inv_r = 1.0 / s["r"]
    kr = float(params["k_bend"]) * s["r"]
    bend = xp.full(n, np.inf)
    ok = kr < 1.0
    bend[ok] = 1.0 / xp.sqrt(1.0 - kr[ok] * kr[ok])
    rext = xp.stack([r.min(), r.max()])
    pts = (s["x"], s["y"], s["z"], s["r"], s["phi"], inv_r, bend, s["layer"], order, offsets)

    n_bottom, n_top = xp.zeros(n, xp.int64), xp.zeros(n, xp.int64)
    doublets = rt.function("seeding", "tc_seed_doublets")
    empty = xp.zeros((1, DOUBLET_WORDS), xp.float64)  # placeholder pointer for the counting pass
    zeros = xp.zeros(n, xp.int64)
    rt.launch(doublets, n, (np.int32(0), np.int64(n), *pts, pd, pi, rext, n_bottom, n_top, zeros, zeros, empty, empty))
    bot_off, top_off = _exclusive_cumsum(xp, n_bottom), _exclusive_cumsum(xp, n_top)
    n_b, n_t = int(n_bottom.sum()), int(n_top.sum())
    bottoms = xp.zeros((max(n_b, 1), DOUBLET_WORDS), xp.float64)
    tops = xp.zeros((max(n_t, 1), DOUBLET_WORDS), xp.float64)
    rt.launch(doublets, n, (np.int32(1), np.int64(n), *pts, pd, pi, rext, n_bottom, n_top, bot_off, top_off, bottoms,
                            tops))

    if middle is not None:
        # A point that may not be a middle gets no bottoms, so the triplet kernel makes no seed on it (its
        # doublets were found above, with the others': simpler than a mask in every kernel).
        _host_m, (middle,) = inputs(rt, middle, dtype=np.bool_)
        if middle.shape != (n,):
            raise InputError(f"find_seeds: middle has shape {middle.shape}, expected ({n},) like x")
        n_bottom = xp.where(middle[order], n_bottom, 0)
    k = int(params["max_seeds_per_middle"])
    scratch = xp.zeros((max(n_t, 1), TRIPLET_WORDS), xp.float64)
    out_hits = xp.zeros((max(n * k, 1), 3), xp.int64)
    out_w = xp.zeros(max(n * k, 1), xp.float64)
    out_n = xp.zeros(n, xp.int32)
    rt.launch(rt.function("seeding", "tc_seed_triplets"), n,
              (np.int64(n), s["r"], order, pd, pi, n_bottom, n_top, bot_off, top_off, bottoms, tops, scratch,
               out_hits, out_w, out_n))

    keep = (xp.arange(k)[None, :] < out_n[:, None]).ravel() if k else xp.zeros(0, bool)
    hits, w = out_hits[: n * k][keep], out_w[: n * k][keep]
    # Stable sorts from the last key to the first: weight descending, then middle, bottom, top.
    idx = _stable_argsort(xp, hits[:, 2])
    for key in (hits[:, 0], hits[:, 1], -w):
        idx = idx[_stable_argsort(xp, key[idx])]
    idx = idx[: int(params["max_seeds"])]
    return _with_parameters(rt, host, hits[idx], w[idx], x, y, z, bz)
