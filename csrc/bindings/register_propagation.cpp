// Bindings of the transport engine: a Geometry built from module arrays, and particle transport
// through it (simulation). Inputs are checked here so that C++ never sees malformed arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>

#include "../src/geometry.hpp"
#include "../src/transport.hpp"
#include "arrays.hpp"
#include "field_args.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore;
using namespace trackcore::py_util;

namespace {

// Largest module coordinate or size (mm): a detector is tens of metres across.
constexpr double kMaxExtent = 1e6;

std::shared_ptr<Geometry> make_geometry(f64_array centres, f64_array rotations, f64_array half_t, f64_array min_hu,
                                        f64_array max_hu, f64_array hv, i32_array module_layer, i32_array layer_kind) {
    require_shape(centres, {-1, 3}, "centres");
    const auto n = centres.shape(0);
    require_shape(rotations, {n, 3, 3}, "rotations");
    for (auto* a : {&half_t, &min_hu, &max_hu, &hv}) require_shape(*a, {n}, "module sizes");
    require_shape(module_layer, {n}, "module_layer");
    require_shape(layer_kind, {-1}, "layer_kind");
    std::vector<Module> mods(n);
    const auto n_layers = layer_kind.shape(0);
    for (py::ssize_t i = 0; i < n; ++i) {
        Module& m = mods[i];
        for (int k = 0; k < 3; ++k) m.centre[k] = centres.at(i, k);
        for (int k = 0; k < 9; ++k) m.rot[k] = rotations.data()[9 * i + k];
        m.half_t = half_t.at(i); m.min_hu = min_hu.at(i); m.max_hu = max_hu.at(i); m.hv = hv.at(i);
        m.layer = module_layer.at(i);
        // A NaN centre or rotation would silently shrink the world (world_r = 0) and lose the module.
        bool finite = std::isfinite(m.half_t) && std::isfinite(m.min_hu) && std::isfinite(m.max_hu) &&
                      std::isfinite(m.hv);
        for (double c : m.centre) finite = finite && std::isfinite(c);
        for (double r : m.rot) finite = finite && std::isfinite(r);
        if (!finite)
            throw py::value_error("module " + std::to_string(i) + " has a non-finite centre, rotation or size");
        if (m.layer < 0 || m.layer >= n_layers)
            throw py::value_error("module_layer[" + std::to_string(i) + "] is outside [0, n_layers)");
        if (!(m.hv > 0 && m.max_hu > 0 && m.half_t > 0))
            throw py::value_error("module " + std::to_string(i) + " has non-positive size");
        // A module at 1e30 mm made the layer masks' bin count overflow int (then "cannot create
        // std::vector larger than max_size()"); a skewed rotation misplaced the module silently.
        bool sane = m.min_hu >= 0 && m.min_hu <= kMaxExtent && m.max_hu <= kMaxExtent && m.hv <= kMaxExtent &&
                    m.half_t <= kMaxExtent;
        for (double c : m.centre) sane = sane && std::fabs(c) <= kMaxExtent;
        if (!sane)
            throw py::value_error("module " + std::to_string(i) + ": centre and sizes must be within 1e6 mm, min_hu >= 0");
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                double dot = 0;  // (R R^T)_ab
                for (int k = 0; k < 3; ++k) dot += m.rot[3 * a + k] * m.rot[3 * b + k];
                if (!(std::fabs(dot - (a == b ? 1.0 : 0.0)) <= 1e-4))  // TrackML CSV rotations: 1.3e-6
                    throw py::value_error("module " + std::to_string(i) + ": rotation is not orthonormal (R R^T)[" +
                                          std::to_string(a) + ", " + std::to_string(b) + "] = " + fmt_g(dot));
            }
    }
    for (py::ssize_t l = 0; l < n_layers; ++l)
        if (layer_kind.at(l) != 0 && layer_kind.at(l) != 1)
            throw py::value_error("layer_kind[" + std::to_string(l) + "] = " + std::to_string(layer_kind.at(l)) +
                                  " must be 0 (barrel) or 1 (endcap)");
    std::vector<int> kinds(layer_kind.data(), layer_kind.data() + n_layers);
    return std::make_shared<Geometry>(std::move(mods), std::move(kinds));
}

