#pragma once
// Space-point grid in (phi, z) and ACTS-like triplet seeding. The numpy twin is
// trackcore/reco/seeding_numpy.py; both must select the same seeds in the same order, so every cut
// below is written with the same floating-point operations in the same order as there.
#include <cstdint>
#include <vector>

namespace trackcore::seeding {

// Derived parameters, computed once in Python (trackcore/reco/seeding.py: derived_parameters).
// Lengths mm, angles rad, curvatures 1/mm.
struct Params {
    int n_phi = 1;               // phi bins over [-pi, pi)
    int phi_neighbours = 1;      // phi bins each side that hold every possible partner
    int n_z = 1;                 // z bins over [z_lo, z_lo + n_z / inv_z_bin)
    double inv_phi_bin = 0;      // n_phi / (2 pi)
    double z_lo = 0;             // lower edge of the first z bin
    double inv_z_bin = 0;        // 1 / z bin width
    double dr_min = 0, dr_max = 0;      // radial distance of bottom/top from the middle
    double cot_max = 0;                 // |cot theta| of a doublet
    double z0_min = 0, z0_max = 0;      // doublet line at r = 0 (collision region)
    double k_bend = 0;                  // 1 / (2 R_min): min-pT helix
    double d0_max = 0;                  // |impact parameter|
    double phi_scale = 1, phi_margin = 0;  // doublet phi window = scale * (bend + d0 term) + margin
    double min_helix_diameter2 = 0;     // (2 R_min)^2
    double var_r = 0, var_z = 0;        // space-point variances (mm^2)
    double scatter_per_curv2 = 0;       // (sigma * theta0)^2 per (1/(2R))^2
    double scatter_min2 = 0;            // (sigma * theta0(min pT))^2
    double delta_inv_helix_diameter = 0;  // curvature compatibility of two tops
    double compat_weight = 0, impact_weight = 0, z0_weight = 0;
    int compat_limit = 0;               // at most this many compatible tops count
    int max_seeds_per_middle = 1;
    long long max_seeds = 0;            // global limit, best weight first
    int threads = 1;                    // worker threads (0: one per hardware thread); the seeds do not depend on it
};

// Space points in cell order: cell = phi_bin * n_z + z_bin; inside a cell by (r, index).
struct Grid {
    int n_phi = 1, n_z = 1;
    std::vector<std::int64_t> order;    // input index of each sorted position
    std::vector<std::int64_t> offsets;  // n_phi * n_z + 1 cell starts in `order`
};

int phi_bin(double phi, const Params& p);
int z_bin(double z, const Params& p);

// Counting sort into cells (O(N)), then each cell sorted by r (cells are small).
Grid build_grid(std::int64_t n, const double* phi, const double* z, const double* r, const Params& p);

struct Seed {
    double weight;
    std::int64_t bottom, middle, top;  // input indices
};

// Triplet seeds over all n space points, best weight first (ties by middle, bottom, top). middle
// (n flags, or nullptr for all): the points that may be the middle of a seed.
std::vector<Seed> find_seeds(std::int64_t n, const double* x, const double* y, const double* z, const double* r,
                             const double* phi, const std::int64_t* layer, const Params& p,
                             const std::uint8_t* middle = nullptr);

}  // namespace trackcore::seeding
