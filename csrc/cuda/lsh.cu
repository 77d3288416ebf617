// LSH bucketing: per (table, point) thread, the bucket key of K quantised random projections
// (trackcore/hash_math.hpp). Keys are grouped into buckets by the host glue (a stable sort per table).
#include "trackcore/hash_math.hpp"

// points (N, D); proj (T, K, D); offsets (T, K); width > 0; keys (T, N) uint64.
extern "C" __global__ void tc_lsh_keys(long long n, int dim, int n_tables, int n_proj, const double* points,
                                       const double* proj, const double* offsets, double width,
                                       unsigned long long* keys) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n * n_tables) return;
    const long long t = i / n, j = i % n;
    std::uint64_t key = trackcore::kLshKeySeed;
    for (int k = 0; k < n_proj; ++k) {
        const long long tk = t * n_proj + k;
        key = trackcore::lsh_combine(key, trackcore::lsh_quantise(proj + tk * dim, offsets[tk], width,
                                                                  points + j * dim, dim));
    }
    keys[i] = key;
}
