#pragma once
// Combinatorial Kalman filter from triplet seeds, greedy ambiguity resolution on shared hits, and a
// backward (smoothing) filter that gives perigee parameters with covariance.
#include <cstdint>
#include <vector>

#include "geometry.hpp"
#include "kalman.hpp"

namespace trackcore {

struct HitsView {
    int n = 0;
    const int64_t* module;     // module row of each hit
    const double* u;           // local coordinates (mm)
    const double* v;
    const double* var_u;       // variances (mm^2)
    const double* var_v;
    const double* xyz;         // global positions (n x 3)
};

struct CkfConfig {
    double chi2_max = 15.0;        // per 2-D measurement
    int max_branches = 2;          // compatible hits followed per layer
    int max_candidates = 4;        // trajectories kept per seed
    int max_holes = 2;             // consecutive crossings without a hit before stopping
    int min_measurements = 5;      // of a track kept after ambiguity resolution
    int max_shared = 2;            // hits a track may share with better tracks and still be kept
    double mass = 0.13957;         // GeV: the mass hypothesis for material effects (pion)
    double max_step = 100.0, max_turn = 0.2, max_path = 4500.0;
    double sigma_phi = 0.02, sigma_theta = 0.02, sigma_qop_rel = 0.25;  // seed covariance
    double edge_tolerance = 1.0;   // mm beyond a module edge still searched for hits
    double layer_depth = 30.0;     // mm of path after a layer's first crossing searched for overlapping modules
    bool skip_used_seeds = true;   // skip a seed with skip_used_hits of its hits on earlier tracks
    int skip_used_hits = 3;
    bool refine = true;            // search inward of the seed and re-follow the track from its first hit
    int rescue_min_measurements = 0;  // a shorter-than-min trajectory with this many hits is refined before being dropped (0: off)
    int threads = 1;               // worker threads (0: one per hardware thread); the tracks do not depend on it
};

struct TrackOut {
    std::vector<int64_t> hits;  // hit indices in path order
    Vec5 perigee{};
    Mat5 cov{};
    double chi2 = 0;
    int ndf = 0;
    int seed = -1;
    bool has_perigee = false;
};

struct CkfStats {
    int64_t seeds_used = 0, seeds_skipped = 0, candidates = 0, tracks_before_ambiguity = 0, rescued = 0;
};

std::vector<TrackOut> run_ckf(const Geometry& geo, const FieldView& field, const HitsView& hits,
                              const std::vector<int64_t>& seeds, const std::vector<double>& layer_x0,
                              const CkfConfig& cfg, CkfStats& stats);

// Kalman fit of given hit sequences (no search): forward filter, backward filter, perigee.
std::vector<TrackOut> fit_tracks(const Geometry& geo, const FieldView& field, const HitsView& hits,
                                 const std::vector<int64_t>& offsets, const std::vector<int64_t>& hit_index,
                                 const std::vector<double>& layer_x0, const CkfConfig& cfg);

}  // namespace trackcore
