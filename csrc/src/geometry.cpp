#include "geometry.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "trackcore/transform.hpp"

namespace trackcore {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kTwoPi = 2.0 * kPi;
constexpr double kPad = 2.0;  // mm of slack on every module extent: covers the chord-vs-arc error of a step

double wrap(double phi) {
    while (phi < -kPi) phi += kTwoPi;
    while (phi >= kPi) phi -= kTwoPi;
    return phi;
}

int phi_bin(double phi, int nphi) {
    int b = static_cast<int>(std::floor((wrap(phi) + kPi) / kTwoPi * nphi));
    return std::min(std::max(b, 0), nphi - 1);
}
}  // namespace

Geometry::Geometry(std::vector<Module> modules, std::vector<int> layer_kind) : modules_(std::move(modules)) {
    const int n_layers = static_cast<int>(layer_kind.size());
    layers_.resize(n_layers);
    struct Extent { double phi_c, dphi_lo, dphi_hi, q_lo, q_hi; };
    std::vector<Extent> ext(modules_.size());
    std::vector<int> count(n_layers, 0);
    std::vector<bool> seen(n_layers, false);
    for (size_t i = 0; i < modules_.size(); ++i) {
        const Module& m = modules_[i];
        if (m.layer < 0 || m.layer >= n_layers) throw std::invalid_argument("module layer index out of range");
        LayerGrid& L = layers_[m.layer];
        L.kind = layer_kind[m.layer];
        const double phi_c = std::atan2(m.centre[1], m.centre[0]);
        Extent e{phi_c, 1e9, -1e9, 1e18, -1e18};
        for (int su = -1; su <= 1; su += 2)
            for (int sv = -1; sv <= 1; sv += 2)
                for (int sw = -1; sw <= 1; sw += 2) {
                    const double v = sv * m.hv;
                    const double local[3] = {su * half_width(m, v), v, sw * m.half_t};
                    double g[3];
                    to_global(m.centre, m.rot, local, g);
                    const double r = std::hypot(g[0], g[1]), z = g[2];
                    const double dphi = wrap(std::atan2(g[1], g[0]) - phi_c);
                    e.dphi_lo = std::min(e.dphi_lo, dphi);
                    e.dphi_hi = std::max(e.dphi_hi, dphi);
                    const double q = L.kind == 0 ? z : r;
                    e.q_lo = std::min(e.q_lo, q);
                    e.q_hi = std::max(e.q_hi, q);
                    if (!seen[m.layer]) {
                        L.r_lo = L.r_hi = r;
                        L.z_lo = L.z_hi = z;
                        seen[m.layer] = true;
                    }
                    L.r_lo = std::min(L.r_lo, r); L.r_hi = std::max(L.r_hi, r);
                    L.z_lo = std::min(L.z_lo, z); L.z_hi = std::max(L.z_hi, z);
                }
        // Modules around the origin (r ~ 0) span all phi.
        const double rc = std::hypot(m.centre[0], m.centre[1]);
        if (rc < std::max(m.hv, m.max_hu)) { e.dphi_lo = -kPi; e.dphi_hi = kPi; }
        ext[i] = e;
        ++count[m.layer];
    }
    for (int l = 0; l < n_layers; ++l) {
        LayerGrid& L = layers_[l];
        if (!seen[l]) continue;
        L.q_lo = (L.kind == 0 ? L.z_lo : L.r_lo) - kPad;
        L.q_hi = (L.kind == 0 ? L.z_hi : L.r_hi) + kPad;
        // About one module per bin: sqrt-split the count between phi and q by the layer's aspect.
        const int n = std::max(count[l], 1);
        L.nq = L.kind == 0 ? std::max(1, static_cast<int>(std::lround(std::sqrt(n / 8.0)))) : std::max(1, static_cast<int>(std::lround(std::sqrt(n / 16.0))));
        L.nphi = std::max(1, n / L.nq);
        world_r_ = std::max(world_r_, L.r_hi);
        world_z_ = std::max(world_z_, std::max(std::fabs(L.z_lo), std::fabs(L.z_hi)));
    }
    // Fill CSR bins: count then place.
    std::vector<std::vector<int>> bins(n_layers);
    for (int l = 0; l < n_layers; ++l) bins[l].assign(static_cast<size_t>(layers_[l].nphi) * layers_[l].nq, 0);
    auto for_bins = [&](size_t i, auto&& fn) {
        const Module& m = modules_[i];
        const LayerGrid& L = layers_[m.layer];
        const Extent& e = ext[i];
        const double q_step = (L.q_hi - L.q_lo) / L.nq;
        int q0 = static_cast<int>(std::floor((e.q_lo - kPad - L.q_lo) / q_step));
        int q1 = static_cast<int>(std::floor((e.q_hi + kPad - L.q_lo) / q_step));
        q0 = std::max(q0, 0); q1 = std::min(q1, L.nq - 1);
        const double r_pad = std::max(1.0, L.r_lo);
        const double phi_pad = kPad / r_pad;
        int nb;
        int p0;
        if (e.dphi_hi - e.dphi_lo + 2 * phi_pad >= kTwoPi) { p0 = 0; nb = L.nphi; }
        else {
            p0 = phi_bin(e.phi_c + e.dphi_lo - phi_pad, L.nphi);
            const int p1 = phi_bin(e.phi_c + e.dphi_hi + phi_pad, L.nphi);
            nb = (p1 - p0 + L.nphi) % L.nphi + 1;
        }
        for (int k = 0; k < nb; ++k)
            for (int q = q0; q <= q1; ++q) fn(m.layer, ((p0 + k) % L.nphi) * L.nq + q);
    };
    for (size_t i = 0; i < modules_.size(); ++i) for_bins(i, [&](int l, int b) { ++bins[l][b]; });
    for (int l = 0; l < n_layers; ++l) {
        LayerGrid& L = layers_[l];
        L.bin_start.assign(bins[l].size() + 1, 0);
        for (size_t b = 0; b < bins[l].size(); ++b) L.bin_start[b + 1] = L.bin_start[b] + bins[l][b];
        L.bin_modules.assign(L.bin_start.back(), -1);
        std::fill(bins[l].begin(), bins[l].end(), 0);
    }
    for (size_t i = 0; i < modules_.size(); ++i)
        for_bins(i, [&](int l, int b) {
            LayerGrid& L = layers_[l];
            L.bin_modules[L.bin_start[b] + bins[l][b]++] = static_cast<int>(i);
        });
    // Layer masks over r and z bins: a layer's bit is set in every bin its extent touches, so any
    // interval that overlaps the extent spans a bin holding the bit (the masks are a superset).
    if (n_layers <= 64) {
        mask_z_ = world_z_ + 10.0;
        const int nr = static_cast<int>(std::ceil((world_r_ + 10.0) * kMaskInvWidth)) + 1;
        const int nz = static_cast<int>(std::ceil(2.0 * mask_z_ * kMaskInvWidth)) + 1;
        r_masks_.assign(nr, 0);
        z_masks_.assign(nz, 0);
        for (int l = 0; l < n_layers; ++l) {
            const LayerGrid& L = layers_[l];
            if (L.bin_start.empty()) continue;
            const uint64_t bit = uint64_t{1} << l;
            const int r0 = std::max(0, static_cast<int>(std::floor(L.r_lo * kMaskInvWidth)));
            const int r1 = std::min(nr - 1, static_cast<int>(std::floor(L.r_hi * kMaskInvWidth)));
            for (int b = r0; b <= r1; ++b) r_masks_[b] |= bit;
            const int z0 = std::max(0, static_cast<int>(std::floor((L.z_lo + mask_z_) * kMaskInvWidth)));
            const int z1 = std::min(nz - 1, static_cast<int>(std::floor((L.z_hi + mask_z_) * kMaskInvWidth)));
            for (int b = z0; b <= z1; ++b) z_masks_[b] |= bit;
        }
    }
}

