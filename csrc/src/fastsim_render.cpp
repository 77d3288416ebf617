// Fast-simulation kernels; see fastsim_render.hpp. Every expression keeps the numpy twin's order of
// operations (plugins/fastsim_gan/clusters.py) so that cells come out bit-identical.
#include "fastsim_render.hpp"

#include "trackcore/transform.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <string>
#include <vector>

#include "no_fp_contract.hpp"  // after the other headers: it applies to what follows

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
    if (!(std::abs(x) < kTwo52)) return std::nearbyint(x);
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

// The path's entry and exit in cell units along u and v (conditions and rendering both start here).
struct CellCoords {
    double cu0, cu1, cv0, cv1;
};
inline CellCoords cell_coords(const double* seg, const double* mod) {
    const double pu = mod[kPitchU], pv = mod[kPitchV];
    return {(seg[0] + mod[kMaxHu]) / pu, (seg[2] + mod[kMaxHu]) / pu, (seg[1] + mod[kHv]) / pv,
            (seg[3] + mod[kHv]) / pv};
}

// Conditions 0-3 (module class, one-hot) and 6-11 (where the entry, exit and mid points lie in their
// cells); the four logs (4, 5, 12, 13) are left to the caller.
inline void conditions_without_logs(const CellCoords& cc, const double* mod, float* row) {
    const auto cls = static_cast<int>(mod[kClass]);
    for (int k = 0; k < 4; ++k) row[k] = cls == k ? 1.0f : 0.0f;
    row[6] = static_cast<float>(frac(cc.cu0));
    row[7] = static_cast<float>(frac(cc.cv0));
    row[8] = static_cast<float>(frac(cc.cu1));
    row[9] = static_cast<float>(frac(cc.cv1));
    row[10] = static_cast<float>(frac(0.5 * (cc.cu0 + cc.cu1)));
    row[11] = static_cast<float>(frac(0.5 * (cc.cv0 + cc.cv1)));
}

