"""Helix-plane intersection: Newton, and the scan fallback the fit uses near a looper's turning radius."""
from __future__ import annotations

import math

import pytest

from trackcore.sim.transport_numpy import helix_plane_intersect, helix_plane_scan

R = 400.0  # mm, radius of the test circle (pT ~ 0.24 GeV in 2 T)


def _apex_case(y_plane: float):
    # From the origin along +x, curving towards +y (centre at (0, R)): the circle's apex is y = 2R,
    # where the track runs parallel to a plane y = const: the straight-line guess has nothing to go on.
    pos, d, h = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], -1.0 / R
    c, n = [0.0, y_plane, 0.0], [0.0, 1.0, 0.0]
    return pos, d, h, c, n


@pytest.mark.parametrize("y_plane", [50.0, 400.0, 790.0, 799.0])
def test_scan_finds_the_first_crossing_analytically(y_plane):
    pos, d, h, c, n = _apex_case(y_plane)
    probe = helix_plane_scan(pos, d, h, c, n, 1e-9, 3000.0)
    assert probe is not None
    s, at_p, _ = probe
    if abs(at_p[1] - 0.0) > 1e-6 and abs(at_p[1] - y_plane) > 1e-6:
        pytest.fail(f"the helix bends the other way: y = {at_p[1]}")
    expected = R * math.acos((R - y_plane) / R)  # first crossing, on the way out
    assert s == pytest.approx(expected, abs=1e-6)
    assert at_p[1] == pytest.approx(y_plane, abs=1e-6)


def test_newton_alone_fails_at_grazing_incidence_and_the_scan_rescues_it():
    pos, d, h, c, n = _apex_case(790.0)
    assert helix_plane_intersect(pos, d, h, c, n, 1e-9, 3000.0) is None  # dir . n = 0 at the start
    hit = helix_plane_intersect(pos, d, h, c, n, 1e-9, 3000.0, scan=True)
    assert hit is not None and hit[0] == pytest.approx(R * math.acos(-390.0 / R), abs=1e-6)


def test_scan_respects_the_range_and_a_plane_beyond_reach():
    pos, d, h, c, n = _apex_case(790.0)
    first = R * math.acos(-390.0 / R)
    assert helix_plane_scan(pos, d, h, c, n, 1e-9, first - 1.0) is None  # crossing beyond s_max
    # Beyond the first crossing, the next one is on the way back in (the circle meets y = 790 twice).
    s2, _, _ = helix_plane_scan(pos, d, h, c, n, first + 1.0, 3000.0)
    assert s2 == pytest.approx(2 * math.pi * R - first, abs=1e-6)
    far = _apex_case(900.0)  # never reached: the circle stays below y = 2R = 800
    assert helix_plane_scan(*far, 1e-9, 3000.0) is None
