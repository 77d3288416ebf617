"""Builds the private compiled core ``trackcore._core`` (C++17, pybind11) from ``csrc/``.

Every ``csrc/src/*.cpp`` and ``csrc/bindings/*.cpp`` goes into the one extension; the files are
compiled in parallel because a pybind11 translation unit is slow to build.
"""
from glob import glob
import os

from pybind11.setup_helpers import Pybind11Extension, ParallelCompile, build_ext
from setuptools import setup

ParallelCompile("TRACKCORE_BUILD_JOBS", default=os.cpu_count() or 2).install()

sources = sorted(glob("csrc/bindings/*.cpp")) + sorted(glob("csrc/src/*.cpp"))
extra = ["-O3", "-fno-math-errno", "-pthread"]  # pthread: the kernels' worker threads (std::thread)
# TRACKCORE_SANITIZE=1: AddressSanitizer + UBSan; =thread: ThreadSanitizer (tests/reliability/scripts).
SANITIZE = os.environ.get("TRACKCORE_SANITIZE")
SANITIZERS = "thread" if SANITIZE == "thread" else "address,undefined"
if SANITIZE:
    extra = ["-O1", "-g", f"-fsanitize={SANITIZERS}", "-fno-omit-frame-pointer", "-pthread"]

ext_modules = [
    Pybind11Extension(
        "trackcore._core",
        sources,
        include_dirs=["csrc/include"],
        cxx_std=17,
        extra_compile_args=extra,
        extra_link_args=["-pthread"] + ([f"-fsanitize={SANITIZERS}"] if SANITIZE else []),
        depends=sorted(glob("csrc/include/trackcore/*.hpp")) + sorted(glob("csrc/src/*.hpp")),
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
