#pragma once
// Helpers for the bindings: shape checks that raise ValueError (never a crash in C++).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace trackcore::py_util {
namespace py = pybind11;

using f64_array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using i64_array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using i32_array = py::array_t<int, py::array::c_style | py::array::forcecast>;

// A number for an error message: "1e+30", not std::to_string's 31 digits (or 300 for 1e300).
inline std::string fmt_g(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

inline void require_shape(const py::array& a, std::initializer_list<py::ssize_t> shape, const char* name) {
    if (a.ndim() != static_cast<py::ssize_t>(shape.size()))
        throw py::value_error(std::string(name) + ": expected " + std::to_string(shape.size()) +
                              " dimensions, got " + std::to_string(a.ndim()));
    py::ssize_t i = 0;
    for (auto s : shape) {
        if (s >= 0 && a.shape(i) != s)
            throw py::value_error(std::string(name) + ": dimension " + std::to_string(i) + " must be " +
                                  std::to_string(s) + ", got " + std::to_string(a.shape(i)));
        ++i;
    }
}

// Module crossings given to the digitisation kernels: module rows in [0, n_modules), finite (u0, v0,
// u1, v1) segments and a finite, non-negative charge per crossing (named `charge_name` in errors).
inline void require_crossings(const int64_t* idx, const double* seg, const double* q, py::ssize_t n,
                              int64_t n_modules, const char* charge_name) {
    for (py::ssize_t i = 0; i < n; ++i) {
        if (idx[i] < 0 || idx[i] >= n_modules)
            throw py::value_error("module_index[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                                  " is outside [0, " + std::to_string(n_modules) + ")");
        for (int c = 0; c < 4; ++c)
            if (!std::isfinite(seg[4 * i + c]))
                throw py::value_error("segments[" + std::to_string(i) + ", " + std::to_string(c) + "] is not finite");
        if (!std::isfinite(q[i]) || q[i] < 0)
            throw py::value_error(std::string(charge_name) + "[" + std::to_string(i) + "] = " + std::to_string(q[i]) +
                                  " must be finite and >= 0");
    }
}

// Space-point angles come from atan2: a phi of 1e30 was binned at the grid's edge without a word.
inline void check_phi(const f64_array& phi) {
    const double* v = phi.data();
    for (py::ssize_t i = 0; i < phi.size(); ++i)
        if (!(std::fabs(v[i]) <= 3.1416))
            throw py::value_error("phi[" + std::to_string(i) + "] = " + fmt_g(v[i]) + " must be in [-pi, pi]");
}

// Material per layer (x/X0 of each layer, the transport and the track fit): finite and >= 0. NaN
// would turn every later direction to NaN; a negative thickness would give energy to the particle.
inline void require_layer_x0(const f64_array& x0, const char* who) {
    const double* v = x0.data();
    for (py::ssize_t i = 0; i < x0.size(); ++i)
        if (!(std::isfinite(v[i]) && v[i] >= 0))
            throw py::value_error(std::string(who) + ": layer_x0[" + std::to_string(i) + "] = " + fmt_g(v[i]) +
                                  " must be finite and >= 0");
}

}  // namespace trackcore::py_util
