"""The CUDA sources compile (nvcc -> PTX for sm_80 and sm_90) and the shared headers work as host code.

Needs no GPU: nvcc only compiles. The host test builds a small C++ program against every header of
csrc/include/trackcore with g++ and checks its numbers against the numpy references.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from trackcore.backends.cupy_kernels import CU_FILES, compile_options, csrc_dir
from trackcore.backends.cupy_kernels.reference import kalman_update_numpy, lsh_keys_numpy
from trackcore.sim.transport_numpy import helix_advance

CSRC = csrc_dir()
CU = sorted((CSRC / "cuda").glob("*.cu"))
HEADERS = sorted((CSRC / "include" / "trackcore").glob("*.hpp"))
NVCC = shutil.which("nvcc")
GXX = shutil.which("g++")
#: Compilers run without a sanitizer runtime preloaded (tests/reliability/scripts/run_sanitizers.sh sets
#: LD_PRELOAD for the Python process; nvcc crashes under it).
TOOL_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ not found on PATH")

# Kernels each file must export, and shared headers it must pull in.
EXPECTED = {
    "grid": ({"tc_grid_cells", "tc_grid_scatter", "tc_grid_sort"}, {"seeding_math.hpp"}),
    "seeding": ({"tc_seed_doublets", "tc_seed_triplets"}, {"seeding_math.hpp"}),
    "transform": ({"tc_global_to_local", "tc_local_to_global"}, {"transform.hpp"}),
    "propagation": ({"tc_helix_to_plane", "tc_rk_to_plane"}, {"helix.hpp", "field.hpp"}),
    "kalman": ({"tc_kalman_update"}, {"kalman_math.hpp", "track_params.hpp", "helix.hpp"}),
    "lsh": ({"tc_lsh_keys"}, {"hash_math.hpp", "rng.hpp"}),
    "ckf": ({"tc_ckf_sizes", "tc_ckf_setup", "tc_ckf_follow", "tc_ckf_commit", "tc_ckf_resolve", "tc_ckf_refine_fit",
             "tc_ckf_final"}, {"ckf_device.hpp", "ckf_state_device.hpp", "layer_search_device.hpp", "bound_transport.hpp", "helix.hpp", "kalman_math.hpp", "material.hpp",
                               "field.hpp", "track_params.hpp"}),
    "simulation": ({"tc_transport", "tc_digitize_count", "tc_digitize_write", "tc_cluster_modules"},
                   {"transport_device.hpp", "digitization_device.hpp", "navigation_device.hpp", "rng.hpp",
                    "material.hpp", "helix.hpp"}),
}


def test_every_cu_file_is_known():
    assert sorted(p.stem for p in CU) == sorted(CU_FILES) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def ptx(tmp_path_factory) -> dict[str, Path]:
    """All .cu files to PTX, one nvcc call per architecture, both at once."""
    if NVCC is None:
        pytest.skip("nvcc not found on PATH")
    out = {}
    procs = []
    for arch in ("sm_80", "sm_90"):
        d = tmp_path_factory.mktemp(arch)
        cmd = [NVCC, "-ptx", f"-arch={arch}", *compile_options("nvcc"), *map(str, CU), "-odir", str(d)]
        procs.append((arch, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=TOOL_ENV)))
        out[arch] = d
    for arch, p in procs:
        log = p.communicate(timeout=120)[0]
        assert p.returncode == 0, f"nvcc -arch={arch} failed:\n{log}"
    return out


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_cu_files_compile_to_ptx(ptx, arch):
    for cu in CU:
        text = (ptx[arch] / f"{cu.stem}.ptx").read_text()
        assert f".target {arch}" in text
        entries = set(re.findall(r"\.entry\s+(\w+)\(", text))
        assert entries == EXPECTED[cu.stem][0], cu.name
        # libdevice's sin, cos, atan2, log ... use FMA inside (propagation and the CKF call them); the
        # other files' own arithmetic must not be contracted.
        assert "fma.rn.f64" not in text or cu.stem in ("propagation", "ckf", "simulation"), \
            f"{cu.name}: fused multiply-add despite --fmad=false"


@needs_nvcc
def test_cu_files_include_the_shared_headers():
    def deps(cu: Path) -> set[str]:
        res = subprocess.run([NVCC, "-M", *compile_options("nvcc"), str(cu)], capture_output=True, text=True, env=TOOL_ENV)
        assert res.returncode == 0, res.stderr
        return set(re.findall(r"csrc/include/trackcore/(\w+\.hpp)", res.stdout))

    with ThreadPoolExecutor(4) as pool:
        found = dict(zip(CU, pool.map(deps, CU)))
    for cu, headers in found.items():
        assert EXPECTED[cu.stem][1] <= headers, f"{cu.name} includes {sorted(headers)}"


@needs_nvcc
def test_compile_fails_without_the_include_path(tmp_path):
    # The .cu files really depend on csrc/include: without it nvcc stops at the first #include.
    res = subprocess.run([NVCC, "-ptx", "-arch=sm_80", "--std=c++17", str(CSRC / "cuda" / "kalman.cu"), "-o",
                          str(tmp_path / "k.ptx")], capture_output=True, text=True, env=TOOL_ENV)
    assert res.returncode != 0 and "kalman_math.hpp" in res.stderr


HOST_PROGRAM = r"""
#include <cstdio>
%(includes)s
using namespace trackcore;
int main() {
    State st{{10.0, -5.0, 3.0}, {0.6, 0.8, 0.0}, 0.5}, out;
    const double h = helix_h(st.qop, 2.0);
    helix_advance(st, h, 250.0, out);
    std::printf("%%.17g %%.17g %%.17g %%.17g %%.17g %%.17g\n", out.pos[0], out.pos[1], out.pos[2], out.dir[0],
                out.dir[1], out.dir[2]);
    double p[5] = {0.1, -0.2, 3.1, 1.2, 0.5};  // phi near +pi: the update wraps it
    double C[25] = {0};
    for (int i = 0; i < 5; ++i) C[6 * i] = 0.01 * (i + 1);
    C[1] = C[5] = 0.002;
    C[2] = C[10] = 0.005;
    const double chi2 = kalman_update_2d(p, C, 0.3, -0.1, 0.0025, 0.0036, false);
    std::printf("%%.17g", chi2);
    for (double v : p) std::printf(" %%.17g", v);
    for (double v : C) std::printf(" %%.17g", v);
    std::printf("\n");
    const double x[3] = {1.5, -2.25, 7.0}, a[6] = {0.3, -0.7, 0.2, -0.1, 0.4, 0.9}, b[2] = {0.25, 1.5};
    std::uint64_t key = kLshKeySeed;
    for (int k = 0; k < 2; ++k) key = lsh_combine(key, lsh_quantise(a + 3 * k, b[k], 0.8, x, 3));
    std::printf("%%llu\n", static_cast<unsigned long long>(key));
    return 0;
}
"""


@needs_gxx
def test_shared_headers_compile_and_agree_on_the_host(tmp_path):
    src = tmp_path / "headers.cpp"
    src.write_text(HOST_PROGRAM % {"includes": "\n".join(f'#include "trackcore/{h.name}"' for h in HEADERS)})
    exe = tmp_path / "headers"
    res = subprocess.run([GXX, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Werror", f"-I{CSRC / 'include'}",
                          str(src), "-o", str(exe)], capture_output=True, text=True, env=TOOL_ENV)
    assert res.returncode == 0, res.stderr
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True, env=TOOL_ENV).stdout.splitlines()

    pos, d = helix_advance([10.0, -5.0, 3.0], [0.6, 0.8, 0.0], 0.5 * 0.299792458e-3 * 2.0, 250.0)
    np.testing.assert_allclose([float(v) for v in lines[0].split()], pos + d, rtol=1e-14, atol=1e-12)

    C = np.zeros((1, 5, 5))
    C[0, range(5), range(5)] = 0.01 * np.arange(1, 6)
    C[0, 0, 1] = C[0, 1, 0] = 0.002
    C[0, 0, 2] = C[0, 2, 0] = 0.005
    p, C, chi2 = kalman_update_numpy([[0.1, -0.2, 3.1, 1.2, 0.5]], C, [[0.3, -0.1]], [[0.0025, 0.0036]])
    got = np.array([float(v) for v in lines[1].split()])
    np.testing.assert_array_equal(got, np.concatenate([chi2, p[0], C[0].ravel()]))
    assert got[3] < 0  # phi was wrapped across +pi

    key = lsh_keys_numpy([[1.5, -2.25, 7.0]], [[[0.3, -0.7, 0.2], [-0.1, 0.4, 0.9]]], [[0.25, 1.5]], 0.8)
    assert int(lines[2]) == int(key[0, 0])
