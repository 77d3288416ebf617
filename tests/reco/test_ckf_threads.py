"""The compiled CKF's worker threads: the tracks, fits and counters are those of one thread.

Seeds are followed in parallel and committed in seed order (a seed whose hits earlier seeds' tracks
took is dropped at its commit), the accepted tracks are refined and fitted in parallel, and the
hit ownership is decided in order; so any thread count must give the single-thread result bit for
bit. More threads than this machine has cores make the interleavings vary from run to run.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trackcore.config import RunConfig, config_hash
from trackcore.errors import InputError
from trackcore.reco.ckf import CkfConfig, find_tracks, fit_tracks, usable_cpus
from trackcore.reco.measurements import Measurements
from trackcore.reco.pipeline import default_ckf, default_seeding
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints

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
    seeds = sp.hit_index[find_seeds(sp, dataclasses.replace(default_seeding(reco_detector), middle_layers=None)).hits]
    return meas, seeds


def _arrays(tracks) -> dict:
    return {name: np.asarray(getattr(tracks, name)) for name in TRACK_ARRAYS}


@pytest.fixture(scope="module")
def one_thread(reco_detector, busy):
    meas, seeds = busy
    return find_tracks(meas, seeds, reco_detector, config=dataclasses.replace(default_ckf(), threads=1), backend="cpu")


@pytest.mark.parametrize("threads", [2, 7])
def test_tracks_do_not_depend_on_threads(reco_detector, busy, one_thread, threads):
    meas, seeds = busy
    ref_tracks, ref_stats = one_thread
    assert ref_stats["seeds_skipped"] > 0.2 * len(seeds), "the event must exercise the skipping of used seeds"
    assert len(ref_tracks) > 500
    for _ in range(3):
        tracks, stats = find_tracks(meas, seeds, reco_detector, config=dataclasses.replace(default_ckf(), threads=threads),
                                    backend="cpu")
        assert stats == ref_stats
        got, want = _arrays(tracks), _arrays(ref_tracks)
        for name in TRACK_ARRAYS:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_fit_does_not_depend_on_threads(reco_detector, busy, one_thread):
    meas, _ = busy
    tracks, _ = one_thread
    hit_lists = [tracks.hits[tracks.offsets[i]:tracks.offsets[i + 1]] for i in range(len(tracks))]
    fits = [_arrays(fit_tracks(meas, hit_lists, reco_detector, config=CkfConfig(threads=t))) for t in (1, 3)]
    assert fits[0]["fitted"].mean() > 0.9
    for name in TRACK_ARRAYS:
        np.testing.assert_array_equal(fits[0][name], fits[1][name], err_msg=name)


@pytest.mark.parametrize("threads", [-1, 1025, 1.5, True, "4"])
def test_bad_thread_count_is_an_input_error(threads):
    with pytest.raises(InputError, match="threads"):
        CkfConfig(threads=threads).check()


def test_compiled_kernel_checks_threads_itself(reco_detector, busy):
    """Direct ``_core`` callers bypass CkfConfig.check(): the binding says what is wrong."""
    from trackcore._corelib import core
    from trackcore.sim.transport import compiled_geometry, layer_material

    meas, seeds = busy
    with pytest.raises(ValueError, match="threads = -3"):
        core().ckf(compiled_geometry(reco_detector), meas.compiled(), seeds[:5], layer_material(reco_detector, None),
                   2.0, None, {"threads": -3})


def test_zero_threads_means_every_usable_cpu():
    assert CkfConfig(threads=0).kernel_settings()["threads"] == usable_cpus() >= 1
    assert CkfConfig(threads=3).kernel_settings()["threads"] == 3


def test_thread_count_is_not_part_of_the_configuration_hash():
    """Saved results stay valid when only the thread count changes (it does not change them)."""
    run = RunConfig()
    run.reconstruction.ckf = dataclasses.replace(run.reconstruction.ckf, threads=5)
    assert config_hash(run) == config_hash(RunConfig())
    run.reconstruction.ckf = dataclasses.replace(run.reconstruction.ckf, chi2_max=12.0)
    assert config_hash(run) != config_hash(RunConfig())
