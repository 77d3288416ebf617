"""The cupy backend: the same kernels on a CUDA GPU. CuPy is imported only when this backend is chosen."""
from __future__ import annotations

from ..errors import BackendError
from . import Backend

INSTALL_HINT = "install the GPU extra with `pip install trackcore[cuda]` (CuPy for CUDA 12)"


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


def make_backend() -> Backend:
    cupy = import_cupy()

    def global_to_local(centres, rotations, module_index, points):
        c, r = cupy.asarray(centres), cupy.asarray(rotations)
        idx, p = cupy.asarray(module_index), cupy.asarray(points)
        return cupy.einsum("nji,nj->ni", r[idx], p - c[idx])

    def local_to_global(centres, rotations, module_index, points):
        c, r = cupy.asarray(centres), cupy.asarray(rotations)
        idx, p = cupy.asarray(module_index), cupy.asarray(points)
        return c[idx] + cupy.einsum("nij,nj->ni", r[idx], p)

    return Backend("cupy", cupy, {"global_to_local": global_to_local, "local_to_global": local_to_global})
