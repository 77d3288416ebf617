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

    // Local half width in u at local v (trapezoid).
    static double half_width(const Module& m, double v) {
        return m.min_hu + (m.max_hu - m.min_hu) * (v + m.hv) / (2.0 * m.hv);
    }

private:
    std::vector<Module> modules_;
    std::vector<LayerGrid> layers_;
    double world_r_ = 0, world_z_ = 0;
};

}  // namespace trackcore
