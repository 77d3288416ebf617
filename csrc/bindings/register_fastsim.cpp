// Fast-simulation kernels (plugins/fastsim_gan): generator conditions and the cluster renderer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../src/fastsim_render.hpp"
#include "arrays.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;
namespace fs = trackcore::fastsim;

namespace {

// Generated widths and corner drops beyond this many cells are not clusters but a broken generator;
// they would allocate without bound.
using fs::kMaxObservedCells;

// A numpy array that takes over a vector's storage (no copy); `shape` must match its size.
template <class T>
py::array_t<T> adopt(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    auto* owner = new std::vector<T>(std::move(v));
    py::capsule free_it(owner, [](void* q) { delete static_cast<std::vector<T>*>(q); });
    return py::array_t<T>(std::move(shape), owner->data(), free_it);
}

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
    // Sizes within a metre-scale detector, whole cell counts and flags: beyond these a module row is
    // not a module (a 1e30 mm half width silently emptied a module; a 2.5 binary flag read as true).
    const auto whole = [](double v, double lo, double hi) { return v >= lo && v <= hi && v == std::floor(v); };
    for (py::ssize_t m = 0; m < n_modules; ++m) {
        const double* r = md + fs::kModuleCols * m;
        for (int c = 0; c < fs::kModuleCols; ++c) {
            const double v = r[c];
            bool ok = std::isfinite(v);
            if (c <= 3) ok = ok && v > 0 && v <= 1e6;                        // half sizes, pitches (mm)
            else if (c <= 5) ok = ok && whole(v, 1, kMaxObservedCells);        // cells along u, v
            else if (c == 6) ok = ok && (v == 0 || v == 1);                    // binary readout
            else if (c == 7) ok = ok && whole(v, 0, 3);                        // module class
            else ok = ok && v > 0 && v <= 1e12;                                // threshold (electrons)
            if (!ok)
                throw py::value_error("modules[" + std::to_string(m) + ", " + std::to_string(c) + "] = " +
                                      std::to_string(v) +
                                      " is invalid (half sizes and pitches in (0, 1e6] mm; cell counts whole, "
                                      "1..2^21; binary 0 or 1; class 0..3; threshold in (0, 1e12] electrons)");
        }
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
            if (!fs::observable_in_range(c, v)) throw py::value_error(fs::observable_error(i, c, v));
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

// The layers of one MLP from lists of (n_in, n_out) weights and (n_out,) biases, chained from n_first
// inputs; `what` names the network in errors.
std::vector<fs::Layer> layers_of(const py::list& weights, const py::list& biases, int n_first, const char* what,
                                 std::vector<py::array_t<float, py::array::c_style | py::array::forcecast>>& keep) {
    if (weights.size() == 0 || weights.size() != biases.size())
        throw py::value_error(std::string(what) + ": need as many bias as weight arrays, at least one");
    std::vector<fs::Layer> out;
    py::ssize_t n_in = n_first;
    for (std::size_t l = 0; l < weights.size(); ++l) {
        auto w = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(weights[l]);
        auto b = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(biases[l]);
        const std::string name = std::string(what) + " layer " + std::to_string(l);
        if (!w || !b) throw py::value_error(name + ": weights and bias must be numeric arrays");
        require_shape(w, {n_in, -1}, (name + " weights").c_str());
        const py::ssize_t n_out = w.shape(1);
        if (n_out < 1 || n_out > 256) throw py::value_error(name + ": width " + std::to_string(n_out) + " not in 1..256");
        require_shape(b, {n_out}, (name + " bias").c_str());
        for (py::ssize_t k = 0; k < w.size(); ++k)
            if (!std::isfinite(w.data()[k])) throw py::value_error(name + ": weights not finite");
        for (py::ssize_t k = 0; k < b.size(); ++k)
            if (!std::isfinite(b.data()[k])) throw py::value_error(name + ": bias not finite");
        out.push_back({w.data(), b.data(), static_cast<int>(n_in), static_cast<int>(n_out)});
        keep.push_back(w);
        keep.push_back(b);
        n_in = n_out;
    }
    return out;
}

py::tuple generate(i64_array module_index, f64_array segments, f64_array edep, f64_array momentum, f64_array modules,
                   double electrons_per_gev, double value_per_electron, py::list class_w, py::list class_b,
                   py::array_t<float, py::array::c_style | py::array::forcecast> embed, py::list gen_w,
                   py::list gen_b, py::array_t<float, py::array::c_style | py::array::forcecast> classes,
                   std::uint64_t seed, float leak, std::optional<f64_array> centres,
                   std::optional<f64_array> rotations, std::int64_t first_hit_id, bool observables) {
    check_common(module_index, segments, edep, modules, "edep");
    for (const double v : {electrons_per_gev, value_per_electron})
        if (!(std::isfinite(v) && v > 0))
            throw py::value_error("electrons_per_gev and value_per_electron must be finite and > 0, got " +
                                  std::to_string(v));
    const auto n = segments.shape(0);
    require_shape(momentum, {n, 3}, "momentum");
    std::vector<py::array_t<float, py::array::c_style | py::array::forcecast>> keep;
    const auto cls = layers_of(class_w, class_b, fs::kConditions, "classifier", keep);
    const auto gen = layers_of(gen_w, gen_b, fs::kConditions + fs::kNoise, "generator", keep);
    const py::ssize_t n_classes = cls.back().n_out;
    if (gen.back().n_out != 3) throw py::value_error("generator: last layer must have 3 outputs (log_charge, res_u, res_v)");
    require_shape(classes, {n_classes, 3}, "classes (d_width_u, d_width_v, d_size per class)");
    require_shape(embed, {n_classes, static_cast<py::ssize_t>(gen[0].n_out)}, "embed (class rows of the first layer)");
    for (py::ssize_t k = 0; k < classes.size(); ++k) {
        const float v = classes.data()[k];
        if (!(std::abs(v) <= kMaxObservedCells) || v != std::nearbyint(v))
            throw py::value_error("classes: entries must be whole numbers with |value| <= 2^21");
    }
    for (py::ssize_t k = 0; k < embed.size(); ++k)
        if (!std::isfinite(embed.data()[k])) throw py::value_error("embed: not finite");
    if (!(std::isfinite(leak) && leak >= 0 && leak < 1)) throw py::value_error("leak must be in [0, 1)");
    const fs::Generator g{cls.data(), static_cast<int>(cls.size()), gen.data(), static_cast<int>(gen.size()),
                          embed.data(), classes.data(), static_cast<int>(n_classes), leak};
    // The observables are returned on request only: fast_digitize does not keep them.
    py::array_t<float> obs({observables ? n : py::ssize_t{0}, static_cast<py::ssize_t>(fs::kObservables)});
    const int64_t* idx = module_index.data();
    const double *seg = segments.data(), *q = edep.data(), *p = momentum.data(), *md = modules.data();
    fs::RenderBuffers cells;
    if (centres.has_value() != rotations.has_value())
        throw py::value_error("centres and rotations: give both (the module frames) or neither");
    if (centres) {
        require_shape(*centres, {-1, 3}, "centres");
        require_shape(*rotations, {centres->shape(0), 3, 3}, "rotations");
        if (modules.shape(0) != centres->shape(0))
            throw py::value_error("centres: " + std::to_string(centres->shape(0)) + " module frames for " +
                                  std::to_string(modules.shape(0)) + " module rows");
        cells.centres = centres->data(), cells.rotations = rotations->data(), cells.first_hit_id = first_hit_id;
    }
    {
        // A generator gone wrong (huge weights) can still give inf: generate names the row (ValueError).
        py::gil_scoped_release release;
        fs::generate(idx, seg, q, p, n, md, electrons_per_gev, g, seed, observables ? obs.mutable_data() : nullptr,
                     nullptr, value_per_electron, &cells);
    }
    const auto k = static_cast<py::ssize_t>(cells.cluster.size()), m = static_cast<py::ssize_t>(cells.ch0.size());
    return py::make_tuple(adopt(std::move(cells.cluster), {k}), adopt(std::move(cells.size), {k}),
                          adopt(std::move(cells.ch0), {m}), adopt(std::move(cells.ch1), {m}),
                          adopt(std::move(cells.value), {m}), adopt(std::move(cells.charge), {k}),
                          adopt(std::move(cells.local), {k, py::ssize_t{2}}),
                          observables ? py::object(obs) : py::none(),
                          centres ? py::object(adopt(std::move(cells.global), {k, py::ssize_t{3}})) : py::none(),
                          centres ? py::object(adopt(std::move(cells.cell_hit), {m})) : py::none());
}

py::array_t<float> dense_layer(py::array_t<float, py::array::c_style | py::array::forcecast> x,
                               py::array_t<float, py::array::c_style | py::array::forcecast> w,
                               py::array_t<float, py::array::c_style | py::array::forcecast> b,
                               std::optional<py::array_t<float, py::array::c_style | py::array::forcecast>> row_bias,
                               bool act, float leak, int isa) {
    require_shape(x, {-1, -1}, "x");
    const py::ssize_t rows = x.shape(0), n_in = x.shape(1);
    require_shape(w, {n_in, -1}, "w");
    const py::ssize_t n_out = w.shape(1);
    require_shape(b, {n_out}, "b");
    if (row_bias) require_shape(*row_bias, {rows, n_out}, "row_bias");
    if (n_in < 1 || n_out < 1 || n_in > 256 || n_out > 256) throw py::value_error("layer widths must be in 1..256");
    const int best = fs::dense_isa_available();
    if (isa < 0) isa = best;
    if (isa > best) throw py::value_error("isa " + std::to_string(isa) + " is not available on this CPU (best " + std::to_string(best) + ")");
    py::array_t<float> out({rows, n_out});
    fs::dense_rows(isa, x.data(), rows, w.data(), b.data(), static_cast<int>(n_in), static_cast<int>(n_out),
                   row_bias ? row_bias->data() : nullptr, act, leak, out.mutable_data());
    return out;
}

}  // namespace

void register_fastsim(py::module_& m) {
    m.def("fastsim_dense", &dense_layer, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("row_bias") = py::none(),
          py::arg("act") = false, py::arg("leak") = 0.2f, py::arg("isa") = -1,
          "One layer of the fastsim networks, x (R, I) @ w (I, O) + b (+ row_bias (R, O)), LeakyReLU(leak) when\n"
          "act, with the products of instruction set isa (0 portable, 1 AVX2/FMA, 2 AVX-512; -1 the best this\n"
          "CPU has; more than it has is a ValueError). For tests of every code path.");
    m.def("fastsim_dense_isa", &fs::dense_isa_available, "The best instruction set of fastsim_dense on this CPU (0, 1, 2).");
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
    m.def("fastsim_generate", &generate, py::arg("module_index"), py::arg("segments"), py::arg("edep"),
          py::arg("momentum"), py::arg("modules"), py::arg("electrons_per_gev"), py::arg("value_per_electron"),
          py::arg("class_w"), py::arg("class_b"), py::arg("embed"), py::arg("gen_w"), py::arg("gen_b"),
          py::arg("classes"), py::arg("seed"), py::arg("leak"), py::kw_only(), py::arg("centres") = py::none(),
          py::arg("rotations") = py::none(), py::arg("first_hit_id") = 1, py::arg("observables") = true,
          "fastsim_conditions -> generator (classifier of the integer observables, then the GAN generator;\n"
          "plugins/fastsim_gan/model.py, normalisation folded into the float32 weights) -> fastsim_render in\n"
          "one call. Noise: counter based from seed (model.hash_uniforms). Returns fastsim_render's tuple,\n"
          "the (N, 6) float32 observables (None with observables=False), and with the module frames centres (M, 3) and rotations (M, 3, 3)\n"
          "given, each cluster's global position (K, 3) and each cell's hit id (first_hit_id + cluster rank),\n"
          "else None twice.");
}
