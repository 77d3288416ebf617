// The simulation's hot loop on the GPU (trackcore/backends/cupy_kernels/simulation.py drives it):
// tc_transport carries one particle per thread through the detector (trackcore/transport_device.hpp,
// the C++ core's transport_one), writing its crossings into rows first + ip * max_crossings onwards.
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
