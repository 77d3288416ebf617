// Fast-simulation kernels; see fastsim_render.hpp. Every expression keeps the numpy twin's order of
// operations (plugins/fastsim_gan/clusters.py) so that cells come out bit-identical.
#include "fastsim_render.hpp"

#include <algorithm>
#include <cmath>
#include <string>

// A fused multiply-add rounds once where numpy rounds twice; keep them apart.
#pragma GCC optimize("fp-contract=off")
#ifdef __clang__
#pragma clang fp contract(off)
#endif

namespace trackcore::fastsim {
namespace {

enum Col { kMaxHu = 0, kHv, kPitchU, kPitchV, kNu, kNv, kBinary, kClass, kThreshold };

// Without SSE4.1 (the default x86-64 target) std::floor and std::nearbyint are library calls, which
// dominated this kernel; these give the same results for the magnitudes that occur (< 2^52) and
// fall back to the library beyond. Both assume the default rounding mode, as numpy does.
constexpr double kTwo52 = 4503599627370496.0;

inline double fast_floor(double x) {
    if (!(std::abs(x) < kTwo52)) return std::floor(x);
    const double t = static_cast<double>(static_cast<std::int64_t>(x));
    return t > x ? t - 1.0 : t;
}

// Round half to even (np.rint).
inline double fast_rint(double x) {
    if (!(std::abs(x) < kTwo52)) return fast_rint(x);
    return std::copysign((std::abs(x) + kTwo52) - kTwo52, x);
}

double frac(double c) { return c - fast_floor(c); }

// Everything about one crossing's cluster that does not depend on the cell.
struct Plan {
    std::int64_t wu, wv, full, base_u, base_v, su, sv, drop, n_u, n_v;
    double slope, phase, tu, tv, electrons;
    bool special;  // corners to drop or cells off the module: cells are masked
};

// Renderer constants of render_numpy (kernels.py): staircase phase gain and bound, smallest cell weight.
constexpr double kPhaseGain = 1.0, kMaxPhase = 0.99, kMinWeight = 0.1;

template <class T>
Plan plan(const double* seg, double electrons, const T* o, const double* mod) {
    const double pu = mod[kPitchU], pv = mod[kPitchV];
    const double cu0 = (seg[0] + mod[kMaxHu]) / pu, cu1 = (seg[2] + mod[kMaxHu]) / pu;
    const double cv0 = (seg[1] + mod[kHv]) / pv, cv1 = (seg[3] + mod[kHv]) / pv;
    const auto width_u = static_cast<std::int64_t>(std::abs(fast_floor(cu1) - fast_floor(cu0))) + 1;
    const auto width_v = static_cast<std::int64_t>(std::abs(fast_floor(cv1) - fast_floor(cv0))) + 1;
    const double mid_u = 0.5 * (cu0 + cu1), mid_v = 0.5 * (cv0 + cv1);
    Plan p{};
    p.su = cu1 >= cu0 ? 1 : -1;
    p.sv = cv1 >= cv0 ? 1 : -1;
    // Integer observables are rounded (ties to even, as np.rint), then clamped.
    p.wu = std::max<std::int64_t>(width_u + static_cast<std::int64_t>(fast_rint(double(o[0]))), 1);
    p.wv = std::max<std::int64_t>(width_v + static_cast<std::int64_t>(fast_rint(double(o[1]))), 1);
    p.full = p.wu + p.wv - 1;
    p.slope = double(p.wu - 1) / double(std::max<std::int64_t>(p.full - 1, 1));
    const double target_u = mid_u + double(o[4]), target_v = mid_v + double(o[5]);
    const auto lo_u = static_cast<std::int64_t>(fast_rint(target_u - 0.5 - 0.5 * double(p.wu - 1)));
    const auto lo_v = static_cast<std::int64_t>(fast_rint(target_v - 0.5 - 0.5 * double(p.wv - 1)));
    p.base_u = lo_u + (p.su > 0 ? 0 : p.wu - 1);
    p.base_v = lo_v + (p.sv > 0 ? 0 : p.wv - 1);
    // Target centroid in cell offsets from the base, and where the staircase turns (see render_numpy).
    p.tu = target_u - 0.5 - double(p.base_u);
    p.tv = target_v - 0.5 - double(p.base_v);
    const double fu = double(p.su) * p.tu / double(std::max<std::int64_t>(p.wu - 1, 1));
    const double fv = double(p.sv) * p.tv / double(std::max<std::int64_t>(p.wv - 1, 1));
    p.phase = std::min(std::max(0.5 + kPhaseGain * (fu - fv), 0.0), kMaxPhase);
    p.electrons = electrons;
    p.drop = std::clamp<std::int64_t>(static_cast<std::int64_t>(fast_rint(double(o[2]))), 0,
                                      std::min(p.wu, p.wv) / 2);
    p.n_u = static_cast<std::int64_t>(mod[kNu]);
    p.n_v = static_cast<std::int64_t>(mod[kNv]);
    p.special = p.drop > 0 || lo_u < 0 || lo_u + p.wu > p.n_u || lo_v < 0 || lo_v + p.wv > p.n_v;
    return p;
}

// The cell count of a cluster without masked cells (same formulae as plan, without its
// divisions: they dominate the counting pass), or -1 if its cells are masked.
template <class T>
std::int64_t full_if_plain(const double* seg, const T* o, const double* mod) {
    const double pu = mod[kPitchU], pv = mod[kPitchV];
    const double cu0 = (seg[0] + mod[kMaxHu]) / pu, cu1 = (seg[2] + mod[kMaxHu]) / pu;
    const double cv0 = (seg[1] + mod[kHv]) / pv, cv1 = (seg[3] + mod[kHv]) / pv;
    const auto width_u = static_cast<std::int64_t>(std::abs(fast_floor(cu1) - fast_floor(cu0))) + 1;
    const auto width_v = static_cast<std::int64_t>(std::abs(fast_floor(cv1) - fast_floor(cv0))) + 1;
    const auto wu = std::max<std::int64_t>(width_u + static_cast<std::int64_t>(fast_rint(double(o[0]))), 1);
    const auto wv = std::max<std::int64_t>(width_v + static_cast<std::int64_t>(fast_rint(double(o[1]))), 1);
    const auto drop = static_cast<std::int64_t>(fast_rint(double(o[2])));
    const auto lo_u = static_cast<std::int64_t>(fast_rint(0.5 * (cu0 + cu1) + double(o[4]) - 0.5 - 0.5 * double(wu - 1)));
    const auto lo_v = static_cast<std::int64_t>(fast_rint(0.5 * (cv0 + cv1) + double(o[5]) - 0.5 - 0.5 * double(wv - 1)));
    const bool special = (drop > 0 && std::min(wu, wv) / 2 > 0) || lo_u < 0 || lo_u + wu > std::int64_t(mod[kNu]) ||
                         lo_v < 0 || lo_v + wv > std::int64_t(mod[kNv]);
    return special ? -1 : wu + wv - 1;
}

std::int64_t step_u(const Plan& p, std::int64_t j) {
    return static_cast<std::int64_t>(double(j) * p.slope + p.phase);  // >= 0: truncation is floor
}

// Calls f(ch0, ch1) for each kept cell of the staircase, in path order.
template <class F>
void cells(const Plan& p, F&& f) {
    if (!p.special) {
        for (std::int64_t j = 0; j < p.full; ++j) {
            const std::int64_t ju = step_u(p, j);
            f(p.base_u + p.su * ju, p.base_v + p.sv * (j - ju));
        }
        return;
    }
    // A corner: the steps into and out of the cell go along different axes; every other corner
    // (ranks 0, 2, ...) is dropped, up to `drop` of them, which keeps the cluster 8-connected.
    std::int64_t rank = -1, prev = step_u(p, 0), ju = prev;
    for (std::int64_t j = 0; j < p.full; ++j) {
        const std::int64_t next = step_u(p, j + 1);
        bool dropped = false;
        if (j > 0 && j < p.full - 1 && (ju - prev) != (next - ju)) {
            ++rank;
            dropped = rank % 2 == 0 && rank / 2 < p.drop;
        }
        const std::int64_t c0 = p.base_u + p.su * ju, c1 = p.base_v + p.sv * (j - ju);
        if (!dropped && c0 >= 0 && c0 < p.n_u && c1 >= 0 && c1 < p.n_v) f(c0, c1);
        prev = ju;
        ju = next;
    }
}

// Cell values w = scale + ku X + kv Y, X = s x - Sx, Y = s y - Sy over the s kept cells at offsets
// (x, y) from the base: the charge plane of render_numpy's _plane_values, same operations in the same
// order (its sums are of small integers, exact in any order).
struct Weights {
    double s, sx, sy, scale, ku, kv;
    bool binary;
    double value(std::int64_t x, std::int64_t y) const {
        if (binary) return 1.0;
        const double xx = s * double(x) - sx, yy = s * double(y) - sy;
        return (scale + ku * xx) + kv * yy;
    }
};

Weights plane(const Plan& p, bool binary, double charge_value) {
    Weights w{};
    w.binary = binary;
    if (binary) return w;
    double sxx = 0, sxy = 0, syy = 0;
    cells(p, [&](std::int64_t c0, std::int64_t c1) {
        const double x = double(c0 - p.base_u), y = double(c1 - p.base_v);
        w.s += 1.0, w.sx += x, w.sy += y, sxx += x * x, sxy += x * y, syy += y * y;
    });
    const double s = w.s, sx = w.sx, sy = w.sy;
    const double kxx = s * sxx - sx * sx, kxy = s * sxy - sx * sy, kyy = s * syy - sy * sy;
    const double ru = s * p.tu - sx, rv = s * p.tv - sy;
    const double det = kxx * kyy - kxy * kxy;
    double a = 0, b = 0;
    if (det > 0) {
        a = (ru * kyy - rv * kxy) / det;
        b = (rv * kxx - ru * kxy) / det;
    } else if (kxx >= kyy && kxx > 0) {
        a = ru / kxx;
    } else if (kyy > 0) {
        b = rv / kyy;
    }
    double t = INFINITY;
    cells(p, [&](std::int64_t c0, std::int64_t c1) {
        const double xx = s * double(c0 - p.base_u) - sx, yy = s * double(c1 - p.base_v) - sy;
        t = std::min(t, a * xx + b * yy);
    });
    if (t < kMinWeight - 1.0) {
        const double f = (1.0 - kMinWeight) / -t;
        a = a * f, b = b * f;
    }
    w.scale = charge_value / std::max(s, 1.0);
    w.ku = w.scale * a, w.kv = w.scale * b;
    return w;
}

// Crossings come in particle order, so their module rows are scattered over a table larger than L2:
// fetch a few crossings ahead (the loops are otherwise bound by these misses).
constexpr std::int64_t kPrefetch = 16;

inline void prefetch_module(const std::int64_t* module_index, std::int64_t i, std::int64_t n, const double* modules) {
#if defined(__GNUC__)
    if (i + kPrefetch < n) __builtin_prefetch(modules + kModuleCols * module_index[i + kPrefetch]);
#endif
}

}  // namespace

void prefetch_rows(const std::int64_t* module_index, std::int64_t i, std::int64_t n, const double* modules) {
    prefetch_module(module_index, i, n, modules);
}

void conditions_row(const double* seg, double edep, const double* p, const double* mod, double electrons_per_gev,
                    float* row) {
    const double pu = mod[kPitchU], pv = mod[kPitchV];
    const double cu0 = (seg[0] + mod[kMaxHu]) / pu, cu1 = (seg[2] + mod[kMaxHu]) / pu;
    const double cv0 = (seg[1] + mod[kHv]) / pv, cv1 = (seg[3] + mod[kHv]) / pv;
    const auto cls = static_cast<int>(mod[kClass]);
    for (int k = 0; k < 4; ++k) row[k] = cls == k ? 1.0f : 0.0f;
    row[4] = static_cast<float>(std::log1p(std::abs(cu1 - cu0)));
    row[5] = static_cast<float>(std::log1p(std::abs(cv1 - cv0)));
    row[6] = static_cast<float>(frac(cu0));
    row[7] = static_cast<float>(frac(cv0));
    row[8] = static_cast<float>(frac(cu1));
    row[9] = static_cast<float>(frac(cv1));
    row[10] = static_cast<float>(frac(0.5 * (cu0 + cu1)));
    row[11] = static_cast<float>(frac(0.5 * (cv0 + cv1)));
    const double charge = edep * electrons_per_gev;
    row[12] = static_cast<float>(std::log(std::max(charge, 1.0) / mod[kThreshold]));
    const double pabs = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
    row[13] = static_cast<float>(std::log(std::max(pabs, 1e-3)));
}

template <class T>
void render_count(const std::int64_t* module_index, const double* segments, const double* electrons, const T* obs,
                  std::int64_t n, const double* modules, std::int64_t& n_clusters, std::int64_t& n_cells) {
    n_clusters = n_cells = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        prefetch_module(module_index, i, n, modules);
        const double* mod = modules + kModuleCols * module_index[i];
        std::int64_t k = full_if_plain(segments + 4 * i, obs + kObservables * i, mod);
        if (k < 0) {
            k = 0;
            cells(plan(segments + 4 * i, electrons[i], obs + kObservables * i, mod),
                  [&](std::int64_t, std::int64_t) { ++k; });
        }
        n_cells += k;
        n_clusters += k > 0;
    }
}

