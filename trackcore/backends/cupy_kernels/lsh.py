"""LSH bucketing on the GPU: quantised random projections -> 64-bit bucket keys -> buckets.

Key of point x in table t: splitmix64-mixed fold of q_k = floor((a_tk . x + b_tk) / width) over
the K projections (trackcore/hash_math.hpp). Numpy twins in
:mod:`trackcore.backends.cupy_kernels.reference`. Units are those of the points.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import InputError
from . import inputs, outputs
from .grid import check_finite


def check_lsh_inputs(points, projections, offsets, width: float) -> None:
    n_tables, n_proj, dim = projections.shape if projections.ndim == 3 else (None, None, None)
    if points.ndim != 2 or projections.ndim != 3 or projections.shape[2] != points.shape[1]:
        raise InputError(f"lsh: points must be (N, D) and projections (T, K, D), got {points.shape} and "
                         f"{projections.shape}")
    if offsets.shape != (n_tables, n_proj):
        raise InputError(f"lsh: offsets must be (T, K) = {(n_tables, n_proj)}, got {offsets.shape}")
    if not (math.isfinite(width) and width > 0):
        raise InputError(f"lsh: width must be finite and > 0, got {width}")


def lsh_keys(points, projections, offsets, width: float, *, runtime):
    """Bucket keys (T, N) uint64 of ``points`` (N, D) for ``projections`` (T, K, D), ``offsets`` (T, K)."""
    rt = runtime
    host, (x, a, b) = inputs(rt, points, projections, offsets, dtype=np.float64)
    check_lsh_inputs(x, a, b, width)
    check_finite(rt, {"points": x.ravel(), "projections": a.ravel(), "offsets": b.ravel()})
    n, dim = x.shape
    t, k = a.shape[:2]
    keys = rt.xp.empty((t, n), rt.xp.uint64)
    rt.launch(rt.function("lsh", "tc_lsh_keys"), n * t,
              (np.int64(n), np.int32(dim), np.int32(t), np.int32(k), x, a, b, np.float64(width), keys))
    return outputs(rt, host, keys)


def lsh_buckets(points, projections, offsets, width: float, *, runtime):
    """Group points by key per table: ``(keys (T, N), order (T, N), starts)``. ``order[t]`` lists
    point indices bucket by bucket (keys ascending, points ascending inside a bucket); ``starts[t]`` is
    a bool (T, N) mask, True where a new bucket begins in ``order[t]``."""
    rt = runtime
    host = not any(rt.is_device(v) for v in (points, projections, offsets))
    keys = lsh_keys(rt.xp.asarray(points), rt.xp.asarray(projections), rt.xp.asarray(offsets), width, runtime=rt)
    # CuPy's argsort is stable; numpy's must be asked to be, so equal keys keep point order.
    order = rt.xp.argsort(keys, axis=1, kind="stable") if rt.xp is np else rt.xp.argsort(keys, axis=1)
    sk = rt.xp.take_along_axis(keys, order, axis=1)
    starts = rt.xp.ones(keys.shape, bool)
    starts[:, 1:] = sk[:, 1:] != sk[:, :-1]
    return outputs(rt, host, keys, order.astype(rt.xp.int64), starts)
