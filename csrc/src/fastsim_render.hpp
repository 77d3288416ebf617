#pragma once
// Fast simulation (plugins/fastsim_gan): generator conditions of crossings and the rendering of one
// staircase cluster per crossing from generated observables. The numpy twin is
// plugins/fastsim_gan/clusters.py (conditions_numpy, render_numpy); the cells must be bit-identical,
// so the arithmetic here follows it operation for operation (no FMA contraction: see the .cpp).
#include <cmath>
#include <cstdint>
#include <string>
#include <stdexcept>
#include <vector>

#include "fastsim_mlp.hpp"

namespace trackcore::fastsim {

// Module table, one row per detector module: max_hu, hv, pitch_u, pitch_v (mm), cells along u and
// v, binary readout (0/1), module class (0..3), threshold (electrons).
constexpr int kModuleCols = 9;
constexpr int kConditions = 14;
constexpr int kObservables = 6;

// Module rows (from the table above) a loop over crossings will need soon; see conditions_row's callers.
void prefetch_rows(const std::int64_t* module_index, std::int64_t i, std::int64_t n, const double* modules);

// Conditions of crossing i into row[0..kConditions): see clusters.CONDITION_NAMES.
// seg: u0, v0, u1, v1 (mm); edep (GeV); p: momentum (GeV, 3 values).
void conditions_row(const double* seg, double edep, const double* p, const double* module, double electrons_per_gev,
                    float* row);

// Rendering, in two passes so that the caller allocates the outputs once. T is float or double
// (the observables' dtype); electrons: (N,) charge per cluster, obs: (N, kObservables).
// Pass 1: the number of clusters with cells and of cells in all.
template <class T>
void render_count(const std::int64_t* module_index, const double* segments, const double* electrons, const T* obs,
                  std::int64_t n, const double* modules, std::int64_t& n_clusters, std::int64_t& n_cells);

// Pass 2: clusters in crossing order (those without cells omitted): crossing row, cell count, charge
// (the given electrons) and value-weighted centroid (local mm, 2 per cluster); their cells
// grouped by cluster (channels, value in MIP-equivalent mm, 1 for binary readout).
struct RenderOut {
    std::int64_t* cluster;
    std::int64_t* size;
    double* charge;
    double* local;
    std::int32_t* ch0;
    std::int32_t* ch1;
    double* value;
    std::int64_t n_clusters, n_cells;  // capacities (render_count's results)
};
template <class T>
void render_fill(const std::int64_t* module_index, const double* segments, const double* electrons, const T* obs,
                 std::int64_t n, const double* modules, double value_per_electron, const RenderOut& out);

// The generator of plugins/fastsim_gan/model.py (NumpyGenerator), normalisation folded in: a
// classifier MLP (conditions -> logits of K joint integer classes), then a generator MLP
// (conditions + noise -> log_charge, res_u, res_v) whose first layer also adds the sampled class's
// row of `embed`. Weights are row-major (inputs x outputs) float32, Leaky-ReLU(leak) between layers.
struct Generator {
    const Layer* classifier;
    int n_classifier;
    const Layer* generator;
    int n_generator;
    const float* embed;    // (K, generator[0].n_out)
    const float* classes;  // (K, 3) d_width_u, d_width_v, d_size
    int n_classes;
    float leak;
};
constexpr int kNoise = 4;

// Observables of n crossings into obs (n, kObservables) and the charge of each cluster into
// electrons (n,): conditions, counter-based noise of `seed` (model.hash_uniforms), classifier,
// class sampled by inverse CDF, generator. Float32 arithmetic, so equal to the numpy reference
// within float tolerance (not bit for bit: its matrix products add in another order).
// obs and electrons may be null (not kept) when `cells` is given.
// With `cells` given, each block of crossings is also rendered as soon as its observables are made
// (while its rows are in cache, and with no counting pass): the clusters and cells render_fill would
// give, appended to the buffers; observables that are not finite or out of range
// (|integer observables| > kMaxObservedCells) throw std::invalid_argument naming the row.
// With `centres` and `rotations` (the detector's module frames, (M, 3) and (M, 3, 3)) set, also each
// cluster's global position (to_global of its local centroid, w = 0) and each cell's hit id
// (first_hit_id + its cluster's rank), so the hit tables need no further pass over the clusters.
struct RenderBuffers {
    std::vector<std::int64_t> cluster, size;
    std::vector<double> charge, local;
    std::vector<std::int32_t> ch0, ch1;
    std::vector<double> value;
    const double* centres = nullptr;
    const double* rotations = nullptr;
    std::int64_t first_hit_id = 1;
    std::vector<double> global;          // (K, 3), when centres and rotations are set
    std::vector<std::int64_t> cell_hit;  // (cells,), when centres and rotations are set
};
constexpr double kMaxObservedCells = 2097152.0;  // 2^21
constexpr double kMaxLogCharge = 50.0;

// Whether observable c of a row is usable: finite, widths / drops / centroid residuals (cells) within
// kMaxObservedCells, log charge within kMaxLogCharge. Beyond these the generator is broken, and
// the cell arithmetic would leave the int64 range or allocate without bound.
inline bool observable_in_range(int c, double v) {
    const double bound = c == 3 ? kMaxLogCharge : kMaxObservedCells;
    return std::abs(v) <= bound;  // false for NaN too
}
std::string observable_error(std::int64_t row, int c, double v);
void generate(const std::int64_t* module_index, const double* segments, const double* edep, const double* momentum,
              std::int64_t n, const double* modules, double electrons_per_gev, const Generator& g,
              std::uint64_t seed, float* obs, double* electrons, double value_per_electron = 1.0,
              RenderBuffers* cells = nullptr);

}  // namespace trackcore::fastsim
