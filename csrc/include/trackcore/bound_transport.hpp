#pragma once
// Bound track states for the GPU track search (csrc/cuda/ckf.cu, trackcore/ckf_device.hpp): the
// detector as flat arrays, transport of a state and its covariance to a module plane, material
// effects and the perigee. The arithmetic of the C++ core's kalman.cpp and navigator.hpp, written
// without std::vector so that it compiles for the device; the host build of ckf.cu (the tests'
// emulation) gives the core's results bit for bit.
#include <cmath>
#include <cstdint>

#include "trackcore/field.hpp"
#include "trackcore/helix.hpp"
#include "trackcore/hostdevice.hpp"
#include "trackcore/kalman_math.hpp"
#include "trackcore/material.hpp"
#include "trackcore/track_params.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {
namespace dev {

constexpr double kPi = 3.14159265358979323846;
constexpr double kTwoPi = 2.0 * kPi;

TC_HD double dmin(double a, double b) { return b < a ? b : a; }
TC_HD double dmax(double a, double b) { return a < b ? b : a; }
TC_HD int imin(int a, int b) { return b < a ? b : a; }
TC_HD int imax(int a, int b) { return a < b ? b : a; }

// Bound parameters (loc0, loc1, phi, theta, q/p) on a module, row-major covariance.
struct Bound {
    double p[5];
    double C[25];
    int module;
};

// The detector's modules, its per-layer (phi, z|r) bin grids (those of the core's Geometry) and
// the material of each layer, as device arrays.
struct GeometryView {
    const double* centre;  // (M, 3) mm
    const double* rot;     // (M, 9) row-major; columns are the local u, v, w axes
    const double* hv;      // (M,) half length in v
    const double* min_hu;  // (M,) half widths in u at v = -hv and +hv
    const double* max_hu;
    const int* layer;      // (M,) layer row
    int n_layers;
    const int* layer_kind;       // (L,) 0 barrel, 1 endcap
    const double* layer_extent;  // (L, 6): r_lo, r_hi, z_lo, z_hi, q_lo, q_hi
    const int* layer_grid;       // (L, 3): nphi, nq, the layer's first bin in bin_start
    const int* bin_start;        // CSR over every layer's bins
    const int* bin_modules;
    const double* layer_x0;      // (L,) x/X0 at normal incidence
    double world_r, world_z;
    const double* half_t;        // (M,) half thickness (the transport's path in silicon; the CKF leaves it null)

    TC_HD const double* c(int m) const { return centre + 3 * m; }
    TC_HD const double* r(int m) const { return rot + 9 * m; }
    TC_HD double half_width(int m, double v) const {
        return min_hu[m] + (max_hu[m] - min_hu[m]) * (v + hv[m]) / (2.0 * hv[m]);
    }
};

// navigator.hpp's Stepper without its caches (which change no bits): exact helix in a constant
// field, Runge-Kutta with Newton on the RK step in a field map.
struct Stepper {
    FieldView field;
    bool rk;
    bool scan_fallback;  // the fit's transport: helix_plane_intersect's scan where Newton fails

    TC_HD double local_bz(const State& s) const {
        if (field.constant) return field.bz;
        double b[3];
        field(s.pos, b);
        return b[2];
    }
    TC_HD void advance(const State& in, double s, State& out) const {
        if (rk) rk4_step(in, field, s, out);
        else helix_advance(in, helix_h(in.qop, field.bz), s, out);
    }
    TC_HD bool intersect(const State& st, const double* c, const double* n, double s_min, double s_max, double& s,
                         State& at) const {
        const double h = helix_h(st.qop, local_bz(st));
        if (!helix_plane_intersect(st, h, c, n, s_min - 1.0, s_max + 1.0, s, at, scan_fallback)) return false;
        if (rk) rk_plane_newton(st, field, c, n, s, at);
        return s > s_min && s <= s_max;
    }
    TC_HD double step_length(const State& st, double max_step, double max_turn) const {
        const double h = helix_h(st.qop, local_bz(st));
        return std::fabs(h) > 0 ? dmin(max_step, max_turn / std::fabs(h)) : max_step;
    }
};

TC_HD void state_of(const GeometryView& g, const Bound& b, State& st) {
    bound_to_state(g.c(b.module), g.r(b.module), b.p, st);
}

TC_HD void normal_of(const GeometryView& g, int m, double* n) {
    const double* r = g.r(m);
    n[0] = r[2], n[1] = r[5], n[2] = r[8];
}

// Crossing of module m's plane forward (direction +1) or backward (-1: reverse, go forward, reverse back).
TC_HD bool intersect_module(const GeometryView& g, const Stepper& stepper, int m, const State& st, int direction,
                            double max_path, double& s, State& at) {
    double n[3];
    normal_of(g, m, n);
    if (direction > 0) return stepper.intersect(st, g.c(m), n, 1e-9, max_path, s, at);
    State rev = st;
    for (int k = 0; k < 3; ++k) rev.dir[k] = -rev.dir[k];
    rev.qop = -st.qop;
    if (!stepper.intersect(rev, g.c(m), n, 1e-9, max_path, s, at)) return false;
    for (int k = 0; k < 3; ++k) at.dir[k] = -at.dir[k];
    at.qop = -at.qop;
    s = -s;
    return true;
}

// out = J C J^T, symmetrised.
TC_HD void sandwich(const double* J, const double* C, double* out) {
    double T[25];
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j) {
            double acc = 0;
            for (int k = 0; k < 5; ++k) acc += J[5 * i + k] * C[5 * k + j];
            T[5 * i + j] = acc;
        }
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j) {
            double acc = 0;
            for (int k = 0; k < 5; ++k) acc += T[5 * i + k] * J[5 * j + k];
            out[5 * i + j] = acc;
        }
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < i; ++j) out[5 * i + j] = out[5 * j + i] = 0.5 * (out[5 * i + j] + out[5 * j + i]);
}

