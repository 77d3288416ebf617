#pragma once
// Stepping along a trajectory and finding the sensitive modules it crosses: shared by the
// simulation transport and the Kalman filter so that both see the detector the same way.
#include <cmath>
#include <cstdint>
#include <vector>

#include "geometry.hpp"
#include "trackcore/field.hpp"
#include "trackcore/helix.hpp"

namespace trackcore {

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

    // Crossing of the plane (c, n) at path length in (s_min, s_max]; exact helix in a constant field,
    // else a helix guess in the local Bz refined by Newton steps on Runge-Kutta transport.
    bool intersect(const State& st, const double* c, const double* n, double s_min, double s_max, double& s,
                   State& at) const {
        const double h = helix_h(st.qop, local_bz(st));
        if (!helix_plane_intersect(st, h, c, n, s_min - 1.0, s_max + 1.0, s, at, scan_fallback)) return false;
        if (rk) {
            for (int it = 0; it < 8; ++it) {
                rk4_step(st, field, s, at);
                const double f = (at.pos[0] - c[0]) * n[0] + (at.pos[1] - c[1]) * n[1] + (at.pos[2] - c[2]) * n[2];
                const double d = at.dir[0] * n[0] + at.dir[1] * n[1] + at.dir[2] * n[2];
                if (std::fabs(f) < 1e-10 || std::fabs(d) < 1e-12) break;
                s -= f / d;
            }
        }
        return s > s_min && s <= s_max;
    }

    // Step length: at most max_step, and at most max_turn radians of bending.
    double step_length(const State& st, double max_step, double max_turn) const {
        const double h = helix_h(st.qop, local_bz(st));
        return std::fabs(h) > 0 ? std::min(max_step, max_turn / std::fabs(h)) : max_step;
    }
};

// Appends to cand the modules of every layer whose shell the chord a->b passes through (with the
// layer grids' padding), found in the per-layer bins around the chord's entry and exit points.
void gather_candidates(const Geometry& geo, const double* a, const double* b, std::vector<int>& cand);

}  // namespace trackcore
