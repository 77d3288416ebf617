// Grid + ACTS-like triplet seeding. Every cut is a pure function of the space points involved (the
// shared host/device functions of trackcore/seeding_math.hpp), and the search windows are proven
// supersets of what the cuts accept, so the result is independent of search order and equals the
// brute-force numpy reference (trackcore/reco/seeding_numpy.py) seed for seed.
// Contraction into FMA would change roundings relative to numpy, so it is off for this file (the
// pragma precedes the includes so that it also covers the inline functions of seeding_math.hpp).
#pragma GCC optimize("fp-contract=off")
#include "seeding.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "parallel.hpp"
#include "trackcore/seeding_math.hpp"

namespace trackcore::seeding {
namespace {

namespace sm = trackcore::seedmath;
using sm::Doublet;

constexpr double kPi = sm::kPi;
constexpr double kInf = std::numeric_limits<double>::infinity();

// A space point as the doublet search reads it (one cache line and a bit).
struct Point {
    double x, y, z, r, phi, inv_r, bend;  // mm, rad, 1/mm; bend = d asin(k r) / d(k r)
    std::int64_t layer, index;            // input layer value and input index
};

// One detector layer as seen in the data: its extent, and which coordinate sorts its points.
struct Layer {
    std::int64_t id;
    double r0, r1, z0, z1;  // mm, extent of its space points
    bool by_z;              // longer in z than in r (a barrel cylinder): sort by z, else by r (a disk)
};

// The search index: points bucketed by (layer, phi bin), each bucket sorted by its layer's key.
// A middle's partners on one layer lie in a narrow key interval (the collision-region cone at
// that layer), so each (layer, phi bin) costs one binary search and a scan of real candidates.
struct Index {
    std::vector<Layer> layers;
    std::vector<std::int64_t> offsets;  // layers * n_phi + 1 bucket starts
    std::vector<double> key;            // z or r of each point, bucket by bucket
    std::vector<Point> pts;
    std::vector<int> layer_of;          // compact layer of each point (position in `layers`)
};

struct Triplet {
    std::int64_t top, layer;
    double curv, impact;
};

bool seed_less(const Seed& a, const Seed& b) {
    return sm::seed_less(a.weight, a.middle, a.bottom, a.top, b.weight, b.middle, b.bottom, b.top);
}

// Sorts seeds by seed_less: an LSD radix sort of the weights (16-bit digits of an order-preserving
// 64-bit key), then seed_less within runs of equal weight. On the 133k seeds of a <mu> = 200 event
// this is ~30M instructions against ~50M for std::sort with the (out-of-line) comparator.
void sort_seeds(std::vector<Seed>& seeds) {
    const std::size_t n = seeds.size();
    if (n < 256 || n > UINT32_MAX) {
        std::sort(seeds.begin(), seeds.end(), seed_less);
        return;
    }
    std::vector<std::pair<std::uint64_t, std::uint32_t>> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double w = seeds[i].weight + 0.0;  // -0.0 -> +0.0: seed_less treats them as equal
        std::uint64_t u;
        std::memcpy(&u, &w, sizeof u);
        u = (u >> 63) ? ~u : (u | (std::uint64_t{1} << 63));  // ascending key <=> ascending weight
        a[i] = {~u, static_cast<std::uint32_t>(i)};            // ascending key <=> descending weight
    }
    std::vector<std::size_t> count(1 << 16);
    for (int shift = 0; shift < 64; shift += 16) {
        std::fill(count.begin(), count.end(), 0);
        for (const auto& e : a) ++count[(e.first >> shift) & 0xFFFF];
        if (count[(a[0].first >> shift) & 0xFFFF] == n) continue;  // one digit value: already in order
        std::size_t sum = 0;
        for (auto& c : count) sum += std::exchange(c, sum);
        for (const auto& e : a) b[count[(e.first >> shift) & 0xFFFF]++] = e;
        a.swap(b);
    }
    std::vector<Seed> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = seeds[a[i].second];
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i + 1;
        while (j < n && a[j].first == a[i].first) ++j;
        if (j - i > 1) std::sort(out.begin() + i, out.begin() + j, seed_less);
        i = j;
    }
    seeds.swap(out);
}

