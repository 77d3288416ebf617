"""CUDA kernels of the ``cupy`` backend: sources, compilation, and the runtimes that launch them.

The kernels are CUDA C in ``csrc/cuda/*.cu``; they include the ``__host__ __device__`` headers of
``csrc/include/trackcore`` that the compiled C++ core also uses, so both run the same functions.
One module per area holds the array-level glue (``grid``, ``seeding``, ``transform``,
``propagation``, ``kalman``, ``lsh``, ``ckf``, ``simulation``); each glue function takes a *runtime*:

* :class:`CupyRuntime` compiles with ``cupy.RawModule`` and launches on the GPU (``xp = cupy``);
* :class:`~trackcore.backends.cupy_kernels._emulate.HostRuntime` compiles the same ``.cu`` files
  with g++ and runs every thread in turn on the CPU (``xp = numpy``), so the glue and the kernel
  logic are tested on machines without a GPU (not the GPU's own rounding or scheduling).

Glue functions accept numpy or device arrays and return device arrays for device inputs and numpy
arrays for host inputs, so callers that keep data on the GPU pay no transfers in between.
"""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from ...errors import BackendError

#: The ``.cu`` file of each kernel area (under :func:`cuda_source_dir`).
CU_FILES = ("grid", "seeding", "transform", "propagation", "kalman", "lsh", "ckf", "simulation")
#: Environment variable naming the ``csrc`` folder where it is not beside the package.
CSRC_ENV = "TRACKCORE_CSRC"
#: Environment variable choosing CuPy's compiler backend: ``nvcc`` or ``nvrtc``.
COMPILER_ENV = "TRACKCORE_CUDA_COMPILER"
THREADS = 128  # threads per block: the kernels are register-heavy double-precision code


def csrc_dir() -> Path:
    """The ``csrc`` folder holding ``cuda/*.cu`` and ``include/trackcore/*.hpp``."""
    env = os.environ.get(CSRC_ENV)
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[3] / "csrc", here.parents[2] / "_csrc"]  # source checkout, package data
    for c in candidates:
        if (c / "cuda").is_dir() and (c / "include" / "trackcore").is_dir():
            return c
    raise BackendError(
        "the 'cupy' backend cannot find its CUDA sources (csrc/cuda/*.cu and csrc/include); looked in "
        + ", ".join(str(c) for c in candidates) + f"; set {CSRC_ENV} to the csrc folder")


def cuda_source(area: str) -> Path:
    """Path of the ``.cu`` file of ``area`` (one of :data:`CU_FILES`)."""
    if area not in CU_FILES:
        raise BackendError(f"no CUDA kernel area {area!r}; known: {', '.join(CU_FILES)}")
    return csrc_dir() / "cuda" / f"{area}.cu"


def compile_options(compiler: str) -> tuple[str, ...]:
    """Options for every ``.cu`` file. ``--fmad=false`` keeps a*b+c unfused, as in the C++ core and
    numpy, so the seeding cuts round identically; NVRTC also gets minimal <cmath>/<cstdint> shims."""
    opts = [f"-I{csrc_dir() / 'include'}", "--std=c++17", "--fmad=false"]
    if compiler == "nvrtc":
        opts.insert(0, f"-I{Path(__file__).resolve().parent / 'rtc_include'}")
    return tuple(opts)


def default_compiler() -> str:
    """``nvcc`` when it is on PATH (the same compiler the compile tests use), else ``nvrtc``."""
    choice = os.environ.get(COMPILER_ENV)
    if choice:
        if choice not in ("nvcc", "nvrtc"):
            raise BackendError(f"{COMPILER_ENV}={choice!r}: choose 'nvcc' or 'nvrtc'")
        return choice
    return "nvcc" if shutil.which("nvcc") else "nvrtc"


class CupyRuntime:
    """Launches the kernels on the current CUDA device through CuPy."""

    def __init__(self, cupy, compiler: str | None = None) -> None:
        self.xp = cupy
        self.compiler = compiler or default_compiler()
        self._modules: dict[str, object] = {}

    def function(self, area: str, name: str):
        mod = self._modules.get(area)
        if mod is None:
            source = cuda_source(area).read_text()
            try:
                mod = self.xp.RawModule(code=source, options=compile_options(self.compiler), backend=self.compiler)
                mod.compile()
            except Exception as exc:  # CompileException, or nvcc missing for backend='nvcc'
                raise BackendError(f"compiling {cuda_source(area)} with {self.compiler} failed: {exc}") from exc
            self._modules[area] = mod
        return mod.get_function(name)

    def launch(self, fn, n_threads: int, args: tuple) -> None:
        if n_threads > 0:
            fn(((n_threads + THREADS - 1) // THREADS,), (THREADS,), args)

    def is_device(self, a) -> bool:
        return isinstance(a, self.xp.ndarray)

    def to_host(self, a):
        return self.xp.asnumpy(a)


@functools.lru_cache(maxsize=None)
def cupy_runtime() -> CupyRuntime:
    """The runtime of the ``cupy`` backend (raises :class:`BackendError` without CuPy or a GPU)."""
    from ..cupy_backend import import_cupy

    return CupyRuntime(import_cupy())


def inputs(rt, *arrays, dtype) -> tuple[bool, list]:
    """(all inputs were host arrays, the arrays as contiguous ``dtype`` arrays on ``rt``)."""
    host = not any(rt.is_device(a) for a in arrays)
    return host, [rt.xp.ascontiguousarray(rt.xp.asarray(a), dtype=dtype) for a in arrays]


def field_grid(rt, field_map, placeholder, where: str):
    """``((nr, nz, r0, dr, z0, dz), Br, Bz)`` of a field map tuple ``(r0, dr, nr, z0, dz, nz, Br, Bz)`` on
    ``rt`` for the kernels' (r, z) grid arguments; without a map (None) nr = nz = 0 and ``placeholder``
    stands in for the grids (the kernels read none)."""
    import numpy as np

    from ...errors import InputError

    if field_map is None:
        return (0, 0, 0.0, 1.0, 0.0, 1.0), placeholder, placeholder
    r0, dr, nr, z0, dz, nz, br, bzg = field_map
    grid = (int(nr), int(nz), float(r0), float(dr), float(z0), float(dz))
    _, (br, bzg) = inputs(rt, br, bzg, dtype=np.float64)
    if br.shape != grid[:2] or bzg.shape != grid[:2] or grid[0] < 2 or grid[1] < 2:
        raise InputError(f"{where}: field map grids of shape {br.shape}, {bzg.shape} for nr, nz = {grid[:2]}")
    return grid, br, bzg


def outputs(rt, host: bool, *arrays):
    """Bring results to the host when the inputs came from there; a single array is not wrapped."""
    out = tuple(rt.to_host(a) if host else a for a in arrays)
    return out[0] if len(out) == 1 else out


__all__ = ["CU_FILES", "CupyRuntime", "compile_options", "csrc_dir", "cuda_source", "cupy_runtime", "default_compiler"]
