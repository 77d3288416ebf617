#include "kalman.hpp"

#include <cmath>
#include <cstring>

#include "trackcore/bound_transport.hpp"
#include "trackcore/kalman_math.hpp"
#include "trackcore/material.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {

namespace {

State state_of(const Geometry& geo, const BoundState& b) {
    const Module& m = geo.modules()[b.module];
    State st;
    bound_to_state(m.centre, m.rot, b.p.data(), st);
    return st;
}

bool intersect_module(const Stepper& stepper, const Module& m, const State& st, int direction, double max_path,
                      double& s, State& at) {
    const double n[3] = {m.rot[2], m.rot[5], m.rot[8]};
    if (direction > 0) return stepper.intersect(st, m.centre, n, 1e-9, max_path, s, at);
    // Backward: reverse the momentum, go forward, reverse back.
    State rev = st;
    for (double& d : rev.dir) d = -d;
    rev.qop = -st.qop;
    if (!stepper.intersect(rev, m.centre, n, 1e-9, max_path, s, at)) return false;
    for (double& d : at.dir) d = -d;
    at.qop = -at.qop;
    s = -s;
    return true;
}

// J C J^T, symmetrised (the shared host/device function).
void sandwich(const Mat5& J, const Mat5& C, Mat5& out) { dev::sandwich(J.data(), C.data(), out.data()); }

// Finite-difference steps per parameter: loc (mm), angles (rad), q/p (relative).
double fd_step(int i, const Vec5& p) { return dev::fd_step(i, p.data()); }

}  // namespace

namespace {

// The analytic helix Jacobian (trackcore/bound_transport.hpp, shared with the GPU CKF), with sin and
// cos of the start's angles (sp, cp, st, ct) and of the turning angle (sn, c) given; returns whether
// rows 3 and 4 have their structural zeros (sandwich_helix may be used).
bool helix_jacobian(const Module& from, const Module& to, double sp, double cp, double st, double ct, double c,
                    double sn, const State& st0, const State& at, double s, double bz, Mat5& J) {
    return dev::helix_jacobian_turned(from.rot, to.rot, sp, cp, st, ct, c, sn, st0, at, s, bz, J.data());
}

void helix_jacobian(const Module& from, const Module& to, const Vec5& p, const State& st0, const State& at,
                    double s, double bz, Mat5& J) {
    const double sp = std::sin(p[2]), cp = std::cos(p[2]), st = std::sin(p[3]), ct = std::cos(p[3]);
    const double hs = helix_h(st0.qop, bz) * s;
    helix_jacobian(from, to, sp, cp, st, ct, std::cos(hs), std::sin(hs), st0, at, s, bz, J);
}

// Two doubles in one SSE2 register (GCC/Clang vector extension): each lane's arithmetic is the
// scalar IEEE operation, so vectorised sums keep their bits.
typedef double v2d __attribute__((vector_size(16)));

inline v2d load2(const double* p) {
    v2d v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store2(double* p, v2d v) { std::memcpy(p, &v, sizeof v); }

// sandwich() for a Jacobian whose rows 3 and 4 hold one non-zero each, on the diagonal (the helix
// Jacobian's structure): the products with the zeros are left out, the rest runs two columns at a
// time. Every sum still starts at +0 and adds the remaining terms in the same order; the left-out
// terms are +-0 (C finite), and adding +-0 to a sum that starts at +0 changes none of its bits, so
// the result is sandwich()'s.
void sandwich_helix(const Mat5& J, const Mat5& C, Mat5& out) {
    // T = J C: rows 0-2 full, rows 3 and 4 one term.
    double T[25];
    for (int i = 0; i < 3; ++i) {
        v2d t01 = {0.0, 0.0}, t23 = {0.0, 0.0};
        double t4 = 0;
        for (int k = 0; k < 5; ++k) {
            const double jk = J[5 * i + k];
            const v2d jv = {jk, jk};
            t01 += jv * load2(&C[5 * k]);
            t23 += jv * load2(&C[5 * k + 2]);
            t4 += jk * C[5 * k + 4];
        }
        store2(&T[5 * i], t01);
        store2(&T[5 * i + 2], t23);
        T[5 * i + 4] = t4;
    }
    for (int i = 3; i < 5; ++i)
        for (int j = 0; j < 5; ++j) {
            double acc = 0;
            acc += J[6 * i] * C[5 * i + j];
            T[5 * i + j] = acc;
        }
    // out = T J^T: columns 0-2 full (J's rows 0 and 1 side by side), columns 3 and 4 one term.
    v2d j01[5];
    for (int k = 0; k < 5; ++k) j01[k] = v2d{J[k], J[5 + k]};
    const v2d j34 = {J[18], J[24]};
    for (int i = 0; i < 5; ++i) {
        v2d o01 = {0.0, 0.0};
        double o2 = 0;
        for (int k = 0; k < 5; ++k) {
            const double tk = T[5 * i + k];
            o01 += v2d{tk, tk} * j01[k];
            o2 += tk * J[10 + k];
        }
        store2(&out[5 * i], o01);
        out[5 * i + 2] = o2;
        store2(&out[5 * i + 3], v2d{0.0, 0.0} + load2(&T[5 * i + 3]) * j34);
    }
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < i; ++j) out[5 * i + j] = out[5 * j + i] = 0.5 * (out[5 * i + j] + out[5 * j + i]);
}

bool all_finite(const Mat5& C) {
    // x - x is +0 for a finite x and NaN for infinities and NaN: one sum tells, without branches.
    double acc = 0;
    for (double x : C) acc += x - x;
    return acc == 0;
}

}  // namespace