Index build_index(std::int64_t n, const double* x, const double* y, const double* z, const double* r,
                  const double* phi, const std::int64_t* layer, const Params& p) {
    Index ix;
    std::vector<std::int64_t> ids(layer, layer + n);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    const auto n_layers = static_cast<std::int64_t>(ids.size());
    ix.layers.resize(ids.size());
    for (std::size_t l = 0; l < ids.size(); ++l) ix.layers[l] = {ids[l], kInf, -kInf, kInf, -kInf, false};
    std::vector<std::int64_t> bucket(n);
    ix.offsets.assign(n_layers * p.n_phi + 1, 0);
    for (std::int64_t i = 0; i < n; ++i) {
        const auto l = std::lower_bound(ids.begin(), ids.end(), layer[i]) - ids.begin();
        Layer& L = ix.layers[l];
        L.r0 = std::min(L.r0, r[i]), L.r1 = std::max(L.r1, r[i]), L.z0 = std::min(L.z0, z[i]), L.z1 = std::max(L.z1, z[i]);
        bucket[i] = l * p.n_phi + sm::phi_bin(phi[i], p);
        ++ix.offsets[bucket[i] + 1];
    }
    for (Layer& L : ix.layers) L.by_z = L.z1 - L.z0 > L.r1 - L.r0;
    for (std::size_t b = 0; b + 1 < ix.offsets.size(); ++b) ix.offsets[b + 1] += ix.offsets[b];
    std::vector<std::pair<double, std::int64_t>> sorted(n);
    {
        std::vector<std::int64_t> fill(ix.offsets.begin(), ix.offsets.end() - 1);
        for (std::int64_t i = 0; i < n; ++i) {
            const Layer& L = ix.layers[bucket[i] / p.n_phi];
            sorted[fill[bucket[i]]++] = {L.by_z ? z[i] : r[i], i};
        }
    }
    for (std::size_t b = 0; b + 1 < ix.offsets.size(); ++b)
        std::sort(sorted.begin() + ix.offsets[b], sorted.begin() + ix.offsets[b + 1]);
    ix.key.resize(n);
    ix.pts.resize(n);
    ix.layer_of.resize(n);
    for (std::int64_t k = 0; k < n; ++k) {
        const std::int64_t i = sorted[k].second;
        ix.key[k] = sorted[k].first;
        ix.pts[k] = {x[i], y[i], z[i], r[i], phi[i], 1.0 / r[i], sm::bend_of(r[i], p), layer[i], i};
    }
    for (std::int64_t l = 0; l < n_layers; ++l)
        std::fill(ix.layer_of.begin() + ix.offsets[l * p.n_phi], ix.layer_of.begin() + ix.offsets[(l + 1) * p.n_phi],
                  static_cast<int>(l));
    return ix;
}

// std::lower_bound without data-dependent branches (a conditional move per halving): the keys
// searched here are close to random, so the branchy version mispredicts about every other step.
inline const double* branchless_lower_bound(const double* first, const double* last, double v) {
    std::size_t n = static_cast<std::size_t>(last - first);
    if (n == 0) return first;
    while (n > 1) {
        const std::size_t half = n / 2;
        first = first[half - 1] < v ? first + half : first;
        n -= half;
    }
    return first + (*first < v);
}

// The first position in [lo, hi) whose key is >= v (std::lower_bound's answer), searched outwards
// from `hint` (any position in [lo, hi]) in doubling steps and then by bisection. Successive middles
// of one (layer, phi bin) bucket have increasing keys, so their windows in a partner bucket move
// forward a little each time: starting from the previous answer costs a few comparisons instead of
// a full bisection of the bucket.
inline std::int64_t lower_bound_from(const double* key, std::int64_t lo, std::int64_t hi, std::int64_t hint, double v) {
    std::int64_t a, b;  // the answer lies in (a, b]: key[a] < v (or a = lo - 1), key[b] >= v (or b = hi)
    if (hint < hi && key[hint] < v) {
        a = hint;
        std::int64_t step = 1;
        b = a + step;
        while (b < hi && key[b] < v) {
            a = b;
            step *= 2;
            b = a + step;
        }
        b = std::min(b, hi);
    } else {
        b = hint;
        std::int64_t step = 1;
        a = b - step;
        while (a >= lo && key[a] >= v) {
            b = a;
            step *= 2;
            a = b - step;
        }
        a = std::max(a, lo - 1);
    }
    return std::lower_bound(key + a + 1, key + b, v) - key;
}

