#pragma once
// Module frames: global = centre + R * local, with R's columns the local u, v, w axes in the
// global frame (TrackML's rot_xu..rot_zw, row-major). Shared by host and device code.
#include "trackcore/hostdevice.hpp"

namespace trackcore {

TC_HD void to_local(const double* centre, const double* rot, const double* g, double* l) {
    const double d0 = g[0] - centre[0], d1 = g[1] - centre[1], d2 = g[2] - centre[2];
    // R^T * d: rot[r*3 + c] is row r, column c.
    l[0] = rot[0] * d0 + rot[3] * d1 + rot[6] * d2;
    l[1] = rot[1] * d0 + rot[4] * d1 + rot[7] * d2;
    l[2] = rot[2] * d0 + rot[5] * d1 + rot[8] * d2;
}

TC_HD void to_global(const double* centre, const double* rot, const double* l, double* g) {
    g[0] = centre[0] + rot[0] * l[0] + rot[1] * l[1] + rot[2] * l[2];
    g[1] = centre[1] + rot[3] * l[0] + rot[4] * l[1] + rot[5] * l[2];
    g[2] = centre[2] + rot[6] * l[0] + rot[7] * l[1] + rot[8] * l[2];
}

}  // namespace trackcore
