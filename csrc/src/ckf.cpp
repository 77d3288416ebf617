#include "ckf.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>

#include "ckf_search.hpp"
#include "parallel.hpp"

namespace trackcore {

using namespace ckf_search;

namespace {

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