// Finite-difference steps per parameter: loc (mm), angles (rad), q/p (relative).
TC_HD double fd_step(int i, const double* p) {
    if (i < 2) return 1e-4;
    if (i < 4) return 1e-7;
    return 1e-6 * std::fabs(p[4]) + 1e-12;
}

// The analytic bound-to-bound Jacobian of the exact helix in a constant Bz (the ACTS decomposition,
// for a 7-vector (x, y, z, tx, ty, tz, q/p)): bound -> free on the start plane (rotation from_rot),
// free transport over the signed path s, path correction onto the target plane (to_rot), free ->
// bound there. Given sin and cos of the start's phi (sp, cp) and theta (st, ct) and of the turning
// angle h s (sn, c). Returns true when rows 3 and 4 of J are (0, 0, 0, J33, 0) and (0, 0, 0, 0, J44)
// exactly: always, unless the path correction is not finite (a track parallel to the target plane).
// The C++ core's transport (kalman.cpp) and the GPU CKF both use it.
TC_HDI bool helix_jacobian_turned(const double* fr, const double* tr, double sp, double cp, double st, double ct,
                                  double c, double sn, const State& st0, const State& at, double s, double bz,
                                  double* J) {
    double B[7][5] = {};
    for (int k = 0; k < 3; ++k) {
        B[k][0] = fr[3 * k + 0];
        B[k][1] = fr[3 * k + 1];
    }
    B[3][2] = -st * sp; B[4][2] = st * cp;
    B[3][3] = ct * cp; B[4][3] = ct * sp; B[5][3] = -st;
    B[6][4] = 1.0;
    const double h = helix_h(st0.qop, bz), hs = h * s;
    double S, C1, dS, dC1;  // sin(hs)/h, (1-cos hs)/h and their h-derivatives
    if (std::fabs(hs) < 1e-3) {
        const double s2 = s * s, s3 = s2 * s;
        S = s - h * h * s3 / 6.0;
        C1 = h * s2 / 2.0 - h * h * h * s2 * s2 / 24.0;
        dS = -h * s3 / 3.0 + h * h * h * s3 * s2 / 30.0;
        dC1 = s2 / 2.0 - h * h * s2 * s2 / 8.0;
    } else {
        S = sn / h;
        C1 = (1.0 - c) / h;
        dS = (s * c - S) / h;
        dC1 = (s * sn - C1) / h;
    }
    const double tx = st0.dir[0], ty = st0.dir[1];
    const double dh = kB * bz;  // dh / d(q/p)
    double T[7][7] = {};
    for (int k = 0; k < 7; ++k) T[k][k] = 1.0;
    // position rows
    T[0][3] = S;   T[0][4] = C1;
    T[1][3] = -C1; T[1][4] = S;
    T[2][5] = s;
    T[0][6] = (tx * dS + ty * dC1) * dh;
    T[1][6] = (ty * dS - tx * dC1) * dh;
    // direction rows
    T[3][3] = c;   T[3][4] = sn;
    T[4][3] = -sn; T[4][4] = c;
    T[5][5] = 1.0;
    T[3][6] = (-tx * s * sn + ty * s * c) * dh;
    T[4][6] = (-ty * s * sn - tx * s * c) * dh;
    // path correction: the transported track is moved along itself back onto the target plane
    const double n[3] = {tr[2], tr[5], tr[8]};
    const double denom = n[0] * at.dir[0] + n[1] * at.dir[1] + n[2] * at.dir[2];
    const double h_at = helix_h(at.qop, bz);
    const double dFds[7] = {at.dir[0], at.dir[1], at.dir[2], h_at * at.dir[1], -h_at * at.dir[0], 0.0, 0.0};
    double gv[7];
    bool finite = true;
    for (int j = 0; j < 7; ++j) {
        gv[j] = (n[0] * T[0][j] + n[1] * T[1][j] + n[2] * T[2][j]) / denom;
        finite = finite && std::isfinite(gv[j]);
    }
    // Rows 5 and 6 (tz, q/p) have dFds = 0: subtracting 0 * g changes none of their bits while g is finite.
    for (int i = 0; i < (finite ? 5 : 7); ++i)
        for (int j = 0; j < 7; ++j) T[i][j] -= dFds[i] * gv[j];
    // free -> bound at the target
    double F[5][7] = {};
    for (int k = 0; k < 3; ++k) {
        F[0][k] = tr[3 * k + 0];
        F[1][k] = tr[3 * k + 1];
    }
    const double txy2 = at.dir[0] * at.dir[0] + at.dir[1] * at.dir[1];
    F[2][3] = -at.dir[1] / txy2;
    F[2][4] = at.dir[0] / txy2;
    F[3][5] = -1.0 / std::sqrt(std::fmax(1.0 - at.dir[2] * at.dir[2], 1e-300));
    F[4][6] = 1.0;
    // T B and F (T B) over the structural non-zeros of B (position rows: loc u, v; direction rows:
    // phi, theta; q/p) and F, added in the order of the full products, so the sums are the same.
    double TB[7][5];
    for (int i = 0; i < 7; ++i) {
        for (int j = 0; j < 2; ++j) TB[i][j] = T[i][0] * B[0][j] + T[i][1] * B[1][j] + T[i][2] * B[2][j];
        TB[i][2] = T[i][3] * B[3][2] + T[i][4] * B[4][2];
        TB[i][3] = T[i][3] * B[3][3] + T[i][4] * B[4][3] + T[i][5] * B[5][3];
        TB[i][4] = T[i][6] * B[6][4];
    }
    for (int j = 0; j < 5; ++j) {
        for (int i = 0; i < 2; ++i) J[5 * i + j] = F[i][0] * TB[0][j] + F[i][1] * TB[1][j] + F[i][2] * TB[2][j];
        J[10 + j] = F[2][3] * TB[3][j] + F[2][4] * TB[4][j];
        J[15 + j] = F[3][5] * TB[5][j];
        J[20 + j] = F[4][6] * TB[6][j];
    }
    return finite;
}