// Most steps one particle may take (max_path / max_step): max_step = 0 or 1e-300 would never end.
// Mirrors trackcore.sim.transport.MAX_STEPS_PER_PARTICLE.
constexpr double kMaxStepsPerParticle = 1e7;
// Heaviest particle (GeV) and largest momentum (GeV) transported.
constexpr double kMaxMass = 1e4;
constexpr double kMaxMomentum = 1e15;

void check_config(double bz, double max_step, double max_path, int max_crossings, double min_p,
                  double loop_fraction) {
    auto fail = [](const std::string& what) { throw py::value_error("transport: " + what); };
    check_bz(bz, "transport");
    if (!(std::isfinite(max_step) && max_step > 0)) fail("max_step = " + std::to_string(max_step) + " mm must be finite and > 0");
    if (!(std::isfinite(max_path) && max_path >= 0)) fail("max_path = " + std::to_string(max_path) + " mm must be finite and >= 0");
    if (!(max_path / max_step <= kMaxStepsPerParticle))
        fail("max_path / max_step = " + std::to_string(max_path / max_step) + " steps per particle; at most 1e7");
    if (max_crossings < 0) fail("max_crossings = " + std::to_string(max_crossings) + " must be >= 0");
    if (!(std::isfinite(min_p) && min_p >= 0)) fail("min_p = " + std::to_string(min_p) + " GeV must be finite and >= 0");
    if (!std::isfinite(loop_fraction)) fail("loop_fraction must be finite (<= 0 turns loop protection off)");
}

py::dict transport(const Geometry& geo, f64_array vertex, f64_array momentum, i32_array charge, f64_array mass,
                   f64_array layer_x0, double bz, py::object field_map, uint64_t seed, double max_step,
                   double max_path, int max_crossings, double min_p, bool multiple_scattering, bool energy_loss,
                   bool use_rk, double loop_fraction, int threads) {
    require_shape(vertex, {-1, 3}, "vertex");
    const auto n = vertex.shape(0);
    require_shape(momentum, {n, 3}, "momentum");
    require_shape(charge, {n}, "charge");
    require_shape(mass, {n}, "mass");
    require_shape(layer_x0, {static_cast<py::ssize_t>(geo.layers().size())}, "layer_x0");
    check_config(bz, max_step, max_path, max_crossings, min_p, loop_fraction);
    if (threads < 0 || threads > 1024)
        throw py::value_error("transport: threads = " + std::to_string(threads) + " must be in [0, 1024] (0: one per hardware thread)");
    std::vector<ParticleIn> parts(n);
    for (py::ssize_t i = 0; i < n; ++i) {
        ParticleIn& p = parts[i];
        double p2 = 0;
        for (int k = 0; k < 3; ++k) {
            p.vertex[k] = vertex.at(i, k);
            p.p[k] = momentum.at(i, k);
            p2 += p.p[k] * p.p[k];
            if (!std::isfinite(p.vertex[k]) || !std::isfinite(p.p[k]))
                throw py::value_error("particle " + std::to_string(i) + " has a non-finite vertex or momentum");
        }
        p.charge = charge.at(i);
        p.mass = mass.at(i);
        if (p.charge == 0 || p2 <= 0 || !(p.mass > 0))
            throw py::value_error("particle " + std::to_string(i) + " needs charge != 0, |p| > 0 and mass > 0");
        // mass^2 of 1e300 overflows (NaN states, then a crash in the navigation); 1e30 GeV gives garbage.
        if (!(p.mass <= kMaxMass))
            throw py::value_error("particle " + std::to_string(i) + ": mass = " + fmt_g(p.mass) +
                                  " GeV; at most 1e4 GeV");
        if (!(p2 <= kMaxMomentum * kMaxMomentum))
            throw py::value_error("particle " + std::to_string(i) + ": |p| = " + fmt_g(std::sqrt(p2)) +
                                  " GeV; at most 1e15 GeV");
    }
    require_layer_x0(layer_x0, "transport");
    f64_array br_grid, bz_grid;
    const FieldView field = parse_field(bz, field_map, br_grid, bz_grid);  // straight lines (bz = 0) are allowed
    TransportConfig cfg;
    cfg.seed = seed; cfg.max_step = max_step; cfg.max_path = max_path; cfg.max_crossings = max_crossings;
    cfg.min_p = min_p; cfg.multiple_scattering = multiple_scattering; cfg.energy_loss = energy_loss; cfg.use_rk = use_rk;
    cfg.loop_fraction = loop_fraction;
    cfg.threads = threads;
    Crossings out;
    out.reserve(static_cast<size_t>(n) * 12);
    std::vector<double> x0(layer_x0.data(), layer_x0.data() + geo.layers().size());
    {
        py::gil_scoped_release release;
        transport_particles(geo, field, parts, x0, cfg, out);
    }
    const auto m = static_cast<py::ssize_t>(out.particle.size());
    auto vec3 = [m](const std::vector<double>& v) {
        py::array_t<double> a({m, py::ssize_t(3)});
        std::copy(v.begin(), v.end(), a.mutable_data());
        return a;
    };
    auto vec1 = [](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
        std::copy(v.begin(), v.end(), a.mutable_data());
        return a;
    };
    py::dict d;
    d["particle_index"] = vec1(out.particle);
    d["module_index"] = vec1(out.module);
    d["position"] = vec3(out.pos);
    d["momentum"] = vec3(out.mom);
    d["local"] = vec3(out.local);
    d["local_direction"] = vec3(out.dir_local);
    d["edep"] = vec1(out.edep);
    d["path"] = vec1(out.path);
    return d;
}

}  // namespace

