#pragma once
// Charged-particle motion in a magnetic field: exact helix in a constant Bz, plane intersection by
// Newton's method, and a Runge-Kutta-Nystrom (RK4) step for field maps. Units: mm, GeV, Tesla.
#include <cmath>

#include "trackcore/hostdevice.hpp"

namespace trackcore {

// c in GeV / (T mm): a charge-1 particle with p = 1 GeV in 1 T bends with radius 1 / (kB) = 3336 mm.
constexpr double kB = 0.299792458e-3;

struct State {
    double pos[3];  // mm
    double dir[3];  // unit vector
    double qop;     // charge / momentum, 1/GeV
};

// Curvature per unit path (1/mm) in a field bz along z; its sign carries the charge.
TC_HD double helix_h(double qop, double bz) { return qop * kB * bz; }

// Advance an exact helix by path length s given the turning angle's cosine c and sine sh (of h * s).
// Callers that already hold them (the CKF's cache of the last Newton iterate) share this arithmetic.
TC_HD void helix_advance_turned(const State& in, double h, double s, double c, double sh, State& out) {
    const double hs = h * s;
    double sn, cs1;  // sin(hs)/h and (1 - cos(hs))/h, with series near h = 0 to stay exact for straight lines
    if (std::fabs(hs) < 1e-4) {
        const double hs2 = hs * hs;
        sn = s * (1.0 - hs2 / 6.0);
        cs1 = s * hs * (0.5 - hs2 / 24.0);
    } else {
        sn = sh / h;
        cs1 = (1.0 - c) / h;
    }
    const double tx = in.dir[0], ty = in.dir[1];
    out.pos[0] = in.pos[0] + tx * sn + ty * cs1;
    out.pos[1] = in.pos[1] + ty * sn - tx * cs1;
    out.pos[2] = in.pos[2] + in.dir[2] * s;
    out.dir[0] = tx * c + ty * sh;
    out.dir[1] = ty * c - tx * sh;
    out.dir[2] = in.dir[2];
    out.qop = in.qop;
}

// Advance an exact helix by path length s in a constant field along z (h = helix_h(qop, bz)).
// dir' = h * (dir x z): the transverse direction rotates clockwise for h > 0.
TC_HD void helix_advance(const State& in, double h, double s, State& out) {
    const double hs = h * s;
    // One sin and one cos per step (the compiler does not merge repeated calls: they may set errno).
    const double c = std::cos(hs), sh = std::sin(hs);
    helix_advance_turned(in, h, s, c, sh, out);
}

// Path length s in (s_min, s_max] where the helix meets the plane (point c, normal n); returns false if none.
// Newton's method on f(s) = (pos(s) - c) . n, started from the straight-line estimate.
// The first root of the plane distance f(s) in (s_min, s_max] by scanning in steps of at most a
// quarter turn, then bisecting the first sign change: the fallback for Newton (see below).
TC_HD bool helix_plane_scan(const State& st, double h, const double* c, const double* n, double s_min,
                            double s_max, double& s_out, State& at) {
    auto dist = [&](double s) {
        helix_advance(st, h, s, at);
        return (at.pos[0] - c[0]) * n[0] + (at.pos[1] - c[1]) * n[1] + (at.pos[2] - c[2]) * n[2];
    };
    const double ah = std::fabs(h);
    const double step = ah * 50.0 > 0.25 ? 0.25 / ah : 50.0;
    double a = s_min, fa = dist(a);
    while (a < s_max) {
        const double b = a + step < s_max ? a + step : s_max;
        const double fb = dist(b);
        if ((fa < 0) != (fb < 0) || fb == 0) {
            double lo = a, hi = b, flo = fa;
            for (int it = 0; it < 60 && hi - lo > 1e-9; ++it) {
                const double mid = 0.5 * (lo + hi);
                const double fm = dist(mid);
                if ((fm < 0) == (flo < 0) && fm != 0) { lo = mid; flo = fm; } else { hi = mid; }
            }
            if (!(hi > s_min && hi <= s_max)) return false;
            s_out = hi;
            helix_advance(st, h, hi, at);
            return true;
        }
        a = b;
        fa = fb;
    }
    return false;
}

// Newton's method on the plane distance, with advance(s, at) moving the state along the helix by
// path length s: helix_plane_intersect below, and the CKF's variant that reuses its last sin/cos.
template <class Advance>
TC_HD bool helix_plane_newton(const State& st, double h, const double* c, const double* n, double s_min,
                              double s_max, double& s_out, State& at, bool scan, Advance&& advance) {
    const double f0 = (st.pos[0] - c[0]) * n[0] + (st.pos[1] - c[1]) * n[1] + (st.pos[2] - c[2]) * n[2];
    const double d0 = st.dir[0] * n[0] + st.dir[1] * n[1] + st.dir[2] * n[2];
    if (std::fabs(d0) < 1e-12) return scan && helix_plane_scan(st, h, c, n, s_min, s_max, s_out, at);
    double s = -f0 / d0;
    for (int it = 0; it < 30; ++it) {
        advance(s, at);
        const double f = (at.pos[0] - c[0]) * n[0] + (at.pos[1] - c[1]) * n[1] + (at.pos[2] - c[2]) * n[2];
        const double d = at.dir[0] * n[0] + at.dir[1] * n[1] + at.dir[2] * n[2];
        if (std::fabs(f) < 1e-10) break;
        if (std::fabs(d) < 1e-12 || it == 29) return scan && helix_plane_scan(st, h, c, n, s_min, s_max, s_out, at);
        s -= f / d;
    }
    if (!(s > s_min && s <= s_max)) return scan && helix_plane_scan(st, h, c, n, s_min, s_max, s_out, at);
    s_out = s;
    return true;
}

// Where the helix meets the plane (c, n) with s in (s_min, s_max]: Newton from the straight-line
// guess. With `scan`, where Newton fails or lands outside the range (a curling track meeting a plane
// it runs almost parallel to, near its turning radius), the first crossing found by helix_plane_scan;
// the fit uses that for hits the track search already found, the search itself does not.
TC_HD bool helix_plane_intersect(const State& st, double h, const double* c, const double* n, double s_min,
                                 double s_max, double& s_out, State& at, bool scan = false) {
    return helix_plane_newton(st, h, c, n, s_min, s_max, s_out, at, scan,
                              [&](double s, State& out) { helix_advance(st, h, s, out); });
}

// One RK4 step of length s of d2r/ds2 = qop * kB * (dir x B(pos)); field(pos, B) fills B in Tesla.
template <class Field>
TC_HD void rk4_step(const State& in, const Field& field, double s, State& out) {
    const double lam = in.qop * kB;
    auto accel = [&](const double* p, const double* t, double* a) {
        double b[3];
        field(p, b);
        a[0] = lam * (t[1] * b[2] - t[2] * b[1]);
        a[1] = lam * (t[2] * b[0] - t[0] * b[2]);
        a[2] = lam * (t[0] * b[1] - t[1] * b[0]);
    };
    const double* r = in.pos;
    const double* t = in.dir;
    double k1[3], k2[3], k3[3], k4[3], p[3], tt[3];
    accel(r, t, k1);
    for (int i = 0; i < 3; ++i) {
        p[i] = r[i] + 0.5 * s * t[i] + 0.125 * s * s * k1[i];
        tt[i] = t[i] + 0.5 * s * k1[i];
    }
    accel(p, tt, k2);
    for (int i = 0; i < 3; ++i) tt[i] = t[i] + 0.5 * s * k2[i];
    accel(p, tt, k3);
    for (int i = 0; i < 3; ++i) {
        p[i] = r[i] + s * t[i] + 0.5 * s * s * k3[i];
        tt[i] = t[i] + s * k3[i];
    }
    accel(p, tt, k4);
    double norm = 0;
    for (int i = 0; i < 3; ++i) {
        out.pos[i] = r[i] + s * t[i] + s * s / 6.0 * (k1[i] + k2[i] + k3[i]);
        out.dir[i] = t[i] + s / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
        norm += out.dir[i] * out.dir[i];
    }
    norm = 1.0 / std::sqrt(norm);
    for (int i = 0; i < 3; ++i) out.dir[i] *= norm;
    out.qop = in.qop;
}

// Newton steps on the plane distance of one RK4 step of length s from st, started from a guess s
// (a helix's crossing in the local Bz): the crossing of the plane (c, n) in a field map.
template <class Field>
TC_HD void rk_plane_newton(const State& st, const Field& field, const double* c, const double* n, double& s,
                           State& at) {
    for (int it = 0; it < 8; ++it) {
        rk4_step(st, field, s, at);
        const double f = (at.pos[0] - c[0]) * n[0] + (at.pos[1] - c[1]) * n[1] + (at.pos[2] - c[2]) * n[2];
        const double d = at.dir[0] * n[0] + at.dir[1] * n[1] + at.dir[2] * n[2];
        if (std::fabs(f) < 1e-10 || std::fabs(d) < 1e-12) break;
        s -= f / d;
    }
}

// Where the track meets the plane (c, n) with path length s in (s_min, s_max] in the field `field`:
// the helix crossing in the Bz at the start (Newton, no scan), refined by rk_plane_newton. The
// track search's Stepper::intersect with Runge-Kutta transport, and the GPU batch kernel rk_to_plane.
template <class Field>
TC_HD bool rk_plane_intersect(const State& st, const Field& field, const double* c, const double* n, double s_min,
                              double s_max, double& s, State& at) {
    double b[3];
    field(st.pos, b);
    if (!helix_plane_intersect(st, helix_h(st.qop, b[2]), c, n, s_min - 1.0, s_max + 1.0, s, at, false)) return false;
    rk_plane_newton(st, field, c, n, s, at);
    return s > s_min && s <= s_max;
}

}  // namespace trackcore
