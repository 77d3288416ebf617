#pragma once
// Helpers for the bindings: shape checks that raise ValueError (never a crash in C++).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace trackcore::py_util {
namespace py = pybind11;

using f64_array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using i64_array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using i32_array = py::array_t<int, py::array::c_style | py::array::forcecast>;

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

}  // namespace trackcore::py_util
