#include "ckf.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

#include "parallel.hpp"
#include "trackcore/kalman_math.hpp"
#include "trackcore/transform.hpp"

namespace trackcore {

namespace {

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

const DirectionSines& state_sines(Trajectory& tr) { return tr.sines.of(tr.state.p); }

// A hit's local coordinates (mm) and their variances (mm^2).
struct Measurement {
    double u, v, var_u, var_v;
};

// True only when kalman_chi2_2d(p, C, x) >= chi2_max for certain, told without its divisions:
// the residual's squared length over the trace of its covariance S bounds chi2 from below (the
// largest eigenvalue of S is at most its trace). Correlations of S above 0.9995 (where rounding in
// S's determinant could move chi2 further than the 1e-6 margin covers) and NaN say false.
inline bool surely_incompatible(const double* p, const double* C, const Measurement& x, double chi2_max) {
    const double r0 = x.u - p[0], r1 = x.v - p[1];
    const double s00 = C[0] + x.var_u, s01 = C[1], s11 = C[6] + x.var_v;
    const double det = s00 * s11 - s01 * s01;
    return r0 * r0 + r1 * r1 > chi2_max * (s00 + s11) * (1.0 + 1e-6) && det > 1e-3 * s00 * s11;
}

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

// Bound state at the bottom hit from the circle through three space points, via the signed Menger
// curvature so that collinear points (a straight track) are a smooth limit, not a special case.
bool seed_state(const Context& ctx, int64_t b, int64_t m, int64_t t, BoundState& out) {
    const double* pb = ctx.hits.xyz + 3 * b;
    const double* pm = ctx.hits.xyz + 3 * m;
    const double* pt = ctx.hits.xyz + 3 * t;
    const double ax = pm[0] - pb[0], ay = pm[1] - pb[1], bx = pt[0] - pb[0], by = pt[1] - pb[1];
    const double la = std::hypot(ax, ay), lb = std::hypot(bx, by), lc = std::hypot(bx - ax, by - ay);
    if (la < 1e-6 || lb < 1e-6 || lc < 1e-6) return false;
    const double kappa = 2.0 * (ax * by - ay * bx) / (la * lb * lc);  // > 0: turns counter-clockwise
    const double k_abs = std::max(std::fabs(kappa), 1e-7);
    // The tangent at the first point leans away from the chord by half the chord's central angle.
    const double phi = std::atan2(ay, ax) - std::asin(std::min(1.0, la * kappa / 2.0));
    const double arc = 2.0 * std::asin(std::min(1.0, lb * k_abs / 2.0)) / k_abs;
    const double theta = std::atan2(arc, pt[2] - pb[2]);
    const double bz = ctx.stepper.field.constant ? ctx.stepper.field.bz : 2.0;
    // Bz > 0 bends positive charges clockwise.
    const int q = (kappa > 0) == (bz > 0) ? -1 : 1;
    const double pt_gev = kB * std::fabs(bz) / k_abs;
    const double p = pt_gev / std::sin(theta);
    out.module = static_cast<int>(ctx.hits.module[b]);
    out.p = {ctx.hits.u[b], ctx.hits.v[b], phi, theta, q / p};
    out.C.fill(0);
    out.C[0] = ctx.hits.var_u[b];
    out.C[6] = ctx.hits.var_v[b];
    out.C[12] = ctx.cfg.sigma_phi * ctx.cfg.sigma_phi;
    out.C[18] = ctx.cfg.sigma_theta * ctx.cfg.sigma_theta;
    // Curvature from a short lever arm is poorly known: its sagitta error (chord L, hit error sigma)
    // gives sigma(1/R) ~ 8 sigma / L^2, added to the relative q/p uncertainty.
    const double sig_hit = std::sqrt(std::max(ctx.hits.var_u[m], 1e-6));
    const double sig_qop_curv = 8.0 * sig_hit / (lb * lb) * std::sin(theta) / (kB * std::fabs(bz));
    out.C[24] = std::pow(ctx.cfg.sigma_qop_rel * out.p[4], 2) + sig_qop_curv * sig_qop_curv;
    return true;
}

// Appends a step to tr (hit -1: a hole). `filtered` must not be one of ctx.nodes' (they may move).
void push_step(Context& ctx, Trajectory& tr, const BoundState& filtered, int64_t hit) {
    ctx.nodes.push_back({{filtered.module, hit, filtered}, tr.last});
    tr.last = static_cast<int>(ctx.nodes.size()) - 1;
}

void drop_trailing_holes(const Context& ctx, Trajectory& tr) {
    while (tr.last >= 0 && ctx.nodes[tr.last].step.hit < 0) tr.last = ctx.nodes[tr.last].prev;
}

Track kept(const Context& ctx, const Trajectory& tr) {
    Track t;
    for (int i = tr.last; i >= 0; i = ctx.nodes[i].prev) t.steps.push_back(ctx.nodes[i].step);
    std::reverse(t.steps.begin(), t.steps.end());
    t.chi2 = tr.chi2;
    t.n_meas = tr.n_meas;
    t.eloss = tr.eloss;
    return t;
}

void add_measurement(Context& ctx, Trajectory& tr, const BoundState& filtered, int64_t hit, double chi2) {
    push_step(ctx, tr, filtered, hit);
    tr.chi2 += chi2;
    tr.n_meas += 1;
    tr.holes = 0;
    tr.state = filtered;
    apply_material(ctx.geo, tr.state, ctx.x0_of(filtered.module), ctx.cfg.mass, tr.eloss, state_sines(tr));
}

// Extends tr by one layer: returns the children (branches on compatible hits, or one with a hole).
void extend(Context& ctx, Trajectory& tr, std::vector<Trajectory>& children, std::vector<Trajectory>& finished,
            int max_branches) {
    auto& crossed = ctx.crossed;
    BoundTransport from_tr(ctx.geo, ctx.stepper, tr.state, state_sines(tr));
    if (!ctx.finder.next_layer(ctx.stepper, from_tr.start(), tr.state.module, tr.path,
                               std::min(ctx.cfg.max_path, tr.path_limit), ctx.finder_cfg, crossed)) {
        finished.push_back(tr);
        return;
    }
    auto& options = ctx.options;
    options.clear();
    BoundState hole_state;
    double hole_path = -1;
    for (const auto& [s_est, m] : crossed) {
        // A module without hits only matters as the hole's state, which the first reachable module gives.
        if (hole_path >= 0 && ctx.module_start[m] == ctx.module_start[m + 1]) continue;
        BoundState pred;
        double s;
        if (!from_tr.to(m, +1, s_est + 100.0, pred, s)) continue;
        if (hole_path < 0) { hole_state = pred; hole_path = s; }
        for (int k = ctx.module_start[m]; k < ctx.module_start[m + 1]; ++k) {
            const Measurement& x = ctx.module_meas[k];
            if (surely_incompatible(pred.p.data(), pred.C.data(), x, ctx.cfg.chi2_max)) continue;
            const double chi2 = kalman_chi2_2d(pred.p.data(), pred.C.data(), x.u, x.v, x.var_u, x.var_v);
            if (chi2 < ctx.cfg.chi2_max) options.push_back({chi2, ctx.module_hits[k], &x, pred, s});
        }
    }
    if (hole_path < 0) { finished.push_back(tr); return; }
    std::sort(options.begin(), options.end(), [](const Option& a, const Option& b) { return a.chi2 < b.chi2; });
    // Each branch takes one hit, then the best compatible hit on every other module of the layer
    // that the track crosses too (overlapping modules give a particle two hits in one layer).
    auto& taken = ctx.taken;
    taken.clear();
    int n_take = 0;
    for (size_t i = 0; i < options.size() && n_take < max_branches; ++i) {
        const Option& o = options[i];
        if (std::find(taken.begin(), taken.end(), o.hit) != taken.end()) continue;
        auto& seq = ctx.seq;
        seq.assign(1, &o);
        for (const auto& [s_est, m] : crossed) {
            if (m == o.predicted.module) continue;
            for (const Option& x : options)  // sorted by chi2: the first on m is its best
                if (x.predicted.module == m) { seq.push_back(&x); break; }
        }
        std::sort(seq.begin(), seq.end(), [](const Option* a, const Option* b) { return a->path < b->path; });
        Trajectory child = tr;
        bool first = true;
        for (const Option* x : seq) {
            BoundState st;
            double s;
            if (first) { st = x->predicted; s = x->path; }
            else if (!BoundTransport(ctx.geo, ctx.stepper, child.state, state_sines(child)).to(x->predicted.module, +1, 200.0, st, s)) continue;
            const auto h = x->hit;
            const Measurement& me = *x->meas;
            const double chi2 = kalman_update(st, me.u, me.v, me.var_u, me.var_v, first);
            if (!first && chi2 >= ctx.cfg.chi2_max) continue;
            if (first) kalman_update(st, me.u, me.v, me.var_u, me.var_v, false);
            child.path += s;
            add_measurement(ctx, child, st, h, chi2);
            taken.push_back(h);
            first = false;
        }
        children.push_back(std::move(child));
        ++n_take;
    }
    if (n_take == 0) {
        Trajectory child = tr;
        push_step(ctx, child, hole_state, -1);
        child.state = hole_state;
        apply_material(ctx.geo, child.state, ctx.x0_of(hole_state.module), ctx.cfg.mass, child.eloss, state_sines(child));
        child.path += hole_path;
        child.holes += 1;
        if (child.holes > ctx.cfg.max_holes) finished.push_back(tr);
        else children.push_back(std::move(child));
    }
}

bool better(const Trajectory& a, const Trajectory& b) {
    if (a.n_meas != b.n_meas) return a.n_meas > b.n_meas;
    return a.chi2 < b.chi2;
}

// Steps the backward filter may fail to reach (left out of the fit) before the fit fails.
constexpr int kMaxUnreachableSteps = 2;

// Backward filter over the measured steps, from the last (covariance inflated) to the first: the
// state at the first hit then carries the information of every hit (a smoother's result there).
bool backward_filter(Context& ctx, const Track& tr, BoundState& first, double& chi2, int& n_meas) {
    const auto& steps = tr.steps;
    int last = static_cast<int>(steps.size()) - 1;  // the last measured step
    while (last >= 0 && steps[last].hit < 0) --last;
    if (last < 0) return false;
    BoundState st = steps[last].filtered;
    for (double& c : st.C) c *= 100.0;
    chi2 = 0;
    n_meas = 0;
    int unreachable = 0;
    SinesCache sines;
    for (int k = last; k >= 0; --k) {
        const Step& step = steps[k];
        if (k != last) {
            BoundState pred;
            double s;
            if (!BoundTransport(ctx.geo, ctx.fit_stepper, st, sines.of(st.p)).to(step.module, -1, 3000.0, pred, s)) {
                // A looper meets modules near its turning radius at grazing incidence, where the
                // updated state may just miss the plane: leave such a step out of the fit.
                if (++unreachable > kMaxUnreachableSteps) return false;
                continue;
            }
            st = pred;
            // The material lumped at this module lies between its hit and the next one outward.
            apply_material(ctx.geo, st, ctx.x0_of(st.module), ctx.cfg.mass, -tr.eloss, sines.of(st.p));
        }
        if (step.hit >= 0) {
            const int64_t h = step.hit;
            chi2 += kalman_update(st, ctx.hits.u[h], ctx.hits.v[h], ctx.hits.var_u[h], ctx.hits.var_v[h], false);
            ++n_meas;
        }
    }
    first = st;
    return true;
}

void smooth_to_perigee(Context& ctx, const Track& tr, TrackOut& out) {
    BoundState first;
    double chi2;
    int n_meas;
    if (!backward_filter(ctx, tr, first, chi2, n_meas)) return;
    out.chi2 = chi2;
    out.ndf = 2 * n_meas - 5;
    out.has_perigee = to_perigee(ctx.geo, ctx.stepper, first, out.perigee, out.cov);
}

// The same track seen by a particle of opposite charge flying the other way.
BoundState reversed(const BoundState& b) {
    BoundState r = b;
    r.p[2] = wrap_phi(b.p[2] + 3.14159265358979323846);
    r.p[3] = 3.14159265358979323846 - b.p[3];
    r.p[4] = -b.p[4];
    // Jacobian diag(1, 1, 1, -1, -1): flip the covariance terms between {theta, q/p} and the rest.
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j)
            if ((i >= 3) != (j >= 3)) r.C[5 * i + j] = -r.C[5 * i + j];
    return r;
}

// Follows a trajectory greedily (one branch) until it stops.
Trajectory follow(Context& ctx, Trajectory tr) {
    auto& children = ctx.follow_children;
    auto& finished = ctx.follow_finished;
    finished.clear();
    for (int round = 0; round < 80; ++round) {
        children.clear();
        extend(ctx, tr, children, finished, 1);
        if (children.empty()) break;
        tr = std::move(children.front());
    }
    if (!finished.empty()) tr = finished.back();
    drop_trailing_holes(ctx, tr);
    return tr;
}

// Helix path (mm) from the state back to the beam line (its transverse point of closest approach
// for a track from the origin), plus slack for scattering and displacement: following a track
// inward further than this goes through the beam line onto other particles' hits on the far side.
double path_to_beam_line(const Context& ctx, const BoundState& b) {
    const Module& mod = ctx.geo.modules()[b.module];
    State st;
    bound_to_state(mod.centre, mod.rot, b.p.data(), st);
    const double r = std::sqrt(st.pos[0] * st.pos[0] + st.pos[1] * st.pos[1]);
    const double sin_t = std::max(1e-3, std::sqrt(st.dir[0] * st.dir[0] + st.dir[1] * st.dir[1]));
    const double h = std::fabs(helix_h(st.qop, ctx.stepper.local_bz(st)));
    // Transverse circle radius R = sin(theta) / h; arc to radius r: 2 R asin(r / 2R), over sin(theta).
    const double x = r * h / (2.0 * sin_t);
    const double s = h > 1e-12 ? 2.0 * std::asin(std::min(1.0, x)) / h : r / sin_t;
    return 1.1 * s + 10.0;
}

// With the full-information state at the first hit: collect the hits inward of the seed (which the
// outward search never visits), then follow the track outward again from its innermost hit so that
// layers the seed skipped between its own hits are searched too.
// Its search's steps replace those in ctx.nodes.
Track refined_or_same(Context& ctx, const Track& best) {
    BoundState first;
    double chi2;
    int n_meas;
    if (!backward_filter(ctx, best, first, chi2, n_meas)) return best;
    int64_t first_hit = -1;
    for (const auto& s : best.steps)
        if (s.hit >= 0) { first_hit = s.hit; break; }
    ctx.nodes.clear();
    Trajectory inward;
    inward.eloss = -1;
    inward.state = reversed(first);
    inward.path_limit = path_to_beam_line(ctx, first);
    inward = follow(ctx, inward);
    BoundState start = first;
    int64_t start_hit = first_hit;
    if (inward.last >= 0) {
        start = reversed(ctx.nodes[inward.last].step.filtered);
        start_hit = ctx.nodes[inward.last].step.hit;
    }
    for (double& c : start.C) c *= 10.0;  // it already holds these hits' information
    Trajectory fwd;
    add_measurement(ctx, fwd, start, start_hit, 0.0);
    fwd = follow(ctx, fwd);
    if (fwd.n_meas < best.n_meas) return best;
    Track out = kept(ctx, fwd);
    // A wrong hit taken inward of the seed can lead the re-follow onto another particle: keep the
    // re-followed track only when it still holds all but one of the original track's hits.
    int n_kept = 0;
    for (const auto& a : best.steps) {
        if (a.hit < 0) continue;
        for (const auto& b : out.steps)
            if (b.hit == a.hit) { ++n_kept; break; }
    }
    return n_kept >= best.n_meas - 1 ? out : best;
}

Track refine(Context& ctx, const Track& best) {
    Track out = refined_or_same(ctx, best);
    out.refined = true;
    return out;
}

bool start_from_seed(Context& ctx, const int64_t* s, Trajectory& tr) {
    BoundState st;
    if (!seed_state(ctx, s[0], s[1], s[2], st)) return false;
    tr = Trajectory{};
    add_measurement(ctx, tr, st, s[0], 0.0);
    for (int k = 1; k < 3; ++k) {
        BoundState pred;
        double path;
        const int m = static_cast<int>(ctx.hits.module[s[k]]);
        if (m == tr.state.module) return false;
        if (!BoundTransport(ctx.geo, ctx.stepper, tr.state, state_sines(tr)).to(m, +1, 2000.0, pred, path)) return false;
        const double chi2 = kalman_update(pred, ctx.hits.u[s[k]], ctx.hits.v[s[k]], ctx.hits.var_u[s[k]],
                                          ctx.hits.var_v[s[k]], false);
        tr.path += path;
        add_measurement(ctx, tr, pred, s[k], chi2);
    }
    return true;
}

// What following one seed gave: its best track (when one was kept) and its counters.
struct SeedOutcome {
    bool has_track = false;
    Track track;
    int64_t candidates = 0;
    bool rescued = false;
};

// The beam search from one seed, outward layer by layer, then the rescue of a short best trajectory.
// It reads nothing of the other seeds' results, so seeds can be followed in any order and in parallel.
void follow_seed(Context& ctx, const int64_t* s, SeedOutcome& out) {
    const CkfConfig& cfg = ctx.cfg;
    auto& active = ctx.seed_active;
    auto& children = ctx.seed_children;
    auto& finished = ctx.seed_finished;
    ctx.nodes.clear();
    Trajectory tr;
    if (!start_from_seed(ctx, s, tr)) return;
    active.assign(1, tr);
    finished.clear();
    for (int round = 0; round < 80 && !active.empty(); ++round) {
        children.clear();
        for (auto& a : active) extend(ctx, a, children, finished, cfg.max_branches);
        std::sort(children.begin(), children.end(), better);
        if (static_cast<int>(children.size()) > cfg.max_candidates) children.resize(cfg.max_candidates);
        out.candidates += static_cast<int64_t>(children.size());
        active.swap(children);
    }
    for (auto& a : active) finished.push_back(std::move(a));
    if (finished.empty()) return;
    auto it = std::min_element(finished.begin(), finished.end(), better);
    // Short trajectories are dropped (unless rescued) before their steps are copied out.
    const bool rescue = it->n_meas < cfg.min_measurements && cfg.refine && cfg.rescue_min_measurements > 0 &&
                        it->n_meas >= cfg.rescue_min_measurements;
    if (it->n_meas < cfg.min_measurements && !rescue) return;
    drop_trailing_holes(ctx, *it);
    Track best = kept(ctx, *it);
    // A seed near the outer end of its track (wide doublets, displaced tracks) finds few hits
    // outward; its inward hits come only with the refinement, so try that before dropping it.
    if (rescue) {
        best = refine(ctx, best);
        out.rescued = true;
    }
    if (best.n_meas < cfg.min_measurements) return;
    out.has_track = true;
    out.track = std::move(best);
}

// The workers of one call: each has its own Context (scratch and navigation caches), made on first
// use and kept for the call's later phases.
class Workers {
public:
    Workers(int n, const Geometry& geo, const FieldView& field, const HitsView& hits, const ModuleHits& mh,
            const std::vector<double>& x0, const CkfConfig& cfg)
        : contexts_(n), geo_(geo), field_(field), hits_(hits), mh_(mh), x0_(x0), cfg_(cfg) {}

