#pragma once
// The detector as the compiled core sees it: planar trapezoid modules grouped into layers, with a
// per-layer (phi, z) [barrel] or (phi, r) [endcap] bin grid of modules for fast candidate lookup.
#include <cstdint>
#include <vector>

namespace trackcore {

struct Module {
    double centre[3];
    double rot[9];  // row-major; columns are the local u, v, w axes
    double half_t, min_hu, max_hu, hv;
    int layer;
};

struct LayerGrid {
    int kind = 0;  // 0 barrel (second coordinate z), 1 endcap (second coordinate r)
    double r_lo = 0, r_hi = 0, z_lo = 0, z_hi = 0;  // extent of every module corner
    int nphi = 1, nq = 1;
    double q_lo = 0, q_hi = 0;
    std::vector<int> bin_start;  // CSR over nphi * nq bins
    std::vector<int> bin_modules;
};

class Geometry {
public:
    Geometry(std::vector<Module> modules, std::vector<int> layer_kind);

    const std::vector<Module>& modules() const { return modules_; }
    const std::vector<LayerGrid>& layers() const { return layers_; }
    double world_r() const { return world_r_; }
    double world_z() const { return world_z_; }

    // Appends to out the modules of `layer` whose padded extent overlaps the phi/q box spanned by
    // the two points (phi_a, q_a) and (phi_b, q_b) (phi ranges taken the short way round).
    void candidates(int layer, double phi_a, double q_a, double phi_b, double q_b, std::vector<int>& out) const;

    // candidates() for phi_a and phi_b known to within phi_err (rad) of the values candidates()
    // would be given: appends the same modules in the same order and returns true, or appends
    // nothing and returns false when a phi bin (or the direction round) could differ for values
    // within the error.
    bool candidates_near(int layer, double phi_a, double q_a, double phi_b, double q_b, double phi_err,
                         std::vector<int>& out) const;

    // Layers whose r and z extents may overlap [r_lo, r_hi] x [z_lo, z_hi] (mm), as bits (bit l:
    // layer l): a superset of the exact overlap test, from coarse r and z bins. False when the
    // geometry has more than 64 layers (no masks: test every layer).
    bool layer_mask(double r_lo, double r_hi, double z_lo, double z_hi, uint64_t& mask) const {
        if (r_masks_.empty()) return false;
        const auto bin = [](double x, double x0, double inv_w, int n) {
            const double f = (x - x0) * inv_w;
            return !(f > 0) ? 0 : (f >= n - 1 ? n - 1 : static_cast<int>(f));  // NaN: bin 0, never a wild index
        };
        const int nr = static_cast<int>(r_masks_.size()), nz = static_cast<int>(z_masks_.size());
        uint64_t mr = 0, mz = 0;
        for (int b = bin(r_lo, 0.0, kMaskInvWidth, nr), e = bin(r_hi, 0.0, kMaskInvWidth, nr); b <= e; ++b) mr |= r_masks_[b];
        for (int b = bin(z_lo, -mask_z_, kMaskInvWidth, nz), e = bin(z_hi, -mask_z_, kMaskInvWidth, nz); b <= e; ++b)
            mz |= z_masks_[b];
        mask = mr & mz;
        return true;
    }

    // Local half width in u at local v (trapezoid).
    static double half_width(const Module& m, double v) {
        return m.min_hu + (m.max_hu - m.min_hu) * (v + m.hv) / (2.0 * m.hv);
    }

private:
    std::vector<Module> modules_;
    std::vector<LayerGrid> layers_;
    double world_r_ = 0, world_z_ = 0;
    static constexpr double kMaskInvWidth = 1.0 / 20.0;  // 1/mm: 20 mm bins in r and in z
    double mask_z_ = 0;                                  // the z bins span [-mask_z_, mask_z_]
    std::vector<uint64_t> r_masks_, z_masks_;            // per bin: layers overlapping it
};

}  // namespace trackcore
