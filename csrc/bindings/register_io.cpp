// Bindings of the CSV writer's formatting (trackcore.event.io.trackml_csv.format_csv).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../src/csv_format.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore;

void register_io(py::module_& m) {
    m.def(
        "format_csv_rows",
        [](const py::list& columns) {
            std::vector<CsvColumn> cols;
            std::vector<py::array> keep;  // the converted arrays outlive the formatting
            py::ssize_t n = -1;
            for (const auto& item : columns) {
                if (!py::isinstance<py::array>(item))
                    throw py::value_error("format_csv_rows: columns must be numpy arrays");
                py::array a = py::reinterpret_borrow<py::array>(item);
                if (a.ndim() != 1) throw py::value_error("format_csv_rows: every column must be 1-D");
                if (n >= 0 && a.shape(0) != n) throw py::value_error("format_csv_rows: columns differ in length");
                n = a.shape(0);
                CsvColumn c;
                if (a.dtype().is(py::dtype::of<double>()) && (a.flags() & py::array::c_style)) {
                    c.f64 = static_cast<const double*>(a.data());
                } else if (a.dtype().is(py::dtype::of<std::int64_t>()) && (a.flags() & py::array::c_style)) {
                    c.i64 = static_cast<const std::int64_t*>(a.data());
                } else {
                    throw py::value_error("format_csv_rows: columns must be C-contiguous float64 or int64 arrays");
                }
                keep.push_back(a);
                cols.push_back(c);
            }
            std::string text;
            {
                py::gil_scoped_release release;
                text = format_csv_rows(cols, n < 0 ? 0 : static_cast<std::size_t>(n));
            }
            return py::bytes(text);
        },
        py::arg("columns"),
        "CSV rows (bytes, one line per row, no header) of float64 columns (as Python's repr) and int64 columns.");
    m.def(
        "float_repr", [](double x) { std::string s; append_float_repr(s, x); return s; }, py::arg("x"),
        "Python's repr of a float, as the compiled CSV writer makes it (for tests).");
}
