"""Worker threads of the compiled transport: every particle draws from its own random stream and the
particles' crossings are joined in particle order, so the crossings (and the simulated event) are
those of one thread; an error names the first failing particle, as on one thread."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry import trackml_like_detector
from trackcore.sim.particles import minimum_bias
from trackcore.sim.pdg import mass_of
from trackcore.sim.simulate import simulate_event
from trackcore.sim.transport import compiled_geometry, layer_material, transport

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="the compiled core is not built")
KEYS = ("particle_index", "module_index", "position", "momentum", "local", "local_direction", "edep", "path")


@pytest.fixture(scope="module")
def det():
    return trackml_like_detector()


@pytest.fixture(scope="module")
def particles():
    return minimum_bias(np.random.default_rng(8), pileup=20)


def _inputs(p):
    return (np.stack([p["vx"], p["vy"], p["vz"]], 1), np.stack([p["px"], p["py"], p["pz"]], 1), p["q"],
            mass_of(p["particle_type"]))


def test_crossings_do_not_depend_on_threads(det, particles):
    args = _inputs(particles)
    assert len(args[0]) > 500, "many chunks of particles"
    ref = transport(det, *args, seed=3, backend="cpu", threads=1)
    for threads in (2, 5):
        got = transport(det, *args, seed=3, backend="cpu", threads=threads)
        for key in KEYS:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{key}, {threads} threads")


def test_simulated_event_does_not_depend_on_threads(det, particles):
    one, two = (simulate_event(det, particles, seed=4, backend="cpu", threads=t) for t in (1, 2))
    assert len(one.hits) > 10_000
    for name in one.hits.columns:
        np.testing.assert_array_equal(one.hits[name], two.hits[name], err_msg=name)
    np.testing.assert_array_equal(one.truth["particle_id"], two.truth["particle_id"])


def test_error_names_the_first_failing_particle_whatever_the_threads(det):
    """Particles 40 and 100 (in later chunks than 0-31) curl forever without loop protection: the
    error is particle 40's, as on one thread, even when particle 100 fails first in time."""
    n = 120
    v = np.zeros((n, 3))
    p = np.tile([1.0, 0.3, 0.2], (n, 1))
    p[40] = p[100] = [1e-100, 0.0, 0.0]
    q, m = np.ones(n, np.int32), np.full(n, 0.13957)
    from trackcore._corelib import core

    for threads in (1, 3):
        with pytest.raises(ValueError, match="particle 40 needs more than 2e7 steps"):
            core().transport(compiled_geometry(det), v, p, q, m, layer_material(det), min_p=0.0, loop_fraction=0.0,
                             threads=threads)


@pytest.mark.parametrize("threads", [-1, 1025])
def test_compiled_transport_checks_threads(det, threads):
    from trackcore._corelib import core

    v, p, q, m = _inputs(minimum_bias(np.random.default_rng(1), pileup=1))
    with pytest.raises(ValueError, match=f"threads = {threads}"):
        core().transport(compiled_geometry(det), v, p, np.asarray(q, np.int32), m, layer_material(det), threads=threads)
