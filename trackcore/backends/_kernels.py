"""Kernel tables: for each backend, kernel name -> "module:attribute" to import lazily.

Add a kernel by naming its numpy reference here and its compiled twin in ``CPU_KERNELS``; the
parity tests (tests/backends) run every name found in both tables against each other.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass
class KernelTable:
    entries: dict[str, str] = field(default_factory=dict)

    def load(self) -> dict:
        out = {}
        for name, target in self.entries.items():
            module, _, attr = target.partition(":")
            out[name] = getattr(importlib.import_module(module), attr)
        return out


NUMPY_KERNELS = KernelTable({
    "find_seeds": "trackcore.reco.seeding_numpy:find_seeds_numpy", "seeding_grid": "trackcore.reco.seeding_numpy:seeding_grid_numpy",
    "transport": "trackcore.sim.transport_numpy:transport_numpy",
    "digitize_segments": "trackcore.sim.digitization:digitize_segments_numpy", "cluster_cells": "trackcore.sim.digitization:cluster_cells_numpy",
    "lsh_knn": "trackcore.reco.hashing_numpy:lsh_knn_numpy", "lsh_keys": "trackcore.reco.hashing_numpy:lsh_keys_numpy", "seed_buckets": "trackcore.reco.hashing_numpy:seed_buckets_numpy",
    "ckf": "trackcore.reco.ckf_numpy:ckf_numpy",
})
CPU_KERNELS = KernelTable({
    "ckf": "trackcore.reco.ckf:ckf_cpu",
    "find_seeds": "trackcore._core:find_seeds", "seeding_grid": "trackcore._core:seeding_grid",
    "digitize_segments": "trackcore._core:digitize_segments", "cluster_cells": "trackcore._core:cluster_cells",
    "transport": "trackcore.sim.transport:transport_cpu",
    "fastsim_conditions": "trackcore._core:fastsim_conditions", "fastsim_render": "trackcore._core:fastsim_render",  # numpy twins: plugins/fastsim_gan/kernels.py
    "fastsim_generate": "trackcore._core:fastsim_generate",  # conditions -> generator -> cells in one pass
    "lsh_knn": "trackcore._core:lsh_knn", "lsh_keys": "trackcore._core:lsh_keys", "seed_buckets": "trackcore._core:seed_buckets",})
