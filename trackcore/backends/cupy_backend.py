"""The cupy backend: the hot loops as CUDA kernels on a GPU. CuPy is imported only when chosen.

Kernels (CUDA C in csrc/cuda, glue in :mod:`trackcore.backends.cupy_kernels`) under the names and
signatures of the numpy/cpu tables: ``global_to_local``, ``local_to_global``, ``seeding_grid``,
``find_seeds``, ``ckf`` (track finding, ambiguity resolution and the perigee fit), and the
simulation's ``transport``, ``digitize_segments`` and ``cluster_cells``; and GPU batch
kernels with numpy twins in ``cupy_kernels.reference``: ``helix_to_plane``, ``rk_to_plane``,
``kalman_update``, ``lsh_keys``, ``lsh_buckets``. Each accepts numpy or CuPy arrays and returns CuPy
arrays for CuPy inputs (no transfer) and numpy arrays for numpy inputs. The reconstruction chain
(:func:`trackcore.reco.pipeline.reconstruct`) on this backend uploads the event's measurements once
and downloads the tracks once; everything in between stays on the GPU. Kernels that have no GPU
version yet raise :class:`BackendError` naming them; nothing silently falls back to the CPU.
"""
from __future__ import annotations

import functools

from ..errors import BackendError
from . import Backend

INSTALL_HINT = "install the GPU extra with `pip install trackcore[cuda]` (CuPy for CUDA 12)"

#: Kernels of the numpy/cpu tables not yet written for the GPU.
NOT_ON_GPU = ("lsh_knn", "seed_buckets")


def import_cupy():
    """Import CuPy and check a GPU is visible; raise :class:`BackendError` with a hint otherwise."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(f"the 'cupy' backend needs CuPy, which is not installed: {INSTALL_HINT}") from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when no driver is present
        raise BackendError(f"the 'cupy' backend found no usable CUDA GPU: {exc}") from exc
    if n == 0:
        raise BackendError("the 'cupy' backend found no CUDA GPU on this machine")
    return cupy


class CupyBackend(Backend):
    """A :class:`Backend` whose missing kernels say they have no GPU version yet."""

    def kernel(self, name: str):
        if name in NOT_ON_GPU and name not in self.kernels:
            raise BackendError(
                f"kernel {name!r} has no GPU version yet on backend {self.name!r}; run it with "
                f"backend='cpu' or 'numpy' (the 'cupy' backend never falls back to the CPU by itself)")
        return super().kernel(name)


def kernel_functions() -> dict:
    """Kernel name -> glue function (taking ``runtime=``) of every GPU kernel."""
    from .cupy_kernels import ckf, grid, kalman, lsh, propagation, seeding, simulation, transform

    return {
        "global_to_local": transform.global_to_local, "local_to_global": transform.local_to_global,
        "seeding_grid": grid.seeding_grid, "find_seeds": seeding.find_seeds,
        "helix_to_plane": propagation.helix_to_plane, "rk_to_plane": propagation.rk_to_plane,
        "kalman_update": kalman.kalman_update,
        "lsh_keys": lsh.lsh_keys, "lsh_buckets": lsh.lsh_buckets, "ckf": ckf.ckf,
        "transport": simulation.transport, "digitize_segments": simulation.digitize_segments,
        "cluster_cells": simulation.cluster_cells,
    }


def kernel_table(runtime) -> dict:
    """The GPU kernels bound to ``runtime`` (a CuPy runtime, or the host emulation in tests)."""
    fns = kernel_functions()
    out = {}
    for name, fn in fns.items():
        bound = functools.partial(fn, runtime=runtime)
        functools.update_wrapper(bound, fn)
        out[name] = bound
    return out


def make_backend(runtime=None) -> Backend:
    """The ``cupy`` backend; ``runtime`` defaults to CuPy on the current GPU (BackendError without one)."""
    if runtime is None:
        from .cupy_kernels import csrc_dir, cupy_runtime

        runtime = cupy_runtime()
        csrc_dir()  # fail at selection, not at the first kernel call, when the sources are missing
    return CupyBackend("cupy", runtime.xp, kernel_table(runtime))
