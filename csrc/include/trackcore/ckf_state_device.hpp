#pragma once
// The GPU CKF's data (csrc/cuda/ckf.cu, trackcore/ckf_device.hpp): its settings, the event it reads
// (Context), and one thread's fixed-capacity buffers (Scratch) in place of the C++ core's
// std::vectors. A search that outgrows a buffer sets a bit of Scratch::overflow and its seed gives
// no track; the glue reports such seeds (none at these capacities on <mu> = 200 and 300 events).
#include <cstdint>

#include "trackcore/bound_transport.hpp"
#include "trackcore/hostdevice.hpp"

namespace trackcore {
namespace dev {

constexpr int kMaxCand = 1024;     // candidate modules of one chord
constexpr int kMaxCrossed = 64;    // modules crossed in one layer
constexpr int kMaxOptions = 256;   // compatible hits in one layer
constexpr int kMaxNodes = 4096;    // steps of one search's trajectories
constexpr int kMaxSteps = 256;     // steps of one kept track
constexpr int kMaxCandidates = 8;  // max_candidates the buffers hold
constexpr int kMaxBranches = 4;    // max_branches the buffers hold
constexpr int kMaxChildren = kMaxCandidates * kMaxBranches;

enum OverflowBit { kCandFull = 1, kCrossedFull = 2, kOptionsFull = 4, kNodesFull = 8, kStepsFull = 16 };

// The CKF settings as the glue passes them: a float64 array in this order (trackcore/backends/
// cupy_kernels/ckf.py CONFIG_KEYS).
constexpr int kConfigSize = 19;
struct Config {
    double chi2_max;
    int max_branches, max_candidates, max_holes, min_measurements, max_shared;
    double mass, max_step, max_turn, max_path, sigma_phi, sigma_theta, sigma_qop_rel, edge_tolerance, layer_depth;
    bool skip_used_seeds;
    int skip_used_hits;
    bool refine;
    int rescue_min_measurements;
};

TC_HD Config config_from(const double* c) {
    Config k;
    k.chi2_max = c[0];
    k.max_branches = static_cast<int>(c[1]);
    k.max_candidates = static_cast<int>(c[2]);
    k.max_holes = static_cast<int>(c[3]);
    k.min_measurements = static_cast<int>(c[4]);
    k.max_shared = static_cast<int>(c[5]);
    k.mass = c[6], k.max_step = c[7], k.max_turn = c[8], k.max_path = c[9];
    k.sigma_phi = c[10], k.sigma_theta = c[11], k.sigma_qop_rel = c[12];
    k.edge_tolerance = c[13], k.layer_depth = c[14];
    k.skip_used_seeds = c[15] != 0;
    k.skip_used_hits = static_cast<int>(c[16]);
    k.refine = c[17] != 0;
    k.rescue_min_measurements = static_cast<int>(c[18]);
    return k;
}

// The event's hits, and the same grouped by module (CSR, hits of a module in increasing order).
struct HitsView {
    int64_t n;
    const int64_t* module;  // module row of each hit
    const double *u, *v, *var_u, *var_v;
    const double* xyz;          // (n, 3)
    const int* module_start;    // (M + 1,)
    const int* module_hits;     // hit of each CSR entry
    const double* module_meas;  // (n, 4): u, v, var_u, var_v of each CSR entry
};

// Everything a kernel reads, written once per call into device memory by tc_ckf_setup.
struct Context {
    GeometryView geo;
    HitsView hits;
    FieldView field;
    Config cfg;

    TC_HD Stepper stepper() const { return Stepper{field, !field.constant, false}; }
    TC_HD Stepper fit_stepper() const { return Stepper{field, !field.constant, true}; }
    TC_HD double x0_of(int module) const { return geo.layer_x0[geo.layer[module]]; }
};

struct Node {
    int64_t hit;  // -1: a hole
    int module;
    int prev;  // -1: the first step
};

// path_limit of a trajectory without one of its own (the config's max_path, finite, applies).
constexpr double kNoPathLimit = 1e300;

struct Trajectory {
    int last;       // its last step in Scratch::nodes; -1: none
    Bound state;    // on the last module, after its material
    Bound meas;     // the filtered state of its last measured step (the backward filter starts there)
    double chi2;
    int n_meas, holes;
    double path, path_limit;
    int eloss;  // +1 following the particle, -1 following it backwards
};

TC_HD void reset(Trajectory& t) {
    t.last = -1;
    t.chi2 = 0;
    t.n_meas = 0;
    t.holes = 0;
    t.path = 0;
    t.path_limit = kNoPathLimit;
    t.eloss = +1;
    t.state.module = -1;
    t.meas.module = -1;
}

// A kept track: its steps in path order and the filtered state at its last measured step.
struct TrackRec {
    int64_t hit[kMaxSteps];
    int module[kMaxSteps];
    int n_steps;
    int n_meas;
    int eloss;
    int refined;
    Bound last;
    double chi2;
    // Outcome of following a seed: a track was kept, it was rescued, buffers overflowed; candidates.
    int has_track, rescued, overflow, pad;
    int64_t candidates;
};

struct Crossing {
    double s;
    int module;
};

struct Option {
    double chi2;
    int64_t hit;
    int meas;  // CSR entry of the hit
    int slot;  // its module's prediction in Scratch::pred
    double path;
};

// A set of finished trajectories that keeps the one the search reads: the best (the first of the
// best, as std::min_element) or the last.
struct Finished {
    Trajectory t;
    bool any;
    bool keep_last;
};

// One thread's buffers.
struct Scratch {
    int cand[kMaxCand];
    int n_cand;
    Crossing crossed[kMaxCrossed];
    int n_crossed;
    Bound pred[kMaxCrossed];
    Option options[kMaxOptions];
    int n_options;
    int order[kMaxOptions];
    int seq[kMaxCrossed];
    int64_t taken[kMaxOptions];
    Node nodes[kMaxNodes];
    int n_nodes;
    Trajectory active[kMaxCandidates];
    int n_active;
    Trajectory children[kMaxChildren];
    int n_children;
    Finished fin_seed, fin_follow;
    Trajectory work[3];  // follow's current trajectory, refine's inward and outward ones
    TrackRec track;      // follow_seed's best before its rescue
    int overflow;
};

TC_HD bool better(const Trajectory& a, const Trajectory& b) {
    if (a.n_meas != b.n_meas) return a.n_meas > b.n_meas;
    return a.chi2 < b.chi2;
}

TC_HD void push_finished(Finished& f, const Trajectory& t) {
    if (f.keep_last || !f.any || better(t, f.t)) f.t = t;
    f.any = true;
}

}  // namespace dev
}  // namespace trackcore