template <class T>
Plan plan(const CellCoords& cc, double electrons, const T* o, const double* mod) {
    const double cu0 = cc.cu0, cu1 = cc.cu1, cv0 = cc.cv0, cv1 = cc.cv1;
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
    // A path within one cell makes a one-cell-wide cluster on that cell (see render_numpy).
    const auto lo_u = p.wu == 1 && width_u == 1 ? static_cast<std::int64_t>(fast_floor(cu0))
                                                : static_cast<std::int64_t>(fast_rint(target_u - 0.5 - 0.5 * double(p.wu - 1)));
    const auto lo_v = p.wv == 1 && width_v == 1 ? static_cast<std::int64_t>(fast_floor(cv0))
                                                : static_cast<std::int64_t>(fast_rint(target_v - 0.5 - 0.5 * double(p.wv - 1)));
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
    const CellCoords cc = cell_coords(seg, mod);
    const double cu0 = cc.cu0, cu1 = cc.cu1, cv0 = cc.cv0, cv1 = cc.cv1;
    const auto width_u = static_cast<std::int64_t>(std::abs(fast_floor(cu1) - fast_floor(cu0))) + 1;
    const auto width_v = static_cast<std::int64_t>(std::abs(fast_floor(cv1) - fast_floor(cv0))) + 1;
    const auto wu = std::max<std::int64_t>(width_u + static_cast<std::int64_t>(fast_rint(double(o[0]))), 1);
    const auto wv = std::max<std::int64_t>(width_v + static_cast<std::int64_t>(fast_rint(double(o[1]))), 1);
    const auto drop = static_cast<std::int64_t>(fast_rint(double(o[2])));
    const auto lo_u = wu == 1 && width_u == 1
                          ? static_cast<std::int64_t>(fast_floor(cu0))
                          : static_cast<std::int64_t>(fast_rint(0.5 * (cu0 + cu1) + double(o[4]) - 0.5 - 0.5 * double(wu - 1)));
    const auto lo_v = wv == 1 && width_v == 1
                          ? static_cast<std::int64_t>(fast_floor(cv0))
                          : static_cast<std::int64_t>(fast_rint(0.5 * (cv0 + cv1) + double(o[5]) - 0.5 - 0.5 * double(wv - 1)));
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

// The plane over the cells `each_cell(f)` walks (calling f(c0, c1) for each kept cell, twice over):
// the staircase itself, or a buffer of its cells.
template <class EachCell>
Weights plane_over(const Plan& p, bool binary, double charge_value, EachCell&& each_cell) {
    Weights w{};
    w.binary = binary;
    if (binary) return w;
    double sxx = 0, sxy = 0, syy = 0;
    each_cell([&](std::int64_t c0, std::int64_t c1) {
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
    each_cell([&](std::int64_t c0, std::int64_t c1) {
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

Weights plane(const Plan& p, bool binary, double charge_value) {
    return plane_over(p, binary, charge_value, [&](auto&& f) { cells(p, f); });
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

std::string observable_error(std::int64_t row, int c, double v) {
    return "obs[" + std::to_string(row) + ", " + std::to_string(c) + "] = " + std::to_string(v) +
           " is not finite or is out of range (|widths, drops, centroid residuals| <= 2^21 cells, |log charge| <= 50)";
}

void prefetch_rows(const std::int64_t* module_index, std::int64_t i, std::int64_t n, const double* modules) {
    prefetch_module(module_index, i, n, modules);
}

void conditions_row(const double* seg, double edep, const double* p, const double* mod, double electrons_per_gev,
                    float* row) {
    const CellCoords cc = cell_coords(seg, mod);
    conditions_without_logs(cc, mod, row);
    row[4] = static_cast<float>(std::log1p(std::abs(cc.cu1 - cc.cu0)));
    row[5] = static_cast<float>(std::log1p(std::abs(cc.cv1 - cc.cv0)));
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
            cells(plan(cell_coords(segments + 4 * i, mod), electrons[i], obs + kObservables * i, mod),
                  [&](std::int64_t, std::int64_t) { ++k; });
        }
        n_cells += k;
        n_clusters += k > 0;
    }
}

namespace {

// Outputs of render_fill: arrays sized by render_count (checked on every write), or the growable
// buffers of the fused pass.
struct ArrayWriter {
    const RenderOut& out;
    std::int64_t kc = 0, cell = 0;
    std::int64_t cells_so_far() const { return cell; }
    void cell_at(std::int64_t i, std::int32_t c0, std::int32_t c1, double v) {
        // Insurance that the counting pass agreed (same arithmetic): never write past the end.
        if (cell >= out.n_cells) throw std::logic_error("fastsim_render: cell count disagrees at crossing " + std::to_string(i));
        out.ch0[cell] = c0, out.ch1[cell] = c1, out.value[cell] = v;
        ++cell;
    }
    void cluster(std::int64_t i, std::int64_t size, double charge, double lu, double lv) {
        if (kc >= out.n_clusters) throw std::logic_error("fastsim_render: cluster count disagrees at crossing " + std::to_string(i));
        out.cluster[kc] = i, out.size[kc] = size, out.charge[kc] = charge;
        out.local[2 * kc] = lu, out.local[2 * kc + 1] = lv;
        ++kc;
    }
};

struct BufferWriter {
    RenderBuffers& out;
    const std::int64_t* module_index;
    std::int64_t cells_so_far() const { return static_cast<std::int64_t>(out.ch0.size()); }
    void cell_at(std::int64_t, std::int32_t c0, std::int32_t c1, double v) {
        out.ch0.push_back(c0), out.ch1.push_back(c1), out.value.push_back(v);
        if (out.centres) out.cell_hit.push_back(out.first_hit_id + static_cast<std::int64_t>(out.cluster.size()));
    }
    void cluster(std::int64_t i, std::int64_t size, double charge, double lu, double lv) {
        out.cluster.push_back(i), out.size.push_back(size), out.charge.push_back(charge);
        out.local.push_back(lu), out.local.push_back(lv);
        if (!out.centres) return;
        const std::int64_t m = module_index[i];
        const double local[3] = {lu, lv, 0.0};
        double xyz[3];
        to_global(out.centres + 3 * m, out.rotations + 9 * m, local, xyz);
        out.global.insert(out.global.end(), xyz, xyz + 3);
    }
};

// Clusters longer than this take the slower path that walks the staircase three times.
constexpr std::int64_t kCellBuffer = 128;

// The cluster of crossing i. The staircase is walked once into a small buffer when it fits (the
// plane's sums, its smallest weight and the cells then read the buffer); the values are the same
// either way, as the sums are of small integers.
template <class T, class W>
void render_crossing(std::int64_t i, const CellCoords& cc, double electrons, const T* o, const double* mod,
                     double value_per_electron, W& writer) {
    const Plan p = plan(cc, electrons, o, mod);
    const double charge_value = p.electrons * value_per_electron;
    const bool binary = mod[kBinary] != 0;
    double vsum = 0, su = 0, sv = 0;
    const std::int64_t first = writer.cells_so_far();
    if (p.full <= kCellBuffer) {
        std::int32_t b0[kCellBuffer], b1[kCellBuffer];
        int m = 0;
        cells(p, [&](std::int64_t c0, std::int64_t c1) {
            b0[m] = static_cast<std::int32_t>(c0), b1[m] = static_cast<std::int32_t>(c1);
            ++m;
        });
        if (m == 0) return;
        const Weights w = plane_over(p, binary, charge_value, [&](auto&& f) {
            for (int k = 0; k < m; ++k) f(std::int64_t(b0[k]), std::int64_t(b1[k]));
        });
        for (int k = 0; k < m; ++k) {
            const double v = w.value(b0[k] - p.base_u, b1[k] - p.base_v);
            writer.cell_at(i, b0[k], b1[k], v);
            vsum += v, su += v * double(b0[k]), sv += v * double(b1[k]);
        }
    } else {
        const Weights w = plane(p, binary, charge_value);
        cells(p, [&](std::int64_t c0, std::int64_t c1) {
            const double v = w.value(c0 - p.base_u, c1 - p.base_v);
            writer.cell_at(i, static_cast<std::int32_t>(c0), static_cast<std::int32_t>(c1), v);
            vsum += v, su += v * double(c0), sv += v * double(c1);
        });
    }
    const std::int64_t size = writer.cells_so_far() - first;
    if (size == 0) return;
    writer.cluster(i, size, p.electrons, (su / vsum + 0.5) * mod[kPitchU] - mod[kMaxHu],
                   (sv / vsum + 0.5) * mod[kPitchV] - mod[kHv]);
}

}  // namespace

template <class T>
void render_fill(const std::int64_t* module_index, const double* segments, const double* electrons, const T* obs,
                 std::int64_t n, const double* modules, double value_per_electron, const RenderOut& out) {
    ArrayWriter writer{out};
    for (std::int64_t i = 0; i < n; ++i) {
        prefetch_module(module_index, i, n, modules);
        const double* mod = modules + kModuleCols * module_index[i];
        render_crossing(i, cell_coords(segments + 4 * i, mod), electrons[i], obs + kObservables * i, mod,
                        value_per_electron, writer);
    }
}

namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline std::uint64_t splitmix64(std::uint64_t z) {
    z += kGolden;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#if defined(__x86_64__) && defined(__GNUC__)
// Natural log of 8 positive doubles to about an ulp (so that, cast to float32, the conditions equal
// those of std::log / np.log but for a value within an ulp of a float rounding edge): x = 2^e m with
// m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(f), f = (m - 1) / (m + 1), |f| < 0.172, by its series to f^23.
__attribute__((target("avx512f"))) inline __m512d log_pd(__m512d x) {
    __m512d e = _mm512_getexp_pd(x);
    __m512d m = _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    const __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(1.4142135623730951), _CMP_GT_OQ);
    m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
    e = _mm512_mask_add_pd(e, big, e, _mm512_set1_pd(1.0));
    const __m512d one = _mm512_set1_pd(1.0);
    const __m512d f = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
    const __m512d s = _mm512_mul_pd(f, f);
    // 1 + s/3 + s^2/5 + ... + s^11/23 (Horner from the top).
    __m512d poly = _mm512_set1_pd(1.0 / 23);
    for (int k = 10; k >= 0; --k) poly = _mm512_fmadd_pd(poly, s, _mm512_set1_pd(1.0 / (2 * k + 1)));
    const __m512d log_m = _mm512_mul_pd(_mm512_add_pd(f, f), poly);
    const __m512d ln2_hi = _mm512_set1_pd(0.6931471803691238), ln2_lo = _mm512_set1_pd(1.9082149292705877e-10);
    return _mm512_add_pd(_mm512_mul_pd(e, ln2_hi), _mm512_fmadd_pd(e, ln2_lo, log_m));
}

// Conditions of a block's rows (conditions_row's values) with the four logs eight at a time; log1p(y)
// as log(1 + y) plus the rounding of 1 + y, (y - ((1 + y) - 1)) / (1 + y).
__attribute__((target("avx512f"))) void conditions_block_avx512(const std::int64_t* module_index,
                                                                const double* segments, const double* edep,
                                                                const double* momentum, std::int64_t start, int rows,
                                                                std::int64_t n, const double* modules,
                                                                double electrons_per_gev, float* cond,
                                                                CellCoords* coords) {
    alignas(64) double arg[4][kBlock + 8];
    // The next block's module rows (both cache lines a 72-byte row may touch): a block ahead gives the
    // misses time to land, where a few crossings ahead did not once the arithmetic was vectorised.
    for (std::int64_t i = start + kBlock; i < std::min<std::int64_t>(start + 2 * kBlock, n); ++i) {
        const double* row = modules + kModuleCols * module_index[i];
        __builtin_prefetch(row);
        __builtin_prefetch(row + kModuleCols - 1);
    }
    for (int r = 0; r < rows; ++r) {
        const std::int64_t i = start + r;
        const double* seg = segments + 4 * i;
        const double* mod = modules + kModuleCols * module_index[i];
        const double* p = momentum + 3 * i;
        float* row = cond + r * kConditions;
        const CellCoords cc = coords[r] = cell_coords(seg, mod);
        conditions_without_logs(cc, mod, row);
        arg[0][r] = std::abs(cc.cu1 - cc.cu0);
        arg[1][r] = std::abs(cc.cv1 - cc.cv0);
        arg[2][r] = std::max(edep[i] * electrons_per_gev, 1.0) / mod[kThreshold];
        arg[3][r] = std::max(std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]), 1e-3);
    }
    for (int q = 0; q < 4; ++q)
        for (int r = rows; r < (rows + 7) / 8 * 8; ++r) arg[q][r] = 1.0;
    const __m512d one = _mm512_set1_pd(1.0);
    constexpr int column[4] = {4, 5, 12, 13};
    for (int q = 0; q < 4; ++q)
        for (int r = 0; r < rows; r += 8) {
            const __m512d x = _mm512_load_pd(arg[q] + r);
            __m512d y;
            if (q < 2) {
                const __m512d u = _mm512_add_pd(one, x);
                y = _mm512_add_pd(log_pd(u), _mm512_div_pd(_mm512_sub_pd(x, _mm512_sub_pd(u, one)), u));
            } else {
                y = log_pd(x);
            }
            alignas(64) double out[8];
            _mm512_store_pd(out, y);
            for (int k = 0; k < 8 && r + k < rows; ++k) cond[(r + k) * kConditions + column[q]] = static_cast<float>(out[k]);
        }
}
#endif

}  // namespace

void generate(const std::int64_t* module_index, const double* segments, const double* edep, const double* momentum,
              std::int64_t n, const double* modules, double electrons_per_gev, const Generator& g,
              std::uint64_t seed, float* obs, double* electrons, double value_per_electron, RenderBuffers* cells) {
    const int width_in = kConditions + kNoise;
    std::vector<float> xin(kBlock * width_in), cond(kBlock * kConditions), a(kBlock * kMaxWidth), b(kBlock * kMaxWidth);
    const float half_width = static_cast<float>(std::sqrt(3.0));
    const float step = static_cast<float>(2.0 * std::sqrt(3.0) / 65536.0);
    const float* rows_bias[kBlock];
    double uniform[kBlock];
    CellCoords coords[kBlock];
    float own_obs[kBlock * kObservables];
    double own_electrons[kBlock];
#if defined(__x86_64__) && defined(__GNUC__)
    static const bool avx512 = __builtin_cpu_supports("avx512f");
#else
    constexpr bool avx512 = false;
#endif
    RenderBuffers spare;
    BufferWriter writer{cells ? *cells : spare, module_index};
    if (cells) {
        // About 4 cells per crossing in <mu> = 200 events; the buffers grow past it if needed.
        cells->cluster.reserve(n), cells->size.reserve(n), cells->charge.reserve(n), cells->local.reserve(2 * n);
        for (auto* v : {&cells->ch0, &cells->ch1}) v->reserve(5 * n);
        cells->value.reserve(5 * n);
        if (cells->centres) cells->global.reserve(3 * n), cells->cell_hit.reserve(5 * n);
    }
    for (std::int64_t start = 0; start < n; start += kBlock) {
        const int rows = static_cast<int>(std::min<std::int64_t>(kBlock, n - start));
#if defined(__x86_64__) && defined(__GNUC__)
        if (avx512)
            conditions_block_avx512(module_index, segments, edep, momentum, start, rows, n, modules,
                                    electrons_per_gev, cond.data(), coords);
#endif
        for (int r = 0; r < rows; ++r) {
            const std::int64_t i = start + r;
            float* c = cond.data() + r * kConditions;
            if (!avx512) {
                prefetch_module(module_index, i, n, modules);
                conditions_row(segments + 4 * i, edep[i], momentum + 3 * i, modules + kModuleCols * module_index[i],
                               electrons_per_gev, c);
            }
            float* x = xin.data() + r * width_in;
            std::copy(c, c + kConditions, x);
            const std::uint64_t hn = splitmix64(seed + (2 * std::uint64_t(i)) * kGolden);
            const std::uint64_t hc = splitmix64(seed + (2 * std::uint64_t(i) + 1) * kGolden);
            for (int k = 0; k < kNoise; ++k)
                x[kConditions + k] = (static_cast<float>((hn >> (16 * k)) & 0xFFFF) + 0.5f) * step - half_width;
            uniform[r] = (static_cast<double>(hc >> 40) + 0.5) * 0x1p-24;
        }
        // Classifier on the conditions (copied into a: the MLP swaps its two buffers).
        std::copy(cond.begin(), cond.begin() + rows * kConditions, a.begin());
        float* p = mlp(g.classifier, g.n_classifier, a.data(), b.data(), rows, g.leak, nullptr);
        int cls[kBlock];  // the probabilities overwrite the logits below
        for (int r = 0; r < rows; ++r) {
            float* l = p + r * g.n_classes;
            float top = l[0];
            for (int k = 1; k < g.n_classes; ++k) top = std::max(top, l[k]);
            for (int k = 0; k < g.n_classes; ++k) l[k] -= top;
        }
        exp_nonpositive(p, rows * g.n_classes);
        for (int r = 0; r < rows; ++r) {
            const float* l = p + r * g.n_classes;
            float cum[kMaxWidth];
            float total = 0.0f;
            for (int k = 0; k < g.n_classes; ++k) cum[k] = total = total + l[k];
            const double threshold = uniform[r] * double(total);
            int k = 0;
            while (k < g.n_classes - 1 && double(cum[k]) < threshold) ++k;
            cls[r] = k;
            rows_bias[r] = g.embed + std::size_t(k) * g.generator[0].n_out;
        }
        std::copy(xin.begin(), xin.begin() + rows * width_in, a.begin());
        const float* y = mlp(g.generator, g.n_generator, a.data(), b.data(), rows, g.leak, rows_bias);
        // Without obs / electrons arrays the block's rows live here only (less fresh memory to fault in).
        float* block_obs = obs ? obs + kObservables * start : own_obs;
        double* block_electrons = electrons ? electrons + start : own_electrons;
        for (int r = 0; r < rows; ++r) {
            const std::int64_t i = start + r;
            float* o = block_obs + kObservables * r;
            const float* c = g.classes + 3 * cls[r];
            o[0] = c[0], o[1] = c[1], o[2] = c[2];
            o[3] = y[3 * r], o[4] = y[3 * r + 1], o[5] = y[3 * r + 2];
            block_electrons[r] = edep[i] * electrons_per_gev * std::exp(double(o[3]));
        }
        if (!cells) continue;
        // Render the block now, its module rows still in cache (the values render_typed checks first).
        for (int r = 0; r < rows; ++r) {
            const std::int64_t i = start + r;
            const float* o = block_obs + kObservables * r;
            for (int c = 0; c < kObservables; ++c)
                if (!observable_in_range(c, o[c])) throw std::invalid_argument(observable_error(i, c, o[c]));
            const double* mod = modules + kModuleCols * module_index[i];
            render_crossing(i, avx512 ? coords[r] : cell_coords(segments + 4 * i, mod), block_electrons[r], o, mod,
                            value_per_electron, writer);
        }
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
