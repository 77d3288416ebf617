// The combinatorial Kalman filter on the GPU (trackcore/backends/cupy_kernels/ckf.py drives it), the
// C++ core's run_ckf (csrc/src/ckf.cpp) in kernels:
//   tc_ckf_setup       writes the Context (device pointers of the event and detector) once per call;
//   tc_ckf_follow      one thread per seed of a wave: the beam search (trackcore/ckf_device.hpp);
//   tc_ckf_commit      one thread: the wave's seeds in seed order, skipped when their hits are on
//                      tracks of earlier seeds, else their track kept and its hits marked used;
//   tc_ckf_resolve     one thread: the greedy ambiguity resolution, best tracks first;
//   tc_ckf_refine_fit  one thread per accepted track: refinement, backward filter, perigee;
//   tc_ckf_final       one thread: which hits each track keeps, in order.
// Following a seed reads nothing of the other seeds' results, so the waves give the one-thread
// result; the serial kernels hold the order-dependent decisions, as the core's commit does.
#include "trackcore/ckf_device.hpp"

using trackcore::dev::Context;
using trackcore::dev::FitOut;
using trackcore::dev::Scratch;
using trackcore::dev::TrackRec;

namespace {

__device__ __forceinline__ long long thread_index() {
    return blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
}

__device__ __forceinline__ const TrackRec& record(const unsigned char* records, long long k) {
    return *reinterpret_cast<const TrackRec*>(records + k * static_cast<long long>(sizeof(TrackRec)));
}

__device__ __forceinline__ TrackRec& record(unsigned char* records, long long k) {
    return *reinterpret_cast<TrackRec*>(records + k * static_cast<long long>(sizeof(TrackRec)));
}

// A seed is skipped when skip_used_hits of its hits are on tracks already committed.
__device__ __forceinline__ bool seed_skipped(const Context& ctx, const unsigned char* used, const long long* s) {
    if (!ctx.cfg.skip_used_seeds) return false;
    return used[s[0]] + used[s[1]] + used[s[2]] >= ctx.cfg.skip_used_hits;
}

}  // namespace

// sizeof(Context), sizeof(Scratch), sizeof(TrackRec), sizeof(FitOut): the glue sizes its buffers by the first three.
extern "C" __global__ void tc_ckf_sizes(long long* out) {
    if (thread_index() != 0) return;
    out[0] = sizeof(Context);
    out[1] = sizeof(Scratch);
    out[2] = sizeof(TrackRec);
    out[3] = sizeof(FitOut);
}

extern "C" __global__ void tc_ckf_setup(unsigned char* ctx_buf, const double* centre, const double* rot,
                                        const double* hv, const double* min_hu, const double* max_hu,
                                        const int* layer, int n_layers, const int* layer_kind,
                                        const double* layer_extent, const int* layer_grid, const int* bin_start,
                                        const int* bin_modules, const double* layer_x0, double world_r,
                                        double world_z, long long n_hits, const long long* hit_module,
                                        const double* u, const double* v, const double* var_u,
                                        const double* var_v, const double* xyz, const int* module_start,
                                        const int* module_hits, const double* module_meas, double bz, int nr,
                                        int nz, double r0, double dr, double z0, double dz, const double* br_grid,
                                        const double* bz_grid, const double* config) {
    if (thread_index() != 0) return;
    Context& c = *reinterpret_cast<Context*>(ctx_buf);
    c.geo = {centre, rot, hv, min_hu, max_hu, layer, n_layers, layer_kind, layer_extent, layer_grid, bin_start,
             bin_modules, layer_x0, world_r, world_z};
    c.hits = {n_hits, reinterpret_cast<const int64_t*>(hit_module), u, v, var_u, var_v, xyz, module_start,
              module_hits, module_meas};
    c.field = trackcore::FieldView{};
    c.field.constant = nr == 0;
    c.field.bz = bz;
    if (nr > 0) {
        c.field.br_grid = br_grid, c.field.bz_grid = bz_grid;
        c.field.r0 = r0, c.field.dr = dr, c.field.z0 = z0, c.field.dz = dz, c.field.nr = nr, c.field.nz = nz;
    }
    c.cfg = trackcore::dev::config_from(config);
}