void register_propagation(py::module_& m) {
    py::class_<Geometry, std::shared_ptr<Geometry>>(m, "Geometry", "Modules and per-layer lookup grids (private).")
        .def(py::init(&make_geometry), py::arg("centres"), py::arg("rotations"), py::arg("half_thickness"),
             py::arg("min_hu"), py::arg("max_hu"), py::arg("hv"), py::arg("module_layer"), py::arg("layer_kind"))
        .def_property_readonly("n_modules", [](const Geometry& g) { return g.modules().size(); })
        .def_property_readonly("world_r", &Geometry::world_r)
        .def_property_readonly("world_z", &Geometry::world_z)
        .def("candidates", [](const Geometry& g, int layer, double phi_a, double q_a, double phi_b, double q_b) {
            if (layer < 0 || layer >= static_cast<int>(g.layers().size())) throw py::index_error("layer out of range");
            // The phi binning wraps angles by whole turns: an infinite or absurd angle (1e30) never wraps.
            for (const double phi : {phi_a, phi_b})
                if (!(std::fabs(phi) <= 1e3))
                    throw py::value_error("candidates: phi = " + fmt_g(phi) + " rad must be finite, |phi| <= 1000");
            if (std::isnan(q_a) || std::isnan(q_b)) throw py::value_error("candidates: q_a and q_b must not be NaN");
            std::vector<int> out;
            g.candidates(layer, phi_a, q_a, phi_b, q_b, out);
            return out;
        });
    m.def("transport", &transport, py::arg("geometry"), py::arg("vertex"), py::arg("momentum"), py::arg("charge"),
          py::arg("mass"), py::arg("layer_x0"), py::arg("bz") = 2.0, py::arg("field_map") = py::none(),
          py::arg("seed") = 0, py::arg("max_step") = 50.0, py::arg("max_path") = 10000.0,
          py::arg("max_crossings") = 60, py::arg("min_p") = 0.05, py::arg("multiple_scattering") = true,
          py::arg("energy_loss") = true, py::arg("use_rk") = false, py::arg("loop_fraction") = 0.5,
          py::arg("threads") = 1,
          "Transport particles through the geometry; returns their sensitive-module crossings in path order. "
          "threads: worker threads (0: one per hardware thread); the crossings do not depend on it.");
}
