// Seeding kernels: the (phi, z) space-point grid and ACTS-like triplet seeding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

#include "../src/seeding.hpp"
#include "arrays.hpp"
#include "registry.hpp"
#include "seeding_params.hpp"
#include "trackcore/seeding_math.hpp"

namespace py = pybind11;
using namespace trackcore::py_util;
namespace sd = trackcore::seeding;

namespace {

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
    check_phi(phi);
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

// With bz (T), also the (N, 7) track parameters of each seed (pt, charge, phi, theta, z0, d0, cot theta;
// seedmath::estimate_seed), computed here rather than in numpy: ~10x cheaper on a <mu> = 200 event.
py::tuple find_seeds(f64_array x, f64_array y, f64_array z, f64_array r, f64_array phi, i64_array layer,
                     py::dict params, std::optional<double> bz,
                     std::optional<py::array_t<bool, py::array::c_style | py::array::forcecast>> middle) {
    const auto n = x.shape(0);
    check_points(n, {{&x, "x"}, {&y, "y"}, {&z, "z"}, {&r, "r"}, {&phi, "phi"}});
    require_shape(layer, {n}, "layer");
    check_radius(r);
    check_phi(phi);
    const sd::Params p = to_params(params);
    const std::uint8_t* middle_flags = nullptr;
    if (middle) {
        if (middle->ndim() != 1 || middle->shape(0) != n)
            throw py::value_error("find_seeds: middle must be a 1-D array of " + std::to_string(n) + " flags like x");
        static_assert(sizeof(bool) == 1, "bool flags are read as bytes");
        middle_flags = reinterpret_cast<const std::uint8_t*>(middle->data());
    }
    std::vector<sd::Seed> seeds;
    {
        py::gil_scoped_release release;
        seeds = sd::find_seeds(n, x.data(), y.data(), z.data(), r.data(), phi.data(),
                               reinterpret_cast<const std::int64_t*>(layer.data()), p, middle_flags);
    }
    py::tuple out = seeds_to_arrays(seeds);
    if (!bz) return out;
    if (!(std::fabs(*bz) <= 1e4) || *bz == 0.0)
        throw py::value_error("find_seeds: bz must be finite and non-zero (T), |bz| <= 1e4");
    const auto k = static_cast<py::ssize_t>(seeds.size());
    py::array_t<double> track({k, static_cast<py::ssize_t>(7)});
    double* t = track.mutable_data();
    {
        py::gil_scoped_release release;
        const double *xs = x.data(), *ys = y.data(), *zs = z.data();
        for (py::ssize_t i = 0; i < k; ++i) {
            const sd::Seed& s = seeds[i];
            trackcore::seedmath::estimate_seed(xs[s.bottom], ys[s.bottom], zs[s.bottom], xs[s.middle], ys[s.middle],
                                               xs[s.top], ys[s.top], zs[s.top], *bz, t + 7 * i);
        }
    }
    return py::make_tuple(out[0], out[1], track);
}

}  // namespace

void register_seeding(py::module_& m) {
    m.def("seeding_grid", &seeding_grid, py::arg("phi"), py::arg("z"), py::arg("r"), py::arg("params"),
          "Counting sort of space points into (phi, z) cells, each cell by r: (order, cell offsets).");
    m.def("find_seeds", &find_seeds, py::arg("x"), py::arg("y"), py::arg("z"), py::arg("r"), py::arg("phi"),
          py::arg("layer"), py::arg("params"), py::arg("bz") = py::none(), py::arg("middle") = py::none(),
          "Triplet seeds: (hits (N, 3) int64 bottom/middle/top input indices, weight), best first; given bz (T) "
          "also (N, 7) float64 pt, charge, phi, theta, z0, d0, cot theta. middle: N bools, the points that may "
          "be a seed's middle (None: all).");
}
