"""The analytic helix transport Jacobian against finite differences of the same transport."""
import numpy as np
import pytest

from trackcore._corelib import core_available

pytestmark = pytest.mark.skipif(not core_available(), reason="compiled core not built")


@pytest.mark.parametrize("direction", [1, -1])
def test_analytic_jacobian_matches_finite_differences(direction):
    from trackcore._corelib import core
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.transport import compiled_geometry

    det = trackml_like_detector()
    geo = compiled_geometry(det)
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(200):
        a = int(rng.integers(len(det)))
        c = det.centre[a]
        phi = np.arctan2(c[1], c[0]) + rng.normal(0, 0.05)
        theta = np.arccos(np.clip(c[2] / np.linalg.norm(c), -1, 1)) + rng.normal(0, 0.05)
        params = [rng.uniform(-3, 3), rng.uniform(-10, 10), phi, theta, rng.choice([-1, 1]) / rng.uniform(0.3, 20)]
        d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
        b = int(np.argmin(np.linalg.norm(det.centre - (c + direction * 120 * d), axis=1)))
        if b == a:
            continue
        try:
            pa, sa, ja = core().transport_jacobian(geo, a, params, b, direction, 2.0, False)
            pn, sn, jn = core().transport_jacobian(geo, a, params, b, direction, 2.0, True)
        except ValueError:  # this plane is not reached
            continue
        assert np.sign(sa) == direction
        np.testing.assert_allclose(pa, pn, atol=1e-12)
        scale = np.abs(jn).max(axis=0, keepdims=True)
        assert (np.abs(ja - jn) / scale).max() < 1e-3, (ja, jn)
        checked += 1
    assert checked > 100
