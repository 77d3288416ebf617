#pragma once
// A particle crossing a sensor in the simulation: what it leaves there (position, momentum, local
// position and direction, deposited energy) and what the layer's material then does to it
// (Highland scattering, mean energy loss). Shared by the C++ core's transport (transport.cpp) and
// the GPU's (transport_device.hpp), so both draw the same random numbers in the same order.
#include <cmath>

#include "trackcore/helix.hpp"
#include "trackcore/hostdevice.hpp"
#include "trackcore/material.hpp"
#include "trackcore/rng.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {

struct CrossingRecord {
    double pos[3], mom[3], local[3], dir_local[3];
    double edep;
};

// `at` on the sensor (centre, rot, half thickness half_t) of a layer of material layer_x0 (x/X0 at
// normal incidence): fills `rec`, then scatters and slows `at` as configured. Returns false when the
// particle falls below min_p (it stops after this crossing).
TC_HDI bool cross_sensor(const double* centre, const double* rot, double half_t, double layer_x0, double mass,
                         bool multiple_scattering, bool energy_loss, double min_p, Stream& rng, State& at,
                         CrossingRecord& rec) {
    const double p = 1.0 / std::fabs(at.qop);
    to_local(centre, rot, at.pos, rec.local);
    // Direction in the local frame: R^T dir (to_local of a direction = rotation only).
    const double zero[3] = {0, 0, 0};
    to_local(zero, rot, at.dir, rec.dir_local);
    const double cos_inc = std::fmax(std::fabs(rec.dir_local[2]), 1e-3);
    const double si_len = 2.0 * half_t / cos_inc;
    for (int k = 0; k < 3; ++k) {
        rec.pos[k] = at.pos[k];
        rec.mom[k] = at.dir[k] * p;
    }
    rec.edep = landau_deposit_si(p, mass, si_len, rng);
    // Material of the whole layer (sensor + support) is lumped at the sensor crossing.
    const double x0 = layer_x0 / cos_inc;
    if (multiple_scattering) scatter_direction(at.dir, highland_theta0(p, mass, x0), rng);
    if (energy_loss) {
        const double e = std::sqrt(p * p + mass * mass) - bethe_bloch_si(p, mass) * x0 * silicon::X0_mm;
        const double p_new = e > mass ? std::sqrt(e * e - mass * mass) : 0.0;
        if (p_new < min_p) return false;
        at.qop = (at.qop > 0 ? 1.0 : -1.0) / p_new;
    }
    return true;
}

}  // namespace trackcore
