#include "navigator.hpp"

#include <algorithm>
#include <cmath>

namespace trackcore {

namespace {
void gather_monotonic(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand);
}  // namespace

void gather_candidates(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand) {
    // r is monotonic along each piece only if the chord is split at its closest approach to the z axis.
    const double dx = b[0] - a[0], dy = b[1] - a[1], d2 = dx * dx + dy * dy;
    const double t = d2 > 0 ? -(a[0] * dx + a[1] * dy) / d2 : 0.0;
    if (t > 0 && t < 1) {
        const double m[3] = {a[0] + t * dx, a[1] + t * dy, a[2] + t * (b[2] - a[2])};
        gather_monotonic(geo, a, m, cand);
        gather_monotonic(geo, m, b, cand);
        return;
    }
    gather_monotonic(geo, a, b, cand);
}

namespace {
void gather_monotonic(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand) {
    // sqrt of the sum of squares, not hypot: no overflow is possible here and it is several times cheaper.
    const double ra = std::sqrt(a[0] * a[0] + a[1] * a[1]), rb = std::sqrt(b[0] * b[0] + b[1] * b[1]);
    const double za = a[2], zb = b[2];
    const double rmin = std::min(ra, rb) - 1.0, rmax = std::max(ra, rb) + 1.0;
    const double zmin = std::min(za, zb) - 1.0, zmax = std::max(za, zb) + 1.0;
    const auto& layers = geo.layers();
    // Only the layers the coarse r/z masks allow (all of them without masks), in increasing order.
    uint64_t mask = 0;
    const bool masked = geo.layer_mask(rmin, rmax, zmin, zmax, mask);
    for (size_t l = 0; l < layers.size(); ++l) {
        if (masked) {
            if (!mask) break;
            l = static_cast<size_t>(__builtin_ctzll(mask));  // the next allowed layer
            mask &= mask - 1;
        }
        const LayerGrid& L = layers[l];
        if (L.bin_start.empty() || rmax < L.r_lo || rmin > L.r_hi || zmax < L.z_lo || zmin > L.z_hi) continue;
        // Fractions of the chord inside the layer's shell (r for barrels, z for endcaps).
        double fa = 0, fb = 1;
        const double qa = L.kind == 0 ? ra : za, qb = L.kind == 0 ? rb : zb;
        const double lo = L.kind == 0 ? L.r_lo : L.z_lo, hi = L.kind == 0 ? L.r_hi : L.z_hi;
        if (std::fabs(qb - qa) > 1e-12) {
            double f1 = (lo - qa) / (qb - qa), f2 = (hi - qa) / (qb - qa);
            if (f1 > f2) std::swap(f1, f2);
            fa = std::max(0.0, f1);
            fb = std::min(1.0, f2);
            if (fa > fb) fa = fb = std::clamp(0.5 * (f1 + f2), 0.0, 1.0);
        }
        double pa[3], pb[3];
        for (int k = 0; k < 3; ++k) {
            pa[k] = a[k] + fa * (b[k] - a[k]);
            pb[k] = a[k] + fb * (b[k] - a[k]);
        }
        const double phia = std::atan2(pa[1], pa[0]), phib = std::atan2(pb[1], pb[0]);
        const double sa = L.kind == 0 ? pa[2] : std::sqrt(pa[0] * pa[0] + pa[1] * pa[1]);
        const double sb = L.kind == 0 ? pb[2] : std::sqrt(pb[0] * pb[0] + pb[1] * pb[1]);
        geo.candidates(static_cast<int>(l), phia, sa, phib, sb, cand);
    }
}
}  // namespace

}  // namespace trackcore