namespace {
// phi_bin(phi) when every value within err of phi falls in the same bin, on the same side of
// wrap's limits (+-pi, and 3 pi for a sum of two angles); else -1.
int clear_phi_bin(double phi, double err, int nphi) {
    if (std::fabs(phi - kPi) <= err || std::fabs(phi + kPi) <= err || std::fabs(phi - 3.0 * kPi) <= err) return -1;
    const double f = (wrap(phi) + kPi) / kTwoPi * nphi;
    const double fl = std::floor(f);
    // The bin's position moves by err nphi / 2 pi, plus the rounding of the line above.
    const double margin = err * nphi / kTwoPi * 1.01 + 1e-9;
    if (!(f - fl > margin && fl + 1.0 - f > margin)) return -1;
    return std::min(std::max(static_cast<int>(fl), 0), nphi - 1);
}

// The q bins [q0, q1] of the grid spanned by q_a..q_b, clamped to the grid (empty when q0 > q1).
void q_bins(const LayerGrid& L, double q_a, double q_b, int& q0, int& q1) {
    const double q_step = (L.q_hi - L.q_lo) / L.nq;
    q0 = static_cast<int>(std::floor((std::min(q_a, q_b) - L.q_lo) / q_step));
    q1 = static_cast<int>(std::floor((std::max(q_a, q_b) - L.q_lo) / q_step));
    q0 = std::max(q0, 0);
    q1 = std::min(q1, L.nq - 1);
}

// Appends the modules of phi bins p0..p1 (wrapping through the last bin) times q bins q0..q1.
void append_bins(const LayerGrid& L, int p0, int p1, int q0, int q1, std::vector<int>& out) {
    const int nb = (p1 - p0 + L.nphi) % L.nphi + 1;
    for (int k = 0; k < nb; ++k) {
        const int p = (p0 + k) % L.nphi;
        for (int q = q0; q <= q1; ++q) {
            const int b = p * L.nq + q;
            out.insert(out.end(), L.bin_modules.begin() + L.bin_start[b], L.bin_modules.begin() + L.bin_start[b + 1]);
        }
    }
}
}  // namespace

