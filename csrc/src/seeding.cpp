// Grid + ACTS-like triplet seeding. Every cut is a pure function of the space points involved, and
// the search windows (grid cells, r ranges, the cot-theta window over sorted tops) are proven
// supersets of what the cuts accept, so the result is independent of search order and equals the
// brute-force numpy reference (trackcore/reco/seeding_numpy.py) seed for seed.
// Contraction into FMA would change roundings relative to numpy, so it is off for this file.
#pragma GCC optimize("fp-contract=off")
#include "seeding.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace trackcore::seeding {
namespace {

constexpr double kPi = 3.14159265358979323846;  // the same double as numpy.pi
constexpr double kInf = std::numeric_limits<double>::infinity();

// Space points copied into grid order, plus per-point terms of the phi window.
struct Sorted {
    std::vector<double> x, y, z, r, phi, inv_r, bend;
    std::vector<std::int64_t> layer, index;
};

struct Doublet {
    std::int64_t index, layer;
    double cot;           // dz / xy-distance (outwards positive)
    double err, u, v;     // cot-theta variance term, conformal coordinates about the middle
    double inv_dist;      // 1 / xy-distance to the middle
    double z0;            // the doublet line at r = 0 (radial cot theta)
};

struct Triplet {
    std::int64_t top, layer;
    double curv, impact;
};

bool seed_less(const Seed& a, const Seed& b) {
    if (a.weight != b.weight) return a.weight > b.weight;
    if (a.middle != b.middle) return a.middle < b.middle;
    if (a.bottom != b.bottom) return a.bottom < b.bottom;
    return a.top < b.top;
}

double wrap(double d) {
    if (d > kPi) return d - 2 * kPi;
    if (d < -kPi) return d + 2 * kPi;
    return d;
}

// A partner at radius r on a line from (0, z0) through the middle (rm, zm) sits at
// z = z0 + r (zm - z0) / rm. Over z0 in [z0_min, z0_max] that is a cone in (r, z); below rm its
// lower edge comes from z0_min, above rm from z0_max. These bound the z bins to visit, and within a
// z bin [c0, c1] the radii that can reach it. 1 mm of slack absorbs rounding: the exact cuts decide.
struct Cone {
    double rm, zm, z0_low, z0_high;  // z0 giving the lower / upper edge on this side
    double at(double z0, double r) const { return z0 + r * (zm - z0) / rm; }
    // Narrow [lo, hi] to radii where z0 + r s <= c (le) or >= c (!le).
    static void clip(double z0, double s, double c, bool le, double& lo, double& hi) {
        if (std::isinf(c)) return;
        if (s == 0.0) {
            if (le ? z0 > c : z0 < c) hi = -kInf;
            return;
        }
        const double r = (c - z0) / s;
        if ((s > 0) == le)
            hi = std::min(hi, r);
        else
            lo = std::max(lo, r);
    }
    void radii(double c0, double c1, double& lo, double& hi) const {
        clip(z0_low, (zm - z0_low) / rm, c1 + 1.0, true, lo, hi);
        clip(z0_high, (zm - z0_high) / rm, c0 - 1.0, false, lo, hi);
    }
};

double bend_of(double r, const Params& p) {
    const double kr = p.k_bend * r;
    return kr < 1.0 ? 1.0 / std::sqrt(1.0 - kr * kr) : kInf;
}

}  // namespace

int phi_bin(double phi, const Params& p) {
    const double b = std::floor((phi + kPi) * p.inv_phi_bin);
    if (!(b >= 0)) return 0;
    if (b >= p.n_phi - 1) return p.n_phi - 1;
    return static_cast<int>(b);
}

int z_bin(double z, const Params& p) {
    const double b = std::floor((z - p.z_lo) * p.inv_z_bin);
    if (!(b >= 0)) return 0;
    if (b >= p.n_z - 1) return p.n_z - 1;
    return static_cast<int>(b);
}

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
    // Cells hold a handful of points; sorting each by r lets the doublet search bisect in r.
    for (std::int64_t c = 0; c < n_cells; ++c)
        std::sort(g.order.begin() + g.offsets[c], g.order.begin() + g.offsets[c + 1],
                  [r](std::int64_t a, std::int64_t b) { return r[a] < r[b] || (r[a] == r[b] && a < b); });
    return g;
}

