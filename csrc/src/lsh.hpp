#pragma once
// Locality-sensitive hashing k-NN (multi-table quantised random projections, E2LSH) and triplet
// seeding restricted to buckets of space points. The numpy twin is trackcore/reco/hashing_numpy.py;
// both return identical neighbours and seeds in identical order, so every floating-point operation
// below is written in the same order as there (dot products and squared distances summed in index
// order, no FMA, ties broken by index).
#include <cstdint>
#include <vector>

#include "seeding.hpp"

namespace trackcore::lsh {

// The same quantisation and key folding as trackcore/hash_math.hpp (the device twin):
// q = floor((a . x + b) / w), key = splitmix64(key ^ q) from kKeySeed.
constexpr std::uint64_t kKeySeed = 0x243F6A8885A308D3ULL;

std::int64_t quantise(const double* a, double b, double w, const double* x, int dim);
std::uint64_t combine(std::uint64_t key, std::int64_t q);

// Keys (n_tables * n) of n points (n x dim, row-major) under projections (n_tables x n_proj x dim)
// with offsets (n_tables x n_proj) and bucket width w.
std::vector<std::uint64_t> keys(std::int64_t n, int dim, const double* x, int n_tables, int n_proj,
                                const double* proj, const double* offsets, double w);

// For each query point (an index into x), its k nearest points by squared Euclidean distance among
// the points sharing its key in at least one table (the query itself included), nearest first
// (ties by index). Row-major (n_query x k); rows with fewer candidates are padded with -1.
std::vector<std::int64_t> knn(std::int64_t n, int dim, const double* x, std::int64_t n_query,
                              const std::int64_t* query, int n_tables, int n_proj, const double* proj,
                              const double* offsets, double w, int k);

// Triplet seeds found inside each bucket (n_buckets x width member indices into the space points,
// -1 = empty slot; members of a row in ascending order, no repeats). Every bucket is seeded with the
// same parameters p (built for the whole space-point selection); a triplet found in several buckets
// keeps its highest weight. Best weight first, ties by (middle, bottom, top); at most p.max_seeds.
std::vector<seeding::Seed> seed_buckets(std::int64_t n, const double* x, const double* y, const double* z,
                                        const double* r, const double* phi, const std::int64_t* layer,
                                        std::int64_t n_buckets, int width, const std::int64_t* members,
                                        const seeding::Params& p);

}  // namespace trackcore::lsh
