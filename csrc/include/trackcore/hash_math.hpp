#pragma once
// Locality-sensitive hashing by quantised random projections (E2LSH): a point x gets, per table,
// the bucket key H(q_1 .. q_K) with q_k = floor((a_k . x + b_k) / w); nearby points (|dx| << w)
// share a key with high probability. Shared by host and device code; the numpy twin is
// trackcore/backends/cupy_kernels/reference.py (lsh_keys_numpy).
#include <cmath>
#include <cstdint>

#include "trackcore/hostdevice.hpp"
#include "trackcore/rng.hpp"

namespace trackcore {

// Quantised projection of x (dim values) on direction a with offset b and bucket width w. The dot
// product is summed in index order (no pairwise/BLAS reordering) so every backend rounds alike.
TC_HD std::int64_t lsh_quantise(const double* a, double b, double w, const double* x, int dim) {
    double acc = 0.0;
    for (int d = 0; d < dim; ++d) acc = acc + a[d] * x[d];
    const double q = std::floor((acc + b) / w);
    // Clamp to +-2^62 so the conversion is defined for any finite input.
    const double lim = 4611686018427387904.0;
    return static_cast<std::int64_t>(q > lim ? lim : (q < -lim ? -lim : q));
}

// Fold one quantised projection into a running 64-bit key (splitmix64 finaliser as the mixer).
TC_HD std::uint64_t lsh_combine(std::uint64_t key, std::int64_t q) {
    return splitmix64(key ^ static_cast<std::uint64_t>(q));
}

// Seed of every key; nonzero so that an all-zero projection vector still mixes.
constexpr std::uint64_t kLshKeySeed = 0x243F6A8885A308D3ULL;

}  // namespace trackcore
