#pragma once
// A counter-based random stream (splitmix64) so each particle's randomness depends only on
// (seed, particle index, draw number): results do not change with thread count or order.
#include <cmath>
#include <cstdint>

#include "trackcore/hostdevice.hpp"

namespace trackcore {

TC_HD uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

struct Stream {
    uint64_t key;
    uint64_t counter;
    TC_HD Stream(uint64_t seed, uint64_t id) : key(splitmix64(seed ^ splitmix64(id + 0x632BE59BD9B4E019ULL))), counter(0) {}
    // Uniform in (0, 1): 53 random bits, never exactly 0.
    TC_HD double uniform() { return ((splitmix64(key + counter++) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    // Standard normal by Box-Muller (one value per call: simple, reproducible).
    TC_HD double normal() {
        const double u1 = uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

}  // namespace trackcore
