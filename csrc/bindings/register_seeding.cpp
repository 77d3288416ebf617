// Seeding kernels: the (phi, z) space-point grid and ACTS-like triplet seeding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <type_traits>

#include "../src/seeding.hpp"
#include "arrays.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;
namespace sd = trackcore::seeding;

namespace {

template <class T>
T get(const py::dict& d, const char* key) {
    if (!d.contains(key)) throw py::value_error(std::string("seeding params: missing key '") + key + "'");
    py::object value = d[key];
    try {
        return value.cast<T>();
    } catch (const py::cast_error&) {
        // pybind11's cast_error is a RuntimeError; a bad parameter is the caller's ValueError.
        const char* want = std::is_floating_point<T>::value ? "a number" : "an integer in range";
        throw py::value_error(std::string("seeding params: '") + key + "' must be " + want + ", got " +
                              std::string(py::str(py::repr(value)).cast<std::string>()).substr(0, 50) + " (" +
                              std::string(py::str(value.get_type().attr("__name__"))) + ")");
    }
}

// The derived parameters built by trackcore.reco.seeding.derived_parameters.
sd::Params to_params(const py::dict& d) {
    sd::Params p;
    p.n_phi = get<int>(d, "n_phi");
    p.n_z = get<int>(d, "n_z");
    p.phi_neighbours = get<int>(d, "phi_neighbours");
    p.inv_phi_bin = get<double>(d, "inv_phi_bin");
    p.z_lo = get<double>(d, "z_lo");
    p.inv_z_bin = get<double>(d, "inv_z_bin");
    p.dr_min = get<double>(d, "dr_min");
    p.dr_max = get<double>(d, "dr_max");
    p.cot_max = get<double>(d, "cot_max");
    p.z0_min = get<double>(d, "z0_min");
    p.z0_max = get<double>(d, "z0_max");
    p.k_bend = get<double>(d, "k_bend");
    p.d0_max = get<double>(d, "d0_max");
    p.phi_scale = get<double>(d, "phi_scale");
    p.phi_margin = get<double>(d, "phi_margin");
    p.min_helix_diameter2 = get<double>(d, "min_helix_diameter2");
    p.var_r = get<double>(d, "var_r");
    p.var_z = get<double>(d, "var_z");
    p.scatter_per_curv2 = get<double>(d, "scatter_per_curv2");
    p.scatter_min2 = get<double>(d, "scatter_min2");
    p.delta_inv_helix_diameter = get<double>(d, "delta_inv_helix_diameter");
    p.compat_weight = get<double>(d, "compat_weight");
    p.impact_weight = get<double>(d, "impact_weight");
    p.z0_weight = get<double>(d, "z0_weight");
    p.compat_limit = get<int>(d, "compat_limit");
    p.max_seeds_per_middle = get<int>(d, "max_seeds_per_middle");
    p.max_seeds = get<long long>(d, "max_seeds");
    if (p.n_phi < 1 || p.n_z < 1 || static_cast<long long>(p.n_phi) * p.n_z > (1LL << 26))
        throw py::value_error("seeding params: n_phi and n_z must be >= 1 and n_phi * n_z <= 2^26");
    if (p.max_seeds_per_middle < 0 || p.max_seeds < 0 || p.compat_limit < 0 || p.phi_neighbours < 1)
        throw py::value_error("seeding params: limits must be >= 0 and phi_neighbours >= 1");
    if (!(p.dr_min > 0) || !(p.dr_max >= p.dr_min))
        throw py::value_error("seeding params: need 0 < dr_min <= dr_max");
    return p;
}

void check_points(py::ssize_t n, std::initializer_list<std::pair<const f64_array*, const char*>> arrays) {
    for (const auto& [a, name] : arrays) {
        require_shape(*a, {n}, name);
        const double* v = a->data();
        for (py::ssize_t i = 0; i < n; ++i)
            if (!std::isfinite(v[i]))
                throw py::value_error(std::string(name) + "[" + std::to_string(i) + "] is not finite");
    }
}

void check_radius(const f64_array& r) {
    const double* v = r.data();
    for (py::ssize_t i = 0; i < r.shape(0); ++i)
        if (!(v[i] > 0))
            throw py::value_error("r[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " must be > 0");
}

py::tuple seeding_grid(f64_array phi, f64_array z, f64_array r, py::dict params) {
    const auto n = phi.shape(0);
    check_points(n, {{&phi, "phi"}, {&z, "z"}, {&r, "r"}});
    const sd::Params p = to_params(params);
    sd::Grid g;
    {
        py::gil_scoped_release release;
        g = sd::build_grid(n, phi.data(), z.data(), r.data(), p);
    }
    py::array_t<long long> order(static_cast<py::ssize_t>(g.order.size()));
    py::array_t<long long> offsets(static_cast<py::ssize_t>(g.offsets.size()));
    std::copy(g.order.begin(), g.order.end(), order.mutable_data());
    std::copy(g.offsets.begin(), g.offsets.end(), offsets.mutable_data());
    return py::make_tuple(order, offsets);
}

py::tuple find_seeds(f64_array x, f64_array y, f64_array z, f64_array r, f64_array phi, i64_array layer,
                     py::dict params) {
    const auto n = x.shape(0);
    check_points(n, {{&x, "x"}, {&y, "y"}, {&z, "z"}, {&r, "r"}, {&phi, "phi"}});
    require_shape(layer, {n}, "layer");
    check_radius(r);
    const sd::Params p = to_params(params);
    std::vector<sd::Seed> seeds;
    {
        py::gil_scoped_release release;
        seeds = sd::find_seeds(n, x.data(), y.data(), z.data(), r.data(), phi.data(),
                               reinterpret_cast<const std::int64_t*>(layer.data()), p);
    }
    const auto k = static_cast<py::ssize_t>(seeds.size());
    py::array_t<long long> hits({k, static_cast<py::ssize_t>(3)});
    py::array_t<double> weight(k);
    auto* h = hits.mutable_data();
    auto* w = weight.mutable_data();
    for (py::ssize_t i = 0; i < k; ++i) {
        h[3 * i] = seeds[i].bottom;
        h[3 * i + 1] = seeds[i].middle;
        h[3 * i + 2] = seeds[i].top;
        w[i] = seeds[i].weight;
    }
    return py::make_tuple(hits, weight);
}

}  // namespace

void register_seeding(py::module_& m) {
    m.def("seeding_grid", &seeding_grid, py::arg("phi"), py::arg("z"), py::arg("r"), py::arg("params"),
          "Counting sort of space points into (phi, z) cells, each cell by r: (order, cell offsets).");
    m.def("find_seeds", &find_seeds, py::arg("x"), py::arg("y"), py::arg("z"), py::arg("r"), py::arg("phi"),
          py::arg("layer"), py::arg("params"),
          "Triplet seeds: (hits (N, 3) int64 bottom/middle/top input indices, weight), best first.");
}