// Phi bins holding every partner whose phi lies within `reach` (rad) of the middle's phi, within
// the phi_neighbours bins each side of its bin b_mid that the numpy reference searches. Bins are
// floor((phi + pi) / width), clamped, so a point at phi = +pi sits in the last bin although its
// unclamped bin is n_phi (the first bin after wrapping): visit the last bin with the first.
void phi_bins_within(double pm, double reach, int b_mid, const Params& p, std::vector<int>& out) {
    out.clear();
    const int n = p.n_phi, pn = p.phi_neighbours;
    if (2 * pn + 1 >= n) {
        for (int b = 0; b < n; ++b) out.push_back(b);
        return;
    }
    long long lo = b_mid - pn, hi = b_mid + pn;
    const double R = reach * (1.0 + 1e-9) + 1e-9;  // rad; far above the rounding of the bin arithmetic
    if (R * p.inv_phi_bin < pn + 1) {              // false for an infinite or NaN reach
        lo = std::max(lo, static_cast<long long>(std::floor((pm - R + kPi) * p.inv_phi_bin)));
        hi = std::min(hi, static_cast<long long>(std::floor((pm + R + kPi) * p.inv_phi_bin)));
    }
    bool first = false, last = false;
    int w = static_cast<int>(((lo % n) + n) % n);
    for (long long b = lo; b <= hi; ++b, w = w + 1 == n ? 0 : w + 1) {
        first |= w == 0, last |= w == n - 1;
        out.push_back(w);
    }
    if (first && !last && (b_mid - pn <= -1 || b_mid + pn >= n - 1)) out.push_back(n - 1);
}

}  // namespace

int phi_bin(double phi, const Params& p) { return sm::phi_bin(phi, p); }

int z_bin(double z, const Params& p) { return sm::z_bin(z, p); }

Grid build_grid(std::int64_t n, const double* phi, const double* z, const double* r, const Params& p) {
    Grid g;
    g.n_phi = p.n_phi;
    g.n_z = p.n_z;
    const std::int64_t n_cells = static_cast<std::int64_t>(p.n_phi) * p.n_z;
    std::vector<std::int64_t> cell(n);
    g.offsets.assign(n_cells + 1, 0);
    for (std::int64_t i = 0; i < n; ++i) {
        cell[i] = static_cast<std::int64_t>(phi_bin(phi[i], p)) * p.n_z + z_bin(z[i], p);
        ++g.offsets[cell[i] + 1];
    }
    for (std::int64_t c = 0; c < n_cells; ++c) g.offsets[c + 1] += g.offsets[c];
    g.order.resize(n);
    std::vector<std::int64_t> fill(g.offsets.begin(), g.offsets.end() - 1);
    for (std::int64_t i = 0; i < n; ++i) g.order[fill[cell[i]]++] = i;
    for (std::int64_t c = 0; c < n_cells; ++c)
        std::sort(g.order.begin() + g.offsets[c], g.order.begin() + g.offsets[c + 1],
                  [r](std::int64_t a, std::int64_t b) { return r[a] < r[b] || (r[a] == r[b] && a < b); });
    return g;
}

