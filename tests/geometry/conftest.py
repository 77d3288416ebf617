"""Geometry fixtures: the real TrackML detector (skips where ../shared is absent) and built-ins."""
from __future__ import annotations

import pytest

from trackcore.geometry import Detector, generic_detector, read_detector, trackml_like_detector


@pytest.fixture(scope="session")
def real_detector_path(shared_trackml):
    return shared_trackml / "detectors.csv.gz"


@pytest.fixture(scope="session")
def real_detector(real_detector_path) -> Detector:
    return read_detector(real_detector_path)


@pytest.fixture(scope="session")
def trackml_like() -> Detector:
    return trackml_like_detector()


@pytest.fixture(scope="session")
def generic() -> Detector:
    return generic_detector()
