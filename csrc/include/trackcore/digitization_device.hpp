#pragma once
// The simulation's digitisation for the GPU (csrc/cuda/simulation.cu): charge sharing of one
// crossing's projected segment over the cell grid, and 8-connected clustering of one module's
// cells. The arithmetic of the C++ core's digitization.cpp (and its numpy twin), without its
// std::vectors: the grid-line crossings are walked in order instead of stored, so the pieces and
// their charges come out bit for bit the same.
#include <cmath>
#include <cstdint>

#include "trackcore/bound_transport.hpp"
#include "trackcore/hostdevice.hpp"

namespace trackcore {
namespace dev {

constexpr int kShapeCols = 5;         // min_hu, max_hu, hv, pitch_u, pitch_v (mm)
constexpr double kMinPiece = 1e-12;   // digitization.hpp
constexpr double kMinStep = 1e-12;
constexpr int64_t kMaxPackedChannel = (int64_t{1} << 21) - 1;

// The parameters t in (ta, tb), increasing, where p0 + t d crosses the grid lines origin + k pitch
// (digitization.cpp line_crossings, one value at a time).
struct LineWalk {
    double p0, d, origin, pitch, ta, tb;
    int64_t k, last, step;
    bool more;   // a value is waiting in `t`
    double t;

    TC_HD void start(double p0_, double d_, double origin_, double pitch_, double ta_, double tb_) {
        p0 = p0_, d = d_, origin = origin_, pitch = pitch_, ta = ta_, tb = tb_;
        more = false;
        t = 0;
        if (std::fabs(d) <= kMinStep) {
            k = 1, last = 0, step = 1;  // empty
            return;
        }
        const double pa = p0 + ta * d, pb = p0 + tb * d;
        const double lo = dmin(pa, pb), hi = dmax(pa, pb);
        const int64_t kmin = static_cast<int64_t>(std::floor((lo - origin) / pitch)) + 1;
        const int64_t kmax = static_cast<int64_t>(std::ceil((hi - origin) / pitch)) - 1;
        // The core lists k from kmin up and reverses the list when d < 0.
        if (d > 0) k = kmin, last = kmax, step = 1;
        else k = kmax, last = kmin, step = -1;
        advance();
    }
    TC_HD void advance() {
        more = false;
        while (step > 0 ? k <= last : k >= last) {
            const double tk = ((origin + static_cast<double>(k) * pitch) - p0) / d;
            k += step;
            if (tk > ta && tk < tb) {
                t = tk;
                more = true;
                return;
            }
        }
    }
};

// The cell pieces of one crossing's segment (u0, v0, u1, v1) with charge `charge` on a module of
// shape `shape`: emit(ch0, ch1, piece charge) in traversal order (digitization.cpp deposit_segment).
template <class Emit>
TC_HDI void deposit_segment(const double* seg, double charge, const double* shape, Emit&& emit) {
    const double u0 = seg[0], v0 = seg[1], u1 = seg[2], v1 = seg[3];
    const double min_hu = shape[0], max_hu = shape[1], hv = shape[2], pu = shape[3], pv = shape[4];
    const double du = u1 - u0, dv = v1 - v0;
    const double half_u = dmax(min_hu, max_hu);
    double ta = 0.0, tb = 1.0;
    const double p0s[2] = {u0, v0}, ds[2] = {du, dv}, halves[2] = {half_u, hv};
    for (int a = 0; a < 2; ++a) {
        if (std::fabs(ds[a]) <= kMinStep) {
            if (std::fabs(p0s[a]) > halves[a]) return;
        } else {
            const double t1 = (-halves[a] - p0s[a]) / ds[a], t2 = (halves[a] - p0s[a]) / ds[a];
            ta = dmax(ta, dmin(t1, t2));
            tb = dmin(tb, dmax(t1, t2));
        }
    }
    if (!(ta < tb)) return;
    LineWalk wu, wv;
    wu.start(u0, du, -max_hu, pu, ta, tb);
    wv.start(v0, dv, -hv, pv, ta, tb);
    const double n0 = std::ceil(2.0 * max_hu / pu - 1e-9), n1 = std::ceil(2.0 * hv / pv - 1e-9);
    double prev = ta;
    for (bool last = false; !last;) {
        double next;
        if (wu.more && (!wv.more || wu.t <= wv.t)) {
            next = wu.t;
            wu.advance();
        } else if (wv.more) {
            next = wv.t;
            wv.advance();
        } else {
            next = tb;
            last = true;
        }
        const double dt = next - prev;
        if (dt > kMinPiece) {
            const double tm = (prev + next) * 0.5;
            const double u = u0 + tm * du, v = v0 + tm * dv;
            const double hw = min_hu + (max_hu - min_hu) * ((v + hv) / (2.0 * hv));
            if (std::fabs(v) <= hv && std::fabs(u) <= hw) {
                const double c0 = std::floor((u + max_hu) / pu), c1 = std::floor((v + hv) / pv);
                if (c0 >= 0 && c0 < n0 && c1 >= 0 && c1 < n1)
                    emit(static_cast<int64_t>(c0), static_cast<int64_t>(c1), charge * dt);
            }
        }
        prev = next;
    }
}

TC_HD int64_t find_root(int64_t* parent, int64_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

// Clusters of the cells [begin, end) of one module (sorted by (ch0, ch1), no duplicates):
// label[i] = the cluster's number among this module's clusters (in the order of their first cell);
// returns the number of clusters. parent: scratch over the same rows. digitization.cpp cluster_cells.
TC_HDI int64_t cluster_module(const int64_t* ch0, const int64_t* ch1, int64_t begin, int64_t end, int64_t* parent,
                              int64_t* label) {
    auto key = [&](int64_t a, int64_t b) { return (a << 21) | b; };
    for (int64_t i = begin; i < end; ++i) parent[i] = i;
    const int64_t offsets[4][2] = {{0, 1}, {1, -1}, {1, 0}, {1, 1}};
    for (int64_t i = begin; i < end; ++i) {
        for (int o = 0; o < 4; ++o) {
            const int64_t a = ch0[i] + offsets[o][0], b = ch1[i] + offsets[o][1];
            if (b < 0 || b > kMaxPackedChannel || a > kMaxPackedChannel) continue;
            const int64_t k = key(a, b);
            int64_t lo = i + 1, hi = end;  // lower_bound of k among the cells after i
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo) / 2;
                if (key(ch0[mid], ch1[mid]) < k) lo = mid + 1;
                else hi = mid;
            }
            if (lo == end || key(ch0[lo], ch1[lo]) != k) continue;
            int64_t ra = find_root(parent, i), rb = find_root(parent, lo);
            if (ra == rb) continue;
            if (rb < ra) {
                const int64_t t = ra;
                ra = rb;
                rb = t;
            }
            parent[rb] = ra;
        }
    }
    int64_t next = 0;
    for (int64_t i = begin; i < end; ++i) {
        const int64_t r = find_root(parent, i);
        label[i] = (r == i) ? next++ : label[r];
    }
    return next;
}

}  // namespace dev
}  // namespace trackcore
