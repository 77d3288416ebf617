// Bindings of the combinatorial Kalman filter and the track fit. Arrays are checked here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <string>

#include "../src/ckf.hpp"
#include "arrays.hpp"
#include "field_args.hpp"
#include "registry.hpp"

namespace py = pybind11;
using namespace trackcore;
using namespace trackcore::py_util;

namespace {

// Largest |u|, |v| (mm) of a hit in its module's frame: modules are at most a few hundred mm wide.
constexpr double kMaxLocal = 1e4;

struct HitArrays {
    i64_array module;
    f64_array u, v, var_u, var_v, xyz;
    HitsView view(const Geometry& geo) {
        require_shape(xyz, {-1, 3}, "hit positions");
        const auto n = xyz.shape(0);
        require_shape(module, {n}, "hit module index");
        for (auto* a : {&u, &v, &var_u, &var_v}) require_shape(*a, {n}, "hit local coordinates/variances");
        const auto nm = static_cast<long long>(geo.modules().size());
        for (py::ssize_t i = 0; i < n; ++i) {
            if (module.at(i) < 0 || module.at(i) >= nm)
                throw py::value_error("hit " + std::to_string(i) + " has module index outside the geometry");
            if (!(var_u.at(i) > 0 && var_v.at(i) > 0))
                throw py::value_error("hit " + std::to_string(i) + " has a non-positive variance");
            // A local coordinate of 1e30 (or inf) mm sent the track search into an endless walk; NaN ones
            // and NaN/infinite variances or positions were dropped or used without a word.
            bool ok = std::fabs(u.at(i)) <= kMaxLocal && std::fabs(v.at(i)) <= kMaxLocal && std::isfinite(var_u.at(i)) &&
                      std::isfinite(var_v.at(i));
            for (int k = 0; k < 3; ++k) ok = ok && std::fabs(xyz.at(i, k)) <= 1e6;
            if (!ok)
                throw py::value_error("hit " + std::to_string(i) + ": u = " + fmt_g(u.at(i)) + ", v = " + fmt_g(v.at(i)) +
                                      " mm (|u|, |v| <= 1e4), variances and xyz (|x| <= 1e6 mm) must be finite");
        }
        return HitsView{static_cast<int>(n), module.data(), u.data(), v.data(), var_u.data(), var_v.data(), xyz.data()};
    }
};

constexpr int kMaxThreads = 1024;

CkfConfig config_from(const py::dict& d) {
    CkfConfig c;
    for (auto item : d) {
        const auto key = item.first.cast<std::string>();
        const auto& val = item.second;
        if (key == "chi2_max") c.chi2_max = val.cast<double>();
        else if (key == "max_branches") c.max_branches = val.cast<int>();
        else if (key == "max_candidates") c.max_candidates = val.cast<int>();
        else if (key == "max_holes") c.max_holes = val.cast<int>();
        else if (key == "min_measurements") c.min_measurements = val.cast<int>();
        else if (key == "max_shared") c.max_shared = val.cast<int>();
        else if (key == "mass") c.mass = val.cast<double>();
        else if (key == "max_step") c.max_step = val.cast<double>();
        else if (key == "max_turn") c.max_turn = val.cast<double>();
        else if (key == "max_path") c.max_path = val.cast<double>();
        else if (key == "sigma_phi") c.sigma_phi = val.cast<double>();
        else if (key == "sigma_theta") c.sigma_theta = val.cast<double>();
        else if (key == "sigma_qop_rel") c.sigma_qop_rel = val.cast<double>();
        else if (key == "edge_tolerance") c.edge_tolerance = val.cast<double>();
        else if (key == "skip_used_seeds") c.skip_used_seeds = val.cast<bool>();
        else if (key == "refine") c.refine = val.cast<bool>();
        else if (key == "rescue_min_measurements") c.rescue_min_measurements = val.cast<int>();
        else if (key == "layer_depth") c.layer_depth = val.cast<double>();
        else if (key == "skip_used_hits") c.skip_used_hits = val.cast<int>();
        else if (key == "threads") c.threads = val.cast<int>();
        else throw py::value_error("unknown CKF setting '" + key + "'");
    }
    if (c.max_branches < 1 || c.max_candidates < 1 || c.min_measurements < 3 || !(c.chi2_max > 0) || !(c.mass > 0))
        throw py::value_error("CKF settings out of range (max_branches, max_candidates >= 1, min_measurements >= 3, chi2_max > 0, mass > 0)");
    // NaN or absurd lengths, angles and widths: a zero step or turn, or a seed covariance of 1e30,
    // made the layer search step forever; NaN and negative values silently found no track.
    auto need = [](bool ok, const std::string& what) {
        if (!ok) throw py::value_error("CKF setting " + what);
    };
    constexpr double kPi = 3.14159265358979323846;
    need(c.mass >= 1e-6 && c.mass <= 1e4, "mass = " + fmt_g(c.mass) + " GeV must be in [1e-6, 1e4]");
    need(std::isfinite(c.max_step) && c.max_step > 0, "max_step = " + fmt_g(c.max_step) + " mm must be finite and > 0");
    need(c.max_turn >= 1e-3 && c.max_turn <= 2 * kPi, "max_turn = " + fmt_g(c.max_turn) + " rad must be in [1e-3, 2 pi]");
    need(std::isfinite(c.max_path) && c.max_path >= 0, "max_path = " + fmt_g(c.max_path) + " mm must be finite and >= 0");
    need(c.max_path / c.max_step <= 1e7, "max_path / max_step = " + fmt_g(c.max_path / c.max_step) + " steps; at most 1e7");
    need(c.sigma_phi >= 0 && c.sigma_phi <= kPi && c.sigma_theta >= 0 && c.sigma_theta <= kPi,
         "sigma_phi, sigma_theta = " + fmt_g(c.sigma_phi) + ", " + fmt_g(c.sigma_theta) +
             " rad must be in [0, pi]");
    need(c.sigma_qop_rel >= 0 && c.sigma_qop_rel <= 10, "sigma_qop_rel = " + fmt_g(c.sigma_qop_rel) + " must be in [0, 10]");
    need(std::isfinite(c.edge_tolerance) && c.edge_tolerance >= 0,
         "edge_tolerance = " + fmt_g(c.edge_tolerance) + " mm must be finite and >= 0");
    need(std::isfinite(c.layer_depth) && c.layer_depth >= 0, "layer_depth = " + fmt_g(c.layer_depth) + " mm must be finite and >= 0");
    need(c.max_holes >= 0 && c.max_shared >= 0 && c.rescue_min_measurements >= 0,
         "max_holes, max_shared, rescue_min_measurements must be >= 0");
    need(c.skip_used_hits >= 1 && c.skip_used_hits <= 3, "skip_used_hits = " + std::to_string(c.skip_used_hits) + " must be 1, 2 or 3");
    need(c.threads >= 0 && c.threads <= kMaxThreads,
         "threads = " + std::to_string(c.threads) + " must be in [0, " + std::to_string(kMaxThreads) + "] (0: one per hardware thread)");
    return c;
}

py::dict tracks_to_dict(const std::vector<TrackOut>& tracks) {
    const auto n = static_cast<py::ssize_t>(tracks.size());
    py::array_t<int64_t> offsets(n + 1), seed(n), ndf(n);
    py::array_t<double> perigee({n, py::ssize_t(5)}), cov({n, py::ssize_t(5), py::ssize_t(5)}), chi2(n);
    py::array_t<bool> ok(n);
    size_t total = 0;
    for (const auto& t : tracks) total += t.hits.size();
    py::array_t<int64_t> hits(static_cast<py::ssize_t>(total));
    auto* o = offsets.mutable_data();
    auto* h = hits.mutable_data();
    o[0] = 0;
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto& t = tracks[i];
        std::copy(t.hits.begin(), t.hits.end(), h + o[i]);
        o[i + 1] = o[i] + static_cast<int64_t>(t.hits.size());
        std::copy(t.perigee.begin(), t.perigee.end(), perigee.mutable_data() + 5 * i);
        std::copy(t.cov.begin(), t.cov.end(), cov.mutable_data() + 25 * i);
        chi2.mutable_data()[i] = t.chi2;
        ndf.mutable_data()[i] = t.ndf;
        seed.mutable_data()[i] = t.seed;
        ok.mutable_data()[i] = t.has_perigee;
    }
    py::dict d;
    d["offsets"] = offsets; d["hits"] = hits; d["perigee"] = perigee; d["covariance"] = cov;
    d["chi2"] = chi2; d["ndf"] = ndf; d["seed"] = seed; d["fitted"] = ok;
    return d;
}

}  // namespace

