// Space-point grid in (phi, z) on the GPU: a counting sort into cells (histogram with atomics,
// exclusive scan done by the host glue with cupy.cumsum, atomic scatter), then each cell ordered by
// (r, input index) so the result is deterministic and equals the compiled/numpy `seeding_grid`.
// Loaded by trackcore/backends/cupy_kernels/grid.py; bins from trackcore/seeding_math.hpp.
#include "trackcore/seeding_math.hpp"

using trackcore::seedmath::Params;

extern "C" __global__ void tc_grid_cells(long long n, const double* phi, const double* z, const double* pd,
                                         const long long* pi, long long* cell, unsigned long long* counts) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const Params p = trackcore::seedmath::unpack_params(pd, pi);
    const long long c = static_cast<long long>(trackcore::seedmath::phi_bin(phi[i], p)) * p.n_z +
                        trackcore::seedmath::z_bin(z[i], p);
    cell[i] = c;
    atomicAdd(counts + c, 1ULL);
}

// fill[c] starts at offsets[c]; the slot order inside a cell is arbitrary here, fixed by tc_grid_sort.
extern "C" __global__ void tc_grid_scatter(long long n, const long long* cell, unsigned long long* fill,
                                           long long* order) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const unsigned long long slot = atomicAdd(fill + cell[i], 1ULL);
    order[slot] = i;
}

// One thread per cell: insertion sort by (r, index). Cells hold a handful of points.
extern "C" __global__ void tc_grid_sort(long long n_cells, const long long* offsets, const double* r,
                                        long long* order) {
    const long long c = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (c >= n_cells) return;
    const long long lo = offsets[c], hi = offsets[c + 1];
    for (long long k = lo + 1; k < hi; ++k) {
        const long long v = order[k];
        const double rv = r[v];
        long long j = k - 1;
        while (j >= lo && (r[order[j]] > rv || (r[order[j]] == rv && order[j] > v))) {
            order[j + 1] = order[j];
            --j;
        }
        order[j + 1] = v;
    }
}
