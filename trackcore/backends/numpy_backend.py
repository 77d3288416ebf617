"""The numpy backend: the readable reference implementation of every kernel."""
from __future__ import annotations

import numpy as np

from . import Backend
from ._kernels import NUMPY_KERNELS


def global_to_local(centres, rotations, module_index, points):
    d = points - centres[module_index]
    return np.einsum("nji,nj->ni", rotations[module_index], d)


def local_to_global(centres, rotations, module_index, points):
    return centres[module_index] + np.einsum("nij,nj->ni", rotations[module_index], points)


def make_backend() -> Backend:
    kernels = {"global_to_local": global_to_local, "local_to_global": local_to_global}
    kernels.update(NUMPY_KERNELS.load())
    return Backend("numpy", np, kernels)