std::vector<Seed> find_seeds(std::int64_t n, const double* x, const double* y, const double* z, const double* r,
                             const double* phi, const std::int64_t* layer, const Params& p,
                             const std::uint8_t* middle) {
    std::vector<Seed> seeds;
    if (n == 0) return seeds;
    const Index ix = build_index(n, x, y, z, r, phi, layer, p);
    const Point* pts = ix.pts.data();
    const double* key = ix.key.data();
    const auto K = static_cast<std::size_t>(p.max_seeds_per_middle);

    // The middles in chunks, handed out in order to the workers; each chunk's seeds are kept apart
    // and joined in chunk order, so the seeds are those of one thread. Each worker has its scratch.
    constexpr std::int64_t kChunk = 256;
    const auto n_chunks = static_cast<std::size_t>((n + kChunk - 1) / kChunk);
    std::vector<std::vector<Seed>> chunk_seeds(n_chunks);
    const int n_workers = worker_count(p.threads, n_chunks);
    struct Scratch {
        std::vector<int> phi_bins;
        std::vector<Doublet> bottoms, tops, tops_raw;
        std::vector<std::pair<double, std::uint32_t>> keys;
        std::vector<double> tcot;  // cot theta of `tops`, in their (ascending) order
        std::vector<Triplet> triplets;
        std::vector<Seed> candidates;
        std::vector<std::int64_t> seen_layers;
        std::vector<std::int64_t> pos;
        std::vector<double> win_lo, win_hi;
        std::vector<std::size_t> win_first;
        std::vector<double> pz0;
        // Per side and bucket: where the last search in that bucket ended (see lower_bound_from).
        std::vector<std::int64_t> hint[2];
        explicit Scratch(const Index& ix)
            : hint{std::vector<std::int64_t>(ix.offsets.begin(), ix.offsets.end() - 1),
                   std::vector<std::int64_t>(ix.offsets.begin(), ix.offsets.end() - 1)} {}
    };
    std::vector<std::unique_ptr<Scratch>> scratch(n_workers);

    parallel_for(n_workers, n_chunks, [&](int w, std::size_t chunk) {
        if (!scratch[w]) scratch[w] = std::make_unique<Scratch>(ix);
        Scratch& sc = *scratch[w];
        auto& phi_bins = sc.phi_bins;
        auto &bottoms = sc.bottoms, &tops = sc.tops, &tops_raw = sc.tops_raw;
        auto& keys = sc.keys;
        auto& tcot = sc.tcot;
        auto& triplets = sc.triplets;
        auto& candidates = sc.candidates;
        auto &seen_layers = sc.seen_layers, &pos = sc.pos;
        auto &win_lo = sc.win_lo, &win_hi = sc.win_hi;
        auto& win_first = sc.win_first;
        auto& pz0 = sc.pz0;
        auto& hint = sc.hint;
        std::vector<Seed>& seeds = chunk_seeds[chunk];
        seeds.reserve(static_cast<std::size_t>(kChunk) * std::min<std::size_t>(K, 3));
        const std::int64_t m_end = std::min<std::int64_t>(n, (static_cast<std::int64_t>(chunk) + 1) * kChunk);
        for (std::int64_t m = static_cast<std::int64_t>(chunk) * kChunk; m < m_end; ++m) {
            const Point& pm_ = pts[m];
            if (middle != nullptr && !middle[pm_.index]) continue;
            const double xm = pm_.x, ym = pm_.y, zm = pm_.z, rm = pm_.r, pm = pm_.phi;
            const double cos_m = xm / rm, sin_m = ym / rm;
            const int lm = ix.layer_of[m], b_mid = sm::phi_bin(pm, p);

            // Doublets on one side (bottom: side -1, top: +1), layer by layer.
            auto collect = [&](int side, std::vector<Doublet>& out) {
                out.clear();
                const double r_lo = side < 0 ? std::max(rm - p.dr_max, 0.0) : rm + p.dr_min;
                const double r_hi = side < 0 ? rm - p.dr_min : rm + p.dr_max;
                const sm::Cone cone{rm, zm, side < 0 ? p.z0_min : p.z0_max, side < 0 ? p.z0_max : p.z0_min};
                for (std::size_t l = 0; l < ix.layers.size(); ++l) {
                    const Layer& L = ix.layers[l];
                    // Partners passing the dr cut have r in [r_lo, r_hi] up to rounding (<< 1e-6 mm).
                    if (static_cast<int>(l) == lm || L.r1 < r_lo - 1e-6 || L.r0 > r_hi + 1e-6) continue;
                    const double ra = std::max(r_lo - 1e-6, L.r0), rb = std::min(r_hi + 1e-6, L.r1);
                    // Key window: the cone of lines from the collision region through the middle, over
                    // this layer's radii (z key) or at this layer's z (r key); 1 mm of slack in z.
                    double klo, khi;
                    if (L.by_z) {
                        klo = kInf, khi = -kInf;
                        for (double z0 : {p.z0_min, p.z0_max})
                            for (double rr : {ra, rb}) {
                                klo = std::min(klo, cone.at(z0, rr));
                                khi = std::max(khi, cone.at(z0, rr));
                            }
                        klo -= 1.0, khi += 1.0;
                    } else {
                        klo = ra, khi = rb;
                        cone.radii(L.z0, L.z1, klo, khi);
                        klo -= 1e-6, khi += 1e-6;
                    }
                    if (!(klo <= khi)) continue;
                    // The phi window shrinks with the partner's radius below the middle and grows with
                    // it above, so its widest value over the layer is at ra (bottoms) or rb (tops).
                    const double reach =
                        side < 0 ? p.phi_scale * (std::max(rm - ra, 0.0) * p.k_bend * pm_.bend + p.d0_max * (1.0 / ra - pm_.inv_r)) +
                                       p.phi_margin
                                 : p.phi_scale * (std::max(rb - rm, 0.0) * p.k_bend * sm::bend_of(rb, p) +
                                                  p.d0_max * (pm_.inv_r - 1.0 / rb)) + p.phi_margin;
                    phi_bins_within(pm, reach, b_mid, p, phi_bins);
                    for (int pb : phi_bins) {
                        const std::int64_t c = static_cast<std::int64_t>(l) * p.n_phi + pb;
                        const std::int64_t last = ix.offsets[c + 1];
                        std::int64_t& h = hint[side > 0][c];
                        std::int64_t o = h = lower_bound_from(key, ix.offsets[c], last, h, klo);
                        std::int64_t end = o;
                        while (end < last && key[end] <= khi) ++end;
                        if (end == o) continue;
                        // Two phases: the cuts without data-dependent branches (a 60 % pass rate
                        // mispredicts often), keeping the passing positions; then the conformal terms.
                        if (pos.size() < static_cast<std::size_t>(end - o)) pos.resize(end - o), pz0.resize(end - o);
                        std::size_t np = 0;
                        for (; o < end; ++o) {
                            const Point& q = pts[o];
                            double z0;
                            const bool ok = sm::doublet_passes(side, rm, zm, pm, pm_.inv_r, pm_.bend, q.r, q.z, q.phi,
                                                               q.inv_r, q.bend, p, z0);
                            pos[np] = o;
                            pz0[np] = z0;
                            np += ok;
                        }
                        for (std::size_t j = 0; j < np; ++j) {
                            const Point& q = pts[pos[j]];
                            Doublet& d = out.emplace_back();
                            d.z0 = pz0[j];
                            d.index = q.index;
                            d.layer = q.layer;
                            sm::conformal(side, xm, ym, zm, cos_m, sin_m, q.x, q.y, q.z, p, d);
                        }
                    }
                }
            };
            // A middle without any layer in its top (or bottom) radius window cannot seed: skip it before
            // scanning its partners (the outermost barrel layer has no tops, the innermost no bottoms).
            auto any_layer = [&](int side) {
                const double r_lo = side < 0 ? std::max(rm - p.dr_max, 0.0) : rm + p.dr_min;
                const double r_hi = side < 0 ? rm - p.dr_min : rm + p.dr_max;
                for (std::size_t l = 0; l < ix.layers.size(); ++l)
                    if (static_cast<int>(l) != lm && ix.layers[l].r1 >= r_lo - 1e-6 && ix.layers[l].r0 <= r_hi + 1e-6) return true;
                return false;
            };
            if (!any_layer(+1) || !any_layer(-1)) continue;
            collect(-1, bottoms);
            if (bottoms.empty()) continue;
            collect(+1, tops_raw);
            if (tops_raw.empty()) continue;
            // Tops by cot theta (order among equal cot is irrelevant: the window is value based);
            // sorting small keys and gathering once is cheaper than sorting the doublets.
            keys.clear();
            for (std::size_t i = 0; i < tops_raw.size(); ++i) keys.emplace_back(tops_raw[i].cot, static_cast<std::uint32_t>(i));
            std::sort(keys.begin(), keys.end());
            tops.clear();
            tcot.clear();
            for (const auto& k : keys) {
                tops.push_back(tops_raw[k.second]);
                tcot.push_back(k.first);
            }
            double max_err_t = 0, max_inv_d_t = 0;
            for (const auto& t : tops) {
                max_err_t = std::max(max_err_t, t.err);
                max_inv_d_t = std::max(max_inv_d_t, t.inv_dist);
            }

            candidates.clear();
            // Only tops within top_cot_tolerance of b.cot can pass the triplet cuts. The windows of all
            // bottoms are found first, in loops without data-dependent branches, so that the square roots
            // and searches of successive bottoms overlap instead of each waiting behind the last one's
            // mispredicted branches. The search runs over the cot values alone (8 bytes per top).
            const std::size_t nb = bottoms.size();
            if (win_lo.size() < nb) win_lo.resize(nb), win_hi.resize(nb), win_first.resize(nb);
            for (std::size_t i = 0; i < nb; ++i) {
                const double tol = sm::top_cot_tolerance(bottoms[i], max_err_t, max_inv_d_t, p);
                win_lo[i] = bottoms[i].cot - tol;
                win_hi[i] = bottoms[i].cot + tol;
            }
            for (std::size_t i = 0; i < nb; ++i)
                win_first[i] = branchless_lower_bound(tcot.data(), tcot.data() + tcot.size(), win_lo[i]) - tcot.data();
            for (std::size_t ib = 0; ib < nb; ++ib) {
                const Doublet& b = bottoms[ib];
                const std::size_t first = win_first[ib];
                const double cot_hi = win_hi[ib];
                triplets.clear();
                for (std::size_t k = first; k < tops.size() && tcot[k] <= cot_hi; ++k) {
                    double curv, impact;
                    if (sm::triplet_passes(b, tops[k], rm, p, curv, impact))
                        triplets.push_back({tops[k].index, tops[k].layer, curv, impact});
                }
                // Seed filter: tops on other layers with a compatible curvature confirm each other.
                for (const auto& ti : triplets) {
                    seen_layers.clear();
                    for (const auto& tj : triplets) {
                        if (static_cast<int>(seen_layers.size()) >= p.compat_limit) break;
                        if (!sm::tops_compatible(ti.layer, ti.curv, tj.layer, tj.curv, p)) continue;
                        if (std::find(seen_layers.begin(), seen_layers.end(), tj.layer) == seen_layers.end())
                            seen_layers.push_back(tj.layer);
                    }
                    const double w = sm::seed_weight(static_cast<int>(seen_layers.size()), ti.impact, b.z0, p);
                    candidates.push_back({w, b.index, pm_.index, ti.top});
                }
            }
            const auto keep = std::min(candidates.size(), K);
            if (keep == candidates.size())
                std::sort(candidates.begin(), candidates.end(), seed_less);
            else
                std::partial_sort(candidates.begin(), candidates.begin() + keep, candidates.end(), seed_less);
            seeds.insert(seeds.end(), candidates.begin(), candidates.begin() + keep);
        }
    });
    std::size_t total = 0;
    for (const auto& c : chunk_seeds) total += c.size();
    seeds.reserve(total);
    for (auto& c : chunk_seeds) {
        seeds.insert(seeds.end(), c.begin(), c.end());
        std::vector<Seed>().swap(c);
    }
    sort_seeds(seeds);
    if (static_cast<long long>(seeds.size()) > p.max_seeds) seeds.resize(static_cast<std::size_t>(p.max_seeds));
    return seeds;
}

}  // namespace trackcore::seeding
