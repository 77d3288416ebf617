#include "transport.hpp"
#include "navigator.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <stdexcept>

#include "parallel.hpp"

#include "trackcore/crossing.hpp"
#include "trackcore/material.hpp"
#include "trackcore/rng.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {

namespace {

inline double momentum(const State& s) { return 1.0 / std::fabs(s.qop); }

// Most steps one particle may take. The bindings allow max_path / max_step <= 1e7; bending limits
// the step further (max_turn / curvature), so a particle of 1e-30 GeV (or a field of 1e30 T) with
// loop protection off would step forever in 1e-30 mm steps.
constexpr long long kMaxSteps = 20'000'000;

// Per-worker scratch of the crossing search.
struct TransportScratch {
    std::vector<int> cand;
    std::vector<uint32_t> stamp;  // per module: the last step that tested it
    uint32_t step_id = 0;
};

// Transports particle ip and appends its crossings, in path order, to out.
void transport_one(const Geometry& geo, const Stepper& stepper, const ParticleIn& pin, size_t ip,
                   const std::vector<double>& layer_x0, const TransportConfig& cfg, TransportScratch& scratch,
                   Crossings& out) {
    const auto& modules = geo.modules();
    const double world_r = geo.world_r() + 5.0, world_z = geo.world_z() + 5.0;
    auto& cand = scratch.cand;
    auto& stamp = scratch.stamp;
    uint32_t& step_id = scratch.step_id;
    TurnCache turn;  // cos and sin of the last step's turning angle
    Stream rng(cfg.seed, ip);
    const double p0 = std::sqrt(pin.p[0] * pin.p[0] + pin.p[1] * pin.p[1] + pin.p[2] * pin.p[2]);
    State st{{pin.vertex[0], pin.vertex[1], pin.vertex[2]},
             {pin.p[0] / p0, pin.p[1] / p0, pin.p[2] / p0},
             pin.charge / p0};
    double travelled = 0, path_limit = cfg.max_path;
    if (cfg.loop_fraction > 0) {
        const double h0 = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
        if (h0 > 0) path_limit = std::min(path_limit, cfg.loop_fraction * 6.283185307179586 / h0);
    }
    int n_cross = 0, last_module = -1;
    long long n_steps = 0;
    while (travelled < path_limit && n_cross < cfg.max_crossings) {
        const double ds = stepper.step_length(st, cfg.max_step, cfg.max_turn);
        if (++n_steps > kMaxSteps) {
            char msg[256];
            std::snprintf(msg, sizeof msg,
                          "transport: particle %zu needs more than 2e7 steps (%g mm each: |p| = %g GeV curls "
                          "in the field); raise min_p, set loop_fraction > 0 or check the field",
                          ip, ds, momentum(st));
            throw std::invalid_argument(msg);
        }
        State next;
        stepper.advance(st, ds, next, turn);  // steps between crossings repeat their turning angle
        cand.clear();
        ++step_id;
        gather_candidates(geo, st.pos, next.pos, cand);
        // The step's arc stays within its sagitta, ds^2 |h| / 8, of the chord st -> next: a module whose
        // plane both chord ends clear by more, on one side, cannot be crossed in this step, and is left
        // out before the Newton intersection (most candidates are). Runge-Kutta steps in a map get 4x
        // the helix sagitta of the starting Bz plus 10 um: the field changes little over one step.
        const double h_start = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
        const double margin = stepper.rk ? 4.0 * ds * ds * h_start / 8.0 + 1e-2 : ds * ds * h_start / 8.0 * (1.0 + 1e-9) + 1e-6;
        double best_s = std::numeric_limits<double>::infinity();
        int best_m = -1;
        State best_state{};
        for (int m : cand) {
            if (stamp[m] == step_id || m == last_module) continue;
            stamp[m] = step_id;
            const Module& mod = modules[m];
            const double normal[3] = {mod.rot[2], mod.rot[5], mod.rot[8]};
            const double da = (st.pos[0] - mod.centre[0]) * normal[0] + (st.pos[1] - mod.centre[1]) * normal[1] +
                              (st.pos[2] - mod.centre[2]) * normal[2];
            const double db = (next.pos[0] - mod.centre[0]) * normal[0] + (next.pos[1] - mod.centre[1]) * normal[1] +
                              (next.pos[2] - mod.centre[2]) * normal[2];
            if ((da > margin && db > margin) || (da < -margin && db < -margin)) continue;
            double s;
            State at;
            if (!stepper.intersect(st, mod.centre, normal, 0.0, ds, s, at) || s >= best_s) continue;
            double loc[3];
            to_local(mod.centre, mod.rot, at.pos, loc);
            if (std::fabs(loc[1]) > mod.hv || std::fabs(loc[0]) > Geometry::half_width(mod, loc[1])) continue;
            best_s = s;
            best_m = m;
            best_state = at;
        }
        if (best_m < 0) {
            st = next;
            travelled += ds;
            last_module = -1;
        } else {
            const Module& mod = modules[best_m];
            State& at = best_state;
            CrossingRecord rec;
            const bool goes_on = cross_sensor(mod.centre, mod.rot, mod.half_t, layer_x0[mod.layer], pin.mass,
                                              cfg.multiple_scattering, cfg.energy_loss, cfg.min_p, rng, at, rec);
            out.particle.push_back(static_cast<int64_t>(ip));
            out.module.push_back(best_m);
            for (int k = 0; k < 3; ++k) {
                out.pos.push_back(rec.pos[k]);
                out.mom.push_back(rec.mom[k]);
                out.local.push_back(rec.local[k]);
                out.dir_local.push_back(rec.dir_local[k]);
            }
            out.edep.push_back(rec.edep);
            out.path.push_back(travelled + best_s);
            ++n_cross;
            if (!goes_on) break;
            st = at;
            travelled += best_s;
            last_module = best_m;
        }
        const double r = std::hypot(st.pos[0], st.pos[1]);
        if (r > world_r || std::fabs(st.pos[2]) > world_z) break;
    }
}

void append(Crossings& out, const Crossings& part) {
    auto add = [](auto& to, const auto& from) { to.insert(to.end(), from.begin(), from.end()); };
    add(out.particle, part.particle); add(out.module, part.module); add(out.pos, part.pos); add(out.mom, part.mom);
    add(out.local, part.local); add(out.dir_local, part.dir_local); add(out.edep, part.edep); add(out.path, part.path);
}

}  // namespace

