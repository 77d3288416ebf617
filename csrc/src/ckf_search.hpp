#pragma once
// The CKF's track following (ckf_search.cpp), for the driver (ckf.cpp): a worker's Context, one
// seed's beam search, the refinement and the backward filter. Internal to the compiled core.
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "ckf.hpp"
#include "kalman.hpp"
#include "navigator.hpp"

namespace trackcore::ckf_search {

// sin and cos of a state's angles, computed again only when the angles change (compared bit for
// bit): the material effects and the next transport both want them, and neither changes the angles.
struct SinesCache {
    DirectionSines sines{};
    double angles[2] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};

    const DirectionSines& of(const Vec5& p) {
        if (std::memcmp(angles, &p[2], sizeof angles) != 0) {
            sines = direction_sines(p);
            std::memcpy(angles, &p[2], sizeof angles);
        }
        return sines;
    }
};

struct Step {
    int module;
    int64_t hit;  // -1: a hole (crossed, no compatible hit)
    BoundState filtered;  // after the update (or the prediction for a hole), before material
};

// The steps of one search's trajectories (one seed's, one refinement's) as a tree: each step holds
// the index of the step before it, so that a branch shares its parent's steps instead of copying
// them. A trajectory kept after its search has its steps copied out (a Track).
struct StepNode {
    Step step;
    int prev;  // -1: the first step
};

struct Trajectory {
    int last = -1;     // its last step in Context::nodes; -1: none
    BoundState state;  // on the last module, after its material
    double chi2 = 0;
    int n_meas = 0, holes = 0;
    double path = 0;
    double path_limit = std::numeric_limits<double>::infinity();  // mm, besides the config's max_path
    int eloss = +1;  // +1 following the particle; -1 following it backwards (energy regained)
    SinesCache sines;  // of state's angles
};

// A trajectory kept after its search: its steps in path order.
struct Track {
    std::vector<Step> steps;
    double chi2 = 0;
    int n_meas = 0;
    int eloss = +1;
    bool refined = false;  // refine() already ran on it
};

inline const DirectionSines& state_sines(Trajectory& tr) { return tr.sines.of(tr.state.p); }

// A hit's local coordinates (mm) and their variances (mm^2).
struct Measurement {
    double u, v, var_u, var_v;
};

struct Option {
    double chi2;
    int64_t hit;
    const Measurement* meas;
    BoundState predicted;
    double path;
};

// The event's hits grouped by module, built once per call and read by every worker.
struct ModuleHits {
    std::vector<int> start, hits;  // CSR: hits of each module
    // The measurements in the same order, side by side: the compatibility test reads one module's
    // hits from consecutive memory.
    std::vector<Measurement> meas;

    ModuleHits(const Geometry& g, const HitsView& h) {
        const size_t nm = g.modules().size();
        start.assign(nm + 1, 0);
        for (int i = 0; i < h.n; ++i) ++start[h.module[i] + 1];
        for (size_t m = 0; m < nm; ++m) start[m + 1] += start[m];
        hits.assign(h.n, 0);
        std::vector<int> fill(start.begin(), start.end() - 1);
        for (int i = 0; i < h.n; ++i) hits[fill[h.module[i]]++] = i;
        meas.resize(h.n);
        for (int k = 0; k < h.n; ++k) {
            const int i = hits[k];
            meas[k] = {h.u[i], h.v[i], h.var_u[i], h.var_v[i]};
        }
    }
};

// One worker's view of the event (shared, read only) and its scratch (its own).
struct Context {
    const Geometry& geo;
    const Stepper stepper;
    const Stepper fit_stepper;  // the fit's transport to hits already found: Newton, then a scan
    const HitsView& hits;
    const std::vector<double>& layer_x0;
    const CkfConfig& cfg;
    const std::vector<int>& module_start;
    const std::vector<int>& module_hits;
    const std::vector<Measurement>& module_meas;
    LayerFinder finder;  // holds per-module scratch: one per worker
    const LayerFinder::Config finder_cfg;
    std::vector<StepNode> nodes;                  // the steps of the current search
    // Scratch buffers (extend and follow do not nest): no allocation per call.
    std::vector<std::pair<double, int>> crossed;  // extend / next_layer
    std::vector<Option> options;                  // extend
    std::vector<const Option*> seq;
    std::vector<int64_t> taken;
    std::vector<Trajectory> follow_children, follow_finished;
    std::vector<Trajectory> seed_active, seed_children, seed_finished;  // follow_seed

    Context(const Geometry& g, const FieldView& f, const HitsView& h, const ModuleHits& mh,
            const std::vector<double>& x0, const CkfConfig& c)
        : geo(g), stepper{f, !f.constant}, fit_stepper{f, !f.constant, true}, hits(h), layer_x0(x0), cfg(c),
          module_start(mh.start), module_hits(mh.hits), module_meas(mh.meas), finder(g),
          finder_cfg{c.max_step, c.max_turn, c.edge_tolerance, c.layer_depth} {}

    double x0_of(int module) const { return layer_x0[geo.modules()[module].layer]; }
};

// What following one seed gave: its best track (when one was kept) and its counters.
struct SeedOutcome {
    bool has_track = false;
    Track track;
    int64_t candidates = 0;
    bool rescued = false;
};

// The first three steps of a trajectory from the seed (hits s[0], s[1], s[2]); false when the seed
// gives no state or its hits cannot be reached in turn.
bool start_from_seed(Context& ctx, const int64_t* s, Trajectory& tr);
// Appends a measured step, updates the trajectory's state and applies the module's material.
void add_measurement(Context& ctx, Trajectory& tr, const BoundState& filtered, int64_t hit, double chi2);
// The trajectory's steps copied out in path order.
Track kept(const Context& ctx, const Trajectory& tr);
// The beam search from one seed, outward layer by layer, then the rescue of a short best trajectory.
// It reads nothing of the other seeds' results, so seeds can be followed in any order and in parallel.
void follow_seed(Context& ctx, const int64_t* s, SeedOutcome& out);
// The track with the hits inward of its seed and in the layers the seed skipped (or itself).
Track refine(Context& ctx, const Track& best);
// Backward filter to the first hit, then the perigee parameters with covariance, into out.
void smooth_to_perigee(Context& ctx, const Track& tr, TrackOut& out);

}  // namespace trackcore::ckf_search
