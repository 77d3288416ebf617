"""The cpu backend: kernels of the compiled core ``trackcore._core`` (C++17, pybind11)."""
from __future__ import annotations

import numpy as np

from .._corelib import core
from ..errors import BackendError, BuildError
from . import Backend
from ._kernels import CPU_KERNELS


def make_backend() -> Backend:
    try:
        c = core()
    except BuildError as exc:
        raise BackendError(f"the 'cpu' backend needs the compiled core: {exc}") from exc
    kernels = {"global_to_local": c.global_to_local, "local_to_global": c.local_to_global}
    kernels.update(CPU_KERNELS.load())
    return Backend("cpu", np, kernels)
