#include "navigator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "trackcore/transform.hpp"

namespace trackcore {

namespace {
void gather_monotonic(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand, bool fast_phi);

// Bound on |atan2_poly - std::atan2| (rad) that gather_monotonic assumes; the polynomial's own error
// is 2.2e-15 (10^7 random points and a dense circle, against numpy's arctan2).
constexpr double kPhiError = 1e-10;

// atan2(y, x) for x, y finite and non-zero (else false): the angle reduced to |t| <= tan(pi/8), then
// t p(t^2) with p the degree-9 Chebyshev fit of atan(t)/t.
inline bool atan2_poly(double y, double x, double& phi) {
    constexpr double kPi = 3.14159265358979323846;
    const double ax = std::fabs(x), ay = std::fabs(y);
    if (!(ax > 0 && ay > 0 && ax <= std::numeric_limits<double>::max() && ay <= std::numeric_limits<double>::max()))
        return false;
    double t = std::min(ax, ay) / std::max(ax, ay);
    double base = 0;
    if (t > 0.41421356237309503) {  // atan t = pi/4 + atan((t - 1) / (t + 1))
        t = (t - 1.0) / (t + 1.0);
        base = kPi / 4;
    }
    const double u = t * t;
    double p = -0.02527284168840606;
    for (double c : {0.0501865009093132, -0.06503034629137178, 0.07672824509675656, -0.09089432823149772,
                     0.11111041045556283, -0.14285712299920475, 0.19999999969553245, -0.33333333333127885,
                     0.9999999999999962})
        p = p * u + c;
    double r = base + t * p;
    if (ay > ax) r = kPi / 2 - r;
    if (x < 0) r = kPi - r;
    phi = y < 0 ? -r : r;
    return true;
}
}  // namespace

void gather_candidates(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand, bool fast_phi) {
    // r is monotonic along each piece only if the chord is split at its closest approach to the z axis.
    const double dx = b[0] - a[0], dy = b[1] - a[1], d2 = dx * dx + dy * dy;
    const double t = d2 > 0 ? -(a[0] * dx + a[1] * dy) / d2 : 0.0;
    if (t > 0 && t < 1) {
        const double m[3] = {a[0] + t * dx, a[1] + t * dy, a[2] + t * (b[2] - a[2])};
        gather_monotonic(geo, a, m, cand, fast_phi);
        gather_monotonic(geo, m, b, cand, fast_phi);
        return;
    }
    gather_monotonic(geo, a, b, cand, fast_phi);
}

namespace {
void gather_monotonic(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand, bool fast_phi) {
    // sqrt of the sum of squares, not hypot: no overflow is possible here and it is several times cheaper.
    const double ra = std::sqrt(a[0] * a[0] + a[1] * a[1]), rb = std::sqrt(b[0] * b[0] + b[1] * b[1]);
    const double za = a[2], zb = b[2];
    const double rmin = std::min(ra, rb) - 1.0, rmax = std::max(ra, rb) + 1.0;
    const double zmin = std::min(za, zb) - 1.0, zmax = std::max(za, zb) + 1.0;
    const auto& layers = geo.layers();
    // Only the layers the coarse r/z masks allow (all of them without masks), in increasing order.
    uint64_t mask = 0;
    const bool masked = geo.layer_mask(rmin, rmax, zmin, zmax, mask);
    for (size_t l = 0; l < layers.size(); ++l) {
        if (masked) {
            if (!mask) break;
            l = static_cast<size_t>(__builtin_ctzll(mask));  // the next allowed layer
            mask &= mask - 1;
        }
        const LayerGrid& L = layers[l];
        if (L.bin_start.empty() || rmax < L.r_lo || rmin > L.r_hi || zmax < L.z_lo || zmin > L.z_hi) continue;
        // Fractions of the chord inside the layer's shell (r for barrels, z for endcaps).
        double fa = 0, fb = 1;
        const double qa = L.kind == 0 ? ra : za, qb = L.kind == 0 ? rb : zb;
        const double lo = L.kind == 0 ? L.r_lo : L.z_lo, hi = L.kind == 0 ? L.r_hi : L.z_hi;
        if (std::fabs(qb - qa) > 1e-12) {
            double f1 = (lo - qa) / (qb - qa), f2 = (hi - qa) / (qb - qa);
            if (f1 > f2) std::swap(f1, f2);
            fa = std::max(0.0, f1);
            fb = std::min(1.0, f2);
            if (fa > fb) fa = fb = std::clamp(0.5 * (f1 + f2), 0.0, 1.0);
        }
        double pa[3], pb[3];
        for (int k = 0; k < 3; ++k) {
            pa[k] = a[k] + fa * (b[k] - a[k]);
            pb[k] = a[k] + fb * (b[k] - a[k]);
        }
        const double sa = L.kind == 0 ? pa[2] : std::sqrt(pa[0] * pa[0] + pa[1] * pa[1]);
        const double sb = L.kind == 0 ? pb[2] : std::sqrt(pb[0] * pb[0] + pb[1] * pb[1]);
        double phia, phib;
        if (fast_phi && atan2_poly(pa[1], pa[0], phia) && atan2_poly(pb[1], pb[0], phib) &&
            geo.candidates_near(static_cast<int>(l), phia, sa, phib, sb, kPhiError, cand))
            continue;
        phia = std::atan2(pa[1], pa[0]);
        phib = std::atan2(pb[1], pb[0]);
        geo.candidates(static_cast<int>(l), phia, sa, phib, sb, cand);
    }
}
}  // namespace

LayerFinder::LayerFinder(const Geometry& geo)
    : geo_(geo), planes_(geo.modules().size()), bounds_(geo.modules().size()) {
    for (size_t m = 0; m < planes_.size(); ++m) {
        const Module& mod = geo.modules()[m];
        Plane& p = planes_[m];
        Bounds& b = bounds_[m];
        for (int k = 0; k < 3; ++k) {
            p.centre[k] = mod.centre[k];
            p.normal[k] = mod.rot[3 * k + 2];
            b.u_axis[k] = mod.rot[3 * k];
            b.v_axis[k] = mod.rot[3 * k + 1];
        }
        p.layer = mod.layer;
        p.stamp = 0;
        b.hv = mod.hv;
        b.hu_max = std::max(mod.min_hu, mod.max_hu);
    }
}

// False when the arc from a to b, which stays within `margin` of its chord, cannot cross module m
// within its bounds plus `tol` (cheap tests before the helix intersection):
// - both chord ends lie on one side of the plane, further than margin from it;
// - the chord meets the plane at p, and p lies outside the module by more than the distance the
//   arc's crossing can have from p: margin (1 + 1 / sin(angle of chord and plane)).
// Chords nearly parallel to the plane, or not crossing it between their ends, are left to the
// intersection.
bool LayerFinder::chord_may_hit(const double* a, const double* b, const double* d, double len, int m,
                                double margin, double tol) const {
    const Plane& pl = planes_[m];
    const double* c = pl.centre;
    const double* n = pl.normal;
    const double fa = (a[0] - c[0]) * n[0] + (a[1] - c[1]) * n[1] + (a[2] - c[2]) * n[2];
    const double fb = (b[0] - c[0]) * n[0] + (b[1] - c[1]) * n[1] + (b[2] - c[2]) * n[2];
    if ((fa > margin && fb > margin) || (fa < -margin && fb < -margin)) return false;
    const double sin_a = len > 0 ? std::fabs(fb - fa) / len : 0.0;
    if (sin_a < 0.05 || (fa > 0) == (fb > 0)) return true;
    const Bounds& bd = bounds_[m];
    const double *U = bd.u_axis, *V = bd.v_axis;
    const double t = fa / (fa - fb);
    const double p[3] = {a[0] + t * d[0] - c[0], a[1] + t * d[1] - c[1], a[2] + t * d[2] - c[2]};
    const double u = p[0] * U[0] + p[1] * U[1] + p[2] * U[2], v = p[0] * V[0] + p[1] * V[1] + p[2] * V[2];
    // 1 mm more than the bound: the field-map stepper's path is a helix only locally.
    const double slack = margin * (1.0 + 1.0 / sin_a) + tol + 1.0;
    return std::fabs(v) <= bd.hv + slack && std::fabs(u) <= bd.hu_max + slack;
}

bool LayerFinder::next_layer(const Stepper& stepper, const State& start, int from, double path0, double max_path,
                             const Config& cfg, std::vector<std::pair<double, int>>& crossed) {
    const auto& mods = geo_.modules();
    State st = start;
    // The steps have one length (so one turning angle) until the search ends; the intersections
    // keep their own cache.
    TurnCache step_turn, turn;
    const double world_r = geo_.world_r() + 5.0, world_z = geo_.world_z() + 5.0;
    const double tol = cfg.edge_tolerance;
    double walked = 0;
    // A track of absurd curvature (|q/p| of 1e30 after a wild update) bends in 1e-30 mm steps: the
    // search ends, as at max_path, after 2e7 steps (the bindings allow max_path / max_step <= 1e7).
    long long n_steps = 0;
    while (path0 + walked < max_path) {
        if (++n_steps > 20'000'000) return false;
        const double ds = stepper.step_length(st, cfg.max_step, cfg.max_turn);
        State next;
        stepper.advance(st, ds, next, step_turn);
        const double h_abs = std::fabs(helix_h(st.qop, stepper.local_bz(st)));
        // Appends the candidate modules (of `layer`, or any when < 0) that the arc from st over
        // `reach` mm crosses within the edge tolerance; the chord end is `end`.
        auto search = [&](const State& end, double reach, int layer) {
            const double margin = reach * reach * h_abs / 8.0 + 0.01;  // the arc stays within its sagitta of the chord
            const double* a = st.pos;
            const double* b = end.pos;
            const double d[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
            const double len = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
            for (int m : cand_) {
                Plane& pl = planes_[m];
                if (pl.stamp == step_ || m == from || (layer >= 0 && pl.layer != layer)) continue;
                pl.stamp = step_;
                if (!chord_may_hit(a, b, d, len, m, margin, tol)) continue;
                const Module& mod = mods[m];
                double s;
                State at;
                if (!stepper.intersect(st, pl.centre, pl.normal, 1e-9, reach, s, at, turn)) continue;
                double loc[3];
                to_local(mod.centre, mod.rot, at.pos, loc);
                if (std::fabs(loc[1]) > mod.hv + tol || std::fabs(loc[0]) > Geometry::half_width(mod, loc[1]) + tol)
                    continue;
                crossed.emplace_back(walked + s, m);
            }
        };
        cand_.clear();
        gather_candidates(geo_, st.pos, next.pos, cand_, true);
        ++step_;
        crossed.clear();
        search(next, ds, -1);
        if (!crossed.empty()) {
            std::sort(crossed.begin(), crossed.end());
            const int layer = planes_[crossed.front().second].layer;
            // Overlapping modules of the same layer may be crossed just after the step's end.
            const double reach = crossed.front().first - walked + cfg.layer_depth;
            if (reach > ds) {
                State ext;
                stepper.advance(st, reach, ext, turn);
                cand_.clear();
                gather_candidates(geo_, st.pos, ext.pos, cand_, true);
                // Re-test modules the step looked at but found crossed only beyond its end; skip the found ones.
                ++step_;
                for (const auto& c : crossed) planes_[c.second].stamp = step_;
                search(ext, reach, layer);
                std::sort(crossed.begin(), crossed.end());
            }
            crossed.erase(std::remove_if(crossed.begin(), crossed.end(),
                                         [&](const auto& c) { return planes_[c.second].layer != layer; }),
                          crossed.end());
            return true;
        }
        st = next;
        walked += ds;
        if (st.pos[0] * st.pos[0] + st.pos[1] * st.pos[1] > world_r * world_r || std::fabs(st.pos[2]) > world_z)
            return false;
    }
    return false;
}

}  // namespace trackcore