// helix_jacobian_turned from bound parameters p (phi p[2], theta p[3]) on module `from` of g.
TC_HDI void helix_jacobian(const GeometryView& g, int from, int to, const double* p, const State& st0,
                           const State& at, double s, double bz, double* J) {
    const double hs = helix_h(st0.qop, bz) * s;
    helix_jacobian_turned(g.r(from), g.r(to), std::sin(p[2]), std::cos(p[2]), std::sin(p[3]), std::cos(p[3]),
                          std::cos(hs), std::sin(hs), st0, at, s, bz, J);
}

// Transport of `in` to module `target` (direction +1 along the momentum, -1 backward) within
// max_path, with its covariance: analytic helix Jacobian in a constant field with the helix stepper,
// finite differences through the same transport otherwise. False when the plane is not met.
TC_HDN bool transport_bound(const GeometryView& g, const Stepper& stepper, const Bound& in, int target, int direction,
                            double max_path, Bound& out, double& path) {
    State st;
    state_of(g, in, st);
    State at;
    double s;
    if (!intersect_module(g, stepper, target, st, direction, max_path, s, at)) return false;
    out.module = target;
    state_to_bound(g.c(target), g.r(target), at, out.p);
    path = s;
    double J[25] = {};
    if (stepper.field.constant && !stepper.rk) {
        helix_jacobian(g, in.module, target, in.p, st, at, s, stepper.field.bz, J);
    } else {
        for (int i = 0; i < 5; ++i) {
            Bound q = in;
            const double h = fd_step(i, in.p);
            q.p[i] += h;
            State sq;
            state_of(g, q, sq);
            State aq;
            double s2;
            if (!intersect_module(g, stepper, target, sq, direction, std::fabs(s) * 2 + 10.0, s2, aq)) return false;
            double pq[5];
            state_to_bound(g.c(target), g.r(target), aq, pq);
            for (int r = 0; r < 5; ++r) {
                double d = pq[r] - out.p[r];
                if (r == 2) d = wrap_phi(d);
                J[5 * r + i] = d / h;
            }
        }
    }
    sandwich(J, in.C, out.C);
    return true;
}

