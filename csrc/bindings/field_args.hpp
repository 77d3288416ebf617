#pragma once
// Parses the field arguments shared by the bindings: a constant bz, or a field-map tuple
// (r0, dr, nr, z0, dz, nz, br (nr, nz), bz (nr, nz)). The arrays are kept alive by the caller.
#include "arrays.hpp"
#include "trackcore/field.hpp"

namespace trackcore::py_util {

inline FieldView parse_field(double bz, const py::object& field_map, f64_array& br_keep, f64_array& bz_keep) {
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
    require_shape(br_keep, {field.nr, field.nz}, "field map Br");
    require_shape(bz_keep, {field.nr, field.nz}, "field map Bz");
    field.br_grid = br_keep.data();
    field.bz_grid = bz_keep.data();
    return field;
}

}  // namespace trackcore::py_util
