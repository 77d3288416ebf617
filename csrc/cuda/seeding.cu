// Triplet seeding on the GPU, one thread per middle space point. The doublet and triplet cuts and
// the seed weight are the shared functions of trackcore/seeding_math.hpp that csrc/src/seeding.cpp
// also uses (compile with --fmad=false), so the seeds equal those of the compiled and numpy
// `find_seeds`. Space points arrive in grid order
// (tc_grid_* in grid.cu). Three launches: count doublets, fill doublets (the same selection code),
// then per middle sort its tops by cot theta, search triplets and keep its best seeds.
#include "trackcore/seeding_math.hpp"

namespace sm = trackcore::seedmath;
using sm::Params;

using Doublet = sm::Doublet;  // 64 bytes; the host glue allocates (count, 8) float64 buffers for these

struct Triplet {  // 32 bytes; scratch of (total tops, 4) float64
    long long top, layer;
    double curv, impact;
};

struct Points {
    const double *x, *y, *z, *r, *phi, *inv_r, *bend;
    const long long *layer, *index, *offsets;
};

namespace {

__device__ long long lower_bound_r(const double* r, long long first, long long last, double v) {
    while (first < last) {
        const long long mid = first + (last - first) / 2;
        if (r[mid] < v) first = mid + 1; else last = mid;
    }
    return first;
}

// Doublets of middle m on one side (-1 bottom, +1 top); writes them to out when out != nullptr.
__device__ long long collect(int side, long long m, const Points& s, const Params& p, double r_min_all,
                             double r_max_all, Doublet* out) {
    const double xm = s.x[m], ym = s.y[m], zm = s.z[m], rm = s.r[m], pm = s.phi[m];
    const double cos_m = xm / rm, sin_m = ym / rm;
    const double r_lo = side < 0 ? fmax(rm - p.dr_max, 0.0) : rm + p.dr_min;
    const double r_hi = side < 0 ? rm - p.dr_min : rm + p.dr_max;
    if (r_hi < r_min_all - 1e-6 || r_lo > r_max_all + 1e-6) return 0;
    double reach;
    if (side < 0) {
        const double r_in = fmax(r_min_all, r_lo);
        reach = p.phi_scale * (fmax(rm - r_in, 0.0) * p.k_bend * s.bend[m] + p.d0_max * (1.0 / r_in - s.inv_r[m])) +
                p.phi_margin;
    } else {
        const double r_out = fmin(r_max_all, r_hi);
        reach = p.phi_scale * (fmax(r_out - rm, 0.0) * p.k_bend * sm::bend_of(r_out, p) +
                               p.d0_max * (s.inv_r[m] - 1.0 / r_out)) + p.phi_margin;
    }
    const double reach_bins = reach * (1.0 + 1e-9) * p.inv_phi_bin;
    const int nb = reach_bins < p.phi_neighbours ? static_cast<int>(reach_bins) + 1 : p.phi_neighbours;
    const bool all_phi = 2 * nb + 1 >= p.n_phi;
    const int b_mid = sm::phi_bin(pm, p);
    const sm::Cone cone{rm, zm, side < 0 ? p.z0_min : p.z0_max, side < 0 ? p.z0_max : p.z0_min};
    double zlo = sm::inf(), zhi = -sm::inf();
    const double z0s[2] = {p.z0_min, p.z0_max}, rrs[2] = {r_lo, r_hi};
    for (double z0 : z0s)
        for (double rr : rrs) {
            zlo = fmin(zlo, cone.at(z0, rr));
            zhi = fmax(zhi, cone.at(z0, rr));
        }
    const double z_step = 1.0 / p.inv_z_bin;
    const int zb0 = sm::z_bin(zlo - 1.0, p), zb1 = sm::z_bin(zhi + 1.0, p);
    long long count = 0;
    for (int zb = zb0; zb <= zb1; ++zb) {
        double rlo = r_lo, rhi = r_hi;
        cone.radii(zb == 0 ? -sm::inf() : p.z_lo + zb * z_step, zb == p.n_z - 1 ? sm::inf() : p.z_lo + (zb + 1) * z_step,
                   rlo, rhi);
        if (rlo > rhi) continue;
        const int n_bins = all_phi ? p.n_phi : 2 * nb + 1;
        for (int k = 0; k < n_bins; ++k) {
            const int pb = all_phi ? k : (b_mid + (k - nb) + p.n_phi) % p.n_phi;
            const long long c = static_cast<long long>(pb) * p.n_z + zb;
            const long long last = s.offsets[c + 1];
            for (long long o = lower_bound_r(s.r, s.offsets[c], last, rlo - 1e-6); o < last && s.r[o] <= rhi + 1e-6; ++o) {
                if (s.layer[o] == s.layer[m]) continue;
                double z0;
                if (!sm::doublet_passes(side, rm, zm, pm, s.inv_r[m], s.bend[m], s.r[o], s.z[o], s.phi[o], s.inv_r[o],
                                        s.bend[o], p, z0))
                    continue;
                if (out) {
                    Doublet& d = out[count];
                    d.index = s.index[o];
                    d.layer = s.layer[o];
                    d.z0 = z0;
                    sm::conformal(side, xm, ym, zm, cos_m, sin_m, s.x[o], s.y[o], s.z[o], p, d);
                }
                ++count;
            }
        }
    }
    return count;
}

}  // namespace