bool Geometry::candidates_near(int layer, double phi_a, double q_a, double phi_b, double q_b, double phi_err,
                               std::vector<int>& out) const {
    const LayerGrid& L = layers_[layer];
    if (L.bin_start.empty()) return true;
    int q0, q1;
    q_bins(L, q_a, q_b, q0, q1);
    if (q0 > q1) return true;
    // candidates()'s phi steps, each checked to go the same way for any phi within the error.
    const double raw = phi_b - phi_a;
    const double e2 = 2.0 * phi_err + 1e-12;
    if (std::fabs(raw - kPi) <= e2 || std::fabs(raw + kPi) <= e2) return false;
    const double d = wrap(raw);
    if (std::fabs(d) <= e2) return false;
    const double lo = d >= 0 ? phi_a : phi_b;
    const double hi = lo + std::fabs(d);
    const int p0 = clear_phi_bin(lo, phi_err + 1e-12, L.nphi);
    const int p1 = clear_phi_bin(hi, 3.0 * phi_err + 1e-12, L.nphi);
    if (p0 < 0 || p1 < 0) return false;
    append_bins(L, p0, p1, q0, q1, out);
    return true;
}

void Geometry::candidates(int layer, double phi_a, double q_a, double phi_b, double q_b, std::vector<int>& out) const {
    const LayerGrid& L = layers_[layer];
    if (L.bin_start.empty()) return;
    int q0, q1;
    q_bins(L, q_a, q_b, q0, q1);
    if (q0 > q1) return;
    double d = wrap(phi_b - phi_a);
    const double lo = d >= 0 ? phi_a : phi_b;
    const int p0 = phi_bin(lo, L.nphi);
    const int p1 = phi_bin(lo + std::fabs(d), L.nphi);
    append_bins(L, p0, p1, q0, q1, out);
}

}  // namespace trackcore
