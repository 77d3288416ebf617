// The simulation's hot loop on the GPU (trackcore/backends/cupy_kernels/simulation.py drives it):
// tc_transport carries one particle per thread through the detector (trackcore/transport_device.hpp,
// the C++ core's transport_one), writing its crossings into rows first + ip * max_crossings onwards;
// tc_digitize_count / tc_digitize_write share crossings' charge over cells (two passes: count, then
// write at exclusive offsets); tc_cluster_modules clusters one module's cells per thread.
#include "trackcore/digitization_device.hpp"
#include "trackcore/transport_device.hpp"

using trackcore::dev::CrossingsOut;
using trackcore::dev::GeometryView;
using trackcore::dev::TransportOutcome;

// Particles first .. first + n - 1; cand holds kTransportMaxCand ints per thread of the wave. Per
// particle: count (crossings), status (0 ok, 1 more than 2e7 steps, 2 candidate list full) and, on
// status 1, the step length and momentum of the last step (fail, 2 per particle).
extern "C" __global__ void tc_transport(long long first, long long n, const double* vertex, const double* momentum,
                                        const int* charge, const double* mass, const double* centre,
                                        const double* rot, const double* half_t, const double* hv,
                                        const double* min_hu, const double* max_hu, const int* layer, int n_layers,
                                        const int* layer_kind, const double* layer_extent, const int* layer_grid,
                                        const int* bin_start, const int* bin_modules, const double* layer_x0,
                                        double world_r, double world_z, double bz, int nr, int nz, double r0,
                                        double dr, double z0, double dz, const double* br_grid,
                                        const double* bz_grid, const double* config, unsigned long long seed,
                                        int* cand, long long* module_out, double* pos, double* mom, double* local,
                                        double* dir_local, double* edep, double* path, int* count, int* status,
                                        double* fail) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const long long ip = first + i;
    const GeometryView geo{centre, rot, hv, min_hu, max_hu, layer, n_layers, layer_kind, layer_extent, layer_grid,
                           bin_start, bin_modules, layer_x0, world_r, world_z, half_t};
    trackcore::FieldView field{};
    field.constant = nr == 0;
    field.bz = bz;
    if (nr > 0) {
        field.br_grid = br_grid, field.bz_grid = bz_grid;
        field.r0 = r0, field.dr = dr, field.z0 = z0, field.dz = dz, field.nr = nr, field.nz = nz;
    }
    const auto cfg = trackcore::dev::transport_settings(config, seed);
    const CrossingsOut out{reinterpret_cast<int64_t*>(module_out), pos, mom, local, dir_local, edep, path};
    const TransportOutcome res = trackcore::dev::transport_particle(
        geo, field, vertex + 3 * ip, momentum + 3 * ip, charge[ip], mass[ip], static_cast<uint64_t>(ip), cfg,
        cand + i * static_cast<long long>(trackcore::dev::kTransportMaxCand), out,
        ip * static_cast<long long>(cfg.max_crossings));
    count[ip] = res.n_cross;
    status[ip] = res.status;
    fail[2 * ip] = res.fail_step;
    fail[2 * ip + 1] = res.fail_p;
}

// ---- digitisation (trackcore/digitization_device.hpp) ------------------------------------------------

namespace {
__device__ __forceinline__ long long sim_thread() { return blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; }
}  // namespace

// Pass 1 of digitize_segments: the number of cell pieces of each crossing.
extern "C" __global__ void tc_digitize_count(long long n, const long long* module_index, const double* segments,
                                             const double* charge, const double* shapes, long long* count) {
    const long long i = sim_thread();
    if (i >= n) return;
    long long c = 0;
    trackcore::dev::deposit_segment(segments + 4 * i, charge[i], shapes + trackcore::dev::kShapeCols * module_index[i],
                                    [&](int64_t, int64_t, double) { ++c; });
    count[i] = c;
}

// Pass 2: crossing i's pieces at rows offset[i] onwards, in traversal order.
extern "C" __global__ void tc_digitize_write(long long n, const long long* module_index, const double* segments,
                                             const double* charge, const double* shapes, const long long* offset,
                                             long long* crossing, long long* ch0, long long* ch1, double* q) {
    const long long i = sim_thread();
    if (i >= n) return;
    long long row = offset[i];
    trackcore::dev::deposit_segment(segments + 4 * i, charge[i], shapes + trackcore::dev::kShapeCols * module_index[i],
                                    [&](int64_t c0, int64_t c1, double piece) {
                                        crossing[row] = i;
                                        ch0[row] = c0;
                                        ch1[row] = c1;
                                        q[row] = piece;
                                        ++row;
                                    });
}

// One module's cells per thread: cells start[s] .. start[s + 1] - 1 (sorted by (module, ch0, ch1)).
// label: the cluster number within the module; n_clusters[s]: the module's clusters.
extern "C" __global__ void tc_cluster_modules(long long n_modules, const long long* start, const long long* ch0,
                                              const long long* ch1, long long* parent, long long* label,
                                              long long* n_clusters) {
    const long long s = sim_thread();
    if (s >= n_modules) return;
    n_clusters[s] = trackcore::dev::cluster_module(reinterpret_cast<const int64_t*>(ch0),
                                                   reinterpret_cast<const int64_t*>(ch1), start[s], start[s + 1],
                                                   reinterpret_cast<int64_t*>(parent),
                                                   reinterpret_cast<int64_t*>(label));
}
