#pragma once
// The GPU CKF's navigation (LayerFinder::next_layer of the C++ core's navigator.cpp, step for step):
// the modules of the next layer a track crosses, found by stepping along it.
#include <cmath>

#include "trackcore/bound_transport.hpp"
#include "trackcore/ckf_state_device.hpp"
#include "trackcore/hostdevice.hpp"
#include "trackcore/navigation_device.hpp"

namespace trackcore {
namespace dev {

// sc.cand: the candidate modules of the chord a->b (gather_candidates).
TC_HD void gather_into(const GeometryView& g, const double* a, const double* b, Scratch& sc) {
    CandidateList list{sc.cand, 0, kMaxCand, false};
    gather_candidates(g, a, b, list);
    sc.n_cand = list.n;
    if (list.full) sc.overflow |= kCandFull;
}

// LayerFinder::chord_may_hit: false when the arc a->b (within `margin` of its chord) cannot cross
// module m within its bounds plus tol.
TC_HDI bool chord_may_hit(const GeometryView& g, const double* a, const double* b, const double* d, double len,
                          int m, double margin, double tol) {
    const double* c = g.c(m);
    const double* r = g.r(m);
    const double n[3] = {r[2], r[5], r[8]};
    const double fa = (a[0] - c[0]) * n[0] + (a[1] - c[1]) * n[1] + (a[2] - c[2]) * n[2];
    const double fb = (b[0] - c[0]) * n[0] + (b[1] - c[1]) * n[1] + (b[2] - c[2]) * n[2];
    if ((fa > margin && fb > margin) || (fa < -margin && fb < -margin)) return false;
    const double sin_a = len > 0 ? std::fabs(fb - fa) / len : 0.0;
    if (sin_a < 0.05 || (fa > 0) == (fb > 0)) return true;
    const double U[3] = {r[0], r[3], r[6]}, V[3] = {r[1], r[4], r[7]};
    const double t = fa / (fa - fb);
    const double p[3] = {a[0] + t * d[0] - c[0], a[1] + t * d[1] - c[1], a[2] + t * d[2] - c[2]};
    const double u = p[0] * U[0] + p[1] * U[1] + p[2] * U[2], v = p[0] * V[0] + p[1] * V[1] + p[2] * V[2];
    const double slack = margin * (1.0 + 1.0 / sin_a) + tol + 1.0;
    return std::fabs(v) <= g.hv[m] + slack && std::fabs(u) <= dmax(g.min_hu[m], g.max_hu[m]) + slack;
}

// Insertion sort of the crossings by (path, module), as std::sort of (double, int) pairs.
TC_HD void sort_crossed(Scratch& sc) {
    for (int i = 1; i < sc.n_crossed; ++i) {
        const Crossing x = sc.crossed[i];
        int j = i - 1;
        while (j >= 0 && (x.s < sc.crossed[j].s || (!(sc.crossed[j].s < x.s) && x.module < sc.crossed[j].module))) {
            sc.crossed[j + 1] = sc.crossed[j];
            --j;
        }
        sc.crossed[j + 1] = x;
    }
}

// The candidates of sc.cand that the arc from st over `reach` crosses (of `layer`, any when < 0),
// appended to sc.crossed at path walked + s. A module listed twice is looked at once, and modules
// already in sc.crossed not again (the core's per-module stamps).
TC_HDI void search_crossings(const Context& ctx, const Stepper& stepper, const State& st, const State& end,
                             double reach, int layer, int from, double walked, double h_abs, Scratch& sc) {
    const GeometryView& g = ctx.geo;
    const double margin = reach * reach * h_abs / 8.0 + 0.01;
    const double* a = st.pos;
    const double* b = end.pos;
    const double d[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    const double len = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    const double tol = ctx.cfg.edge_tolerance;
    for (int i = 0; i < sc.n_cand; ++i) {
        const int m = sc.cand[i];
        if (m == from || (layer >= 0 && g.layer[m] != layer)) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; ++j) seen = sc.cand[j] == m;
        for (int j = 0; j < sc.n_crossed && !seen; ++j) seen = sc.crossed[j].module == m;
        if (seen) continue;
        if (!chord_may_hit(g, a, b, d, len, m, margin, tol)) continue;
        double n[3];
        normal_of(g, m, n);
        double s;
        State at;
        if (!stepper.intersect(st, g.c(m), n, 1e-9, reach, s, at)) continue;
        double loc[3];
        to_local(g.c(m), g.r(m), at.pos, loc);
        if (std::fabs(loc[1]) > g.hv[m] + tol || std::fabs(loc[0]) > g.half_width(m, loc[1]) + tol) continue;
        if (sc.n_crossed >= kMaxCrossed) { sc.overflow |= kCrossedFull; return; }
        sc.crossed[sc.n_crossed++] = {walked + s, m};
    }
}

// LayerFinder::next_layer: sc.crossed gets the crossings (path from `start`, module) of the first
// layer the track from `start` (on module `from`) meets, in path order; false when the track
// leaves the detector first or path0 + the path walked reaches max_path.
TC_HDN bool next_layer(const Context& ctx, const Stepper& stepper, const State& start, int from, double path0,
                       double max_path, Scratch& sc) {
    const GeometryView& g = ctx.geo;
    const Config& cfg = ctx.cfg;
    State st = start;
    const double world_r = g.world_r + 5.0, world_z = g.world_z + 5.0;
    double walked = 0;
    long long n_steps = 0;
    sc.n_crossed = 0;
    while (path0 + walked < max_path) {
        if (++n_steps > 20000000LL) return false;
        const double ds = stepper.step_length(st, cfg.max_step, cfg.max_turn);
        State next;
        stepper.advance(st, ds, next);
        const double h_abs = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
        gather_into(g, st.pos, next.pos, sc);
        sc.n_crossed = 0;
        search_crossings(ctx, stepper, st, next, ds, -1, from, walked, h_abs, sc);
        if (sc.n_crossed > 0) {
            sort_crossed(sc);
            const int layer = g.layer[sc.crossed[0].module];
            const double reach = sc.crossed[0].s - walked + cfg.layer_depth;
            if (reach > ds) {
                State ext;
                stepper.advance(st, reach, ext);
                gather_into(g, st.pos, ext.pos, sc);
                search_crossings(ctx, stepper, st, ext, reach, layer, from, walked, h_abs, sc);
                sort_crossed(sc);
            }
            int kept = 0;
            for (int i = 0; i < sc.n_crossed; ++i)
                if (g.layer[sc.crossed[i].module] == layer) sc.crossed[kept++] = sc.crossed[i];
            sc.n_crossed = kept;
            return true;
        }
        st = next;
        walked += ds;
        if (st.pos[0] * st.pos[0] + st.pos[1] * st.pos[1] > world_r * world_r || std::fabs(st.pos[2]) > world_z)
            return false;
    }
    return false;
}

}  // namespace dev
}  // namespace trackcore