void register_tracking(py::module_& m) {
    // Registered before the functions that take it, so their signatures name the Python type.
    py::class_<HitArrays>(m, "HitArrays", "Hits for the tracking kernels (private).")
        .def(py::init([](i64_array module, f64_array u, f64_array v, f64_array var_u, f64_array var_v, f64_array xyz) {
                 return HitArrays{module, u, v, var_u, var_v, xyz};
             }),
             py::arg("module"), py::arg("u"), py::arg("v"), py::arg("var_u"), py::arg("var_v"), py::arg("xyz"));
    m.def(
        "ckf",
        [](const Geometry& geo, HitArrays hits, i64_array seeds, f64_array layer_x0, double bz, py::object field_map,
           py::dict settings) {
            const HitsView hv = hits.view(geo);
            require_shape(seeds, {-1, 3}, "seeds");
            require_shape(layer_x0, {static_cast<py::ssize_t>(geo.layers().size())}, "layer_x0");
            require_layer_x0(layer_x0, "ckf");
            std::vector<int64_t> s(seeds.data(), seeds.data() + seeds.size());
            for (auto x : s)
                if (x < 0 || x >= hv.n) throw py::value_error("seed hit index outside the hits");
            f64_array brk, bzk;
            const FieldView field = parse_field(bz, field_map, brk, bzk);
            const CkfConfig cfg = config_from(settings);
            std::vector<double> x0(layer_x0.data(), layer_x0.data() + layer_x0.size());
            CkfStats stats;
            std::vector<TrackOut> tracks;
            {
                py::gil_scoped_release release;
                tracks = run_ckf(geo, field, hv, s, x0, cfg, stats);
            }
            py::dict d = tracks_to_dict(tracks);
            py::dict st;
            st["seeds_used"] = stats.seeds_used; st["seeds_skipped"] = stats.seeds_skipped;
            st["candidates"] = stats.candidates; st["tracks_before_ambiguity"] = stats.tracks_before_ambiguity;
            st["rescued"] = stats.rescued;
            d["stats"] = st;
            return d;
        },
        py::arg("geometry"), py::arg("hits"), py::arg("seeds"), py::arg("layer_x0"), py::arg("bz"),
        py::arg("field_map"), py::arg("settings"),
        "Combinatorial Kalman filter from seeds + ambiguity resolution + backward filter to the perigee.");
    m.def(
        "fit_tracks",
        [](const Geometry& geo, HitArrays hits, i64_array offsets, i64_array hit_index, f64_array layer_x0, double bz,
           py::object field_map, py::dict settings) {
            const HitsView hv = hits.view(geo);
            std::vector<int64_t> o(offsets.data(), offsets.data() + offsets.size());
            std::vector<int64_t> hi(hit_index.data(), hit_index.data() + hit_index.size());
            if (o.empty() || o.front() != 0 || o.back() != static_cast<int64_t>(hi.size()))
                throw py::value_error("offsets must start at 0 and end at len(hit_index)");
            for (size_t i = 1; i < o.size(); ++i)
                if (o[i] < o[i - 1]) throw py::value_error("offsets must be non-decreasing");
            for (auto x : hi)
                if (x < 0 || x >= hv.n) throw py::value_error("hit index outside the hits");
            require_shape(layer_x0, {static_cast<py::ssize_t>(geo.layers().size())}, "layer_x0");
            require_layer_x0(layer_x0, "fit_tracks");
            f64_array brk, bzk;
            const FieldView field = parse_field(bz, field_map, brk, bzk);
            const CkfConfig cfg = config_from(settings);
            std::vector<double> x0(layer_x0.data(), layer_x0.data() + layer_x0.size());
            std::vector<TrackOut> tracks;
            {
                py::gil_scoped_release release;
                tracks = fit_tracks(geo, field, hv, o, hi, x0, cfg);
            }
            return tracks_to_dict(tracks);
        },
        py::arg("geometry"), py::arg("hits"), py::arg("offsets"), py::arg("hit_index"), py::arg("layer_x0"),
        py::arg("bz"), py::arg("field_map"), py::arg("settings"),
        "Kalman fit (forward + backward filter) of given hit sequences, perigee parameters and covariance.");
    m.def(
        "transport_jacobian",
        [](const Geometry& geo, int from_module, std::array<double, 5> params, int to_module, int direction, double bz,
           bool numeric) {
            const int nm = static_cast<int>(geo.modules().size());
            if (from_module < 0 || from_module >= nm || to_module < 0 || to_module >= nm)
                throw py::index_error("module index outside the geometry");
            if (direction != 1 && direction != -1) throw py::value_error("direction must be +1 or -1");
            check_bz(bz, "transport_jacobian");
            for (int k = 0; k < 5; ++k)
                if (!std::isfinite(params[k]))
                    throw py::value_error("transport_jacobian: params[" + std::to_string(k) + "] is not finite");
            FieldView field;
            field.bz = bz;
            const Stepper stepper{field, false};
            BoundState in;
            in.module = from_module;
            in.p = params;
            in.C.fill(0);
            BoundState out;
            double path;
            Mat5 J{};
            if (!transport_bound(geo, stepper, in, to_module, direction, 1e5, out, path, &J, numeric))
                throw py::value_error("the track does not reach the target module's plane");
            py::array_t<double> jac({5, 5});
            std::copy(J.begin(), J.end(), jac.mutable_data());
            return py::make_tuple(out.p, path, jac);
        },
        py::arg("geometry"), py::arg("from_module"), py::arg("params"), py::arg("to_module"), py::arg("direction"),
        py::arg("bz"), py::arg("numeric"),
        "Bound parameters on to_module, signed path and the 5x5 transport Jacobian (for tests).");
}
