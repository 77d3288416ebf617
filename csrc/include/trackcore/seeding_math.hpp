#pragma once
// Seeding arithmetic shared by host and device code: grid bins, the phi-window bend term, the
// (r, z) cone of a middle space point and the seed order. Written with the same floating-point
// operations, in the same order, as csrc/src/seeding.cpp (whose anonymous-namespace copies these
// mirror), so the CUDA seeding kernels (csrc/cuda/seeding.cu) select the same seeds.
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

TC_HD int phi_bin(double phi, const Params& p) {
    const double b = std::floor((phi + kPi) * p.inv_phi_bin);
    if (!(b >= 0)) return 0;
    if (b >= p.n_phi - 1) return p.n_phi - 1;
    return static_cast<int>(b);
}

TC_HD int z_bin(double z, const Params& p) {
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
TC_HD double bend_of(double r, const Params& p) {
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
