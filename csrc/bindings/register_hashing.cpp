// Hashing kernels: LSH k-NN in hit-feature space and triplet seeding restricted to buckets.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "../src/lsh.hpp"
#include "arrays.hpp"
#include "registry.hpp"
#include "seeding_params.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;
namespace sd = trackcore::seeding;

namespace {

void require_finite(const f64_array& a, const char* name) {
    const double* v = a.data();
    for (py::ssize_t i = 0; i < a.size(); ++i)
        if (!std::isfinite(v[i])) throw py::value_error(std::string(name) + ": element " + std::to_string(i) + " is not finite");
}

void check_lsh(const f64_array& x, const f64_array& proj, const f64_array& offsets, double width) {
    require_shape(x, {-1, -1}, "features");
    require_shape(proj, {-1, -1, x.shape(1)}, "projections");
    require_shape(offsets, {proj.shape(0), proj.shape(1)}, "offsets");
    require_finite(x, "features");
    require_finite(proj, "projections");
    require_finite(offsets, "offsets");
    if (!(width > 0) || !std::isfinite(width)) throw py::value_error("width must be finite and > 0");
    // Quantised projections are clamped to +-2^62: a width of 1e-300 (or features of 1e300) put every
    // point in the same bucket without a word. Bound |a . x + b| / width <= 2^52 from above.
    double x_max = 0, b_max = 0, a_l1 = 0;
    for (py::ssize_t i = 0; i < x.size(); ++i) x_max = std::max(x_max, std::fabs(x.data()[i]));
    for (py::ssize_t i = 0; i < offsets.size(); ++i) b_max = std::max(b_max, std::fabs(offsets.data()[i]));
    const auto dim = x.shape(1);
    for (py::ssize_t r = 0; dim > 0 && r < proj.size() / dim; ++r) {
        double l1 = 0;
        for (py::ssize_t d = 0; d < dim; ++d) l1 += std::fabs(proj.data()[r * dim + d]);
        a_l1 = std::max(a_l1, l1);
    }
    const double reach = a_l1 * x_max + b_max;
    if (!(reach / width <= 4503599627370496.0))
        throw py::value_error("width = " + fmt_g(width) + " is too small for projections reaching " + fmt_g(reach) +
                              " (at most 2^52 widths): every point would share one bucket");
}

py::array_t<long long> lsh_knn(f64_array x, i64_array query, f64_array proj, f64_array offsets, double width, int k) {
    check_lsh(x, proj, offsets, width);
    require_shape(query, {-1}, "query");
    if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
    // The (queries, k) answer is allocated whole: k = 2^31 - 1 gave a bare std::bad_alloc.
    if (static_cast<double>(query.shape(0)) * k > 2147483648.0)
        throw py::value_error("k = " + std::to_string(k) + " neighbours of " + std::to_string(query.shape(0)) +
                              " queries is more than 2^31 answers; ask for fewer");
    const auto n = x.shape(0);
    const auto* q = reinterpret_cast<const std::int64_t*>(query.data());
    for (py::ssize_t i = 0; i < query.shape(0); ++i)
        if (q[i] < 0 || q[i] >= n)
            throw py::value_error("query[" + std::to_string(i) + "] = " + std::to_string(q[i]) + " is not a point index");
    std::vector<std::int64_t> out;
    {
        py::gil_scoped_release release;
        out = trackcore::lsh::knn(n, static_cast<int>(x.shape(1)), x.data(), query.shape(0), q,
                                  static_cast<int>(proj.shape(0)), static_cast<int>(proj.shape(1)), proj.data(),
                                  offsets.data(), width, k);
    }
    py::array_t<long long> res({query.shape(0), static_cast<py::ssize_t>(k)});
    std::copy(out.begin(), out.end(), res.mutable_data());
    return res;
}

py::array_t<unsigned long long> lsh_keys(f64_array x, f64_array proj, f64_array offsets, double width) {
    check_lsh(x, proj, offsets, width);
    std::vector<std::uint64_t> out = trackcore::lsh::keys(x.shape(0), static_cast<int>(x.shape(1)), x.data(),
                                                          static_cast<int>(proj.shape(0)),
                                                          static_cast<int>(proj.shape(1)), proj.data(),
                                                          offsets.data(), width);
    py::array_t<unsigned long long> res({proj.shape(0), x.shape(0)});
    std::copy(out.begin(), out.end(), res.mutable_data());
    return res;
}

py::tuple seed_buckets(f64_array x, f64_array y, f64_array z, f64_array r, f64_array phi, i64_array layer,
                       i64_array members, py::dict params) {
    const auto n = x.shape(0);
    for (const auto& [a, name] : {std::pair{&x, "x"}, {&y, "y"}, {&z, "z"}, {&r, "r"}, {&phi, "phi"}}) {
        require_shape(*a, {n}, name);
        require_finite(*a, name);
    }
    require_shape(layer, {n}, "layer");
    check_phi(phi);
    for (py::ssize_t i = 0; i < n; ++i)
        if (!(r.data()[i] > 0)) throw py::value_error("r[" + std::to_string(i) + "] must be > 0");
    require_shape(members, {-1, -1}, "members");
    const auto* mem = reinterpret_cast<const std::int64_t*>(members.data());
    for (py::ssize_t i = 0; i < members.size(); ++i)
        if (mem[i] < -1 || mem[i] >= n)
            throw py::value_error("members: element " + std::to_string(i) + " = " + std::to_string(mem[i]) +
                                  " is not a space-point index or -1");
    const sd::Params p = to_params(params);
    std::vector<sd::Seed> seeds;
    {
        py::gil_scoped_release release;
        seeds = trackcore::lsh::seed_buckets(n, x.data(), y.data(), z.data(), r.data(), phi.data(),
                                             reinterpret_cast<const std::int64_t*>(layer.data()), members.shape(0),
                                             static_cast<int>(members.shape(1)), mem, p);
    }
    return seeds_to_arrays(seeds);
}

}  // namespace

void register_hashing(py::module_& m) {
    m.def("lsh_knn", &lsh_knn, py::arg("features"), py::arg("query"), py::arg("projections"), py::arg("offsets"),
          py::arg("width"), py::arg("k"),
          "k nearest points of each query among those sharing an LSH key in any table: (n_query, k) int64, -1 pads.");
    m.def("lsh_keys", &lsh_keys, py::arg("features"), py::arg("projections"), py::arg("offsets"), py::arg("width"),
          "LSH keys (n_tables, n) uint64 of each point.");
    m.def("seed_buckets", &seed_buckets, py::arg("x"), py::arg("y"), py::arg("z"), py::arg("r"), py::arg("phi"),
          py::arg("layer"), py::arg("members"), py::arg("params"),
          "Triplet seeds inside each bucket (rows of members, -1 pads), deduplicated: (hits (N, 3), weight).");
}
