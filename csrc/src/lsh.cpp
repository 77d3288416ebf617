// LSH k-NN and bucket-restricted triplet seeding (see lsh.hpp).
#include "lsh.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace trackcore::lsh {

std::int64_t quantise(const double* a, double b, double w, const double* x, int dim) {
    double acc = 0.0;
    for (int d = 0; d < dim; ++d) acc = acc + a[d] * x[d];
    const double q = std::floor((acc + b) / w);
    // Clamp to +-2^62 so the conversion is defined for any finite input.
    const double lim = 4611686018427387904.0;
    return static_cast<std::int64_t>(q > lim ? lim : (q < -lim ? -lim : q));
}

std::uint64_t combine(std::uint64_t key, std::int64_t q) {
    std::uint64_t z = key ^ static_cast<std::uint64_t>(q);
    z += 0x9E3779B97F4A7C15ULL;  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

std::vector<std::uint64_t> keys(std::int64_t n, int dim, const double* x, int n_tables, int n_proj,
                                const double* proj, const double* offsets, double w) {
    std::vector<std::uint64_t> out(static_cast<std::size_t>(n_tables) * n);
    for (int t = 0; t < n_tables; ++t)
        for (std::int64_t i = 0; i < n; ++i) {
            std::uint64_t key = kKeySeed;
            for (int k = 0; k < n_proj; ++k) {
                const std::size_t pk = static_cast<std::size_t>(t) * n_proj + k;
                key = combine(key, quantise(proj + pk * dim, offsets[pk], w, x + i * dim, dim));
            }
            out[static_cast<std::size_t>(t) * n + i] = key;
        }
    return out;
}

std::vector<std::int64_t> knn(std::int64_t n, int dim, const double* x, std::int64_t n_query,
                              const std::int64_t* query, int n_tables, int n_proj, const double* proj,
                              const double* offsets, double w, int k) {
    const std::vector<std::uint64_t> key = keys(n, dim, x, n_tables, n_proj, proj, offsets, w);
    // Per table: points sorted by (key, index), and each point's run [begin, end) of equal keys.
    std::vector<std::int64_t> order(static_cast<std::size_t>(n_tables) * n), begin(order.size()), end(order.size());
    for (int t = 0; t < n_tables; ++t) {
        const std::uint64_t* kt = key.data() + static_cast<std::size_t>(t) * n;
        std::int64_t* ot = order.data() + static_cast<std::size_t>(t) * n;
        std::iota(ot, ot + n, std::int64_t{0});
        std::sort(ot, ot + n, [kt](std::int64_t a, std::int64_t b) { return kt[a] != kt[b] ? kt[a] < kt[b] : a < b; });
        std::int64_t s = 0;
        while (s < n) {
            std::int64_t e = s + 1;
            while (e < n && kt[ot[e]] == kt[ot[s]]) ++e;
            for (std::int64_t j = s; j < e; ++j) {
                begin[static_cast<std::size_t>(t) * n + ot[j]] = s;
                end[static_cast<std::size_t>(t) * n + ot[j]] = e;
            }
            s = e;
        }
    }
    std::vector<std::int64_t> out(static_cast<std::size_t>(n_query) * k, -1);
    std::vector<std::int64_t> stamp(n, -1);
    std::vector<std::pair<double, std::int64_t>> cand;
    for (std::int64_t qi = 0; qi < n_query; ++qi) {
        const std::int64_t q = query[qi];
        cand.clear();
        for (int t = 0; t < n_tables; ++t) {
            const std::size_t base = static_cast<std::size_t>(t) * n;
            for (std::int64_t j = begin[base + q]; j < end[base + q]; ++j) {
                const std::int64_t p = order[base + j];
                if (stamp[p] == qi) continue;
                stamp[p] = qi;
                double d2 = 0.0;
                for (int d = 0; d < dim; ++d) {
                    const double diff = x[p * dim + d] - x[q * dim + d];
                    d2 = d2 + diff * diff;
                }
                cand.emplace_back(d2, p);
            }
        }
        const std::size_t keep = std::min<std::size_t>(cand.size(), static_cast<std::size_t>(k));
        std::partial_sort(cand.begin(), cand.begin() + keep, cand.end());
        for (std::size_t j = 0; j < keep; ++j) out[static_cast<std::size_t>(qi) * k + j] = cand[j].second;
    }
    return out;
}

std::vector<seeding::Seed> seed_buckets(std::int64_t n, const double* x, const double* y, const double* z,
                                        const double* r, const double* phi, const std::int64_t* layer,
                                        std::int64_t n_buckets, int width, const std::int64_t* members,
                                        const seeding::Params& p) {
    (void)n;
    std::vector<seeding::Seed> all;
    std::vector<double> bx, by, bz, br, bphi;
    std::vector<std::int64_t> blayer, idx;
    for (std::int64_t b = 0; b < n_buckets; ++b) {
        idx.clear();
        for (int j = 0; j < width; ++j) {
            const std::int64_t m = members[b * width + j];
            if (m >= 0) idx.push_back(m);
        }
        if (idx.size() < 3) continue;
        bx.resize(idx.size()); by.resize(idx.size()); bz.resize(idx.size());
        br.resize(idx.size()); bphi.resize(idx.size()); blayer.resize(idx.size());
        for (std::size_t j = 0; j < idx.size(); ++j) {
            const std::int64_t m = idx[j];
            bx[j] = x[m]; by[j] = y[m]; bz[j] = z[m]; br[j] = r[m]; bphi[j] = phi[m]; blayer[j] = layer[m];
        }
        for (const seeding::Seed& s : seeding::find_seeds(static_cast<std::int64_t>(idx.size()), bx.data(), by.data(),
                                                          bz.data(), br.data(), bphi.data(), blayer.data(), p))
            all.push_back({s.weight, idx[s.bottom], idx[s.middle], idx[s.top]});
    }
    // Duplicates: one triplet per (bottom, middle, top), the highest weight.
    std::sort(all.begin(), all.end(), [](const seeding::Seed& a, const seeding::Seed& b) {
        if (a.bottom != b.bottom) return a.bottom < b.bottom;
        if (a.middle != b.middle) return a.middle < b.middle;
        if (a.top != b.top) return a.top < b.top;
        return a.weight > b.weight;
    });
    std::vector<seeding::Seed> unique;
    for (const seeding::Seed& s : all)
        if (unique.empty() || unique.back().bottom != s.bottom || unique.back().middle != s.middle ||
            unique.back().top != s.top)
            unique.push_back(s);
    std::sort(unique.begin(), unique.end(), [](const seeding::Seed& a, const seeding::Seed& b) {
        if (a.weight != b.weight) return a.weight > b.weight;
        if (a.middle != b.middle) return a.middle < b.middle;
        if (a.bottom != b.bottom) return a.bottom < b.bottom;
        return a.top < b.top;
    });
    if (static_cast<long long>(unique.size()) > p.max_seeds) unique.resize(static_cast<std::size_t>(p.max_seeds));
    return unique;
}

}  // namespace trackcore::lsh
