"""Hashing: LSH kernels (parity, exactness), faiss buckets, seeding inside buckets, metrics, bad input."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from trackcore.backends import available_backends, get_backend
from trackcore.errors import BackendError, InputError
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.hashing import (Buckets, HashingConfig, bucket_hits, bucket_metrics, hashing_seeds, hit_features,
                                    query_hits)
from trackcore.reco.seeding import SeedingConfig, find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import particle_gun
from trackcore.sim.pdg import mass_of
from trackcore.sim.transport import transport

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
BACKENDS = ["numpy", pytest.param("cpu", marks=needs_cpu)]


@pytest.fixture(scope="module")
def gun():
    """300 particles (1-10 GeV, |eta| < 3.5, TrackML's 5.5 mm luminous region) through the
    TrackML-like detector; exact crossings smeared by 20 um. Returns the pixel space points and
    each one's particle id (1-based)."""
    det = trackml_like_detector()
    particles = particle_gun(300, 5, pt=(1.0, 10.0), eta=(-3.5, 3.5), vertex_sigma=(0.015, 0.015, 5.5))
    vertex = np.column_stack([particles[k] for k in ("vx", "vy", "vz")])
    momentum = np.column_stack([particles[k] for k in ("px", "py", "pz")])
    out = transport(det, vertex, momentum, particles["q"], mass_of(particles["particle_type"]), seed=5)
    mi, xyz = out["module_index"], out["position"] + np.random.default_rng(5).normal(0, 0.02, out["position"].shape)
    pix = np.isin(det.volume_id[mi], (7, 8, 9))
    sp = SpacePoints.from_xyz(*xyz[pix].T, layer_index=det.layer_index(mi[pix]), volume_id=det.volume_id[mi[pix]],
                              module_index=mi[pix])
    return sp, out["particle_index"][pix] + 1


def reconstructable(particle: np.ndarray) -> np.ndarray:
    ids, counts = np.unique(particle, return_counts=True)
    return ids[counts >= 4]


def brute_knn(x: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    d2 = np.zeros((len(query), len(x)))
    for d in range(x.shape[1]):
        diff = x[None, :, d] - x[query, d][:, None]
        d2 = d2 + diff * diff
    return np.array([np.lexsort((np.arange(len(x)), row))[:k] for row in d2])


# -- LSH kernels ------------------------------------------------------------------------------
def lsh_inputs(n=400, dim=3, tables=4, proj=2, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(size=(tables, proj, dim)), rng.uniform(0, 0.7, (tables, proj))


@needs_cpu
def test_lsh_kernels_identical_across_backends():
    x, a, b = lsh_inputs()
    x[::7, 0] = -x[::7, 0]  # negative quantised projections too
    keys = [get_backend(n).kernel("lsh_keys")(x, a, b, 0.7) for n in ("numpy", "cpu")]
    np.testing.assert_array_equal(keys[0], keys[1])
    assert len(np.unique(keys[0][0])) > 10  # the points do spread over many keys
    query = np.arange(0, 400, 3)
    nn = [get_backend(n).kernel("lsh_knn")(x, query, a, b, 0.7, 12) for n in ("numpy", "cpu")]
    np.testing.assert_array_equal(nn[0], nn[1])
    assert (nn[0] == -1).any() and (nn[0][:, 0] == query).all()  # small buckets pad; itself nearest


@pytest.mark.parametrize("backend", BACKENDS)
def test_lsh_knn_is_exact_when_one_cell_holds_everything(backend):
    x, a, b = lsh_inputs(n=200)
    query = np.array([0, 5, 17, 199])
    got = get_backend(backend).kernel("lsh_knn")(x, query, a, b, 1e6, 10)
    np.testing.assert_array_equal(got, brute_knn(x, query, 10))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lsh_more_tables_raise_recall(backend):
    x, _, _ = lsh_inputs(n=600)
    query = np.arange(0, 600, 10)
    exact = brute_knn(x, query, 8)
    rng = np.random.default_rng(3)
    recall = []
    for tables in (1, 16):
        a, b = rng.normal(size=(tables, 3, 3)), rng.uniform(0, 1.0, (tables, 3))
        got = get_backend(backend).kernel("lsh_knn")(x, query, a, b, 1.0, 8)
        recall.append(np.mean([len(np.intersect1d(g, e)) / 8 for g, e in zip(got, exact)]))
    assert recall[1] > recall[0] + 0.5 and recall[1] > 0.9, recall


# -- buckets ----------------------------------------------------------------------------------
def test_queries_are_the_first_crossed_layers(gun):
    sp, particle = gun
    q = query_hits(sp)
    # Nearly every particle has a query hit, and they sit on the innermost barrel layer or on disks.
    covered = np.isin(reconstructable(particle), particle[q]).mean()
    assert covered > 0.95, covered
    assert np.percentile(sp.r[q], 50) < 40 and len(q) < 0.5 * len(sp)
    assert set(query_hits(sp, HashingConfig(query_layers=(8,)))) == set(np.flatnonzero(sp.layer_index == 8))


@pytest.mark.parametrize("method", ["lsh", "faiss_exact", "faiss_ivf", "faiss_hnsw"])
def test_bucket_efficiency(gun, method):
    if method.startswith("faiss"):
        pytest.importorskip("faiss")
    sp, particle = gun
    buckets = bucket_hits(sp, HashingConfig(method=method, bucket_size=20))
    assert buckets.members.shape == (len(buckets), 20) and (buckets.sizes() <= 20).all()
    m = bucket_metrics(buckets, particle, reconstructable(particle))
    assert m["efficiency"] > 0.95, m
    assert m["purity"] > 0.3, m


def test_faiss_exact_matches_brute_force(gun):
    pytest.importorskip("faiss")
    sp, _ = gun
    cfg = HashingConfig(method="faiss_exact", bucket_size=15)
    buckets = bucket_hits(sp, cfg)
    x = hit_features(sp, cfg)
    exact = brute_knn(x, buckets.query, 15)
    d_faiss = np.sort(((x[buckets.members] - x[buckets.query][:, None]) ** 2).sum(-1), axis=1)
    d_exact = np.sort(((x[exact] - x[buckets.query][:, None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(d_faiss, d_exact, atol=1e-5)  # float32 index: ties may swap


def test_bucket_metrics_by_hand():
    particle = np.array([0, 1, 1, 1, 1, 2, 2, 2, 2, 3])
    buckets = Buckets(np.array([1, 5]), np.array([[1, 2, 3, 4, 0, -1], [5, 6, 7, 1, 2, 9]]))
    m = bucket_metrics(buckets, particle, np.array([1, 2, 3]))
    assert m["efficiency"] == pytest.approx(1 / 3)  # particle 1 only: 2 has 3 hits in one bucket
    assert m["purity"] == pytest.approx(0.5 * (4 / 5 + 3 / 6))
    assert m["found_hit_fraction"] == pytest.approx(0.5 * (4 / 5))


# -- seeding inside buckets ---------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_bucket_of_everything_gives_the_grid_seeds(gun, backend):
    sp, _ = gun
    sub = sp.take(np.flatnonzero(np.abs(sp.z) < 300)[:250])
    cfg = HashingConfig(method="lsh", bucket_size=10_000, lsh_width=1e6, query_layers=(7,))
    got = hashing_seeds(sub, cfg, backend=backend)
    ref = find_seeds(sub, cfg.seeding, backend=backend)
    assert len(ref) > 20
    np.testing.assert_array_equal(got.hits, ref.hits)
    np.testing.assert_array_equal(got.weight, ref.weight)


@needs_cpu
def test_seed_buckets_identical_across_backends_and_deduplicated(gun):
    sp, particle = gun
    sub = sp.take(np.flatnonzero((sp.phi > 0) & (sp.phi < 1.2)))
    cfg = HashingConfig(method="lsh", bucket_size=25)
    seeds = [hashing_seeds(sub, cfg, backend=b) for b in ("numpy", "cpu")]
    np.testing.assert_array_equal(seeds[0].hits, seeds[1].hits)
    np.testing.assert_array_equal(seeds[0].weight, seeds[1].weight)
    s = seeds[1]
    assert len(s) > 50 and len(np.unique(s.hits, axis=0)) == len(s)
    assert (np.diff(s.weight) <= 0).all()
    true = particle[sub.hit_index][s.hits]
    assert ((true[:, 0] == true[:, 1]) & (true[:, 1] == true[:, 2])).mean() > 0.5


def test_hashing_seeds_find_the_particles(gun):
    sp, particle = gun
    seeds = hashing_seeds(sp, HashingConfig(method="lsh", bucket_size=30))
    p = particle[seeds.hits]
    good = (p[:, 0] == p[:, 1]) & (p[:, 1] == p[:, 2])
    found = np.isin(reconstructable(particle), p[good, 0]).mean()
    grid = find_seeds(sp)
    pg = particle[grid.hits]
    found_grid = np.isin(reconstructable(particle), pg[(pg[:, 0] == pg[:, 1]) & (pg[:, 1] == pg[:, 2]), 0]).mean()
    assert found > found_grid - 0.03 and found > 0.9, (found, found_grid)


# -- bad input ----------------------------------------------------------------------------------
def test_nan_feature_is_named(gun):
    sp, _ = gun
    bad = sp.take(np.arange(50))
    bad.z[7] = np.nan
    with pytest.raises(InputError, match="row 7 .*non-finite z"):
        hashing_seeds(bad, HashingConfig(method="lsh"))
    with pytest.raises(InputError, match="beam line"):
        hit_features(SpacePoints.from_xyz([0.0, 30.0], [0.0, 1.0], [5.0, 5.0], layer_index=[7, 7]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_reject_nan_and_bad_k(backend):
    x, a, b = lsh_inputs(n=20)
    x[3, 1] = np.nan
    kern = get_backend(backend).kernel("lsh_knn")
    with pytest.raises(ValueError, match="features: element 10 is not finite"):
        kern(x, np.array([0]), a, b, 0.5, 5)
    x[3, 1] = 0.0
    with pytest.raises(ValueError, match="k must be >= 1"):
        kern(x, np.array([0]), a, b, 0.5, 0)
    with pytest.raises(ValueError, match="query"):
        kern(x, np.array([20]), a, b, 0.5, 5)


def test_empty_layers_and_k_above_hit_count(gun):
    sp, _ = gun
    assert len(hashing_seeds(sp.take(np.zeros(0, np.int64)), HashingConfig(method="lsh"))) == 0
    assert len(bucket_hits(sp, HashingConfig(method="lsh", query_layers=(99,)))) == 0  # no such layer
    strips = HashingConfig(method="lsh", seeding=SeedingConfig(volumes=(13,)))  # no strip hits here
    assert len(hashing_seeds(sp, strips)) == 0
    few = sp.take(np.arange(12))
    b = bucket_hits(few, HashingConfig(method="lsh", bucket_size=50, lsh_width=1e6))
    assert b.members.shape[1] == 12 and (np.sort(b.members, axis=1) == np.arange(12)).all()


def test_bad_config_and_missing_faiss(gun, monkeypatch):
    for kw in ({"method": "annoy"}, {"bucket_size": 2}, {"lsh_width": 0.0}, {"phi_weight": float("nan")},
               {"lsh_tables": 1.5}, {"beam_spot": (0, 0)}):
        with pytest.raises(InputError, match="HashingConfig"):
            HashingConfig(**kw)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(BackendError, match=r"pip install trackcore\[ann\]"):
        bucket_hits(gun[0], HashingConfig(method="faiss_exact"))
