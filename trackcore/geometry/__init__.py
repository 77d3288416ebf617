"""Detector geometry: modules, layers, frame transforms, alignment and the magnetic field."""
from .alignment import (AlignmentParameters, apply_alignment, euler_xzx, euler_xzx_angles, random_misalignment,
                        read_alignment, write_alignment)
from .builders import build_detector, generic_detector, trackml_like_detector
from .detector import Detector, Layer
from .field import (ConstantField, GridFieldMap, MagneticField, default_field, read_field_map, solenoid_field_map,
                    write_field_map)
from .io import load_detector, read_detector, write_detector

__all__ = [
    "Detector", "Layer",
    "read_detector", "write_detector", "load_detector",
    "trackml_like_detector", "generic_detector", "build_detector",
    "AlignmentParameters", "euler_xzx", "euler_xzx_angles", "apply_alignment", "random_misalignment",
    "read_alignment", "write_alignment",
    "MagneticField", "ConstantField", "GridFieldMap", "solenoid_field_map", "read_field_map", "write_field_map",
    "default_field",
]
