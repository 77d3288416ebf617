"""Fixtures of the reconstruction tests: the TrackML-like detector and small simulated events.

Every event is simulated once per session with a fixed seed, so the tests see the same numbers each
run (the floors they assert were measured on exactly these events).
"""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.event import Event
from trackcore.geometry.builders import trackml_like_detector
from trackcore.geometry.detector import Detector
from trackcore.sim.particles import minimum_bias, particle_gun
from trackcore.sim.simulate import SimulationConfig, simulate_event

#: The CKF and the fit exist only in the compiled core.
HAVE_CORE = available_backends()["cpu"] == "ok"


@pytest.fixture(scope="session")
def reco_detector() -> Detector:
    if not HAVE_CORE:
        pytest.skip("compiled core not built: the CKF and the Kalman fit need it")
    return trackml_like_detector()


@pytest.fixture(scope="session")
def gun_event(reco_detector) -> Event:
    """300 muons (pT 1-10 GeV, |eta| < 2.5) plus the default 15% noise hits."""
    parts = particle_gun(300, np.random.default_rng(11), pt=(1.0, 10.0), eta=(-2.5, 2.5), pdg=13)
    return simulate_event(reco_detector, parts, seed=11)


@pytest.fixture(scope="session")
def pileup_event(reco_detector) -> Event:
    """Minimum bias at <mu> = 10 (~500 particles, ~6.5k hits with noise)."""
    parts = minimum_bias(np.random.default_rng(1), pileup=10)
    return simulate_event(reco_detector, parts, config=SimulationConfig(), seed=1)
