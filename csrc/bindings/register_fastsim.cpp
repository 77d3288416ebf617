// Fast-simulation kernels (plugins/fastsim_gan): generator conditions and the cluster renderer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "../src/fastsim_render.hpp"
#include "arrays.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;
namespace fs = trackcore::fastsim;

namespace {

// Generated widths and corner drops beyond this many cells are not clusters but a broken generator;
// they would allocate without bound.
constexpr double kMaxObservedCells = static_cast<double>(1 << 21);

// Shapes and values of the inputs both kernels share; `charge_name` is "edep" or "electrons".
void check_common(const i64_array& module_index, const f64_array& segments, const f64_array& edep,
                  const f64_array& modules, const char* charge_name) {
    require_shape(modules, {-1, fs::kModuleCols},
                  "modules (max_hu, hv, pitch_u, pitch_v, n_u, n_v, binary, class, threshold)");
    require_shape(segments, {-1, 4}, "segments (u0, v0, u1, v1)");
    const auto n = segments.shape(0);
    require_shape(module_index, {n}, "module_index");
    require_shape(edep, {n}, charge_name);
    const auto n_modules = modules.shape(0);
    const double* md = modules.data();
    for (py::ssize_t m = 0; m < n_modules; ++m) {
        const double* r = md + fs::kModuleCols * m;
        for (int c = 0; c < fs::kModuleCols; ++c)
            if (!std::isfinite(r[c]) || r[c] < 0 || ((c == 2 || c == 3 || c == 8) && r[c] <= 0) || (c == 7 && r[c] > 3))
                throw py::value_error("modules[" + std::to_string(m) + ", " + std::to_string(c) + "] = " +
                                      std::to_string(r[c]) +
                                      " is invalid (all finite and >= 0; pitches, threshold > 0; class 0..3)");
    }
    const int64_t* idx = module_index.data();
    const double* seg = segments.data();
    const double* q = edep.data();
    require_crossings(idx, seg, q, n, n_modules, charge_name);
}

py::array_t<float> conditions(i64_array module_index, f64_array segments, f64_array edep, f64_array momentum,
                              f64_array modules, double electrons_per_gev) {
    check_common(module_index, segments, edep, modules, "edep");
    if (!(std::isfinite(electrons_per_gev) && electrons_per_gev > 0))
        throw py::value_error("electrons_per_gev = " + std::to_string(electrons_per_gev) + " must be finite and > 0");
    const auto n = segments.shape(0);
    require_shape(momentum, {n, 3}, "momentum");
    py::array_t<float> out({n, static_cast<py::ssize_t>(fs::kConditions)});
    const int64_t* idx = module_index.data();
    const double *seg = segments.data(), *q = edep.data(), *p = momentum.data(), *md = modules.data();
    float* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            fs::prefetch_rows(idx, i, n, md);
            fs::conditions_row(seg + 4 * i, q[i], p + 3 * i, md + fs::kModuleCols * idx[i], electrons_per_gev,
                               o + fs::kConditions * i);
        }
    }
    return out;
}

template <class T>
py::tuple render_typed(const i64_array& module_index, const f64_array& segments, const f64_array& electrons,
                       const py::array_t<T, py::array::c_style>& obs, const f64_array& modules,
                       double value_per_electron) {
    const auto n = segments.shape(0);
    require_shape(obs, {n, fs::kObservables}, "obs (observables)");
    const T* o = obs.data();
    for (py::ssize_t i = 0; i < n; ++i)
        for (int c = 0; c < fs::kObservables; ++c) {
            const double v = o[fs::kObservables * i + c];
            if (!std::isfinite(v) || (c < 3 && std::abs(v) > kMaxObservedCells))
                throw py::value_error("obs[" + std::to_string(i) + ", " + std::to_string(c) + "] = " +
                                      std::to_string(v) + " is not finite or is out of range (|widths, drops| <= 2^21)");
        }
    const int64_t* idx = module_index.data();
    const double *seg = segments.data(), *q = electrons.data(), *md = modules.data();
    std::int64_t n_clusters = 0, n_cells = 0;
    {
        py::gil_scoped_release release;
        fs::render_count<T>(idx, seg, q, o, n, md, n_clusters, n_cells);
    }
    py::array_t<std::int64_t> cluster(n_clusters), size(n_clusters);
    py::array_t<double> charge(n_clusters), local({static_cast<py::ssize_t>(n_clusters), py::ssize_t{2}});
    py::array_t<std::int32_t> ch0(n_cells), ch1(n_cells);
    py::array_t<double> value(n_cells);
    const fs::RenderOut out{cluster.mutable_data(), size.mutable_data(), charge.mutable_data(), local.mutable_data(),
                            ch0.mutable_data(),     ch1.mutable_data(),  value.mutable_data(), n_clusters, n_cells};
    {
        py::gil_scoped_release release;
        fs::render_fill<T>(idx, seg, q, o, n, md, value_per_electron, out);
    }
    return py::make_tuple(cluster, size, ch0, ch1, value, charge, local);
}

py::tuple render(i64_array module_index, f64_array segments, f64_array electrons, py::array obs, f64_array modules,
                 double value_per_electron) {
    check_common(module_index, segments, electrons, modules, "electrons");
    if (!(std::isfinite(value_per_electron) && value_per_electron > 0))
        throw py::value_error("value_per_electron = " + std::to_string(value_per_electron) + " must be finite and > 0");
    // float32 observables (the generator's output) are read as they are: no float64 copy.
    if (py::isinstance<py::array_t<float>>(obs))
        return render_typed<float>(module_index, segments, electrons,
                                   py::array_t<float, py::array::c_style>::ensure(obs), modules, value_per_electron);
    auto o = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obs);
    if (!o) throw py::value_error("obs: expected a numeric (N, 6) array");
    return render_typed<double>(module_index, segments, electrons, o, modules, value_per_electron);
}

}  // namespace

void register_fastsim(py::module_& m) {
    m.def("fastsim_conditions", &conditions, py::arg("module_index"), py::arg("segments"), py::arg("edep"),
          py::arg("momentum"), py::arg("modules"), py::arg("electrons_per_gev"),
          "(N, 14) float32 generator conditions of N crossings (plugins/fastsim_gan). segments: (N, 4) local\n"
          "u0, v0, u1, v1 (mm); edep (GeV); momentum (N, 3) GeV; modules: (n_modules, 9) max_hu, hv, pitch_u,\n"
          "pitch_v (mm), n_u, n_v, binary, class, threshold (electrons).");
    m.def("fastsim_render", &render, py::arg("module_index"), py::arg("segments"), py::arg("electrons"), py::arg("obs"),
          py::arg("modules"), py::arg("value_per_electron"),
          "One staircase cluster per crossing from generated observables obs (N, 6; float32 or float64; integer\n"
          "ones rounded; column 3 unused: the caller folds it into electrons, the charge per cluster).\n"
          "Returns (cluster, size, ch0, ch1, value, charge, local): crossing row and cell count of\n"
          "each cluster (crossing order; clusters without cells omitted), its cells (int32 channels, value in\n"
          "MIP-equivalent mm, 1 for binary), charge (electrons) and (K, 2) value-weighted centroid (mm).");
}
