#pragma once
// The detector's module lookup for device code (the GPU CKF and transport): the modules of every
// layer whose shell a chord passes through, from the per-layer (phi, z|r) bin grids of the core's
// Geometry (navigator.cpp gather_candidates and geometry.cpp Geometry::candidates, with std::atan2):
// the same modules, in the same order.
#include <cmath>

#include "trackcore/bound_transport.hpp"
#include "trackcore/hostdevice.hpp"

namespace trackcore {
namespace dev {

// A fixed-capacity list of module rows; `full` when a module did not fit.
struct CandidateList {
    int* m;
    int n;
    int cap;
    bool full;
};

TC_HD double grid_wrap(double phi) {
    while (phi < -kPi) phi += kTwoPi;
    while (phi >= kPi) phi -= kTwoPi;
    return phi;
}

TC_HD int phi_bin(double phi, int nphi) {
    const int b = static_cast<int>(std::floor((grid_wrap(phi) + kPi) / kTwoPi * nphi));
    return imin(imax(b, 0), nphi - 1);
}

// Geometry::candidates: the modules of `layer` in the bins spanned by (phi_a, q_a) and (phi_b, q_b).
TC_HDI void layer_candidates(const GeometryView& g, int l, double phi_a, double q_a, double phi_b, double q_b,
                             CandidateList& out) {
    const int nphi = g.layer_grid[3 * l], nq = g.layer_grid[3 * l + 1], first = g.layer_grid[3 * l + 2];
    if (nphi < 1 || nq < 1) return;
    const double q_lo = g.layer_extent[6 * l + 4], q_hi = g.layer_extent[6 * l + 5];
    const double q_step = (q_hi - q_lo) / nq;
    int q0 = static_cast<int>(std::floor((dmin(q_a, q_b) - q_lo) / q_step));
    int q1 = static_cast<int>(std::floor((dmax(q_a, q_b) - q_lo) / q_step));
    q0 = imax(q0, 0);
    q1 = imin(q1, nq - 1);
    if (q0 > q1) return;
    const double d = grid_wrap(phi_b - phi_a);
    const double lo = d >= 0 ? phi_a : phi_b;
    const int p0 = phi_bin(lo, nphi);
    const int p1 = phi_bin(lo + std::fabs(d), nphi);
    const int nb = (p1 - p0 + nphi) % nphi + 1;
    for (int k = 0; k < nb; ++k) {
        const int p = (p0 + k) % nphi;
        for (int q = q0; q <= q1; ++q) {
            const int b = first + p * nq + q;
            for (int j = g.bin_start[b]; j < g.bin_start[b + 1]; ++j) {
                if (out.n >= out.cap) { out.full = true; return; }
                out.m[out.n++] = g.bin_modules[j];
            }
        }
    }
}

// The candidates of every layer whose shell the chord a->b (r monotonic along it) passes through.
TC_HDI void gather_monotonic(const GeometryView& g, const double* a, const double* b, CandidateList& out) {
    const double ra = std::sqrt(a[0] * a[0] + a[1] * a[1]), rb = std::sqrt(b[0] * b[0] + b[1] * b[1]);
    const double za = a[2], zb = b[2];
    const double rmin = dmin(ra, rb) - 1.0, rmax = dmax(ra, rb) + 1.0;
    const double zmin = dmin(za, zb) - 1.0, zmax = dmax(za, zb) + 1.0;
    for (int l = 0; l < g.n_layers; ++l) {
        const double* e = g.layer_extent + 6 * l;
        const double r_lo = e[0], r_hi = e[1], z_lo = e[2], z_hi = e[3];
        if (rmax < r_lo || rmin > r_hi || zmax < z_lo || zmin > z_hi) continue;
        const bool barrel = g.layer_kind[l] == 0;
        double fa = 0, fb = 1;
        const double qa = barrel ? ra : za, qb = barrel ? rb : zb;
        const double lo = barrel ? r_lo : z_lo, hi = barrel ? r_hi : z_hi;
        if (std::fabs(qb - qa) > 1e-12) {
            double f1 = (lo - qa) / (qb - qa), f2 = (hi - qa) / (qb - qa);
            if (f1 > f2) { const double t = f1; f1 = f2; f2 = t; }
            fa = dmax(0.0, f1);
            fb = dmin(1.0, f2);
            if (fa > fb) {
                const double m = 0.5 * (f1 + f2);
                fa = fb = m < 0.0 ? 0.0 : (1.0 < m ? 1.0 : m);  // std::clamp(m, 0, 1)
            }
        }
        double pa[3], pb[3];
        for (int k = 0; k < 3; ++k) {
            pa[k] = a[k] + fa * (b[k] - a[k]);
            pb[k] = a[k] + fb * (b[k] - a[k]);
        }
        const double sa = barrel ? pa[2] : std::sqrt(pa[0] * pa[0] + pa[1] * pa[1]);
        const double sb = barrel ? pb[2] : std::sqrt(pb[0] * pb[0] + pb[1] * pb[1]);
        layer_candidates(g, l, std::atan2(pa[1], pa[0]), sa, std::atan2(pb[1], pb[0]), sb, out);
    }
}

TC_HDN void gather_candidates(const GeometryView& g, const double* a, const double* b, CandidateList& out) {
    const double dx = b[0] - a[0], dy = b[1] - a[1], d2 = dx * dx + dy * dy;
    const double t = d2 > 0 ? -(a[0] * dx + a[1] * dy) / d2 : 0.0;
    if (t > 0 && t < 1) {
        const double m[3] = {a[0] + t * dx, a[1] + t * dy, a[2] + t * (b[2] - a[2])};
        gather_monotonic(g, a, m, out);
        gather_monotonic(g, m, b, out);
        return;
    }
    gather_monotonic(g, a, b, out);
}

}  // namespace dev
}  // namespace trackcore