// Seeds first .. first + n - 1 (rows of seeds (N, 3)), one per thread; scratch holds n Scratch.
extern "C" __global__ void tc_ckf_follow(const unsigned char* ctx_buf, long long first, long long n,
                                         const long long* seeds, const unsigned char* used, unsigned char* scratch,
                                         unsigned char* records) {
    const long long i = thread_index();
    if (i >= n) return;
    const Context& ctx = *reinterpret_cast<const Context*>(ctx_buf);
    const long long k = first + i;
    const long long* s = seeds + 3 * k;
    TrackRec& rec = record(records, k);
    rec.has_track = 0, rec.rescued = 0, rec.overflow = 0, rec.candidates = 0, rec.n_steps = 0;
    // Seeds already skipped by the tracks of earlier waves need no search (the commit skips them too:
    // hits only ever become used).
    if (seed_skipped(ctx, used, s)) return;
    Scratch& sc = *reinterpret_cast<Scratch*>(scratch + i * static_cast<long long>(sizeof(Scratch)));
    trackcore::dev::follow_seed(ctx, sc, reinterpret_cast<const int64_t*>(s), rec);
}

// stats: seeds_used, seeds_skipped, candidates, tracks found, rescued, seeds whose buffers overflowed,
// accepted tracks whose refinement overflowed.
extern "C" __global__ void tc_ckf_commit(const unsigned char* ctx_buf, long long first, long long n,
                                         const long long* seeds, unsigned char* used, const unsigned char* records,
                                         long long* found, long long* stats) {
    if (thread_index() != 0) return;
    const Context& ctx = *reinterpret_cast<const Context*>(ctx_buf);
    for (long long k = first; k < first + n; ++k) {
        if (seed_skipped(ctx, used, seeds + 3 * k)) {
            ++stats[1];
            continue;
        }
        const TrackRec& rec = record(records, k);
        ++stats[0];
        stats[2] += rec.candidates;
        stats[4] += rec.rescued;
        stats[5] += rec.overflow ? 1 : 0;
        if (!rec.has_track) continue;
        for (int j = 0; j < rec.n_steps; ++j)
            if (rec.hit[j] >= 0) used[rec.hit[j]] = 1;
        found[stats[3]++] = k;
    }
}

namespace {

// run_ckf's ranking: measurements, less two per unit of chi2/ndf above 1; then chi2/ndf; then order.
struct Quality {
    double q, c;
};

__device__ __forceinline__ Quality quality_of(const TrackRec& t) {
    const int ndf = 2 * t.n_meas - 5;
    const double c = t.chi2 / (ndf > 1 ? ndf : 1);
    const double excess = c - 1.0;
    return {t.n_meas - 2.0 * (excess > 0.0 ? excess : 0.0), c};
}

__device__ __forceinline__ bool ranks_before(const Quality* q, long long a, long long b) {
    if (q[a].q != q[b].q) return q[a].q > q[b].q;
    if (q[a].c != q[b].c) return q[a].c < q[b].c;
    return a < b;
}

}  // namespace

// quality: 2 * n_found doubles; order, tmp: n_found each; owner: one per hit, -1 on entry.
extern "C" __global__ void tc_ckf_resolve(const unsigned char* ctx_buf, long long n_found, const long long* found,
                                          const unsigned char* records, double* quality, long long* order,
                                          long long* tmp, int* owner, long long* accepted, long long* n_accepted) {
    if (thread_index() != 0) return;
    const Context& ctx = *reinterpret_cast<const Context*>(ctx_buf);
    Quality* q = reinterpret_cast<Quality*>(quality);
    for (long long i = 0; i < n_found; ++i) {
        q[i] = quality_of(record(records, found[i]));
        order[i] = i;
    }
    // Bottom-up merge sort (the ranking is a total order, so any correct sort gives std::sort's result).
    long long* a = order;
    long long* b = tmp;
    for (long long width = 1; width < n_found; width *= 2) {
        for (long long lo = 0; lo < n_found; lo += 2 * width) {
            const long long mid = lo + width < n_found ? lo + width : n_found;
            const long long hi = lo + 2 * width < n_found ? lo + 2 * width : n_found;
            long long i = lo, j = mid, k = lo;
            while (i < mid && j < hi) b[k++] = ranks_before(q, a[j], a[i]) ? a[j++] : a[i++];
            while (i < mid) b[k++] = a[i++];
            while (j < hi) b[k++] = a[j++];
        }
        long long* t = a;
        a = b;
        b = t;
    }
    if (a != order)
        for (long long i = 0; i < n_found; ++i) order[i] = a[i];
    long long n_acc = 0;
    for (long long r = 0; r < n_found; ++r) {
        const long long idx = order[r];
        const TrackRec& t = record(records, found[idx]);
        int shared = 0;
        for (int j = 0; j < t.n_steps; ++j)
            if (t.hit[j] >= 0 && owner[t.hit[j]] >= 0) ++shared;
        if (shared > ctx.cfg.max_shared || t.n_meas - shared < ctx.cfg.min_measurements) continue;
        for (int j = 0; j < t.n_steps; ++j)
            if (t.hit[j] >= 0 && owner[t.hit[j]] < 0) owner[t.hit[j]] = static_cast<int>(idx);
        accepted[n_acc++] = idx;
    }
    *n_accepted = n_acc;
}