template <class T>
void render_fill(const std::int64_t* module_index, const double* segments, const double* electrons, const T* obs,
                 std::int64_t n, const double* modules, double value_per_electron, const RenderOut& out) {
    std::int64_t kc = 0, cell = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        prefetch_module(module_index, i, n, modules);
        const double* mod = modules + kModuleCols * module_index[i];
        const Plan p = plan(segments + 4 * i, electrons[i], obs + kObservables * i, mod);
        const Weights w = plane(p, mod[kBinary] != 0, p.electrons * value_per_electron);
        const std::int64_t first = cell;
        double vsum = 0, su = 0, sv = 0;
        cells(p, [&](std::int64_t c0, std::int64_t c1) {
            const double v = w.value(c0 - p.base_u, c1 - p.base_v);
            // Insurance that the counting pass agreed (same arithmetic): never write past the end.
            if (cell >= out.n_cells) throw std::logic_error("fastsim_render: cell count disagrees at crossing " + std::to_string(i));
            out.ch0[cell] = static_cast<std::int32_t>(c0);
            out.ch1[cell] = static_cast<std::int32_t>(c1);
            out.value[cell] = v;
            vsum += v, su += v * double(c0), sv += v * double(c1);
            ++cell;
        });
        if (cell == first) continue;
        if (kc >= out.n_clusters) throw std::logic_error("fastsim_render: cluster count disagrees at crossing " + std::to_string(i));
        out.cluster[kc] = i;
        out.size[kc] = cell - first;
        out.charge[kc] = p.electrons;
        out.local[2 * kc] = (su / vsum + 0.5) * mod[kPitchU] - mod[kMaxHu];
        out.local[2 * kc + 1] = (sv / vsum + 0.5) * mod[kPitchV] - mod[kHv];
        ++kc;
    }
}

#define TRACKCORE_FASTSIM_INSTANTIATE(T)                                                                           \
    template void render_count<T>(const std::int64_t*, const double*, const double*, const T*, std::int64_t,       \
                                  const double*, std::int64_t&, std::int64_t&);                                     \
    template void render_fill<T>(const std::int64_t*, const double*, const double*, const T*, std::int64_t,        \
                                 const double*, double, const RenderOut&);
TRACKCORE_FASTSIM_INSTANTIATE(float)
TRACKCORE_FASTSIM_INSTANTIATE(double)
#undef TRACKCORE_FASTSIM_INSTANTIATE

}  // namespace trackcore::fastsim
