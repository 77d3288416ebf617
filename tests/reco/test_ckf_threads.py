"""Worker threads of the compiled seeding and CKF: the seeds, tracks, fits and counters are those of
one thread.

The seeding splits its middle space points into chunks and joins their seeds in order. The CKF
follows seeds in parallel and commits them in seed order (a seed whose hits earlier seeds' tracks
took is dropped at its commit), refines and fits the accepted tracks in parallel, and decides the
hit ownership in order. So any thread count must give the single-thread result bit for bit. More
threads than this machine has cores make the interleavings vary from run to run.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trackcore.config import RunConfig, config_hash
from trackcore.errors import InputError
from trackcore.reco.ckf import find_tracks, fit_tracks
from trackcore.reco.measurements import Measurements
from trackcore.reco.pipeline import default_ckf, default_seeding, reconstruct
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.threads import resolve_threads, usable_cpus

TRACK_ARRAYS = ("offsets", "hits", "perigee", "covariance", "chi2", "ndf", "seed", "fitted")


@pytest.fixture(scope="module")
def busy(reco_detector):
    """Minimum bias at <mu> = 60 with the first pass's seeds: many seeds share their hits, so many are
    skipped, and with several threads some are followed before the seeds that take their hits commit."""
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.simulate import simulate_event

    event = simulate_event(reco_detector, minimum_bias(np.random.default_rng(5), pileup=60), seed=5)
    meas = Measurements.from_event(event, reco_detector)
    sp = SpacePoints.from_event(event, reco_detector, volumes=(7, 8, 9))
    seeds = sp.hit_index[find_seeds(sp, SEEDING(reco_detector), threads=1).hits]
    return meas, seeds, sp, event


def SEEDING(detector):
    """The first pass's seeding with middles on every layer (more seeds sharing hits)."""
    return dataclasses.replace(default_seeding(detector), middle_layers=None)


def _arrays(tracks) -> dict:
    return {name: np.asarray(getattr(tracks, name)) for name in TRACK_ARRAYS}


@pytest.fixture(scope="module")
def one_thread(reco_detector, busy):
    meas, seeds = busy[:2]
    return find_tracks(meas, seeds, reco_detector, config=default_ckf(), backend="cpu", threads=1)


@pytest.mark.parametrize("threads", [2, 7])
def test_tracks_do_not_depend_on_threads(reco_detector, busy, one_thread, threads):
    meas, seeds = busy[:2]
    ref_tracks, ref_stats = one_thread
    assert ref_stats["seeds_skipped"] > 0.2 * len(seeds), "the event must exercise the skipping of used seeds"
    assert len(ref_tracks) > 500
    for _ in range(3):
        tracks, stats = find_tracks(meas, seeds, reco_detector, config=default_ckf(), backend="cpu", threads=threads)
        assert stats == ref_stats
        got, want = _arrays(tracks), _arrays(ref_tracks)
        for name in TRACK_ARRAYS:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_fit_does_not_depend_on_threads(reco_detector, busy, one_thread):
    meas = busy[0]
    tracks, _ = one_thread
    hit_lists = [tracks.hits[tracks.offsets[i]:tracks.offsets[i + 1]] for i in range(len(tracks))]
    fits = [_arrays(fit_tracks(meas, hit_lists, reco_detector, threads=t)) for t in (1, 3)]
    assert fits[0]["fitted"].mean() > 0.9
    for name in TRACK_ARRAYS:
        np.testing.assert_array_equal(fits[0][name], fits[1][name], err_msg=name)


@pytest.mark.parametrize("threads", [2, 5])
def test_seeds_do_not_depend_on_threads(reco_detector, busy, threads):
    sp = busy[2]
    ref = find_seeds(sp, SEEDING(reco_detector), threads=1)
    assert len(ref) > 20_000, "enough middles for many chunks"
    for _ in range(2):
        got = find_seeds(sp, SEEDING(reco_detector), threads=threads)
        for name in ("hits", "weight", "pt", "charge", "phi", "theta", "z0", "d0"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)


def test_pipeline_does_not_depend_on_threads(reco_detector, busy):
    """The whole chain (every pass's seeding and CKF) with 1 and 3 threads: the same hit assignment."""
    event = busy[3]
    one, three = (reconstruct(event, reco_detector, backend="cpu", threads=t) for t in (1, 3))
    np.testing.assert_array_equal(one.track_id_of_hits(), three.track_id_of_hits())
    np.testing.assert_array_equal(one.tracks.perigee, three.tracks.perigee)
    assert one.outputs["track_finding"]["passes"][0]["seeds_used"] == three.outputs["track_finding"]["passes"][0]["seeds_used"]


@pytest.mark.parametrize("threads", [-1, 1025, 1.5, True, "4"])
def test_bad_thread_count_is_an_input_error(threads):
    with pytest.raises(InputError, match="threads"):
        resolve_threads(threads)
    with pytest.raises(InputError, match="threads"):
        RunConfig(threads=threads)


def test_compiled_kernels_check_threads_themselves(reco_detector, busy):
    """Direct ``_core`` callers bypass the Python checks: the bindings say what is wrong."""
    from trackcore._corelib import core
    from trackcore.reco.seeding import _params_for, _selection
    from trackcore.sim.transport import compiled_geometry, layer_material

    meas, seeds, sp, _ = busy
    with pytest.raises(ValueError, match="threads = -3"):
        core().ckf(compiled_geometry(reco_detector), meas.compiled(), seeds[:5], layer_material(reco_detector, None),
                   2.0, None, {"threads": -3})
    sel = _selection(sp, SEEDING(reco_detector))
    params = dict(_params_for(sp, sel, SEEDING(reco_detector)), threads=5000)
    with pytest.raises(ValueError, match="threads = 5000"):
        core().find_seeds(sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel], params)


def test_zero_or_none_threads_means_every_usable_cpu(monkeypatch):
    monkeypatch.delenv("TRACKCORE_THREADS", raising=False)
    assert resolve_threads(0) == resolve_threads(None) == usable_cpus() >= 1
    assert resolve_threads(3) == 3


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("TRACKCORE_THREADS", "1")
    assert resolve_threads(None) == resolve_threads(0) == 1
    assert resolve_threads(3) == 3  # an explicit count wins
    monkeypatch.setenv("TRACKCORE_THREADS", "0")
    assert resolve_threads(None) == usable_cpus()
    for bad in ("-1", "two", "2000"):
        monkeypatch.setenv("TRACKCORE_THREADS", bad)
        with pytest.raises(InputError, match="TRACKCORE_THREADS"):
            resolve_threads(None)


def test_thread_count_is_not_part_of_the_configuration_hash():
    """Saved results stay valid when only the thread count changes (it does not change them)."""
    assert config_hash(RunConfig(threads=5)) == config_hash(RunConfig())
