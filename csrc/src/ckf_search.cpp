#include "ckf_search.hpp"

#include <algorithm>
#include <cmath>

#include "trackcore/kalman_math.hpp"
#include "trackcore/transform.hpp"

namespace trackcore::ckf_search {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

void smooth_to_perigee(Context& ctx, const Track& tr, TrackOut& out) {
    BoundState first;
    double chi2;
    int n_meas;
    if (!backward_filter(ctx, tr, first, chi2, n_meas)) return;
    out.chi2 = chi2;
    out.ndf = 2 * n_meas - 5;
    out.has_perigee = to_perigee(ctx.geo, ctx.stepper, first, out.perigee, out.cov);
}

namespace {

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

}  // namespace

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

}  // namespace trackcore::ckf_search
