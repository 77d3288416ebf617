"""Detector geometry: modules, layers, frame transforms, alignment and the magnetic field."""
from .detector import Detector, Layer

__all__ = ["Detector", "Layer"]
