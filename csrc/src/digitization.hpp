#pragma once
// Silicon digitisation: charge sharing of straight crossings over a module's cell grid, and
// 8-connected clustering of fired cells. The arithmetic lives in trackcore/digitization_device.hpp,
// shared with the GPU kernels (csrc/cuda/simulation.cu); the numpy twin is trackcore/sim/digitization.py,
// and all three produce bit-identical cells.
#include <cstdint>
#include <vector>

#include "trackcore/digitization_device.hpp"

namespace trackcore::digi {

// Module shape, one row per detector module: min_hu, max_hu, hv, pitch_u, pitch_v (mm).
constexpr int kShapeCols = dev::kShapeCols;

// One cell's share of one crossing's charge.
struct Contribution {
    std::int64_t crossing;
    std::int64_t ch0;
    std::int64_t ch1;
    double charge;
};

// Appends to `out` the cells crossed by the projected segment (u0,v0)-(u1,v1) of one crossing
// on a module of shape `shape` (kShapeCols values), each with charge * (fraction of the segment
// inside it). Pieces whose midpoint lies outside the trapezoid or the channel grid are dropped.
void deposit_segment(std::int64_t crossing, const double* seg, double charge, const double* shape,
                     std::vector<Contribution>& out);

// Cluster label of each cell (0..K-1, numbered by each cluster's first cell). Cells must be
// sorted by (module, ch0, ch1) without duplicates; 8-connectivity within a module.
std::vector<std::int64_t> cluster_cells(const std::int64_t* module, const std::int64_t* ch0,
                                        const std::int64_t* ch1, std::int64_t n);

}  // namespace trackcore::digi
