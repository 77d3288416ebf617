#pragma once
// Stepping along a trajectory and finding the sensitive modules it crosses: shared by the
// simulation transport and the Kalman filter so that both see the detector the same way.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "geometry.hpp"
#include "trackcore/field.hpp"
#include "trackcore/helix.hpp"

namespace trackcore {

// cos and sin of the last helix turning angle asked for. The track search asks for one angle again
// and again (the steps of a layer search have one length; a transport's Jacobian wants the angle at
// which its plane search ended): std::cos and std::sin, computed once. The angle is compared bit for
// bit, so that -0 and +0 (whose sines differ in sign) are told apart.
struct TurnCache {
    uint64_t bits = 0x7ff8dead0000beefULL;  // a NaN: no angle yet (were it asked for, NaN is its cos and sin too)
    double c = std::numeric_limits<double>::quiet_NaN(), sn = std::numeric_limits<double>::quiet_NaN();

    void get(double angle, double& c_out, double& sn_out) {
        uint64_t b;
        std::memcpy(&b, &angle, sizeof b);
        if (b != bits) {
            bits = b;
            c = std::cos(angle);
            sn = std::sin(angle);
        }
        c_out = c;
        sn_out = sn;
    }
};

// helix_advance with the turning angle's cos and sin from `turn`: the same arithmetic, so the same bits.
inline void helix_advance(const State& in, double h, double s, TurnCache& turn, State& out) {
    double c, sh;
    turn.get(h * s, c, sh);
    helix_advance_turned(in, h, s, c, sh, out);
}

// helix_plane_intersect (Newton, then optionally the scan) with the advance above: the same result.
// On return `turn` holds the angle of the last Newton iterate, where a converged search ended.
inline bool helix_plane_intersect(const State& st, double h, const double* c, const double* n, double s_min,
                                  double s_max, double& s_out, State& at, bool scan, TurnCache& turn) {
    return helix_plane_newton(st, h, c, n, s_min, s_max, s_out, at, scan,
                              [&](double s, State& out) { helix_advance(st, h, s, turn, out); });
}

struct Stepper {
    const FieldView& field;
    bool rk;
    bool scan_fallback = false;  // helix_plane_intersect's scan where Newton fails (the fit's transport)

    double local_bz(const State& s) const {
        if (field.constant) return field.bz;
        double b[3];
        field(s.pos, b);
        return b[2];
    }

    void advance(const State& in, double s, State& out) const {
        if (rk) rk4_step(in, field, s, out);
        else helix_advance(in, helix_h(in.qop, field.bz), s, out);
    }

    // advance and intersect with a TurnCache (the track search's): the same results.
    void advance(const State& in, double s, State& out, TurnCache& turn) const {
        if (rk) rk4_step(in, field, s, out);
        else helix_advance(in, helix_h(in.qop, field.bz), s, turn, out);
    }

    bool intersect(const State& st, const double* c, const double* n, double s_min, double s_max, double& s,
                   State& at, TurnCache& turn) const {
        const double h = helix_h(st.qop, local_bz(st));
        if (!helix_plane_intersect(st, h, c, n, s_min - 1.0, s_max + 1.0, s, at, scan_fallback, turn)) return false;
        if (rk) refine_rk(st, c, n, s, at);
        return s > s_min && s <= s_max;
    }

    // Crossing of the plane (c, n) at path length in (s_min, s_max]; exact helix in a constant field,
    // else a helix guess in the local Bz refined by Newton steps on Runge-Kutta transport.
    bool intersect(const State& st, const double* c, const double* n, double s_min, double s_max, double& s,
                   State& at) const {
        const double h = helix_h(st.qop, local_bz(st));
        if (!helix_plane_intersect(st, h, c, n, s_min - 1.0, s_max + 1.0, s, at, scan_fallback)) return false;
        if (rk) refine_rk(st, c, n, s, at);
        return s > s_min && s <= s_max;
    }

    // Newton steps on Runge-Kutta transport from a helix guess s of the plane (c, n) crossing.
    void refine_rk(const State& st, const double* c, const double* n, double& s, State& at) const {
        rk_plane_newton(st, field, c, n, s, at);
    }

    // Step length: at most max_step, and at most max_turn radians of bending.
    double step_length(const State& st, double max_step, double max_turn) const {
        const double h = helix_h(st.qop, local_bz(st));
        return std::fabs(h) > 0 ? std::min(max_step, max_turn / std::fabs(h)) : max_step;
    }
};

// Appends to cand the modules of every layer whose shell the chord a->b passes through (with the
// layer grids' padding), found in the per-layer bins around the chord's entry and exit points.
// fast_phi: the points' azimuths from a polynomial, checked to give the same bins (std::atan2 where
// a bin edge lies within the polynomial's error): the same modules, in the same order.
void gather_candidates(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand,
                       bool fast_phi = false);

// The track search's navigation: the modules of the next layer a track crosses, found by stepping
// along it. Holds per-module scratch (one finder per search, not shared between threads).
class LayerFinder {
public:
    struct Config {
        double max_step, max_turn;  // mm and rad: the longest step and its most bending
        double edge_tolerance;      // mm beyond a module's edge that still counts as crossing it
        double layer_depth;         // mm of path after a layer's first crossing searched for overlapping modules
    };

    explicit LayerFinder(const Geometry& geo);

    // The crossings (path from `start` in mm, module) of the first layer met by the track from `start`
    // (a state on module `from`, which is not counted), in path order; false when the track leaves
    // the detector first, or when path0 + the path walked reaches max_path (mm).
    bool next_layer(const Stepper& stepper, const State& start, int from, double path0, double max_path,
                    const Config& cfg, std::vector<std::pair<double, int>>& crossed);

private:
    // What the first chord test of a module reads, in one cache line: its plane, layer and stamp.
    struct alignas(64) Plane {
        double centre[3], normal[3];
        int layer;
        uint32_t stamp;  // the last step_ that looked at the module
    };

    // What the second chord test reads: the module's u and v axes, half length in v and largest half
    // width in u.
    struct alignas(64) Bounds {
        double u_axis[3], v_axis[3], hv, hu_max;
    };

    // The chord from a to b = a + d, of length len.
    bool chord_may_hit(const double* a, const double* b, const double* d, double len, int m, double margin,
                       double tol) const;

    const Geometry& geo_;
    std::vector<Plane> planes_;
    std::vector<Bounds> bounds_;
    std::vector<int> cand_;
    uint32_t step_ = 0;
};

}  // namespace trackcore
