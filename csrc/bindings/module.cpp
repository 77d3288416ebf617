// The private module trackcore._core: one register_<area>() per area, each in its own file.
#include <pybind11/pybind11.h>

#include "trackcore/version.hpp"
#include "registry.hpp"


PYBIND11_MODULE(_core, m) {
    m.doc() = "trackcore compiled core (private; use the trackcore Python API)";
    m.attr("ABI_VERSION") = TRACKCORE_CORE_ABI;
    register_geometry(m);
    register_propagation(m);
    register_tracking(m);
    register_digitization(m);
    register_seeding(m);
    register_hashing(m);
    register_fastsim(m);
    register_io(m);
}
