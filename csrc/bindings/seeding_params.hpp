#pragma once
// Reading the seeder's derived parameters (trackcore.reco.seeding.derived_parameters) from a dict,
// shared by the seeding and the hashing bindings. Bad or missing keys are ValueErrors naming them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "../src/seeding.hpp"
#include "arrays.hpp"

namespace trackcore::py_util {
namespace py = pybind11;
namespace sd = trackcore::seeding;

template <class T>
inline T get_param(const py::dict& d, const char* key) {
    if (!d.contains(key)) throw py::value_error(std::string("seeding params: missing key '") + key + "'");
    py::object value = d[key];
    try {
        return value.cast<T>();
    } catch (const py::cast_error&) {
        // pybind11's cast_error is a RuntimeError; a bad parameter is the caller's ValueError.
        const char* want = std::is_floating_point<T>::value ? "a number" : "an integer in range";
        throw py::value_error(std::string("seeding params: '") + key + "' must be " + want + ", got " +
                              std::string(py::str(py::repr(value)).cast<std::string>()).substr(0, 50) + " (" +
                              std::string(py::str(py::type::handle_of(value).attr("__name__"))) + ")");
    }
}

// The derived parameters built by trackcore.reco.seeding.derived_parameters.
inline sd::Params to_params(const py::dict& d) {
    sd::Params p;
    p.n_phi = get_param<int>(d, "n_phi");
    p.n_z = get_param<int>(d, "n_z");
    p.phi_neighbours = get_param<int>(d, "phi_neighbours");
    p.inv_phi_bin = get_param<double>(d, "inv_phi_bin");
    p.z_lo = get_param<double>(d, "z_lo");
    p.inv_z_bin = get_param<double>(d, "inv_z_bin");
    p.dr_min = get_param<double>(d, "dr_min");
    p.dr_max = get_param<double>(d, "dr_max");
    p.cot_max = get_param<double>(d, "cot_max");
    p.z0_min = get_param<double>(d, "z0_min");
    p.z0_max = get_param<double>(d, "z0_max");
    p.k_bend = get_param<double>(d, "k_bend");
    p.d0_max = get_param<double>(d, "d0_max");
    p.phi_scale = get_param<double>(d, "phi_scale");
    p.phi_margin = get_param<double>(d, "phi_margin");
    p.min_helix_diameter2 = get_param<double>(d, "min_helix_diameter2");
    p.var_r = get_param<double>(d, "var_r");
    p.var_z = get_param<double>(d, "var_z");
    p.scatter_per_curv2 = get_param<double>(d, "scatter_per_curv2");
    p.scatter_min2 = get_param<double>(d, "scatter_min2");
    p.delta_inv_helix_diameter = get_param<double>(d, "delta_inv_helix_diameter");
    p.compat_weight = get_param<double>(d, "compat_weight");
    p.impact_weight = get_param<double>(d, "impact_weight");
    p.z0_weight = get_param<double>(d, "z0_weight");
    p.compat_limit = get_param<int>(d, "compat_limit");
    p.max_seeds_per_middle = get_param<int>(d, "max_seeds_per_middle");
    p.max_seeds = get_param<long long>(d, "max_seeds");
    if (d.contains("threads")) {  // optional: an execution setting, not part of the seeding's definition
        p.threads = get_param<int>(d, "threads");
        if (p.threads < 0 || p.threads > 1024)
            throw py::value_error("seeding params: threads = " + std::to_string(p.threads) + " must be in [0, 1024] (0: one per hardware thread)");
    }
    if (p.n_phi < 1 || p.n_z < 1 || static_cast<long long>(p.n_phi) * p.n_z > (1LL << 26))
        throw py::value_error("seeding params: n_phi and n_z must be >= 1 and n_phi * n_z <= 2^26");
    if (p.max_seeds_per_middle < 0 || p.max_seeds < 0 || p.compat_limit < 0 || p.phi_neighbours < 1)
        throw py::value_error("seeding params: limits must be >= 0 and phi_neighbours >= 1");
    if (!(p.dr_min > 0) || !(p.dr_max >= p.dr_min))
        throw py::value_error("seeding params: need 0 < dr_min <= dr_max");
    // NaN or infinite parameters made NaN seed weights or bins, or silently no seeds.
    const std::pair<const char*, double> reals[] = {
        {"inv_phi_bin", p.inv_phi_bin}, {"z_lo", p.z_lo}, {"inv_z_bin", p.inv_z_bin}, {"dr_max", p.dr_max},
        {"cot_max", p.cot_max}, {"z0_min", p.z0_min}, {"z0_max", p.z0_max}, {"k_bend", p.k_bend},
        {"d0_max", p.d0_max}, {"phi_scale", p.phi_scale}, {"phi_margin", p.phi_margin},
        {"min_helix_diameter2", p.min_helix_diameter2}, {"var_r", p.var_r}, {"var_z", p.var_z},
        {"scatter_per_curv2", p.scatter_per_curv2}, {"scatter_min2", p.scatter_min2},
        {"delta_inv_helix_diameter", p.delta_inv_helix_diameter}, {"compat_weight", p.compat_weight},
        {"impact_weight", p.impact_weight}, {"z0_weight", p.z0_weight}};
    for (const auto& [key, value] : reals)
        if (!std::isfinite(value))
            throw py::value_error(std::string("seeding params: '") + key + "' = " + fmt_g(value) +
                                  " must be finite");
    if (!(p.inv_phi_bin > 0) || !(p.inv_z_bin > 0))
        throw py::value_error("seeding params: inv_phi_bin and inv_z_bin must be > 0");
    return p;
}

// Seeds as the kernels return them: ((N, 3) bottom/middle/top space-point indices, (N,) weights).
inline py::tuple seeds_to_arrays(const std::vector<sd::Seed>& seeds) {
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

}  // namespace trackcore::py_util