bool transport_bound(const Geometry& geo, const Stepper& stepper, const BoundState& in, int target, int direction,
                     double max_path, BoundState& out, double& path, Mat5* jac, bool numeric) {
    const Module& tm = geo.modules()[target];
    const State st = state_of(geo, in);
    State at;
    double s;
    if (!intersect_module(stepper, tm, st, direction, max_path, s, at)) return false;
    out.module = target;
    state_to_bound(tm.centre, tm.rot, at, out.p.data());
    path = s;
    Mat5 J{};
    if (stepper.field.constant && !stepper.rk && !numeric) {
        helix_jacobian(geo.modules()[in.module], tm, in.p, st, at, s, stepper.field.bz, J);
    } else {
        // Field maps: finite differences through the same transport.
        for (int i = 0; i < 5; ++i) {
            BoundState q = in;
            const double h = fd_step(i, in.p);
            q.p[i] += h;
            const State sq = state_of(geo, q);
            State aq;
            double s2;
            // The perturbed track meets the plane near the nominal path length.
            if (!intersect_module(stepper, tm, sq, direction, std::fabs(s) * 2 + 10.0, s2, aq)) return false;
            Vec5 pq;
            state_to_bound(tm.centre, tm.rot, aq, pq.data());
            for (int r = 0; r < 5; ++r) {
                double d = pq[r] - out.p[r];
                if (r == 2) d = wrap_phi(d);
                J[5 * r + i] = d / h;
            }
        }
    }
    sandwich(J, in.C, out.C);
    if (jac) *jac = J;
    return true;
}

BoundTransport::BoundTransport(const Geometry& geo, const Stepper& stepper, const BoundState& in)
    : BoundTransport(geo, stepper, in, direction_sines(in.p)) {}

BoundTransport::BoundTransport(const Geometry& geo, const Stepper& stepper, const BoundState& in,
                               const DirectionSines& sines)
    : geo_(geo), stepper_(stepper), in_(in), sines_(sines) {
    const Module& m = geo.modules()[in.module];
    // bound_to_state (direction_from_angles' products), with the sines kept for the Jacobian.
    const double local[3] = {in.p[0], in.p[1], 0.0};
    to_global(m.centre, m.rot, local, st_.pos);
    st_.dir[0] = sines.st * sines.cp;
    st_.dir[1] = sines.st * sines.sp;
    st_.dir[2] = sines.ct;
    st_.qop = in.p[4];
}

bool BoundTransport::to(int target, int direction, double max_path, BoundState& out, double& path) {
    if (!stepper_.field.constant || stepper_.rk)
        return transport_bound(geo_, stepper_, in_, target, direction, max_path, out, path);
    // transport_bound's steps (intersect_module, state_to_bound, helix_jacobian, sandwich).
    const Module& tm = geo_.modules()[target];
    const double n[3] = {tm.rot[2], tm.rot[5], tm.rot[8]};
    State at;
    double s;
    if (direction > 0) {
        if (!stepper_.intersect(st_, tm.centre, n, 1e-9, max_path, s, at, turn_)) return false;
    } else {
        State rev = st_;
        for (double& d : rev.dir) d = -d;
        rev.qop = -st_.qop;
        if (!stepper_.intersect(rev, tm.centre, n, 1e-9, max_path, s, at, turn_)) return false;
        for (double& d : at.dir) d = -d;
        at.qop = -at.qop;
        s = -s;
    }
    out.module = target;
    state_to_bound(tm.centre, tm.rot, at, out.p.data());
    path = s;
    const double bz = stepper_.field.bz;
    double c, sn;
    turn_.get(helix_h(st_.qop, bz) * s, c, sn);
    Mat5 J;
    const bool structured =
        helix_jacobian(geo_.modules()[in_.module], tm, sines_.sp, sines_.cp, sines_.st, sines_.ct, c, sn, st_, at, s, bz, J);
    if (structured && all_finite(in_.C)) sandwich_helix(J, in_.C, out.C);
    else sandwich(J, in_.C, out.C);
    return true;
}

void apply_material(const Geometry& geo, BoundState& st, double x0, double mass, int direction) {
    if (x0 <= 0) return;
    apply_material(geo, st, x0, mass, direction, direction_sines(st.p));
}

void apply_material(const Geometry& geo, BoundState& st, double x0, double mass, int direction,
                    const DirectionSines& sines) {
    // The shared host/device material effects (trackcore/bound_transport.hpp).
    dev::material_update(geo.modules()[st.module].rot, sines.sp, sines.cp, sines.st, sines.ct, x0, mass, direction,
                         st.p.data(), st.C.data());
}

double kalman_update(BoundState& st, double mu, double mv, double var_u, double var_v, bool dry_run) {
    // The shared host/device update (the CUDA kernels run the same function).
    return kalman_update_2d(st.p.data(), st.C.data(), mu, mv, var_u, var_v, dry_run);
}

bool to_perigee(const Geometry& geo, const Stepper& stepper, const BoundState& st, Vec5& p, Mat5& C) {
    // The shared host/device perigee (trackcore/bound_transport.hpp).
    const Module& m = geo.modules()[st.module];
    return dev::perigee_with_covariance(m.centre, m.rot, stepper.field, st.p.data(), st.C.data(), p.data(), C.data());
}

}  // namespace trackcore
