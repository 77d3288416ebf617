#pragma once
// Seeding arithmetic shared by host and device code: grid bins, the phi-window bend term, the
// (r, z) cone of a middle space point, the doublet and triplet compatibility cuts, the seed weight
// and the seed order. csrc/src/seeding.cpp (the `cpu` kernel) and csrc/cuda/seeding.cu (the `cupy`
// kernels) both call these, so the CPU parity tests against trackcore/reco/seeding_numpy.py cover the
// device math too; the numpy twin uses the same floating-point operations in the same order.
// Functions taking parameters are templates over the parameter struct (seedmath::Params here,
// trackcore::seeding::Params in the core): both carry the same field names.
// Compile users with contraction off (g++ -ffp-contract=off, nvcc --fmad=false) for bitwise parity.
#include <cmath>
#include <cstdint>

#include "trackcore/hostdevice.hpp"

namespace trackcore {
namespace seedmath {

constexpr double kPi = 3.14159265358979323846;  // the same double as numpy.pi
TC_HD double inf() { return __builtin_huge_val(); }

// Derived seeding parameters (trackcore.reco.seeding.derived_parameters), unpacked from two flat
// arrays so kernels need no struct marshalling: doubles in the order of DoubleSlot, integers in the
// order of IntSlot (trackcore/backends/cupy_kernels/seeding.py packs them in the same order).
enum DoubleSlot {
    kInvPhiBin, kZLo, kInvZBin, kDrMin, kDrMax, kCotMax, kZ0Min, kZ0Max, kKBend, kD0Max, kPhiScale, kPhiMargin,
    kMinHelixDiameter2, kVarR, kVarZ, kScatterPerCurv2, kScatterMin2, kDeltaInvHelixDiameter, kCompatWeight,
    kImpactWeight, kZ0Weight, kNumDoubleSlots
};
enum IntSlot { kNPhi, kPhiNeighbours, kNZ, kCompatLimit, kMaxSeedsPerMiddle, kMaxSeeds, kNumIntSlots };

struct Params {
    int n_phi, phi_neighbours, n_z, compat_limit, max_seeds_per_middle;
    long long max_seeds;
    double inv_phi_bin, z_lo, inv_z_bin, dr_min, dr_max, cot_max, z0_min, z0_max, k_bend, d0_max, phi_scale,
        phi_margin, min_helix_diameter2, var_r, var_z, scatter_per_curv2, scatter_min2, delta_inv_helix_diameter,
        compat_weight, impact_weight, z0_weight;
};

TC_HD Params unpack_params(const double* d, const long long* i) {
    Params p;
    p.n_phi = static_cast<int>(i[kNPhi]);
    p.phi_neighbours = static_cast<int>(i[kPhiNeighbours]);
    p.n_z = static_cast<int>(i[kNZ]);
    p.compat_limit = static_cast<int>(i[kCompatLimit]);
    p.max_seeds_per_middle = static_cast<int>(i[kMaxSeedsPerMiddle]);
    p.max_seeds = i[kMaxSeeds];
    p.inv_phi_bin = d[kInvPhiBin]; p.z_lo = d[kZLo]; p.inv_z_bin = d[kInvZBin];
    p.dr_min = d[kDrMin]; p.dr_max = d[kDrMax]; p.cot_max = d[kCotMax];
    p.z0_min = d[kZ0Min]; p.z0_max = d[kZ0Max]; p.k_bend = d[kKBend]; p.d0_max = d[kD0Max];
    p.phi_scale = d[kPhiScale]; p.phi_margin = d[kPhiMargin]; p.min_helix_diameter2 = d[kMinHelixDiameter2];
    p.var_r = d[kVarR]; p.var_z = d[kVarZ]; p.scatter_per_curv2 = d[kScatterPerCurv2];
    p.scatter_min2 = d[kScatterMin2]; p.delta_inv_helix_diameter = d[kDeltaInvHelixDiameter];
    p.compat_weight = d[kCompatWeight]; p.impact_weight = d[kImpactWeight]; p.z0_weight = d[kZ0Weight];
    return p;
}

template <class P>
TC_HD int phi_bin(double phi, const P& p) {
    const double b = std::floor((phi + kPi) * p.inv_phi_bin);
    if (!(b >= 0)) return 0;
    if (b >= p.n_phi - 1) return p.n_phi - 1;
    return static_cast<int>(b);
}

template <class P>
TC_HD int z_bin(double z, const P& p) {
    const double b = std::floor((z - p.z_lo) * p.inv_z_bin);
    if (!(b >= 0)) return 0;
    if (b >= p.n_z - 1) return p.n_z - 1;
    return static_cast<int>(b);
}

TC_HD double wrap(double d) {
    if (d > kPi) return d - 2 * kPi;
    if (d < -kPi) return d + 2 * kPi;
    return d;
}

// Slope of asin(k r) at r: bounds the min-pT bending between two radii (asin is convex).
template <class P>
TC_HD double bend_of(double r, const P& p) {
    const double kr = p.k_bend * r;
    return kr < 1.0 ? 1.0 / std::sqrt(1.0 - kr * kr) : inf();
}

// Lines from (0, z0), z0 in [z0_min, z0_max], through the middle (rm, zm) form a cone in (r, z);
// it bounds the z bins and radii a partner can occupy (1 mm slack; the exact cuts decide).
struct Cone {
    double rm, zm, z0_low, z0_high;
    TC_HD double at(double z0, double r) const { return z0 + r * (zm - z0) / rm; }
    TC_HD static void clip(double z0, double s, double c, bool le, double& lo, double& hi) {
        if (c == inf() || c == -inf()) return;
        if (s == 0.0) {
            if (le ? z0 > c : z0 < c) hi = -inf();
            return;
        }
        const double r = (c - z0) / s;
        if ((s > 0) == le)
            hi = hi < r ? hi : r;
        else
            lo = lo > r ? lo : r;
    }
    TC_HD void radii(double c0, double c1, double& lo, double& hi) const {
        clip(z0_low, (zm - z0_low) / rm, c1 + 1.0, true, lo, hi);
        clip(z0_high, (zm - z0_high) / rm, c0 - 1.0, false, lo, hi);
    }
};

// A doublet of a middle space point and a bottom (inner) or top (outer) partner, in the middle's
// conformal frame. The layout is shared with the host glue of the CUDA kernels (8 words).
struct Doublet {
    long long index, layer;
    double cot;        // dz / xy-distance (outwards positive)
    double err;        // cot-theta variance term
    double u, v;       // conformal coordinates about the middle (1/mm)
    double inv_dist;   // 1 / xy-distance to the middle (1/mm)
    double z0;         // the doublet line at r = 0 (radial cot theta), mm
};

// The cheap doublet cuts of partner o against middle m (side -1: bottom, +1: top): radial distance,
// phi window (min-pT bending plus the d0 term), |cot theta| and the line's z at r = 0. z0 receives
// that z (mm); it is meaningful when the cuts pass. Every cut is evaluated and the results are ANDed
// without short-circuit: about half the candidates pass, so branching on each cut mispredicts often,
// while computing all of them costs a few multiplications (a division by a zero dr gives inf or NaN,
// which the dr cut already rejects).
template <class P>
TC_HD bool doublet_passes(int side, double rm, double zm, double phi_m, double inv_rm, double bend_m, double ro,
                          double zo, double phi_o, double inv_ro, double bend_o, const P& p, double& z0) {
    const double dr = side < 0 ? rm - ro : ro - rm;
    const double window = side < 0
                              ? p.phi_scale * (dr * p.k_bend * bend_m + p.d0_max * (inv_ro - inv_rm)) + p.phi_margin
                              : p.phi_scale * (dr * p.k_bend * bend_o + p.d0_max * (inv_rm - inv_ro)) + p.phi_margin;
    const double dphi = wrap(phi_o - phi_m);
    const double cot = side < 0 ? (zm - zo) / dr : (zo - zm) / dr;
    z0 = zm - rm * cot;
    return (dr >= p.dr_min) & (dr <= p.dr_max) & ((dphi < 0 ? -dphi : dphi) <= window) &
           ((cot < 0 ? -cot : cot) <= p.cot_max) & (z0 >= p.z0_min) & (z0 <= p.z0_max);
}

// The conformal terms of a doublet that passed doublet_passes: transform about the middle
// (xm, ym, zm), in its radial frame (cos_m, sin_m) as ACTS. Fills cot, err, u, v, inv_dist.
template <class P>
TC_HD void conformal(int side, double xm, double ym, double zm, double cos_m, double sin_m, double xo, double yo,
                     double zo, const P& p, Doublet& d) {
    const double dx = xo - xm, dy = yo - ym, dz = zo - zm;
    const double xn = dx * cos_m + dy * sin_m;
    const double yn = dy * cos_m - dx * sin_m;
    const double inv_d2 = 1.0 / (xn * xn + yn * yn);
    const double inv_d = std::sqrt(inv_d2);
    const double cotc = side < 0 ? -(dz * inv_d) : dz * inv_d;
    d.cot = cotc;
    d.err = ((p.var_z + p.var_z) + cotc * cotc * (p.var_r + p.var_r)) * inv_d2;
    d.u = xn * inv_d2;
    d.v = yn * inv_d2;
    d.inv_dist = inv_d;
}

// Half-width of the window in top cot theta around b.cot outside which no top passes the first
// cut of triplet_passes, given per-middle maxima of the tops' err and inv_dist. With
// E >= error2 (cot_b cot_t <= cot_max^2) and S = scatter_min2, a top at d = |cot_b - cot_t| has
// 1 + cot_b cot_t <= 1 + |cot_b| (|cot_b| + d), so it fails once d^2 - S |cot_b| d - (E + S (1 + cot_b^2)) > 0,
// i.e. for every d beyond the positive root. Slightly widened against rounding.
template <class P>
TC_HD double top_cot_tolerance(const Doublet& b, double max_err_t, double max_inv_d_t, const P& p) {
    const double cross_var = 2.0 * (p.cot_max * p.cot_max * p.var_r + p.var_z);
    const double e_max = b.err + max_err_t + cross_var * b.inv_dist * max_inv_d_t;
    const double sc = p.scatter_min2, acb = b.cot < 0 ? -b.cot : b.cot;
    const double tol = 0.5 * (sc * acb + std::sqrt(sc * sc * acb * acb + 4.0 * (e_max + sc * (1.0 + acb * acb))));
    return tol * (1.0 + 1e-9) + 1e-12;
}

// The bottom-middle-top cuts: cot-theta compatibility within the errors plus min-pT scattering,
// helix diameter >= min pT's, cot-theta compatibility with the triplet's own scattering, and
// |d0| <= d0_max (rm: the middle's radius, mm). On success curv = 1/(2R) (signed, 1/mm) and
// impact = |d0| (mm).
template <class P>
TC_HD bool triplet_passes(const Doublet& b, const Doublet& t, double rm, const P& p, double& curv, double& impact) {
    const double dcot = b.cot - t.cot;
    const double dcot2 = dcot * dcot;
    const double error2 = t.err + b.err + 2.0 * (b.cot * t.cot * p.var_r + p.var_z) * b.inv_dist * t.inv_dist;
    const double isin2 = 1.0 + b.cot * t.cot;
    if (dcot2 > error2 + p.scatter_min2 * isin2) return false;
    const double du = t.u - b.u;
    if (du == 0.0) return false;
    const double a = (t.v - b.v) / du;
    const double s2 = 1.0 + a * a;
    const double bb = b.v - a * b.u;
    const double b2 = bb * bb;
    if (s2 < b2 * p.min_helix_diameter2) return false;  // below min pT
    const double ihd2 = b2 / s2;
    if (dcot2 > error2 + ihd2 * p.scatter_per_curv2 * isin2) return false;
    const double d0 = (a - bb * rm) * rm;
    impact = d0 < 0 ? -d0 : d0;
    if (impact > p.d0_max) return false;
    curv = bb / std::sqrt(s2);
    return true;
}

// Whether two tops of one bottom confirm each other: other layer, curvature within tolerance.
template <class P>
TC_HD bool tops_compatible(long long layer_i, double curv_i, long long layer_j, double curv_j, const P& p) {
    const double d = curv_i - curv_j;
    return layer_j != layer_i && (d < 0 ? -d : d) < p.delta_inv_helix_diameter;
}

// Seed-filter weight of a triplet with n_compatible confirming top layers (already capped).
template <class P>
TC_HD double seed_weight(int n_compatible, double impact, double z0, const P& p) {
    return p.compat_weight * static_cast<double>(n_compatible) - p.impact_weight * impact -
           p.z0_weight * (z0 < 0 ? -z0 : z0);
}

// x-y path length (mm) between two points of a circle of radius R (the shorter arc); the sine is
// clamped like numpy.clip(v, 0, 1), which passes NaN through.
TC_HD double seed_arc(double radius, double px, double py, double qx, double qy) {
    double s = std::hypot(qx - px, qy - py) / (2.0 * radius);
    s = s < 0.0 ? 0.0 : (s > 1.0 ? 1.0 : s);
    return 2.0 * radius * std::asin(s);
}

// Track parameters of a seed from the circle through its three x-y points and the z slope along
// the arc, operation for operation as trackcore.reco.seeding_numpy.estimate_parameters_numpy:
// pt (GeV), charge (+-1 under bz, T), phi and theta (rad) of the direction at the bottom, z0 and
// signed d0 (mm) at the point of closest approach to the z axis, cot theta. out: those 7 in order.
TC_HD void estimate_seed(double xb, double yb, double zb, double xm, double ym, double xt, double yt, double zt,
                         double bz, double* out) {
    const double c_light = 0.299792458e-3;  // GeV / (T mm), trackcore.reco.seeding.C_LIGHT
    const double mbx = xm - xb, mby = ym - yb, tbx = xt - xb, tby = yt - yb;
    const double cross = mbx * tby - mby * tbx;  // > 0: counter-clockwise b -> m -> t
    const double d = 2.0 * (cross == 0.0 ? 1e-12 : cross);  // collinear: a huge circle
    const double mb2 = mbx * mbx + mby * mby, tb2 = tbx * tbx + tby * tby;
    const double cx = xb + (tby * mb2 - mby * tb2) / d, cy = yb + (mbx * tb2 - tbx * mb2) / d;
    const double radius = std::hypot(xb - cx, yb - cy);
    const double sense = cross >= 0.0 ? 1.0 : -1.0;
    const double sign_bz = bz > 0 ? 1.0 : (bz < 0 ? -1.0 : 0.0);
    const double cot = (zt - zb) / seed_arc(radius, xb, yb, xt, yt);
    // Direction of motion at a point: sense x the circle normal turned by +90 degrees.
    const double nbx = (xb - cx) / radius, nby = (yb - cy) / radius;
    const double dbx = sense * -nby, dby = sense * nbx;
    const double dist = std::hypot(cx, cy);
    const double f = 1.0 - radius / (dist == 0.0 ? 1e-12 : dist);
    const double px = cx * f, py = cy * f;
    const double npx = (px - cx) / radius, npy = (py - cy) / radius;
    const double dpx = sense * -npy, dpy = sense * npx;
    const double d0 = -px * dpy + py * dpx;
    const double along = (xb - px) * dpx + (yb - py) * dpy;
    const double ahead = along > 0 ? 1.0 : (along < 0 ? -1.0 : (along == 0 ? 0.0 : along));  // numpy.sign
    out[0] = c_light * (bz < 0 ? -bz : bz) * radius;
    out[1] = -sense * sign_bz;
    out[2] = std::atan2(dby, dbx);
    out[3] = std::atan2(1.0, cot);
    out[4] = zb - cot * ahead * seed_arc(radius, px, py, xb, yb);
    out[5] = d0;
    out[6] = cot;
}

// Seed order: weight descending, then middle, bottom, top ascending (a total order).
TC_HD bool seed_less(double wa, long long ma, long long ba, long long ta, double wb, long long mb, long long bb,
                     long long tb) {
    if (wa != wb) return wa > wb;
    if (ma != mb) return ma < mb;
    if (ba != bb) return ba < bb;
    return ta < tb;
}

}  // namespace seedmath
}  // namespace trackcore
