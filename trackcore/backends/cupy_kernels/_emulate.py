"""A host runtime for the CUDA kernels: the same ``.cu`` sources built by g++ and run thread by thread.

Used by the tests (and available to developers) on machines without a GPU: the array-level glue of
the ``cupy`` backend runs unchanged with ``xp = numpy`` and each kernel launch becomes a loop over
thread indices on the CPU, last thread first so that code relying on thread order fails. This checks the kernels' logic and the glue against the numpy references;
it says nothing about GPU-specific behaviour (libdevice rounding of sin/cos, races, occupancy).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ...errors import BackendError
from . import CU_FILES, csrc_dir, cuda_source

_PRELUDE = Path(__file__).resolve().parent / "host_prelude.hpp"
#: Environment variable: -fsanitize= checks for the host builds (empty: none).
SANITIZE_ENV = "TRACKCORE_EMU_SANITIZE"


def _cxx() -> str:
    cxx = shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise BackendError("the host emulation of the CUDA kernels needs a C++ compiler (g++) on PATH")
    return cxx


def build_host_library(area: str, out_dir: Path) -> Path:
    """Compile ``csrc/cuda/<area>.cu`` as C++ with the host prelude into a shared library."""
    src = cuda_source(area)
    headers = sorted((csrc_dir() / "include" / "trackcore").glob("*.hpp"))
    # TRACKCORE_EMU_SANITIZE (e.g. "address,undefined"): instrumented builds for the sanitizer script
    # (tests/reliability/scripts/run_sanitizers.sh), which preloads the runtimes.
    sanitize = os.environ.get(SANITIZE_ENV, "")
    extra = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"] if sanitize else []
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in [src, _PRELUDE, *headers]) + sanitize.encode()).hexdigest()[:16]
    lib = out_dir / f"tc_emu_{area}_{digest}.so"
    if lib.exists():
        return lib
    # -ffp-contract=off as the core's seeding.cpp and the GPU build's --fmad=false.
    cmd = [_cxx(), "-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared", *extra, "-include", str(_PRELUDE),
           f"-I{csrc_dir() / 'include'}", "-x", "c++", str(src), "-o", str(lib) + ".tmp"]
    # Without a preloaded sanitizer runtime (the sanitizer script preloads one into Python only).
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise BackendError(f"host build of {src} failed:\n{res.stderr[-4000:]}")
    Path(str(lib) + ".tmp").replace(lib)
    return lib


class _HostKernel:
    def __init__(self, lib: ctypes.CDLL, name: str) -> None:
        self.name = name
        self._fn = getattr(lib, name)
        self._fn.restype = None
        self._set_thread = lib.tc_emu_set_thread
        self._set_thread.argtypes = [ctypes.c_longlong]

    def run(self, n_threads: int, args: tuple) -> None:
        cargs = []
        for a in args:
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise BackendError(f"{self.name}: array arguments must be C-contiguous")
                cargs.append(ctypes.c_void_p(a.ctypes.data))
            elif isinstance(a, np.int64):
                cargs.append(ctypes.c_longlong(int(a)))
            elif isinstance(a, np.uint64):
                cargs.append(ctypes.c_ulonglong(int(a)))
            elif isinstance(a, np.int32):
                cargs.append(ctypes.c_int(int(a)))
            elif isinstance(a, np.float64):
                cargs.append(ctypes.c_double(float(a)))
            else:  # the glue passes typed numpy scalars so that CuPy passes the same C types
                raise BackendError(f"{self.name}: argument {a!r} must be an ndarray or an np.int64/uint64/int32/float64")
        # Last thread first: results that depend on thread order (as they could on a GPU) show up.
        for i in range(n_threads - 1, -1, -1):
            self._set_thread(i)
            self._fn(*cargs)


class HostRuntime:
    """Runtime with the :class:`~trackcore.backends.cupy_kernels.CupyRuntime` interface, on the CPU."""

    xp = np
    compiler = "g++ (host emulation)"
    #: Seeds per CKF wave (ckf.WAVE on a GPU): threads run one by one here, so a small wave keeps
    #: the scratch memory small; the tracks do not depend on it.
    ckf_wave = 128
    transport_wave = 4096  # particles per transport launch (simulation.WAVE on a GPU)

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "trackcore-cuda-emu")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._libs: dict[str, ctypes.CDLL] = {}

    def build_all(self) -> None:
        """Compile every ``.cu`` file (in parallel) ahead of use."""
        with ThreadPoolExecutor(max_workers=len(CU_FILES)) as pool:
            for area, lib in zip(CU_FILES, pool.map(lambda a: build_host_library(a, self.cache_dir), CU_FILES)):
                self._libs.setdefault(area, ctypes.CDLL(str(lib)))

    def function(self, area: str, name: str) -> _HostKernel:
        if area not in self._libs:
            self._libs[area] = ctypes.CDLL(str(build_host_library(area, self.cache_dir)))
        return _HostKernel(self._libs[area], name)

    def launch(self, fn: _HostKernel, n_threads: int, args: tuple) -> None:
        fn.run(n_threads, args)

    def is_device(self, a) -> bool:
        return False

    def to_host(self, a):
        return a
