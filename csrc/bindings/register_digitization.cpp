// Digitisation kernels: charge sharing of crossings over cells, and clustering of fired cells.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>

#include "../src/digitization.hpp"
#include "arrays.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;
namespace digi = trackcore::digi;

namespace {

// Channel indices are packed in 21 bits each (and modules in the rest) for the neighbour search.
constexpr long long kMaxChannel = (1LL << 21) - 1;
constexpr long long kMaxModule = (1LL << 21) - 1;
// Most grid lines a module may have along one axis: its channels must fit the 21 bits that
// cluster_cells accepts. This also bounds the work per segment (at most 2 * 2^21 + 1 pieces); a
// tiny pitch (1e-300 mm) would otherwise loop or allocate without bound. Real sensors have < 10^4.
constexpr double kMaxCellsPerAxis = static_cast<double>(1LL << 21);

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
    py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

py::tuple digitize_segments(i64_array module_index, f64_array segments, f64_array charge, f64_array shapes) {
    require_shape(shapes, {-1, digi::kShapeCols}, "shapes (min_hu, max_hu, hv, pitch_u, pitch_v)");
    require_shape(segments, {-1, 4}, "segments (u0, v0, u1, v1)");
    const auto n = segments.shape(0);
    require_shape(module_index, {n}, "module_index");
    require_shape(charge, {n}, "charge");
    const auto n_modules = shapes.shape(0);
    const int64_t* idx = module_index.data();
    const double* seg = segments.data();
    const double* q = charge.data();
    const double* sh = shapes.data();
    for (py::ssize_t m = 0; m < n_modules; ++m) {
        const double* s = sh + digi::kShapeCols * m;
        for (int c = 0; c < digi::kShapeCols; ++c)
            if (!std::isfinite(s[c]) || (c > 0 && s[c] <= 0) || s[c] < 0)
                throw py::value_error("shapes[" + std::to_string(m) + ", " + std::to_string(c) +
                                      "] = " + std::to_string(s[c]) + " must be finite and > 0 (>= 0 for min_hu)");
        // Same formulae as the numpy twin (_check_kernel_inputs); the u extent is the wider half width,
        // which is what the traversal clips to.
        const double cells_u = std::ceil(2.0 * std::max(s[0], s[1]) / s[3] - 1e-9);
        const double cells_v = std::ceil(2.0 * s[2] / s[4] - 1e-9);
        if (!(cells_u <= kMaxCellsPerAxis) || !(cells_v <= kMaxCellsPerAxis))
            throw py::value_error("shapes[" + std::to_string(m) + "]: pitch_u = " + fmt_g(s[3]) + " mm, pitch_v = " +
                                  fmt_g(s[4]) + " mm give " + fmt_g(cells_u) + " x " + fmt_g(cells_v) +
                                  " cells; at most 2^21 per axis");
    }
    require_crossings(idx, seg, q, n, n_modules, "charge");
    std::vector<digi::Contribution> out;
    {
        py::gil_scoped_release release;
        out.reserve(static_cast<std::size_t>(n) * 4);
        for (py::ssize_t i = 0; i < n; ++i) digi::deposit_segment(i, seg + 4 * i, q[i], sh + digi::kShapeCols * idx[i], out);
    }
    const auto k = static_cast<py::ssize_t>(out.size());
    py::array_t<long long> crossing(k), ch0(k), ch1(k);
    py::array_t<double> value(k);
    auto* pc = crossing.mutable_data();
    auto* p0 = ch0.mutable_data();
    auto* p1 = ch1.mutable_data();
    auto* pq = value.mutable_data();
    for (py::ssize_t j = 0; j < k; ++j) {
        pc[j] = out[j].crossing;
        p0[j] = out[j].ch0;
        p1[j] = out[j].ch1;
        pq[j] = out[j].charge;
    }
    return py::make_tuple(crossing, ch0, ch1, value);
}

py::array_t<long long> cluster_cells(i64_array module, i64_array ch0, i64_array ch1) {
    require_shape(module, {-1}, "module");
    const auto n = module.shape(0);
    require_shape(ch0, {n}, "ch0");
    require_shape(ch1, {n}, "ch1");
    const int64_t* m = module.data();
    const int64_t* a = ch0.data();
    const int64_t* b = ch1.data();
    for (py::ssize_t i = 0; i < n; ++i) {
        if (m[i] < 0 || m[i] > kMaxModule || a[i] < 0 || a[i] > kMaxChannel || b[i] < 0 || b[i] > kMaxChannel)
            throw py::value_error("cell " + std::to_string(i) + ": module/ch0/ch1 = " + std::to_string(m[i]) + "/" +
                                  std::to_string(a[i]) + "/" + std::to_string(b[i]) + " outside [0, 2^21)");
        if (i > 0 && std::make_tuple(m[i - 1], a[i - 1], b[i - 1]) >= std::make_tuple(m[i], a[i], b[i]))
            throw py::value_error("cells must be sorted by (module, ch0, ch1) without duplicates; cell " +
                                  std::to_string(i) + " is not after cell " + std::to_string(i - 1));
    }
    std::vector<std::int64_t> label;
    {
        py::gil_scoped_release release;
        label = digi::cluster_cells(reinterpret_cast<const std::int64_t*>(m),
                                    reinterpret_cast<const std::int64_t*>(a),
                                    reinterpret_cast<const std::int64_t*>(b), n);
    }
    return to_array(label);
}

}  // namespace

void register_digitization(py::module_& m) {
    m.def("digitize_segments", &digitize_segments, py::arg("module_index"), py::arg("segments"), py::arg("charge"),
          py::arg("shapes"),
          "Share each crossing's charge over the cells its projected segment (u0, v0, u1, v1; mm) crosses.\n"
          "shapes: (n_modules, 5) min_hu, max_hu, hv, pitch_u, pitch_v. Returns (crossing, ch0, ch1, charge),\n"
          "one row per (crossing, cell) piece in the order of traversal.");
    m.def("cluster_cells", &cluster_cells, py::arg("module"), py::arg("ch0"), py::arg("ch1"),
          "Cluster label (8-connectivity within a module) of cells sorted by (module, ch0, ch1); clusters are\n"
          "numbered 0..K-1 in the order of their first cell.");
}