// One accepted track per thread: refined (when the config asks and it was not already) into
// refined[k], then fitted: perigee (n, 5), cov (n, 25), chi2, ndf and fitted (0/1) of row k.
extern "C" __global__ void tc_ckf_refine_fit(const unsigned char* ctx_buf, long long n, const long long* accepted,
                                             const long long* found, const unsigned char* records,
                                             unsigned char* refined, unsigned char* scratch, double* perigee,
                                             double* cov, double* chi2, long long* ndf, unsigned char* fitted) {
    const long long k = thread_index();
    if (k >= n) return;
    const Context& ctx = *reinterpret_cast<const Context*>(ctx_buf);
    const TrackRec& in = record(records, found[accepted[k]]);
    TrackRec& out = record(refined, k);
    out.overflow = 0;
    if (ctx.cfg.refine && !in.refined) {
        Scratch& sc = *reinterpret_cast<Scratch*>(scratch + k * static_cast<long long>(sizeof(Scratch)));
        sc.overflow = 0;
        trackcore::dev::refine(ctx, sc, in, out);
        if (sc.overflow || out.overflow) {  // a truncated search: keep the track as found
            trackcore::dev::copy_track(in, out);
            out.overflow = 1;
        }
    } else {
        trackcore::dev::copy_track(in, out);
    }
    FitOut fit;
    trackcore::dev::smooth_to_perigee(ctx, out, fit);
    for (int j = 0; j < 5; ++j) perigee[5 * k + j] = fit.perigee[j];
    for (int j = 0; j < 25; ++j) cov[25 * k + j] = fit.cov[j];
    chi2[k] = fit.chi2;
    ndf[k] = fit.ndf;
    fitted[k] = fit.has_perigee ? 1 : 0;
}

// The hits each accepted track keeps (a hit stays with the track that owned it first), in order:
// out_hits holds the kept tracks' hits one after the other; keep, start and count per accepted track.
extern "C" __global__ void tc_ckf_final(const unsigned char* ctx_buf, long long n, const long long* accepted,
                                        const int* owner, const unsigned char* refined, unsigned char* final_owner,
                                        long long* out_hits, long long* keep, long long* start, long long* count,
                                        long long* stats) {
    if (thread_index() != 0) return;
    const Context& ctx = *reinterpret_cast<const Context*>(ctx_buf);
    const int min_hits = ctx.cfg.min_measurements < 3 ? ctx.cfg.min_measurements : 3;
    long long pos = 0;
    for (long long k = 0; k < n; ++k) {
        const long long idx = accepted[k];
        const TrackRec& t = record(refined, k);
        stats[6] += t.overflow ? 1 : 0;
        const long long first = pos;
        for (int j = 0; j < t.n_steps; ++j) {
            const long long h = t.hit[j];
            if (h < 0 || final_owner[h]) continue;
            if (owner[h] >= 0 && owner[h] != idx) continue;
            final_owner[h] = 1;
            out_hits[pos++] = h;
        }
        if (pos - first < min_hits) {  // its hits went to better tracks
            for (long long j = first; j < pos; ++j) final_owner[out_hits[j]] = 0;
            pos = first;
            keep[k] = 0;
            continue;
        }
        keep[k] = 1;
        start[k] = first;
        count[k] = pos - first;
    }
}
