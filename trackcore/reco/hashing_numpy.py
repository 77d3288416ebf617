"""The numpy reference of the hashing kernels (``numpy`` backend): LSH keys, LSH k-NN and triplet
seeding restricted to buckets.

The compiled twins live in csrc/src/lsh.cpp; both return identical results in identical order,
so the floating-point operations below follow the C++ ones: dot products and squared distances
summed dimension by dimension in index order, ``floor((a . x + b) / w)`` clamped to +-2^62, keys
folded with splitmix64 from the same seed, ties broken by point index.
"""
from __future__ import annotations

import numpy as np

from .seeding_numpy import find_seeds_numpy

#: Initial value of every key (the same constant as csrc/src/lsh.hpp and trackcore/hash_math.hpp).
KEY_SEED = np.uint64(0x243F6A8885A308D3)
_LIM = 4611686018427387904.0  # 2^62


def _splitmix64(z: np.ndarray) -> np.ndarray:
    # uint64 arithmetic wraps modulo 2^64 exactly as in C++.
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def lsh_keys_numpy(features, projections, offsets, width: float) -> np.ndarray:
    """(n_tables, n) uint64 keys of each point: per table, the fold of its ``n_proj`` quantised
    projections ``floor((a . x + b) / width)``."""
    x = np.asarray(features, np.float64)
    proj = np.asarray(projections, np.float64)
    offs = np.asarray(offsets, np.float64)
    n_tables, n_proj, dim = proj.shape
    if x.ndim != 2 or x.shape[1] != dim or offs.shape != (n_tables, n_proj):
        raise ValueError(f"features {x.shape}, projections {proj.shape} and offsets {offs.shape} do not match")
    for name, a in (("features", x), ("projections", proj), ("offsets", offs)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: element {int(np.flatnonzero(~np.isfinite(a.ravel()))[0])} is not finite")
    if not (np.isfinite(width) and width > 0):
        raise ValueError("width must be finite and > 0")
    out = np.empty((n_tables, len(x)), np.uint64)
    for t in range(n_tables):
        key = np.full(len(x), KEY_SEED, np.uint64)
        for k in range(n_proj):
            acc = np.zeros(len(x))
            for d in range(dim):
                acc = acc + proj[t, k, d] * x[:, d]
            q = np.clip(np.floor((acc + offs[t, k]) / width), -_LIM, _LIM).astype(np.int64)
            key = _splitmix64(key ^ q.view(np.uint64))
        out[t] = key
    return out


def lsh_knn_numpy(features, query, projections, offsets, width: float, k: int) -> np.ndarray:
    """(n_query, k) int64: for each query point (an index into ``features``) its ``k`` nearest
    points by squared Euclidean distance among those sharing its key in at least one table (itself
    included), nearest first, ties by index; -1 pads rows with fewer candidates."""
    x = np.asarray(features, np.float64)
    query = np.asarray(query, np.int64)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    bad = (query < 0) | (query >= len(x))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"query[{i}] = {query[i]} is not a point index")
    keys = lsh_keys_numpy(x, projections, offsets, width)
    # Per table, the points of each key: sort by (key, index) and find the run of each point.
    runs = []
    for kt in keys:
        order = np.lexsort((np.arange(len(kt)), kt))
        sorted_keys = kt[order]
        runs.append((order, sorted_keys))
    out = np.full((len(query), k), -1, np.int64)
    for qi, q in enumerate(query):
        cand = []
        for (order, sorted_keys), kt in zip(runs, keys):
            lo, hi = np.searchsorted(sorted_keys, kt[q], "left"), np.searchsorted(sorted_keys, kt[q], "right")
            cand.append(order[lo:hi])
        cand = np.unique(np.concatenate(cand))
        d2 = np.zeros(len(cand))
        for d in range(x.shape[1]):
            diff = x[cand, d] - x[q, d]
            d2 = d2 + diff * diff
        best = cand[np.lexsort((cand, d2))][:k]
        out[qi, :len(best)] = best
    return out


def seed_buckets_numpy(x, y, z, r, phi, layer, members, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Triplet seeds inside each bucket (rows of ``members``: space-point indices, ascending, -1 for
    empty slots), every bucket seeded with the same ``params``. A triplet found in several buckets
    keeps its highest weight. Returns (hits (N, 3) int64, weight), best weight first, ties by
    (middle, bottom, top), at most ``params["max_seeds"]``."""
    arrays = [np.asarray(a, np.float64) for a in (x, y, z, r, phi)]
    layer = np.asarray(layer, np.int64)
    members = np.asarray(members, np.int64).reshape(len(members), -1)
    hits, weights = [np.zeros((0, 3), np.int64)], [np.zeros(0)]
    for row in members:
        idx = row[row >= 0]
        if len(idx) < 3:
            continue
        h, w = find_seeds_numpy(*(a[idx] for a in arrays), layer[idx], params)
        hits.append(idx[np.asarray(h, np.int64).reshape(-1, 3)])
        weights.append(np.asarray(w, np.float64))
    hits, weights = np.concatenate(hits), np.concatenate(weights)
    # One triplet per (bottom, middle, top), its highest weight.
    order = np.lexsort((-weights, hits[:, 2], hits[:, 1], hits[:, 0]))
    hits, weights = hits[order], weights[order]
    first = np.ones(len(hits), bool)
    first[1:] = (hits[1:] != hits[:-1]).any(axis=1)
    hits, weights = hits[first], weights[first]
    order = np.lexsort((hits[:, 2], hits[:, 0], hits[:, 1], -weights))[: int(params["max_seeds"])]
    return hits[order], weights[order]
