#pragma once
// Transport of particles through a Geometry: one stepper for a constant field (exact helix) and a
// Runge-Kutta one for maps, surface crossing search, material effects. Used by the simulation.
#include <cstdint>
#include <vector>

#include "geometry.hpp"
#include "trackcore/field.hpp"
#include "trackcore/helix.hpp"

namespace trackcore {

struct TransportConfig {
    uint64_t seed = 0;
    double max_step = 50.0;          // mm
    double max_turn = 0.05;          // radians of helix turning per step
    double max_path = 10000.0;       // mm: loopers are followed this far
    int max_crossings = 60;
    double loop_fraction = 0.5;      // stop after this many transverse turns (ACTS loop protection); <= 0: off
    double min_p = 0.05;             // GeV: particles below stop
    bool multiple_scattering = true;
    bool energy_loss = true;
    bool use_rk = false;             // Runge-Kutta stepping even in a constant field (validation)
    int threads = 1;                 // worker threads (0: one per hardware thread); the crossings do not depend on it
};

struct Crossings {
    std::vector<int64_t> particle, module;
    std::vector<double> pos, mom, local, dir_local;  // 3 per crossing; local is at the mid-plane
    std::vector<double> edep, path;
    void reserve(size_t n) {
        particle.reserve(n); module.reserve(n); pos.reserve(3 * n); mom.reserve(3 * n);
        local.reserve(3 * n); dir_local.reserve(3 * n); edep.reserve(n); path.reserve(n);
    }
};

struct ParticleIn {
    double vertex[3], p[3];
    int charge;
    double mass;
};

// Transports each particle and appends its sensitive-module crossings (in path order) to out.
// layer_x0 holds the material (x/X0 at normal incidence) attributed to each layer's modules.
void transport_particles(const Geometry& geo, const FieldView& field, const std::vector<ParticleIn>& particles,
                         const std::vector<double>& layer_x0, const TransportConfig& cfg, Crossings& out);

}  // namespace trackcore
