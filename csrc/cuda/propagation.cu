// Batched propagation: each thread carries one track from its state to its own target plane, as an
// exact helix in a constant Bz, or by Runge-Kutta in an (r, z) field map (trackcore/helix.hpp and
// trackcore/field.hpp, the arithmetic of the compiled core).
#include "trackcore/field.hpp"
#include "trackcore/helix.hpp"

namespace {

// Track i of the (N, 3) positions (mm) and unit directions and the (N) q/p (1/GeV).
__device__ __forceinline__ trackcore::State track_state(long long i, const double* pos, const double* dir,
                                                        const double* qop) {
    trackcore::State st;
    for (int k = 0; k < 3; ++k) {
        st.pos[k] = pos[3 * i + k];
        st.dir[k] = dir[3 * i + k];
    }
    st.qop = qop[i];
    return st;
}

// Track i's result: ok = 1, path length and state on the plane; or ok = 0 and NaN where it has none.
__device__ __forceinline__ void store_crossing(long long i, bool hit, double s, const trackcore::State& at,
                                               unsigned char* ok, double* s_out, double* pos_out, double* dir_out) {
    ok[i] = hit ? 1 : 0;
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    s_out[i] = hit ? s : nan;
    for (int k = 0; k < 3; ++k) {
        pos_out[3 * i + k] = hit ? at.pos[k] : nan;
        dir_out[3 * i + k] = hit ? at.dir[k] : nan;
    }
}

}  // namespace

// pos, dir (N, 3) mm / unit; qop (N) 1/GeV; plane point and unit normal (N, 3); bz Tesla. A track
// that does not meet its plane with path length in (s_min, s_max] gets ok = 0 and NaN outputs.
extern "C" __global__ void tc_helix_to_plane(long long n, const double* pos, const double* dir, const double* qop,
                                             double bz, const double* centre, const double* normal, double s_min,
                                             double s_max, unsigned char* ok, double* s_out, double* pos_out,
                                             double* dir_out) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const trackcore::State st = track_state(i, pos, dir, qop);
    trackcore::State at;
    double s = 0;
    const bool hit = trackcore::helix_plane_intersect(st, trackcore::helix_h(st.qop, bz), centre + 3 * i,
                                                      normal + 3 * i, s_min, s_max, s, at);
    store_crossing(i, hit, s, at, ok, s_out, pos_out, dir_out);
}

// As tc_helix_to_plane in the field map (r0, dr, nr, z0, dz, nz; br, bz (nr, nz) Tesla), or in a constant
// field bz_const when nr == 0: the helix crossing in the Bz at the start, refined by Newton steps on one
// Runge-Kutta step (trackcore::rk_plane_intersect, the track search's transport in a field map).
extern "C" __global__ void tc_rk_to_plane(long long n, const double* pos, const double* dir, const double* qop,
                                          double bz_const, double r0, double dr, int nr, double z0, double dz, int nz,
                                          const double* br_grid, const double* bz_grid, const double* centre,
                                          const double* normal, double s_min, double s_max, unsigned char* ok,
                                          double* s_out, double* pos_out, double* dir_out) {
    const long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    trackcore::FieldView field;
    field.constant = nr == 0;
    field.bz = bz_const;
    field.br_grid = br_grid;
    field.bz_grid = bz_grid;
    field.r0 = r0;
    field.dr = dr;
    field.nr = nr;
    field.z0 = z0;
    field.dz = dz;
    field.nz = nz;
    const trackcore::State st = track_state(i, pos, dir, qop);
    trackcore::State at;
    double s = 0;
    const bool hit = trackcore::rk_plane_intersect(st, field, centre + 3 * i, normal + 3 * i, s_min, s_max, s, at);
    store_crossing(i, hit, s, at, ok, s_out, pos_out, dir_out);
}
