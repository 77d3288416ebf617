#pragma once
// The combinatorial Kalman filter of the cupy backend (csrc/cuda/ckf.cu), one seed per GPU thread:
// the beam search from a triplet seed, the refinement and the backward filter to the perigee. It
// follows the C++ core's ckf_search.cpp step for step over the buffers of ckf_state_device.hpp and
// the navigation of layer_search_device.hpp; its host build gives the core's tracks bit for bit
// (tests/backends/test_cupy_ckf.py).
#include <cmath>
#include <cstdint>

#include "trackcore/bound_transport.hpp"
#include "trackcore/ckf_state_device.hpp"
#include "trackcore/hostdevice.hpp"
#include "trackcore/layer_search_device.hpp"

namespace trackcore {
namespace dev {

// True only when the 2-D chi2 of x against the prediction is surely >= chi2_max (no divisions).
TC_HD bool surely_incompatible(const double* p, const double* C, const double* x, double chi2_max) {
    const double r0 = x[0] - p[0], r1 = x[1] - p[1];
    const double s00 = C[0] + x[2], s01 = C[1], s11 = C[6] + x[3];
    const double det = s00 * s11 - s01 * s01;
    return r0 * r0 + r1 * r1 > chi2_max * (s00 + s11) * (1.0 + 1e-6) && det > 1e-3 * s00 * s11;
}

// The bound state at the bottom hit from the circle through the seed's three space points.
TC_HDI bool seed_state(const Context& ctx, int64_t b, int64_t m, int64_t t, Bound& out) {
    const HitsView& h = ctx.hits;
    const double* pb = h.xyz + 3 * b;
    const double* pm = h.xyz + 3 * m;
    const double* pt = h.xyz + 3 * t;
    const double ax = pm[0] - pb[0], ay = pm[1] - pb[1], bx = pt[0] - pb[0], by = pt[1] - pb[1];
    const double la = std::hypot(ax, ay), lb = std::hypot(bx, by), lc = std::hypot(bx - ax, by - ay);
    if (la < 1e-6 || lb < 1e-6 || lc < 1e-6) return false;
    const double kappa = 2.0 * (ax * by - ay * bx) / (la * lb * lc);
    const double k_abs = dmax(std::fabs(kappa), 1e-7);
    const double phi = std::atan2(ay, ax) - std::asin(dmin(1.0, la * kappa / 2.0));
    const double arc = 2.0 * std::asin(dmin(1.0, lb * k_abs / 2.0)) / k_abs;
    const double theta = std::atan2(arc, pt[2] - pb[2]);
    const double bz = ctx.field.constant ? ctx.field.bz : 2.0;
    const int q = (kappa > 0) == (bz > 0) ? -1 : 1;
    const double pt_gev = kB * std::fabs(bz) / k_abs;
    const double p = pt_gev / std::sin(theta);
    out.module = static_cast<int>(h.module[b]);
    out.p[0] = h.u[b], out.p[1] = h.v[b], out.p[2] = phi, out.p[3] = theta, out.p[4] = q / p;
    for (int k = 0; k < 25; ++k) out.C[k] = 0;
    out.C[0] = h.var_u[b];
    out.C[6] = h.var_v[b];
    out.C[12] = ctx.cfg.sigma_phi * ctx.cfg.sigma_phi;
    out.C[18] = ctx.cfg.sigma_theta * ctx.cfg.sigma_theta;
    const double sig_hit = std::sqrt(dmax(h.var_u[m], 1e-6));
    const double sig_qop_curv = 8.0 * sig_hit / (lb * lb) * std::sin(theta) / (kB * std::fabs(bz));
    const double rel = ctx.cfg.sigma_qop_rel * out.p[4];  // std::pow(rel, 2) in the core: GCC folds it to rel * rel
    out.C[24] = rel * rel + sig_qop_curv * sig_qop_curv;
    return true;
}

TC_HD void push_step(Scratch& sc, Trajectory& tr, int module, int64_t hit) {
    if (sc.n_nodes >= kMaxNodes) { sc.overflow |= kNodesFull; return; }
    sc.nodes[sc.n_nodes] = {hit, module, tr.last};
    tr.last = sc.n_nodes++;
}

TC_HD void drop_trailing_holes(const Scratch& sc, Trajectory& tr) {
    while (tr.last >= 0 && sc.nodes[tr.last].hit < 0) tr.last = sc.nodes[tr.last].prev;
}

TC_HDI void add_measurement(const Context& ctx, Scratch& sc, Trajectory& tr, const Bound& filtered, int64_t hit,
                            double chi2) {
    push_step(sc, tr, filtered.module, hit);
    tr.chi2 += chi2;
    tr.n_meas += 1;
    tr.holes = 0;
    tr.state = filtered;
    tr.meas = filtered;
    apply_material(ctx.geo, tr.state, ctx.x0_of(filtered.module), ctx.cfg.mass, tr.eloss);
}

// The trajectory's steps in path order, into out (its outcome fields untouched).
TC_HDI void kept(const Scratch& sc, const Trajectory& tr, TrackRec& out) {
    int n = 0;
    for (int i = tr.last; i >= 0; i = sc.nodes[i].prev) ++n;
    if (n > kMaxSteps) { out.overflow |= kStepsFull; n = 0; }
    out.n_steps = n;
    int k = n - 1;
    for (int i = tr.last; i >= 0 && k >= 0; i = sc.nodes[i].prev, --k) {
        out.hit[k] = sc.nodes[i].hit;
        out.module[k] = sc.nodes[i].module;
    }
    out.last = tr.meas;
    out.chi2 = tr.chi2;
    out.n_meas = tr.n_meas;
    out.eloss = tr.eloss;
    out.refined = 0;
}

TC_HD void copy_track(const TrackRec& in, TrackRec& out) {
    for (int k = 0; k < in.n_steps; ++k) out.hit[k] = in.hit[k], out.module[k] = in.module[k];
    out.n_steps = in.n_steps;
    out.n_meas = in.n_meas;
    out.eloss = in.eloss;
    out.refined = in.refined;
    out.last = in.last;
    out.chi2 = in.chi2;
}

// Insertion sort of idx[0..n) by key (stable: std::sort's result for the short lists it gets here).
template <class Less>
TC_HDI void insertion_sort(int* idx, int n, Less less) {
    for (int i = 1; i < n; ++i) {
        const int x = idx[i];
        int j = i - 1;
        while (j >= 0 && less(x, idx[j])) {
            idx[j + 1] = idx[j];
            --j;
        }
        idx[j + 1] = x;
    }
}

// Extends tr by one layer: children (branches on compatible hits, or one with a hole) appended to
// sc.children, or tr to `fin` when it stops.
TC_HDN void extend(const Context& ctx, const Stepper& stepper, Scratch& sc, const Trajectory& tr, Finished& fin,
                   int max_branches) {
    const GeometryView& g = ctx.geo;
    const HitsView& h = ctx.hits;
    const Config& cfg = ctx.cfg;
    State start;
    state_of(g, tr.state, start);
    if (!next_layer(ctx, stepper, start, tr.state.module, tr.path, dmin(cfg.max_path, tr.path_limit), sc)) {
        push_finished(fin, tr);
        return;
    }
    sc.n_options = 0;
    int hole_slot = -1;
    int n_slots = 0;
    double slot_path[kMaxCrossed];
    for (int c = 0; c < sc.n_crossed; ++c) {
        const int m = sc.crossed[c].module;
        if (hole_slot >= 0 && h.module_start[m] == h.module_start[m + 1]) continue;
        Bound& pred = sc.pred[n_slots];
        double s;
        if (!transport_bound(g, stepper, tr.state, m, +1, sc.crossed[c].s + 100.0, pred, s)) continue;
        const int slot = n_slots++;
        slot_path[slot] = s;
        if (hole_slot < 0) hole_slot = slot;
        for (int k = h.module_start[m]; k < h.module_start[m + 1]; ++k) {
            const double* x = h.module_meas + 4 * k;
            if (surely_incompatible(pred.p, pred.C, x, cfg.chi2_max)) continue;
            const double chi2 = kalman_chi2_2d(pred.p, pred.C, x[0], x[1], x[2], x[3]);
            if (chi2 < cfg.chi2_max) {
                if (sc.n_options >= kMaxOptions) { sc.overflow |= kOptionsFull; break; }
                sc.options[sc.n_options++] = {chi2, static_cast<int64_t>(h.module_hits[k]), k, slot, s};
            }
        }
    }
    if (hole_slot < 0) {
        push_finished(fin, tr);
        return;
    }
    int* order = sc.order;
    for (int i = 0; i < sc.n_options; ++i) order[i] = i;
    insertion_sort(order, sc.n_options, [&](int a, int b) { return sc.options[a].chi2 < sc.options[b].chi2; });
    // Each branch takes one hit, then the best compatible hit on every other module of the layer
    // that the track crosses too.
    int n_taken = 0, n_take = 0;
    for (int i = 0; i < sc.n_options && n_take < max_branches; ++i) {
        const Option& o = sc.options[order[i]];
        bool was_taken = false;
        for (int t = 0; t < n_taken && !was_taken; ++t) was_taken = sc.taken[t] == o.hit;
        if (was_taken) continue;
        const int o_module = sc.pred[o.slot].module;
        int n_seq = 0;
        sc.seq[n_seq++] = order[i];
        for (int c = 0; c < sc.n_crossed; ++c) {
            const int m = sc.crossed[c].module;
            if (m == o_module) continue;
            for (int j = 0; j < sc.n_options; ++j)
                if (sc.pred[sc.options[order[j]].slot].module == m) {
                    if (n_seq < kMaxCrossed) sc.seq[n_seq++] = order[j];
                    break;
                }
        }
        insertion_sort(sc.seq, n_seq, [&](int a, int b) { return sc.options[a].path < sc.options[b].path; });
        if (sc.n_children >= kMaxChildren) break;  // cannot happen: max_candidates * max_branches are checked
        Trajectory& child = sc.children[sc.n_children];
        child = tr;
        bool first = true;
        for (int q = 0; q < n_seq; ++q) {
            const Option& x = sc.options[sc.seq[q]];
            Bound st;
            double s;
            if (first) {
                st = sc.pred[x.slot];
                s = x.path;
            } else if (!transport_bound(g, stepper, child.state, sc.pred[x.slot].module, +1, 200.0, st, s)) {
                continue;
            }
            const double* me = h.module_meas + 4 * x.meas;
            const double chi2 = kalman_update(st, me[0], me[1], me[2], me[3], first);
            if (!first && chi2 >= cfg.chi2_max) continue;
            if (first) kalman_update(st, me[0], me[1], me[2], me[3], false);
            child.path += s;
            add_measurement(ctx, sc, child, st, x.hit, chi2);
            if (n_taken < kMaxOptions) sc.taken[n_taken++] = x.hit;
            first = false;
        }
        ++sc.n_children;
        ++n_take;
    }
    if (n_take == 0) {
        if (sc.n_children >= kMaxChildren) return;
        Trajectory& child = sc.children[sc.n_children];
        child = tr;
        const Bound& hole = sc.pred[hole_slot];
        push_step(sc, child, hole.module, -1);
        child.state = hole;
        apply_material(g, child.state, ctx.x0_of(hole.module), cfg.mass, child.eloss);
        child.path += slot_path[hole_slot];
        child.holes += 1;
        if (child.holes > cfg.max_holes) push_finished(fin, tr);
        else ++sc.n_children;
    }
}

// Steps the backward filter may fail to reach (left out of the fit) before the fit fails.
constexpr int kMaxUnreachableSteps = 2;

// Backward filter over the track's steps, from the last measured one (covariance inflated) to the first.
TC_HDN bool backward_filter(const Context& ctx, const TrackRec& tr, Bound& first, double& chi2, int& n_meas) {
    const Stepper fit = ctx.fit_stepper();
    int last = tr.n_steps - 1;
    while (last >= 0 && tr.hit[last] < 0) --last;
    if (last < 0) return false;
    Bound st = tr.last;
    for (int k = 0; k < 25; ++k) st.C[k] *= 100.0;
    chi2 = 0;
    n_meas = 0;
    int unreachable = 0;
    for (int k = last; k >= 0; --k) {
        if (k != last) {
            Bound pred;
            double s;
            if (!transport_bound(ctx.geo, fit, st, tr.module[k], -1, 3000.0, pred, s)) {
                if (++unreachable > kMaxUnreachableSteps) return false;
                continue;
            }
            st = pred;
            apply_material(ctx.geo, st, ctx.x0_of(st.module), ctx.cfg.mass, -tr.eloss);
        }
        if (tr.hit[k] >= 0) {
            const int64_t hh = tr.hit[k];
            chi2 += kalman_update(st, ctx.hits.u[hh], ctx.hits.v[hh], ctx.hits.var_u[hh], ctx.hits.var_v[hh], false);
            ++n_meas;
        }
    }
    first = st;
    return true;
}

// The perigee fit of a track: chi2 and ndf of the backward filter, perigee parameters and covariance.
struct FitOut {
    double perigee[5];
    double cov[25];
    double chi2;
    int ndf;
    int has_perigee;
};

TC_HDI void smooth_to_perigee(const Context& ctx, const TrackRec& tr, FitOut& out) {
    for (int k = 0; k < 5; ++k) out.perigee[k] = 0;
    for (int k = 0; k < 25; ++k) out.cov[k] = 0;
    out.chi2 = 0, out.ndf = 0, out.has_perigee = 0;
    Bound first;
    double chi2;
    int n_meas;
    if (!backward_filter(ctx, tr, first, chi2, n_meas)) return;
    out.chi2 = chi2;
    out.ndf = 2 * n_meas - 5;
    out.has_perigee = to_perigee(ctx.geo, ctx.stepper(), first, out.perigee, out.cov) ? 1 : 0;
}

// The same track seen by a particle of opposite charge flying the other way.
TC_HD Bound reversed(const Bound& b) {
    Bound r = b;
    r.p[2] = wrap_phi(b.p[2] + kPi);
    r.p[3] = kPi - b.p[3];
    r.p[4] = -b.p[4];
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j)
            if ((i >= 3) != (j >= 3)) r.C[5 * i + j] = -r.C[5 * i + j];
    return r;
}

// Follows tr greedily (one branch) until it stops; the result replaces tr.
TC_HDN void follow(const Context& ctx, const Stepper& stepper, Scratch& sc, Trajectory& tr) {
    Finished& fin = sc.fin_follow;
    fin.any = false;
    fin.keep_last = true;
    for (int round = 0; round < 80; ++round) {
        sc.n_children = 0;
        extend(ctx, stepper, sc, tr, fin, 1);
        if (sc.n_children == 0) break;
        tr = sc.children[0];
    }
    if (fin.any) tr = fin.t;
    drop_trailing_holes(sc, tr);
}

// Helix path from the state back to the beam line, plus slack (ckf_search.cpp's path_to_beam_line).
TC_HDI double path_to_beam_line(const Context& ctx, const Stepper& stepper, const Bound& b) {
    State st;
    state_of(ctx.geo, b, st);
    const double r = std::sqrt(st.pos[0] * st.pos[0] + st.pos[1] * st.pos[1]);
    const double sin_t = dmax(1e-3, std::sqrt(st.dir[0] * st.dir[0] + st.dir[1] * st.dir[1]));
    const double hh = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
    const double x = r * hh / (2.0 * sin_t);
    const double s = hh > 1e-12 ? 2.0 * std::asin(dmin(1.0, x)) / hh : r / sin_t;
    return 1.1 * s + 10.0;
}

// refine(): with the full-information state at the first hit, the hits inward of the seed, then the
// track followed outward again from its innermost hit; `out` gets the result (or best itself).
TC_HDN void refine(const Context& ctx, Scratch& sc, const TrackRec& best, TrackRec& out) {
    const Stepper stepper = ctx.stepper();
    Bound first;
    double chi2;
    int n_meas;
    bool same = true;
    if (backward_filter(ctx, best, first, chi2, n_meas)) {
        int64_t first_hit = -1;
        for (int k = 0; k < best.n_steps; ++k)
            if (best.hit[k] >= 0) { first_hit = best.hit[k]; break; }
        sc.n_nodes = 0;
        Trajectory& inward = sc.work[1];
        reset(inward);
        inward.eloss = -1;
        inward.state = reversed(first);
        inward.path_limit = path_to_beam_line(ctx, stepper, first);
        follow(ctx, stepper, sc, inward);
        Bound start = first;
        int64_t start_hit = first_hit;
        if (inward.last >= 0) {
            start = reversed(inward.meas);
            start_hit = sc.nodes[inward.last].hit;
        }
        for (int k = 0; k < 25; ++k) start.C[k] *= 10.0;
        Trajectory& fwd = sc.work[2];
        reset(fwd);
        add_measurement(ctx, sc, fwd, start, start_hit, 0.0);
        follow(ctx, stepper, sc, fwd);
        if (fwd.n_meas >= best.n_meas) {
            kept(sc, fwd, out);
            int n_kept = 0;
            for (int a = 0; a < best.n_steps; ++a) {
                if (best.hit[a] < 0) continue;
                for (int b = 0; b < out.n_steps; ++b)
                    if (out.hit[b] == best.hit[a]) { ++n_kept; break; }
            }
            same = n_kept < best.n_meas - 1;
        }
    }
    if (same) copy_track(best, out);
    out.refined = 1;
}

// start_from_seed: the first three steps of a trajectory from the seed's hits.
TC_HDI bool start_from_seed(const Context& ctx, const Stepper& stepper, Scratch& sc, const int64_t* s,
                            Trajectory& tr) {
    Bound st;
    if (!seed_state(ctx, s[0], s[1], s[2], st)) return false;
    reset(tr);
    add_measurement(ctx, sc, tr, st, s[0], 0.0);
    for (int k = 1; k < 3; ++k) {
        Bound pred;
        double path;
        const int m = static_cast<int>(ctx.hits.module[s[k]]);
        if (m == tr.state.module) return false;
        if (!transport_bound(ctx.geo, stepper, tr.state, m, +1, 2000.0, pred, path)) return false;
        const int64_t hk = s[k];
        const double chi2 = kalman_update(pred, ctx.hits.u[hk], ctx.hits.v[hk], ctx.hits.var_u[hk], ctx.hits.var_v[hk],
                                          false);
        tr.path += path;
        add_measurement(ctx, sc, tr, pred, s[k], chi2);
    }
    return true;
}

// The beam search from one seed, outward layer by layer, then the rescue of a short best
// trajectory; the outcome (and the track when one is kept) goes to `out`.
TC_HDI void follow_seed(const Context& ctx, Scratch& sc, const int64_t* s, TrackRec& out) {
    const Config& cfg = ctx.cfg;
    const Stepper stepper = ctx.stepper();
    out.has_track = 0, out.rescued = 0, out.overflow = 0, out.candidates = 0, out.n_steps = 0;
    sc.overflow = 0;
    sc.n_nodes = 0;
    Trajectory& tr = sc.work[0];
    if (!start_from_seed(ctx, stepper, sc, s, tr)) { out.overflow = sc.overflow; return; }
    sc.active[0] = tr;
    sc.n_active = 1;
    Finished& fin = sc.fin_seed;
    fin.any = false;
    fin.keep_last = false;
    int idx[kMaxChildren];
    for (int round = 0; round < 80 && sc.n_active > 0; ++round) {
        sc.n_children = 0;
        for (int a = 0; a < sc.n_active; ++a) extend(ctx, stepper, sc, sc.active[a], fin, cfg.max_branches);
        for (int i = 0; i < sc.n_children; ++i) idx[i] = i;
        insertion_sort(idx, sc.n_children, [&](int a, int b) { return better(sc.children[a], sc.children[b]); });
        const int n_keep = imin(sc.n_children, cfg.max_candidates);
        out.candidates += n_keep;
        for (int i = 0; i < n_keep; ++i) sc.active[i] = sc.children[idx[i]];
        sc.n_active = n_keep;
    }
    for (int a = 0; a < sc.n_active; ++a) push_finished(fin, sc.active[a]);
    if (!fin.any || sc.overflow) { out.overflow = sc.overflow; return; }
    Trajectory& it = fin.t;
    const bool rescue = it.n_meas < cfg.min_measurements && cfg.refine && cfg.rescue_min_measurements > 0 &&
                        it.n_meas >= cfg.rescue_min_measurements;
    if (it.n_meas < cfg.min_measurements && !rescue) return;
    drop_trailing_holes(sc, it);
    if (rescue) {
        sc.track.overflow = 0;
        kept(sc, it, sc.track);
        out.overflow |= sc.track.overflow;
        refine(ctx, sc, sc.track, out);
        out.rescued = 1;
    } else {
        kept(sc, it, out);
    }
    out.overflow |= sc.overflow;
    if (out.overflow || out.n_meas < cfg.min_measurements) return;
    out.has_track = 1;
}

}  // namespace dev
}  // namespace trackcore