std::vector<Seed> find_seeds(std::int64_t n, const double* x, const double* y, const double* z, const double* r,
                             const double* phi, const std::int64_t* layer, const Params& p) {
    std::vector<Seed> seeds;
    if (n == 0) return seeds;
    const Grid g = build_grid(n, phi, z, r, p);
    Sorted s;
    for (auto* v : {&s.x, &s.y, &s.z, &s.r, &s.phi, &s.inv_r, &s.bend}) v->resize(n);
    s.layer.resize(n);
    s.index = g.order;
    for (std::int64_t k = 0; k < n; ++k) {
        const std::int64_t i = g.order[k];
        s.x[k] = x[i], s.y[k] = y[i], s.z[k] = z[i], s.r[k] = r[i], s.phi[k] = phi[i], s.layer[k] = layer[i];
        s.inv_r[k] = 1.0 / r[i];
        // Slope of asin(k r) bounds the min-pT bending between two radii (asin is convex).
        s.bend[k] = bend_of(r[i], p);
    }
    const double r_min_all = *std::min_element(r, r + n), r_max_all = *std::max_element(r, r + n);
    const double z_step = 1.0 / p.inv_z_bin;

    std::vector<int> phi_bins;
    std::vector<Doublet> bottoms, tops, tops_raw;
    std::vector<std::pair<double, std::uint32_t>> keys;
    std::vector<Triplet> triplets;
    std::vector<Seed> candidates;
    std::vector<std::int64_t> seen_layers;
    const double cross_var = 2.0 * (p.cot_max * p.cot_max * p.var_r + p.var_z);

    for (std::int64_t m = 0; m < n; ++m) {
        const double xm = s.x[m], ym = s.y[m], zm = s.z[m], rm = s.r[m], pm = s.phi[m];
        const double cos_m = xm / rm, sin_m = ym / rm;

        // Collect the doublets on one side (bottom: side -1, top: +1).
        auto collect = [&](int side, std::vector<Doublet>& out) {
            out.clear();
            const double r_lo = side < 0 ? std::max(rm - p.dr_max, 0.0) : rm + p.dr_min;
            const double r_hi = side < 0 ? rm - p.dr_min : rm + p.dr_max;
            if (r_hi < r_min_all - 1e-6 || r_lo > r_max_all + 1e-6) return;
            // Widest phi window any partner on this side can have (bounds of the exact window below).
            double reach;
            if (side < 0) {
                const double r_in = std::max(r_min_all, r_lo);
                reach = p.phi_scale * (std::max(rm - r_in, 0.0) * p.k_bend * s.bend[m] +
                                       p.d0_max * (1.0 / r_in - s.inv_r[m])) + p.phi_margin;
            } else {
                const double r_out = std::min(r_max_all, r_hi);
                reach = p.phi_scale * (std::max(r_out - rm, 0.0) * p.k_bend * bend_of(r_out, p) +
                                       p.d0_max * (s.inv_r[m] - 1.0 / r_out)) + p.phi_margin;
            }
            const double reach_bins = reach * (1.0 + 1e-9) * p.inv_phi_bin;
            const int nb = reach_bins < p.phi_neighbours ? static_cast<int>(reach_bins) + 1 : p.phi_neighbours;
            phi_bins.clear();
            if (2 * nb + 1 >= p.n_phi) {
                for (int b = 0; b < p.n_phi; ++b) phi_bins.push_back(b);
            } else {
                const int b = phi_bin(pm, p);
                for (int d = -nb; d <= nb; ++d) phi_bins.push_back((b + d + p.n_phi) % p.n_phi);
            }
            const Cone cone{rm, zm, side < 0 ? p.z0_min : p.z0_max, side < 0 ? p.z0_max : p.z0_min};
            double zlo = kInf, zhi = -kInf;
            for (double z0 : {p.z0_min, p.z0_max})
                for (double rr : {r_lo, r_hi}) {
                    zlo = std::min(zlo, cone.at(z0, rr));
                    zhi = std::max(zhi, cone.at(z0, rr));
                }
            const int zb0 = z_bin(zlo - 1.0, p), zb1 = z_bin(zhi + 1.0, p);
            for (int zb = zb0; zb <= zb1; ++zb) {
                double rlo = r_lo, rhi = r_hi;
                cone.radii(zb == 0 ? -kInf : p.z_lo + zb * z_step, zb == p.n_z - 1 ? kInf : p.z_lo + (zb + 1) * z_step,
                           rlo, rhi);
                if (rlo > rhi) continue;
                for (int pb : phi_bins) {
                    const std::int64_t c = static_cast<std::int64_t>(pb) * p.n_z + zb;
                    const auto first = s.r.begin() + g.offsets[c], last = s.r.begin() + g.offsets[c + 1];
                    for (auto it = std::lower_bound(first, last, rlo - 1e-6); it != last && *it <= rhi + 1e-6;
                         ++it) {
                        const std::int64_t o = it - s.r.begin();
                        if (s.layer[o] == s.layer[m]) continue;
                        const double dr = side < 0 ? rm - s.r[o] : s.r[o] - rm;
                        if (!(dr >= p.dr_min && dr <= p.dr_max)) continue;
                        // Cheapest rejections first (all cuts are ANDed, so the order changes nothing).
                        const double window =
                            side < 0 ? p.phi_scale * (dr * p.k_bend * s.bend[m] + p.d0_max * (s.inv_r[o] - s.inv_r[m])) +
                                           p.phi_margin
                                     : p.phi_scale * (dr * p.k_bend * s.bend[o] + p.d0_max * (s.inv_r[m] - s.inv_r[o])) +
                                           p.phi_margin;
                        if (std::abs(wrap(s.phi[o] - pm)) > window) continue;
                        const double cot = side < 0 ? (zm - s.z[o]) / dr : (s.z[o] - zm) / dr;
                        if (std::abs(cot) > p.cot_max) continue;
                        const double z0 = zm - rm * cot;
                        if (z0 < p.z0_min || z0 > p.z0_max) continue;
                        // Conformal transform about the middle, in its radial frame (as ACTS).
                        const double dx = s.x[o] - xm, dy = s.y[o] - ym, dz = s.z[o] - zm;
                        const double xn = dx * cos_m + dy * sin_m;
                        const double yn = dy * cos_m - dx * sin_m;
                        const double inv_d2 = 1.0 / (xn * xn + yn * yn);
                        const double inv_d = std::sqrt(inv_d2);
                        const double cotc = side < 0 ? -(dz * inv_d) : dz * inv_d;
                        const double err = ((p.var_z + p.var_z) + cotc * cotc * (p.var_r + p.var_r)) * inv_d2;
                        out.push_back({s.index[o], s.layer[o], cotc, err, xn * inv_d2, yn * inv_d2, inv_d, z0});
                    }
                }
            }
        };
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
        for (const auto& k : keys) tops.push_back(tops_raw[k.second]);
        double max_err_t = 0, max_inv_d_t = 0;
        for (const auto& t : tops) {
            max_err_t = std::max(max_err_t, t.err);
            max_inv_d_t = std::max(max_inv_d_t, t.inv_dist);
        }

        candidates.clear();
        const std::int64_t m_index = s.index[m];
        for (const auto& b : bottoms) {
            // Only tops with |cot_b - cot_t| <= tol can pass the first cut below. With E >= error2
            // (cot_b cot_t <= cot_max^2, the per-middle maxima of the top terms) and S = scatter_min2,
            // a top at d = |cot_b - cot_t| has 1 + cot_b cot_t <= 1 + |cot_b| (|cot_b| + d), so it fails
            // once d^2 - S |cot_b| d - (E + S (1 + cot_b^2)) > 0, i.e. for every d beyond the root tol.
            const double e_max = b.err + max_err_t + cross_var * b.inv_dist * max_inv_d_t;
            const double sc = p.scatter_min2, acb = std::abs(b.cot);
            double tol = 0.5 * (sc * acb + std::sqrt(sc * sc * acb * acb + 4.0 * (e_max + sc * (1.0 + acb * acb))));
            tol = tol * (1.0 + 1e-9) + 1e-12;
            auto it = std::lower_bound(tops.begin(), tops.end(), b.cot - tol,
                                       [](const Doublet& d, double v) { return d.cot < v; });
            triplets.clear();
            for (; it != tops.end() && it->cot <= b.cot + tol; ++it) {
                const Doublet& t = *it;
                const double dcot = b.cot - t.cot;
                const double dcot2 = dcot * dcot;
                const double error2 = t.err + b.err + 2.0 * (b.cot * t.cot * p.var_r + p.var_z) * b.inv_dist * t.inv_dist;
                const double isin2 = 1.0 + b.cot * t.cot;
                if (dcot2 > error2 + p.scatter_min2 * isin2) continue;
                const double du = t.u - b.u;
                if (du == 0.0) continue;
                const double a = (t.v - b.v) / du;
                const double s2 = 1.0 + a * a;
                const double bb = b.v - a * b.u;
                const double b2 = bb * bb;
                if (s2 < b2 * p.min_helix_diameter2) continue;  // below min pT
                const double ihd2 = b2 / s2;
                if (dcot2 > error2 + ihd2 * p.scatter_per_curv2 * isin2) continue;
                const double impact = std::abs((a - bb * rm) * rm);
                if (impact > p.d0_max) continue;
                triplets.push_back({t.index, t.layer, bb / std::sqrt(s2), impact});
            }
            // Seed filter: tops on other layers with a compatible curvature confirm each other.
            for (const auto& ti : triplets) {
                seen_layers.clear();
                for (const auto& tj : triplets) {
                    if (static_cast<int>(seen_layers.size()) >= p.compat_limit) break;
                    if (tj.layer == ti.layer || !(std::abs(ti.curv - tj.curv) < p.delta_inv_helix_diameter)) continue;
                    if (std::find(seen_layers.begin(), seen_layers.end(), tj.layer) == seen_layers.end())
                        seen_layers.push_back(tj.layer);
                }
                const double nc = static_cast<double>(seen_layers.size());
                const double w = p.compat_weight * nc - p.impact_weight * ti.impact - p.z0_weight * std::abs(b.z0);
                candidates.push_back({w, b.index, m_index, ti.top});
            }
        }
        const auto keep = std::min<std::size_t>(candidates.size(), static_cast<std::size_t>(p.max_seeds_per_middle));
        std::partial_sort(candidates.begin(), candidates.begin() + keep, candidates.end(), seed_less);
        seeds.insert(seeds.end(), candidates.begin(), candidates.begin() + keep);
    }
    std::sort(seeds.begin(), seeds.end(), seed_less);
    if (static_cast<long long>(seeds.size()) > p.max_seeds) seeds.resize(static_cast<std::size_t>(p.max_seeds));
    return seeds;
}

}  // namespace trackcore::seeding
