#pragma once
// Track parameters. Bound to a module plane: (loc0, loc1, phi, theta, q/p) with loc in the module's
// local (u, v) frame and phi, theta the global direction angles. Perigee (reference: the z axis):
// (d0, z0, phi, theta, q/p) with the point of closest approach at (-d0 sin(phi), d0 cos(phi), z0).
#include <cmath>

#include "trackcore/helix.hpp"
#include "trackcore/hostdevice.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {

TC_HD void direction_from_angles(double phi, double theta, double* d) {
    d[0] = std::sin(theta) * std::cos(phi);
    d[1] = std::sin(theta) * std::sin(phi);
    d[2] = std::cos(theta);
}

TC_HD double wrap_phi(double phi) {
    const double pi = 3.14159265358979323846;
    while (phi > pi) phi -= 2 * pi;
    while (phi <= -pi) phi += 2 * pi;
    return phi;
}

// Bound parameters on the plane (centre, rot) -> global state.
TC_HD void bound_to_state(const double* centre, const double* rot, const double* p, State& st) {
    const double local[3] = {p[0], p[1], 0.0};
    to_global(centre, rot, local, st.pos);
    direction_from_angles(p[2], p[3], st.dir);
    st.qop = p[4];
}

// Global state (on the plane) -> bound parameters.
TC_HD void state_to_bound(const double* centre, const double* rot, const State& st, double* p) {
    double local[3];
    to_local(centre, rot, st.pos, local);
    p[0] = local[0];
    p[1] = local[1];
    p[2] = std::atan2(st.dir[1], st.dir[0]);
    p[3] = std::acos(std::fmax(-1.0, std::fmin(1.0, st.dir[2])));
    p[4] = st.qop;
}

// Path length to the point of closest approach to the z axis (Newton on x*tx + y*ty = 0).
TC_HD bool perigee_path(const State& st, double h, double& s_out) {
    double s = 0;
    State at = st;
    for (int it = 0; it < 50; ++it) {
        helix_advance(st, h, s, at);
        const double g = at.pos[0] * at.dir[0] + at.pos[1] * at.dir[1];
        // d/ds: tx^2 + ty^2 + x*tx' + y*ty', with t' = h (ty, -tx)
        const double dg = at.dir[0] * at.dir[0] + at.dir[1] * at.dir[1] +
                          h * (at.pos[0] * at.dir[1] - at.pos[1] * at.dir[0]);
        if (std::fabs(g) < 1e-11) { s_out = s; return true; }
        if (std::fabs(dg) < 1e-14) return false;
        s -= g / dg;
    }
    return false;
}

TC_HD void state_to_perigee(const State& st, double* p) {
    p[2] = std::atan2(st.dir[1], st.dir[0]);
    p[0] = -st.pos[0] * std::sin(p[2]) + st.pos[1] * std::cos(p[2]);
    p[1] = st.pos[2];
    p[3] = std::acos(std::fmax(-1.0, std::fmin(1.0, st.dir[2])));
    p[4] = st.qop;
}

}  // namespace trackcore
