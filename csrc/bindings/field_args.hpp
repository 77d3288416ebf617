#pragma once
// Parses the field arguments shared by the bindings: a constant bz, or a field-map tuple
// (r0, dr, nr, z0, dz, nz, br (nr, nz), bz (nr, nz)). The arrays are kept alive by the caller.
#include "arrays.hpp"
#include "trackcore/field.hpp"

#include <cmath>
#include <string>
#include <utility>

namespace trackcore::py_util {

// Largest |B| (T) of a constant field or of a field-map value. Real magnets stay below 50 T; a field
// of 1e30 T bends a track in steps of 1e-30 mm (the stepping never ends) and 1e300 T overflows to NaN.
constexpr double kMaxFieldT = 1e4;

inline void check_bz(double bz, const char* who) {
    if (!(std::fabs(bz) <= kMaxFieldT))
        throw py::value_error(std::string(who) + ": bz = " + fmt_g(bz) + " T must be finite, |bz| <= 1e4 T");
}

inline FieldView parse_field(double bz, const py::object& field_map, f64_array& br_keep, f64_array& bz_keep) {
    check_bz(bz, "field");
    FieldView field;
    field.bz = bz;
    if (field_map.is_none()) return field;
    auto t = field_map.cast<py::tuple>();
    if (t.size() != 8) throw py::value_error("field_map must be (r0, dr, nr, z0, dz, nz, br, bz)");
    field.constant = false;
    field.r0 = t[0].cast<double>(); field.dr = t[1].cast<double>(); field.nr = t[2].cast<int>();
    field.z0 = t[3].cast<double>(); field.dz = t[4].cast<double>(); field.nz = t[5].cast<int>();
    br_keep = t[6].cast<f64_array>();
    bz_keep = t[7].cast<f64_array>();
    if (field.nr < 2 || field.nz < 2 || !(field.dr > 0) || !(field.dz > 0))
        throw py::value_error("field map needs at least 2x2 points and positive spacing");
    // A grid placed at 1e30 mm is no field at all (zero everywhere), without a word.
    if (!(std::fabs(field.r0) <= 1e6 && std::fabs(field.z0) <= 1e6 && field.dr <= 1e6 && field.dz <= 1e6))
        throw py::value_error("field map: r0 = " + fmt_g(field.r0) + ", dr = " + fmt_g(field.dr) + ", z0 = " +
                              fmt_g(field.z0) + ", dz = " + fmt_g(field.dz) + " mm must be finite, at most 1e6 mm");
    require_shape(br_keep, {field.nr, field.nz}, "field map Br");
    require_shape(bz_keep, {field.nr, field.nz}, "field map Bz");
    for (const auto& [grid, name] : {std::pair{&br_keep, "Br"}, {&bz_keep, "Bz"}}) {
        const double* g = grid->data();
        for (py::ssize_t k = 0; k < grid->size(); ++k)
            if (!(std::fabs(g[k]) <= kMaxFieldT))
                throw py::value_error(std::string("field map ") + name + "[" + std::to_string(k / field.nz) + ", " +
                                      std::to_string(k % field.nz) + "] = " + fmt_g(g[k]) +
                                      " T must be finite, |B| <= 1e4 T");
    }
    field.br_grid = br_keep.data();
    field.bz_grid = bz_keep.data();
    return field;
}

}  // namespace trackcore::py_util
