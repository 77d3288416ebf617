#pragma once
#include <pybind11/pybind11.h>

// One entry per csrc/bindings/register_<area>.cpp.
void register_geometry(pybind11::module_& m);
void register_propagation(pybind11::module_& m);
void register_digitization(pybind11::module_& m);
void register_seeding(pybind11::module_& m);
void register_hashing(pybind11::module_& m);
void register_tracking(pybind11::module_& m);
void register_fastsim(pybind11::module_& m);
void register_io(pybind11::module_& m);
