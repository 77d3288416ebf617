#pragma once
// Silicon digitisation: charge sharing of straight crossings over a module's cell grid, and
// 8-connected clustering of fired cells. The numpy twin is trackcore/sim/digitization.py; both
// must produce bit-identical cells, so the arithmetic here follows it operation for operation.
#include <cstdint>
#include <vector>

namespace trackcore::digi {

// Module shape, one row per detector module: min_hu, max_hu, hv, pitch_u, pitch_v (mm).
constexpr int kShapeCols = 5;

// Fractions of the parameter range [0, 1] shorter than this are dropped: they only arise where a
// segment passes (numerically) through a grid corner and carry no charge worth a cell.
constexpr double kMinPiece = 1e-12;
// A projected displacement below this (mm) counts as none: the crossing is perpendicular in that axis.
constexpr double kMinStep = 1e-12;

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
                     std::vector<double>& scratch_u, std::vector<double>& scratch_v,
                     std::vector<Contribution>& out);

// Cluster label of each cell (0..K-1, numbered by each cluster's first cell). Cells must be
// sorted by (module, ch0, ch1) without duplicates; 8-connectivity within a module.
std::vector<std::int64_t> cluster_cells(const std::int64_t* module, const std::int64_t* ch0,
                                        const std::int64_t* ch1, std::int64_t n);

}  // namespace trackcore::digi