// Highland scattering and mean energy loss of x0 (x/X0 at normal incidence) on a module of rotation
// rot, for bound parameters p and covariance C with sines of phi (sp, cp) and theta (sth, cth);
// direction -1 restores the energy lost (backward filtering). The C++ core's apply_material and the
// GPU CKF's both.
TC_HDI void material_update(const double* rot, double sp, double cp, double sth, double cth, double x0, double mass,
                            int direction, double* p, double* C) {
    if (x0 <= 0) return;
    const double d[3] = {sth * cp, sth * sp, cth};
    const double cos_inc = std::fmax(std::fabs(d[0] * rot[2] + d[1] * rot[5] + d[2] * rot[8]), 1e-3);
    const double x = x0 / cos_inc;
    const double pm = 1.0 / std::fabs(p[4]);
    const double t0 = highland_theta0(pm, mass, x);
    const double sin_t = std::fmax(sth, 1e-6);
    C[5 * 2 + 2] += t0 * t0 / (sin_t * sin_t);
    C[5 * 3 + 3] += t0 * t0;
    const double e = std::sqrt(pm * pm + mass * mass);
    const double de = bethe_bloch_si(pm, mass) * x * silicon::X0_mm;
    const double e_new = direction > 0 ? e - de : e + de;
    if (e_new <= mass * 1.0001) return;
    const double p_new = std::sqrt(e_new * e_new - mass * mass);
    const double scale = pm / p_new;  // q/p scales by p/p_new; so do its covariance terms
    p[4] *= scale;
    for (int i = 0; i < 5; ++i) {
        C[5 * 4 + i] *= scale;
        C[5 * i + 4] *= scale;
    }
}

TC_HDI void apply_material(const GeometryView& g, Bound& st, double x0, double mass, int direction) {
    if (x0 <= 0) return;
    material_update(g.r(st.module), std::sin(st.p[2]), std::cos(st.p[2]), std::sin(st.p[3]), std::cos(st.p[3]), x0,
                    mass, direction, st.p, st.C);
}

TC_HD double kalman_update(Bound& st, double mu, double mv, double var_u, double var_v, bool dry_run) {
    return kalman_update_2d(st.p, st.C, mu, mv, var_u, var_v, dry_run);
}

// Perigee parameters (d0, z0, phi, theta, q/p) of the helix through bound parameters bp on the
// plane (centre, rot), in the field's Bz at that point.
TC_HDI bool perigee_of(const double* centre, const double* rot, const FieldView& field, const double* bp,
                       double* out) {
    State s0;
    bound_to_state(centre, rot, bp, s0);
    double bz = field.bz;
    if (!field.constant) {
        double b[3];
        field(s0.pos, b);
        bz = b[2];
    }
    const double h = helix_h(s0.qop, bz);
    double s;
    if (!perigee_path(s0, h, s)) return false;
    State at;
    helix_advance(s0, h, s, at);
    state_to_perigee(at, out);
    return true;
}

// The perigee parameters p of bound parameters bp (covariance C_in) on the plane (centre, rot), and
// their covariance C by a finite-difference Jacobian: the C++ core's to_perigee and the GPU CKF's.
TC_HDN bool perigee_with_covariance(const double* centre, const double* rot, const FieldView& field,
                                    const double* bp, const double* C_in, double* p, double* C) {
    if (!perigee_of(centre, rot, field, bp, p)) return false;
    double J[25] = {};
    for (int i = 0; i < 5; ++i) {
        double q[5];
        for (int k = 0; k < 5; ++k) q[k] = bp[k];
        const double h = fd_step(i, bp);
        q[i] += h;
        double pq[5];
        if (!perigee_of(centre, rot, field, q, pq)) return false;
        for (int r = 0; r < 5; ++r) {
            double d = pq[r] - p[r];
            if (r == 2) d = wrap_phi(d);
            J[5 * r + i] = d / h;
        }
    }
    sandwich(J, C_in, C);
    return true;
}

TC_HDI bool to_perigee(const GeometryView& g, const Stepper& stepper, const Bound& st, double* p, double* C) {
    return perigee_with_covariance(g.c(st.module), g.r(st.module), stepper.field, st.p, st.C, p, C);
}

}  // namespace dev
}  // namespace trackcore
