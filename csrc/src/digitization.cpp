// Charge sharing over a cell grid (exact segment/grid traversal) and 8-connected clustering.
#include "digitization.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace trackcore::digi {

namespace {

// Grid-line crossings strictly inside (ta, tb) of the lines origin + k * pitch along one axis,
// in increasing t. Same formulae as the numpy reference, so the doubles match bit for bit.
void line_crossings(double p0, double d, double origin, double pitch, double ta, double tb,
                    std::vector<double>& out) {
    out.clear();
    if (std::fabs(d) <= kMinStep) return;
    const double pa = p0 + ta * d, pb = p0 + tb * d;
    const double lo = std::min(pa, pb), hi = std::max(pa, pb);
    const auto kmin = static_cast<std::int64_t>(std::floor((lo - origin) / pitch)) + 1;
    const auto kmax = static_cast<std::int64_t>(std::ceil((hi - origin) / pitch)) - 1;
    for (std::int64_t k = kmin; k <= kmax; ++k) {
        const double t = ((origin + static_cast<double>(k) * pitch) - p0) / d;
        if (t > ta && t < tb) out.push_back(t);
    }
    if (d < 0) std::reverse(out.begin(), out.end());
}

}  // namespace

void deposit_segment(std::int64_t crossing, const double* seg, double charge, const double* shape,
                     std::vector<double>& tu, std::vector<double>& tv, std::vector<Contribution>& out) {
    const double u0 = seg[0], v0 = seg[1], u1 = seg[2], v1 = seg[3];
    const double min_hu = shape[0], max_hu = shape[1], hv = shape[2], pu = shape[3], pv = shape[4];
    const double du = u1 - u0, dv = v1 - v0;
    const double half_u = std::max(min_hu, max_hu);
    // Clip to the module's bounding box first so a wild segment cannot enumerate millions of lines.
    double ta = 0.0, tb = 1.0;
    const double p0s[2] = {u0, v0}, ds[2] = {du, dv}, halves[2] = {half_u, hv};
    for (int a = 0; a < 2; ++a) {
        if (std::fabs(ds[a]) <= kMinStep) {
            if (std::fabs(p0s[a]) > halves[a]) return;
        } else {
            const double t1 = (-halves[a] - p0s[a]) / ds[a], t2 = (halves[a] - p0s[a]) / ds[a];
            ta = std::max(ta, std::min(t1, t2));
            tb = std::min(tb, std::max(t1, t2));
        }
    }
    if (!(ta < tb)) return;
    line_crossings(u0, du, -max_hu, pu, ta, tb, tu);
    line_crossings(v0, dv, -hv, pv, ta, tb, tv);
    const double n0 = std::ceil(2.0 * max_hu / pu - 1e-9), n1 = std::ceil(2.0 * hv / pv - 1e-9);
    // Walk the merged break points ta < (u and v line crossings) < tb: each piece lies in one cell.
    std::size_t iu = 0, iv = 0;
    double prev = ta;
    for (bool last = false; !last;) {
        double next;
        if (iu < tu.size() && (iv >= tv.size() || tu[iu] <= tv[iv]))
            next = tu[iu++];
        else if (iv < tv.size())
            next = tv[iv++];
        else {
            next = tb;
            last = true;
        }
        const double dt = next - prev;
        if (dt > kMinPiece) {
            const double tm = (prev + next) * 0.5;
            const double u = u0 + tm * du, v = v0 + tm * dv;
            const double hw = min_hu + (max_hu - min_hu) * ((v + hv) / (2.0 * hv));
            if (std::fabs(v) <= hv && std::fabs(u) <= hw) {
                const double c0 = std::floor((u + max_hu) / pu), c1 = std::floor((v + hv) / pv);
                if (c0 >= 0 && c0 < n0 && c1 >= 0 && c1 < n1)
                    out.push_back({crossing, static_cast<std::int64_t>(c0), static_cast<std::int64_t>(c1),
                                   charge * dt});
            }
        }
        prev = next;
    }
}

namespace {

constexpr std::int64_t kMaxPackedChannel = (std::int64_t{1} << 21) - 1;

std::int64_t find_root(std::vector<std::int64_t>& parent, std::int64_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];  // path halving
        i = parent[i];
    }
    return i;
}

}  // namespace

std::vector<std::int64_t> cluster_cells(const std::int64_t* module, const std::int64_t* ch0,
                                        const std::int64_t* ch1, std::int64_t n) {
    auto key = [&](std::int64_t m, std::int64_t a, std::int64_t b) { return (m << 42) | (a << 21) | b; };
    std::vector<std::int64_t> keys(n);
    for (std::int64_t i = 0; i < n; ++i) keys[i] = key(module[i], ch0[i], ch1[i]);
    std::vector<std::int64_t> parent(n);
    std::iota(parent.begin(), parent.end(), 0);
    // Forward neighbours only (same row +1 in ch1, next row ch1-1..+1): each edge is seen once.
    const std::int64_t offsets[4][2] = {{0, 1}, {1, -1}, {1, 0}, {1, 1}};
    for (std::int64_t i = 0; i < n; ++i) {
        for (const auto& o : offsets) {
            const std::int64_t a = ch0[i] + o[0], b = ch1[i] + o[1];
            // A neighbour outside [0, 2^21) does not exist; packing it would carry into the next
            // field (channel 2^21 of row a is channel 0 of row a + 1, row 2^21 is the next module).
            if (b < 0 || b > kMaxPackedChannel || a > kMaxPackedChannel) continue;
            const std::int64_t k = key(module[i], a, b);
            const auto it = std::lower_bound(keys.begin() + i + 1, keys.end(), k);
            if (it == keys.end() || *it != k) continue;
            // Union keeping the smaller index as root, so a root is its cluster's first cell.
            std::int64_t ra = find_root(parent, i), rb = find_root(parent, it - keys.begin());
            if (ra == rb) continue;
            if (rb < ra) std::swap(ra, rb);
            parent[rb] = ra;
        }
    }
    std::vector<std::int64_t> label(n);
    std::int64_t next = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t r = find_root(parent, i);
        label[i] = (r == i) ? next++ : label[r];  // r < i is already labelled
    }
    return label;
}

}  // namespace trackcore::digi
