// Vectorised module-frame transforms (global <-> local) over arrays of hits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "registry.hpp"
#include "trackcore/transform.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;

namespace {

template <bool ToLocal>
py::array_t<double> transform(f64_array centres, f64_array rotations, i64_array module_index, f64_array points) {
    require_shape(centres, {-1, 3}, "centres");
    require_shape(rotations, {centres.shape(0), 3, 3}, "rotations");
    require_shape(points, {-1, 3}, "points");
    require_shape(module_index, {points.shape(0)}, "module_index");
    const auto n = points.shape(0);
    const auto n_modules = centres.shape(0);
    py::array_t<double> out({n, py::ssize_t(3)});
    const double* c = centres.data();
    const double* r = rotations.data();
    const int64_t* idx = module_index.data();
    const double* p = points.data();
    double* o = out.mutable_data();
    for (py::ssize_t i = 0; i < n; ++i)
        if (idx[i] < 0 || idx[i] >= n_modules)
            throw py::index_error("module_index[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                                  " is outside [0, " + std::to_string(n_modules) + ")");
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            const auto m = idx[i];
            if constexpr (ToLocal)
                trackcore::to_local(c + 3 * m, r + 9 * m, p + 3 * i, o + 3 * i);
            else
                trackcore::to_global(c + 3 * m, r + 9 * m, p + 3 * i, o + 3 * i);
        }
    }
    return out;
}

}  // namespace

void register_geometry(py::module_& m) {
    m.def("global_to_local", &transform<true>, py::arg("centres"), py::arg("rotations"), py::arg("module_index"),
          py::arg("points"), "Global (N,3) points to each module's local (u, v, w) frame.");
    m.def("local_to_global", &transform<false>, py::arg("centres"), py::arg("rotations"), py::arg("module_index"),
          py::arg("points"), "Local (u, v, w) points of each module to global (x, y, z).");
}