void transport_particles(const Geometry& geo, const FieldView& field, const std::vector<ParticleIn>& particles,
                         const std::vector<double>& layer_x0, const TransportConfig& cfg, Crossings& out) {
    const Stepper stepper{field, cfg.use_rk || !field.constant};
    // Particles in chunks handed out in order to the workers; each particle draws from its own random
    // stream, and the chunks' crossings are joined in chunk order: the output of one thread. An error
    // is the one the first failing particle gives, as on one thread.
    constexpr size_t kChunk = 32;
    const size_t n_chunks = (particles.size() + kChunk - 1) / kChunk;
    std::vector<Crossings> parts(n_chunks);
    std::vector<std::exception_ptr> errors(n_chunks);
    std::atomic<size_t> first_error{n_chunks};  // chunks after a failed one need not run
    const int n_workers = worker_count(cfg.threads, n_chunks);
    std::vector<std::unique_ptr<TransportScratch>> scratch(n_workers);
    parallel_for(n_workers, n_chunks, [&](int w, size_t c) {
        if (c > first_error.load(std::memory_order_relaxed)) return;
        if (!scratch[w]) {
            scratch[w] = std::make_unique<TransportScratch>();
            scratch[w]->stamp.assign(geo.modules().size(), 0);
        }
        try {
            for (size_t ip = c * kChunk; ip < std::min(particles.size(), (c + 1) * kChunk); ++ip)
                transport_one(geo, stepper, particles[ip], ip, layer_x0, cfg, *scratch[w], parts[c]);
        } catch (...) {
            errors[c] = std::current_exception();
            for (size_t e = first_error.load(); c < e && !first_error.compare_exchange_weak(e, c);) {
            }
        }
    });
    for (size_t c = 0; c < n_chunks; ++c) {
        if (errors[c]) std::rethrow_exception(errors[c]);
        append(out, parts[c]);
        parts[c] = Crossings();  // its memory back before the next chunk is copied
    }
}

}  // namespace trackcore
