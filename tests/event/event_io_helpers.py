"""Helpers for event I/O tests: a small synthetic event with every part, and an exact comparison."""
from __future__ import annotations

import numpy as np
from trackcore.event import Event, Table


def make_event(event_id: int = 42, n_particles: int = 6, seed: int = 0) -> Event:
    """Sparse hit ids, noise hits, several cells per hit, full-precision and edge-case floats."""
    rng = np.random.default_rng(seed)
    pids = np.sort(rng.choice(2**62, n_particles, replace=False)).astype(np.int64)  # beyond 2**53
    per = rng.integers(0, 5, n_particles)
    hit_pid = np.concatenate([np.repeat(pids, per), np.zeros(3, np.int64)])  # 3 noise hits
    n = len(hit_pid)
    hit_id = np.sort(rng.choice(10**6, n, replace=False)).astype(np.int64) + 1
    x = rng.normal(size=n) * 300
    x[0] = -0.0
    x[1] = 1e-300
    x[2] = 123456789.123456789
    hits = Table({"hit_id": hit_id, "x": x, "y": rng.normal(size=n) * 300, "z": rng.normal(size=n) * 1e3,
                  "volume_id": rng.integers(7, 19, n).astype(np.int32),
                  "layer_id": rng.integers(2, 15, n).astype(np.int32),
                  "module_id": rng.integers(1, 3000, n).astype(np.int32)}, name="hits")
    ncell = rng.integers(1, 4, n)
    cells = Table({"hit_id": np.repeat(hit_id, ncell),
                   "ch0": rng.integers(0, 1200, ncell.sum()).astype(np.int32),
                   "ch1": rng.integers(0, 1200, ncell.sum()).astype(np.int32),
                   "value": rng.random(ncell.sum())}, name="cells")
    particles = Table({"particle_id": pids, "particle_type": rng.choice([-211, 211, 11, 13], n_particles).astype(np.int32),
                       "vx": rng.normal(size=n_particles) * 0.01, "vy": rng.normal(size=n_particles) * 0.01,
                       "vz": rng.normal(size=n_particles) * 5, "px": rng.normal(size=n_particles),
                       "py": rng.normal(size=n_particles), "pz": rng.normal(size=n_particles) * 3,
                       "q": rng.choice([-1, 1], n_particles).astype(np.int32), "nhits": per.astype(np.int32)},
                      name="particles")
    w = rng.random(n)
    w[hit_pid == 0] = 0.0
    truth = Table({"hit_id": hit_id, "particle_id": hit_pid, "tx": x + 0.01, "ty": rng.normal(size=n),
                   "tz": rng.normal(size=n), "tpx": rng.normal(size=n), "tpy": rng.normal(size=n),
                   "tpz": rng.normal(size=n), "weight": w / w.sum()}, name="truth")
    return Event(hits=hits, cells=cells, particles=particles, truth=truth, event_id=event_id)


def assert_same_event(a: Event, b: Event) -> None:
    """Same parts, same columns in the same order, same dtypes, bit-identical values."""
    assert a.event_id == b.event_id
    for part in ("hits", "cells", "particles", "truth"):
        ta, tb = getattr(a, part), getattr(b, part)
        assert (ta is None) == (tb is None), part
        if ta is None:
            continue
        assert ta.columns == tb.columns, part
        for c in ta.columns:
            assert ta[c].dtype == tb[c].dtype, (part, c)
            # view as bytes: catches -0.0 vs 0.0 and any last-bit difference
            assert ta[c].tobytes() == tb[c].tobytes(), (part, c)