// pass 0: n_bottom[m], n_top[m] (tops only counted where bottoms exist); pass 1: fill the doublets
// at bot_off[m], top_off[m]. rext = {min r, max r} over all points.
extern "C" __global__ void tc_seed_doublets(int pass, long long n, const double* x, const double* y, const double* z,
                                            const double* r, const double* phi, const double* inv_r,
                                            const double* bend, const long long* layer, const long long* index,
                                            const long long* offsets, const double* pd, const long long* pi,
                                            const double* rext, long long* n_bottom, long long* n_top,
                                            const long long* bot_off, const long long* top_off, Doublet* bottoms,
                                            Doublet* tops) {
    const long long m = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (m >= n) return;
    const Params p = sm::unpack_params(pd, pi);
    const Points s{x, y, z, r, phi, inv_r, bend, layer, index, offsets};
    if (pass == 0) {
        const long long nb = collect(-1, m, s, p, rext[0], rext[1], nullptr);
        n_bottom[m] = nb;
        n_top[m] = nb ? collect(+1, m, s, p, rext[0], rext[1], nullptr) : 0;
    } else if (n_bottom[m] && n_top[m]) {
        collect(-1, m, s, p, rext[0], rext[1], bottoms + bot_off[m]);
        collect(+1, m, s, p, rext[0], rext[1], tops + top_off[m]);
    }
}

// Per middle: tops sorted by cot (in place), triplets of each bottom in the cot-theta window, the
// seed filter, and the best max_seeds_per_middle seeds kept in order in out_* at m * K (count out_n).
extern "C" __global__ void tc_seed_triplets(long long n, const double* r, const long long* index, const double* pd,
                                            const long long* pi, const long long* n_bottom, const long long* n_top,
                                            const long long* bot_off, const long long* top_off,
                                            const Doublet* bottoms, Doublet* tops, Triplet* scratch,
                                            long long* out_hits, double* out_w, int* out_n) {
    const long long m = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (m >= n) return;
    const Params p = sm::unpack_params(pd, pi);
    const int K = p.max_seeds_per_middle;
    int kept = 0;
    out_n[m] = 0;
    const long long nb = n_bottom[m], nt = n_top[m];
    if (nb == 0 || nt == 0 || K == 0) return;
    Doublet* t = tops + top_off[m];
    const Doublet* bs = bottoms + bot_off[m];
    Triplet* trip = scratch + top_off[m];
    for (long long k = 1; k < nt; ++k) {  // stable insertion sort by cot
        const Doublet v = t[k];
        long long j = k - 1;
        while (j >= 0 && t[j].cot > v.cot) { t[j + 1] = t[j]; --j; }
        t[j + 1] = v;
    }
    double max_err_t = 0, max_inv_d_t = 0;
    for (long long k = 0; k < nt; ++k) {
        max_err_t = fmax(max_err_t, t[k].err);
        max_inv_d_t = fmax(max_inv_d_t, t[k].inv_dist);
    }
    const double rm = r[m];
    const long long m_index = index[m];
    long long* hits = out_hits + 3 * m * K;
    double* w_out = out_w + m * K;
    for (long long bi = 0; bi < nb; ++bi) {
        const Doublet b = bs[bi];
        // Only tops within this cot-theta window of the bottom can pass the triplet cuts.
        const double tol = sm::top_cot_tolerance(b, max_err_t, max_inv_d_t, p);
        long long lo = 0, hi = nt;
        const double v = b.cot - tol;
        while (lo < hi) {
            const long long mid = lo + (hi - lo) / 2;
            if (t[mid].cot < v) lo = mid + 1; else hi = mid;
        }
        long long n_trip = 0;
        for (long long k = lo; k < nt && t[k].cot <= b.cot + tol; ++k) {
            double curv, impact;
            if (!sm::triplet_passes(b, t[k], rm, p, curv, impact)) continue;
            trip[n_trip++] = Triplet{t[k].index, t[k].layer, curv, impact};
        }
        for (long long i = 0; i < n_trip; ++i) {
            // Distinct layers of compatible tops, capped at compat_limit (<= 32, checked by the host).
            long long seen[32];
            int n_seen = 0;
            for (long long j = 0; j < n_trip; ++j) {
                if (n_seen >= p.compat_limit) break;
                if (!sm::tops_compatible(trip[i].layer, trip[i].curv, trip[j].layer, trip[j].curv, p)) continue;
                bool fresh = true;
                for (int q = 0; q < n_seen; ++q) fresh = fresh && seen[q] != trip[j].layer;
                if (fresh) seen[n_seen++] = trip[j].layer;
            }
            const double w = sm::seed_weight(n_seen, trip[i].impact, b.z0, p);
            // Keep the K best in order (insertion into a sorted list of at most K).
            int pos = kept;
            while (pos > 0 && sm::seed_less(w, m_index, b.index, trip[i].top, w_out[pos - 1], m_index, hits[3 * (pos - 1)],
                                            hits[3 * (pos - 1) + 2]))
                --pos;
            if (pos >= K) continue;
            for (int q = (kept < K ? kept : K - 1); q > pos; --q) {
                w_out[q] = w_out[q - 1];
                for (int c = 0; c < 3; ++c) hits[3 * q + c] = hits[3 * (q - 1) + c];
            }
            w_out[pos] = w;
            hits[3 * pos] = b.index;
            hits[3 * pos + 1] = m_index;
            hits[3 * pos + 2] = trip[i].top;
            if (kept < K) ++kept;
        }
    }
    out_n[m] = kept;
}
