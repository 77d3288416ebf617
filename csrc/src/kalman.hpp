#pragma once
// Kalman filter building blocks on bound parameters (loc0, loc1, phi, theta, q/p): transport to a
// module plane with its Jacobian, material noise, the 2-D measurement update, perigee conversion.
#include <array>
#include <cmath>

#include "geometry.hpp"
#include "navigator.hpp"
#include "trackcore/track_params.hpp"

namespace trackcore {

using Vec5 = std::array<double, 5>;
using Mat5 = std::array<double, 25>;  // row-major

struct BoundState {
    Vec5 p{};
    Mat5 C{};
    int module = -1;
};

// sin and cos of a bound state's phi (p[2]) and theta (p[3]): the track search reuses them between
// the material effects and the next transport, which leave the angles as they are.
struct DirectionSines {
    double sp, cp, st, ct;
};

inline DirectionSines direction_sines(const Vec5& p) {
    return {std::sin(p[2]), std::cos(p[2]), std::sin(p[3]), std::cos(p[3])};
}

// Transport a bound state to module `target` (direction +1 outward along the momentum, -1 backward),
// with the covariance carried by a finite-difference Jacobian. Returns false if the plane is not met
// within max_path. On success `path` is the signed path length, `jac` the 5x5 Jacobian.
// The Jacobian is analytic for the helix in a constant field (numeric=false), else by finite differences.
bool transport_bound(const Geometry& geo, const Stepper& stepper, const BoundState& in, int target, int direction,
                     double max_path, BoundState& out, double& path, Mat5* jac = nullptr, bool numeric = false);

// transport_bound from one start state to one or more targets, as the track search uses it: the same
// results, bit for bit, for less work. The start's global state and the sines of its angles are
// computed once; the helix Jacobian takes the turning angle's sine and cosine from the plane search
// that ended there, and its covariance products leave out the Jacobian's structural zeros. Outside
// a constant field with the helix stepper every call is transport_bound's. Holds references: `in`
// and `stepper` must outlive it.
class BoundTransport {
public:
    BoundTransport(const Geometry& geo, const Stepper& stepper, const BoundState& in);
    // With the sines of in's angles known (direction_sines(in.p)).
    BoundTransport(const Geometry& geo, const Stepper& stepper, const BoundState& in, const DirectionSines& sines);
    // The start as a global state (bound_to_state of `in`).
    const State& start() const { return st_; }
    bool to(int target, int direction, double max_path, BoundState& out, double& path);

private:
    const Geometry& geo_;
    const Stepper& stepper_;
    const BoundState& in_;
    State st_;
    DirectionSines sines_;
    TurnCache turn_;
};

// Multiple scattering (Highland) and mean energy loss of the material x0 (x/X0 at normal incidence)
// at the state's module; direction -1 restores the energy lost (backward filtering).
void apply_material(const Geometry& geo, BoundState& st, double x0, double mass, int direction);
// The same with the sines of st's angles known (direction_sines(st.p)); they stay valid after it.
void apply_material(const Geometry& geo, BoundState& st, double x0, double mass, int direction,
                    const DirectionSines& sines);

// 2-D measurement update; returns the chi2 increment. With dry_run only chi2 is computed.
double kalman_update(BoundState& st, double mu, double mv, double var_u, double var_v, bool dry_run);

// Perigee parameters (d0, z0, phi, theta, q/p) and covariance from a bound state, by transport to the
// point of closest approach to the z axis. Returns false if there is no such point.
bool to_perigee(const Geometry& geo, const Stepper& stepper, const BoundState& st, Vec5& p, Mat5& C);

}  // namespace trackcore
