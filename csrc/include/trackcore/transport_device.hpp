#pragma once
// The simulation's particle transport for the GPU (csrc/cuda/simulation.cu), one particle per
// thread: the C++ core's transport_one (csrc/src/transport.cpp) step for step, with a fixed-capacity
// candidate list in place of its std::vector and per-module stamps. Each particle draws from its own
// random stream (rng.hpp), so the host build gives the core's crossings bit for bit.
#include <cmath>
#include <cstdint>

#include "trackcore/bound_transport.hpp"
#include "trackcore/crossing.hpp"
#include "trackcore/hostdevice.hpp"
#include "trackcore/material.hpp"
#include "trackcore/navigation_device.hpp"
#include "trackcore/rng.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {
namespace dev {

// transport.cpp's TransportConfig (max_turn is fixed there too) as the glue passes it: a float64
// array in this order (trackcore/backends/cupy_kernels/simulation.py TRANSPORT_KEYS).
constexpr int kTransportConfigSize = 8;
struct TransportSettings {
    double max_step, max_path, min_p, loop_fraction;
    int max_crossings;
    bool multiple_scattering, energy_loss, use_rk;
    uint64_t seed;
};

TC_HD TransportSettings transport_settings(const double* c, uint64_t seed) {
    TransportSettings t;
    t.max_step = c[0], t.max_path = c[1], t.min_p = c[2], t.loop_fraction = c[3];
    t.max_crossings = static_cast<int>(c[4]);
    t.multiple_scattering = c[5] != 0, t.energy_loss = c[6] != 0, t.use_rk = c[7] != 0;
    t.seed = seed;
    return t;
}

constexpr double kTransportMaxTurn = 0.05;        // rad of helix turning per step
constexpr long long kTransportMaxSteps = 20000000;  // transport.cpp kMaxSteps
constexpr int kTransportMaxCand = 2048;

// Where one particle's crossings go: row `first` onwards of each array (max_crossings rows).
struct CrossingsOut {
    int64_t* module;
    double *pos, *mom, *local, *dir_local, *edep, *path;
};

// Outcome of one particle: its crossing count, or a failure (too many steps: the step length and
// momentum then, for the error message; or a full candidate list).
struct TransportOutcome {
    int n_cross;
    int status;  // 0 ok, 1 more than 2e7 steps, 2 candidate list full
    double fail_step, fail_p;
};

TC_HDN TransportOutcome transport_particle(const GeometryView& geo, const FieldView& field, const double* vertex,
                                           const double* p3, int charge, double mass, uint64_t ip,
                                           const TransportSettings& cfg, int* cand, const CrossingsOut& out,
                                           int64_t first) {
    const Stepper stepper{field, cfg.use_rk || !field.constant, false};
    const double world_r = geo.world_r + 5.0, world_z = geo.world_z + 5.0;
    Stream rng(cfg.seed, ip);
    const double p0 = std::sqrt(p3[0] * p3[0] + p3[1] * p3[1] + p3[2] * p3[2]);
    State st{{vertex[0], vertex[1], vertex[2]}, {p3[0] / p0, p3[1] / p0, p3[2] / p0}, charge / p0};
    double travelled = 0, path_limit = cfg.max_path;
    if (cfg.loop_fraction > 0) {
        const double h0 = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
        if (h0 > 0) path_limit = dmin(path_limit, cfg.loop_fraction * 6.283185307179586 / h0);
    }
    TransportOutcome res{0, 0, 0.0, 0.0};
    int last_module = -1;
    long long n_steps = 0;
    while (travelled < path_limit && res.n_cross < cfg.max_crossings) {
        const double ds = stepper.step_length(st, cfg.max_step, kTransportMaxTurn);
        if (++n_steps > kTransportMaxSteps) {
            res.status = 1, res.fail_step = ds, res.fail_p = 1.0 / std::fabs(st.qop);
            return res;
        }
        State next;
        stepper.advance(st, ds, next);
        CandidateList list{cand, 0, kTransportMaxCand, false};
        gather_candidates(geo, st.pos, next.pos, list);
        if (list.full) {
            res.status = 2;
            return res;
        }
        const double h_start = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
        const double margin = stepper.rk ? 4.0 * ds * ds * h_start / 8.0 + 1e-2
                                         : ds * ds * h_start / 8.0 * (1.0 + 1e-9) + 1e-6;
        double best_s = 2.0 * ds + 1.0;  // above any crossing of this step (s <= ds): infinity in the core
        int best_m = -1;
        State best_state{};
        for (int i = 0; i < list.n; ++i) {
            const int m = cand[i];
            if (m == last_module) continue;
            bool seen = false;  // the core's per-module stamp: a module in two bins is looked at once
            for (int j = 0; j < i && !seen; ++j) seen = cand[j] == m;
            if (seen) continue;
            const double* c = geo.c(m);
            const double* r = geo.r(m);
            const double normal[3] = {r[2], r[5], r[8]};
            const double da = (st.pos[0] - c[0]) * normal[0] + (st.pos[1] - c[1]) * normal[1] +
                              (st.pos[2] - c[2]) * normal[2];
            const double db = (next.pos[0] - c[0]) * normal[0] + (next.pos[1] - c[1]) * normal[1] +
                              (next.pos[2] - c[2]) * normal[2];
            if ((da > margin && db > margin) || (da < -margin && db < -margin)) continue;
            double s;
            State at;
            if (!stepper.intersect(st, c, normal, 0.0, ds, s, at) || s >= best_s) continue;
            double loc[3];
            to_local(c, r, at.pos, loc);
            if (std::fabs(loc[1]) > geo.hv[m] || std::fabs(loc[0]) > geo.half_width(m, loc[1])) continue;
            best_s = s;
            best_m = m;
            best_state = at;
        }
        if (best_m < 0) {
            st = next;
            travelled += ds;
            last_module = -1;
        } else {
            State& at = best_state;
            CrossingRecord rec;
            const bool goes_on = cross_sensor(geo.c(best_m), geo.r(best_m), geo.half_t[best_m],
                                              geo.layer_x0[geo.layer[best_m]], mass, cfg.multiple_scattering,
                                              cfg.energy_loss, cfg.min_p, rng, at, rec);
            const int64_t row = first + res.n_cross;
            out.module[row] = best_m;
            for (int k = 0; k < 3; ++k) {
                out.pos[3 * row + k] = rec.pos[k];
                out.mom[3 * row + k] = rec.mom[k];
                out.local[3 * row + k] = rec.local[k];
                out.dir_local[3 * row + k] = rec.dir_local[k];
            }
            out.edep[row] = rec.edep;
            out.path[row] = travelled + best_s;
            ++res.n_cross;
            if (!goes_on) break;
            st = at;
            travelled += best_s;
            last_module = best_m;
        }
        const double rr = std::hypot(st.pos[0], st.pos[1]);
        if (rr > world_r || std::fabs(st.pos[2]) > world_z) break;
    }
    return res;
}

}  // namespace dev
}  // namespace trackcore