    // body(ctx, i) for i in [0, n), handed out in increasing order (parallel_for).
    template <class Body>
    void for_each(size_t n, Body&& body) {
        parallel_for(static_cast<int>(contexts_.size()), n, [&](int w, size_t i) {
            if (!contexts_[w]) contexts_[w] = std::make_unique<Context>(geo_, field_, hits_, mh_, x0_, cfg_);
            body(*contexts_[w], i);
        });
    }

private:
    std::vector<std::unique_ptr<Context>> contexts_;
    const Geometry& geo_;
    const FieldView& field_;
    const HitsView& hits_;
    const ModuleHits& mh_;
    const std::vector<double>& x0_;
    const CkfConfig& cfg_;
};

}  // namespace

std::vector<TrackOut> run_ckf(const Geometry& geo, const FieldView& field, const HitsView& hits,
                              const std::vector<int64_t>& seeds, const std::vector<double>& layer_x0,
                              const CkfConfig& cfg, CkfStats& stats) {
    const ModuleHits module_hits(geo, hits);
    const size_t n_seeds = seeds.size() / 3;
    Workers workers(worker_count(cfg.threads, n_seeds), geo, field, hits, module_hits, layer_x0, cfg);

    // Seeds are followed in parallel but committed in seed order, so the result is that of one
    // thread: a seed is skipped when skip_used_hits of its hits are on tracks of earlier seeds. A
    // worker skips a seed at once when the tracks committed so far already say so (hits only ever
    // become used, so the commit says so too); otherwise it follows the seed, and the commit drops
    // the work when earlier seeds still in flight took its hits.
    std::unique_ptr<std::atomic<uint8_t>[]> used(new std::atomic<uint8_t>[std::max(hits.n, 1)]);
    for (int i = 0; i < hits.n; ++i) used[i].store(0, std::memory_order_relaxed);
    auto skipped = [&](const int64_t* s) {
        if (!cfg.skip_used_seeds) return false;
        const int n = used[s[0]].load(std::memory_order_relaxed) + used[s[1]].load(std::memory_order_relaxed) +
                      used[s[2]].load(std::memory_order_relaxed);
        return n >= cfg.skip_used_hits;
    };
    std::vector<SeedOutcome> outcome(n_seeds);
    std::vector<char> ready(n_seeds, 0);
    std::mutex commit_mutex;
    size_t committed = 0;
    std::vector<Track> found;
    std::vector<int> found_seed;
    workers.for_each(n_seeds, [&](Context& ctx, size_t i) {
        const int64_t* s = &seeds[3 * i];
        if (!skipped(s)) follow_seed(ctx, s, outcome[i]);
        std::lock_guard<std::mutex> lock(commit_mutex);
        ready[i] = 1;
        for (; committed < n_seeds && ready[committed]; ++committed) {
            SeedOutcome o = std::move(outcome[committed]);
            const int64_t* sc = &seeds[3 * committed];
            if (skipped(sc)) {
                ++stats.seeds_skipped;
                continue;
            }
            ++stats.seeds_used;
            stats.candidates += o.candidates;
            stats.rescued += o.rescued ? 1 : 0;
            if (!o.has_track) continue;
            for (const auto& st : o.track.steps)
                if (st.hit >= 0) used[st.hit].store(1, std::memory_order_relaxed);
            found.push_back(std::move(o.track));
            found_seed.push_back(static_cast<int>(committed));
        }
    });
    stats.tracks_before_ambiguity = static_cast<int64_t>(found.size());

    // Greedy ambiguity resolution: best tracks first; a track sharing too many hits is dropped,
    // shared hits stay with the better track so every hit ends up in at most one track.
    std::vector<size_t> order(found.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        // Quality: measurements, less two per unit of chi2/ndf above 1, so that a long track made of
        // several particles' hits does not outrank a clean one; then chi2/ndf; then seed order.
        const double ca = found[a].chi2 / std::max(1, 2 * found[a].n_meas - 5);
        const double cb = found[b].chi2 / std::max(1, 2 * found[b].n_meas - 5);
        const double qa = found[a].n_meas - 2.0 * std::max(0.0, ca - 1.0);
        const double qb = found[b].n_meas - 2.0 * std::max(0.0, cb - 1.0);
        if (qa != qb) return qa > qb;
        if (ca != cb) return ca < cb;
        return a < b;
    });
    std::vector<int> owner(hits.n, -1);
    std::vector<size_t> accepted;
    for (size_t idx : order) {
        const Track& tr = found[idx];
        int shared = 0;
        for (const auto& st : tr.steps)
            if (st.hit >= 0 && owner[st.hit] >= 0) ++shared;
        if (shared > cfg.max_shared || tr.n_meas - shared < cfg.min_measurements) continue;
        for (const auto& st : tr.steps)
            if (st.hit >= 0 && owner[st.hit] < 0) owner[st.hit] = static_cast<int>(idx);
        accepted.push_back(idx);
    }
    // Refinement of the accepted tracks only (it is the costly part): hits inward of the seed and in
    // layers the seed skipped; then the backward filter to the perigee. Each track's own work, in
    // parallel; which hits it keeps (a hit stays with the track that owned it first) is decided
    // after, in order. A track that loses its hits was fitted for nothing, as it is rare.
    std::vector<Track> refined(accepted.size());
    std::vector<TrackOut> fitted(accepted.size());
    workers.for_each(accepted.size(), [&](Context& ctx, size_t k) {
        const Track& tr = found[accepted[k]];
        refined[k] = cfg.refine && !tr.refined ? refine(ctx, tr) : tr;
        smooth_to_perigee(ctx, refined[k], fitted[k]);
    });
    std::vector<TrackOut> out;
    std::vector<char> final_owner(hits.n, 0);
    for (size_t k = 0; k < accepted.size(); ++k) {
        const size_t idx = accepted[k];
        TrackOut& t = fitted[k];
        t.seed = found_seed[idx];
        for (const auto& st : refined[k].steps) {
            if (st.hit < 0 || final_owner[st.hit]) continue;
            if (owner[st.hit] >= 0 && owner[st.hit] != static_cast<int>(idx)) continue;
            final_owner[st.hit] = 1;
            t.hits.push_back(st.hit);
        }
        if (static_cast<int>(t.hits.size()) < std::min(cfg.min_measurements, 3)) {  // its hits went to better tracks
            for (auto h : t.hits) final_owner[h] = 0;
            continue;
        }
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<TrackOut> fit_tracks(const Geometry& geo, const FieldView& field, const HitsView& hits,
                                 const std::vector<int64_t>& offsets, const std::vector<int64_t>& hit_index,
                                 const std::vector<double>& layer_x0, const CkfConfig& cfg) {
    const ModuleHits module_hits(geo, hits);
    const size_t n_tracks = offsets.size() - 1;
    Workers workers(worker_count(cfg.threads, n_tracks), geo, field, hits, module_hits, layer_x0, cfg);
    std::vector<TrackOut> out(n_tracks);
    workers.for_each(n_tracks, [&](Context& ctx, size_t t) {
        const int64_t* h = hit_index.data() + offsets[t];
        const int64_t n = offsets[t + 1] - offsets[t];
        TrackOut& o = out[t];
        o.hits.assign(h, h + n);
        ctx.nodes.clear();
        Trajectory tr;
        if (n < 3 || !start_from_seed(ctx, h, tr)) return;
        for (int64_t k = 3; k < n; ++k) {
            BoundState pred;
            double path;
            const int m = static_cast<int>(hits.module[h[k]]);
            if (m == tr.state.module) continue;  // a split cluster: one hit per module crossing
            if (!BoundTransport(geo, ctx.fit_stepper, tr.state, state_sines(tr)).to(m, +1, 3000.0, pred, path)) return;
            const double chi2 = kalman_update(pred, hits.u[h[k]], hits.v[h[k]], hits.var_u[h[k]], hits.var_v[h[k]], false);
            add_measurement(ctx, tr, pred, h[k], chi2);
        }
        smooth_to_perigee(ctx, kept(ctx, tr), o);
    });
    return out;
}

}  // namespace trackcore
