// Module frame transforms for many points at once (trackcore/transform.hpp): the `cupy` backend's
// global_to_local / local_to_global. Rotations are (M, 3, 3) row-major, columns the local axes.
#include "trackcore/transform.hpp"

extern "C" __global__ void tc_global_to_local(long long n, const double* centres, const double* rotations,
                                              const long long* module, const double* points, double* out) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const long long m = module[i];
    trackcore::to_local(centres + 3 * m, rotations + 9 * m, points + 3 * i, out + 3 * i);
}

extern "C" __global__ void tc_local_to_global(long long n, const double* centres, const double* rotations,
                                              const long long* module, const double* points, double* out) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const long long m = module[i];
    trackcore::to_global(centres + 3 * m, rotations + 9 * m, points + 3 * i, out + 3 * i);
}
