// Host emulation of the CUDA built-ins the kernels in csrc/cuda use, so g++ can build them into a
// shared library whose kernels run one thread per call (trackcore/backends/cupy_kernels/_emulate.py).
// Sequential threads make every atomic trivially correct; this checks kernel logic, not the GPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct tc_emu_dim3 { long long x = 0, y = 0, z = 0; };
static tc_emu_dim3 blockIdx, threadIdx, blockDim;

extern "C" void tc_emu_set_thread(long long i) {
    blockIdx.x = i;
    threadIdx.x = 0;
    blockDim.x = 1;
}

inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    const unsigned long long old = *p;
    *p = old + v;
    return old;
}

inline double __longlong_as_double(long long v) {
    double d;
    std::memcpy(&d, &v, sizeof d);
    return d;
}

using std::fabs;
using std::fmax;
using std::fmin;
using std::sqrt;
