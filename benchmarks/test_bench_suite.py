"""The benchmark suite of issue #13: every stage on every backend at <mu> = 0, 50 and 200, and the
well-known references for the generic steps, in one process.

    OMP_NUM_THREADS=1 pytest benchmarks/test_bench_suite.py --benchmark-enable \
        --benchmark-group-by=group --benchmark-save=<name>      # save a baseline
    pytest benchmarks/test_bench_suite.py --benchmark-enable --benchmark-compare=<name>

Events (fixed seeds, TrackML-like detector, 15% noise): a hard scatter (two anti-kt-sized jets,
``jets(rng, n_jets=2)``) plus Poisson(<mu>) minimum-bias collisions. Groups are
``<stage>-mu<mu>`` (stages: simulate, hash, seed, ckf, fit, chain), each holding one row per
backend. The ``numpy`` backend is Python reference code: it runs the smaller events only (its
rows at <mu> = 200 would take minutes). ``reference-knn`` times exact 16-nearest-neighbour search on
the hashing features (scipy cKDTree against faiss flat L2, same answers); ``reference-jets``
times anti-kt R = 0.4 (fastjet against a plain numpy O(N^3) anti-kt, same jets).
Other files keep the focused studies (test_bench_reco, _seeding, _hashing, _backends, ...).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.hashing import HashingConfig, bucket_hits, hit_features
from trackcore.reco.pipeline import build_pipeline, reconstruct
from trackcore.reco.seeding import find_seeds
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import combine, jets, minimum_bias
from trackcore.sim.simulate import simulate_event

HAVE_CPU = available_backends()["cpu"] == "ok"
MUS = (0, 50, 200)
#: Largest <mu> the numpy reference backend runs, per stage (it is Python code, kept to seconds).
NUMPY_MAX_MU = {"simulate": 0, "hash": 50, "seed": 0, "ckf": 0, "fit": 0, "chain": 0}


def cases(stage: str) -> list:
    out = []
    for mu in MUS:
        for backend in ("numpy", "cpu"):
            marks = []
            if backend == "cpu" and not HAVE_CPU:
                marks.append(pytest.mark.skip(reason="compiled core not built"))
            if backend == "numpy" and mu > NUMPY_MAX_MU[stage]:
                continue
            out.append(pytest.param(mu, backend, marks=marks, id=f"mu{mu}-{backend}"))
    return out


@functools.lru_cache(maxsize=None)
def detector():
    return trackml_like_detector()


@functools.lru_cache(maxsize=None)
def particles(mu: int):
    rng = np.random.default_rng(1300 + mu)
    hard, _ = jets(rng, n_jets=2)  # (particles, jet axes)
    return combine(hard, minimum_bias(rng, pileup=float(mu))) if mu else hard


@functools.lru_cache(maxsize=None)
def event(mu: int):
    return simulate_event(detector(), particles(mu), seed=13, event_id=mu, backend="cpu" if HAVE_CPU else "numpy")


@functools.lru_cache(maxsize=None)
def stage_outputs(mu: int, backend: str) -> dict:
    return dict(reconstruct(event(mu), detector(), backend=backend).outputs)


@functools.lru_cache(maxsize=None)
def pixel_spacepoints(mu: int) -> SpacePoints:
    return SpacePoints.from_event(event(mu), detector(), volumes=(7, 8, 9))


def _rounds(mu: int, backend: str) -> int:
    return 1 if backend == "numpy" or mu == 200 else 3


def _info(benchmark, stage: str, mu: int, backend: str) -> None:
    benchmark.group = f"{stage}-mu{mu}"
    benchmark.extra_info.update(mu=mu, backend=backend, hits=len(event(mu).hits), particles=len(particles(mu)))


@pytest.mark.parametrize("mu,backend", cases("simulate"))
def test_simulate(benchmark, mu, backend):
    _info(benchmark, "simulate", mu, backend)
    out = benchmark.pedantic(simulate_event, args=(detector(), particles(mu)), kwargs={"seed": 13, "backend": backend},
                             rounds=_rounds(mu, backend), iterations=1)
    assert len(out.hits) > 5 * len(particles(mu))


@pytest.mark.parametrize("mu,backend", cases("hash"))
def test_hash(benchmark, mu, backend):
    _info(benchmark, "hash", mu, backend)
    sp = pixel_spacepoints(mu)
    buckets = benchmark.pedantic(bucket_hits, args=(sp, HashingConfig(method="lsh")), kwargs={"backend": backend},
                                 rounds=_rounds(mu, backend), iterations=1)
    assert len(buckets) > 0 and buckets.sizes().max() <= 100


@pytest.mark.parametrize("mu,backend", cases("seed"))
def test_seed(benchmark, mu, backend):
    _info(benchmark, "seed", mu, backend)
    seeds = benchmark.pedantic(find_seeds, args=(pixel_spacepoints(mu),), kwargs={"backend": backend},
                               rounds=_rounds(mu, backend), iterations=1)
    benchmark.extra_info["seeds"] = len(seeds)
    assert len(seeds) > 10


def _stage(benchmark, stage_name: str, group: str, mu: int, backend: str):
    _info(benchmark, group, mu, backend)
    state = stage_outputs(mu, backend)
    pipeline = build_pipeline(detector(), backend=backend)
    fn = pipeline.stages[pipeline.names.index(stage_name)].fn
    return benchmark.pedantic(fn, args=(event(mu), dict(state)), rounds=_rounds(mu, backend), iterations=1), state


@pytest.mark.parametrize("mu,backend", cases("ckf"))
def test_ckf(benchmark, mu, backend):
    # track_finding = CKF + ambiguity + final fit; the fit alone is timed by test_fit.
    out, state = _stage(benchmark, "track_finding", "ckf", mu, backend)
    assert set(out) == set(state["track_finding"])


@pytest.mark.parametrize("mu,backend", cases("fit"))
def test_fit(benchmark, mu, backend):
    # The final fit runs inside track_finding; here the same Kalman fit (forward filter, backward
    # smoother, perigee) refits the reconstructed tracks' hit lists on its own.
    from trackcore.reco.ckf import fit_tracks
    from trackcore.reco.ckf_numpy import fit_tracks_numpy
    from trackcore.sim.transport import layer_material

    _info(benchmark, "fit", mu, backend)
    state = stage_outputs(mu, backend)
    meas, tracks = state["measurements"]["measurements"], state["track_finding"]["tracks"]
    hit_lists = [tracks.hits[tracks.offsets[i]:tracks.offsets[i + 1]] for i in range(len(tracks))]
    if backend == "numpy":
        lengths = np.array([len(h) for h in hit_lists], np.int64)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        flat = np.concatenate(hit_lists).astype(np.int64) if hit_lists else np.zeros(0, np.int64)
        run = functools.partial(fit_tracks_numpy, detector(), meas, offsets, flat, layer_material(detector()), 2.0, None)
    else:
        run = functools.partial(fit_tracks, meas, hit_lists, detector())
    out = benchmark.pedantic(run, rounds=_rounds(mu, backend), iterations=1)
    benchmark.extra_info["tracks"] = len(hit_lists)
    fitted = out["fitted"] if isinstance(out, dict) else out.fitted
    assert len(fitted) == len(hit_lists) and np.mean(fitted) > 0.9
@pytest.mark.parametrize("mu,backend", cases("chain"))
def test_chain(benchmark, mu, backend):
    _info(benchmark, "chain", mu, backend)
    reco = benchmark.pedantic(reconstruct, args=(event(mu), detector()), kwargs={"backend": backend},
                              rounds=_rounds(mu, backend), iterations=1)
    from trackcore.metrics import score_event

    benchmark.extra_info["score"] = score_event(event(mu), *reco.submission())
    assert benchmark.extra_info["score"] > 0.5


# -- references ---------------------------------------------------------------------------
K = 16


@pytest.mark.parametrize("impl", ["scipy_ckdtree", "faiss_flat"])
def test_reference_knn(benchmark, impl):
    x = np.ascontiguousarray(hit_features(pixel_spacepoints(50)), np.float32)
    benchmark.group = "reference-knn"
    benchmark.extra_info.update(points=len(x), k=K)
    if impl == "scipy_ckdtree":
        spatial = pytest.importorskip("scipy.spatial")
        idx = benchmark.pedantic(lambda: spatial.cKDTree(x).query(x, k=K)[1], rounds=3, iterations=1)
    else:
        faiss = pytest.importorskip("faiss")

        def run():
            index = faiss.IndexFlatL2(x.shape[1])
            index.add(x)
            return index.search(x, K)[1]

        idx = benchmark.pedantic(run, rounds=3, iterations=1)
    assert idx.shape == (len(x), K) and (idx[:, 0] == np.arange(len(x))).mean() > 0.99


def antikt_numpy(p4: np.ndarray, r: float = 0.4) -> list[list[int]]:
    """Plain anti-kt (E scheme, rapidity-phi distance), O(N^3): the readable yardstick for fastjet.

    ``p4``: (N, 4) px, py, pz, E in GeV. Returns each inclusive jet's constituent rows.
    """
    mom = [row.astype(np.float64) for row in p4]
    members = [[i] for i in range(len(p4))]
    jets_out = []
    while mom:
        p = np.array(mom)
        pt2 = p[:, 0] ** 2 + p[:, 1] ** 2
        y = 0.5 * np.log((p[:, 3] + p[:, 2]) / (p[:, 3] - p[:, 2]))
        phi = np.arctan2(p[:, 1], p[:, 0])
        inv = 1.0 / pt2
        dphi = np.abs(phi[:, None] - phi[None, :])
        dphi = np.minimum(dphi, 2 * np.pi - dphi)
        dij = np.minimum(inv[:, None], inv[None, :]) * ((y[:, None] - y[None, :]) ** 2 + dphi**2) / r**2
        np.fill_diagonal(dij, np.inf)
        i, j = np.unravel_index(np.argmin(dij), dij.shape)
        b = int(np.argmin(inv))
        if inv[b] <= dij[i, j]:
            jets_out.append(members.pop(b))
            mom.pop(b)
        else:
            i, j = sorted((int(i), int(j)))
            mom[i] = mom[i] + mom.pop(j)
            members[i] = members[i] + members.pop(j)
    return jets_out


@functools.lru_cache(maxsize=None)
def jet_inputs() -> np.ndarray:
    p = particles(0)
    px, py, pz = (np.asarray(p[k], np.float64) for k in ("px", "py", "pz"))
    keep = np.hypot(px, py) > 0.5
    m = 0.13957  # pion mass, GeV
    return np.column_stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)])[keep]



def fastjet_antikt(fj, p4: np.ndarray) -> list[list[int]]:
    """Anti-kt R = 0.4 jets of the (px, py, pz, E) rows of ``p4`` with FastJet: constituent row indices per jet."""
    inputs = []
    for i, row in enumerate(p4):
        pj = fj.PseudoJet(*map(float, row))
        pj.set_user_index(i)
        inputs.append(pj)
    seq = fj.ClusterSequence(inputs, fj.JetDefinition(fj.antikt_algorithm, 0.4))
    return [[c.user_index() for c in j.constituents()] for j in seq.inclusive_jets(0.0)]

@pytest.mark.parametrize("impl", ["fastjet", "numpy_antikt"])
def test_reference_jets(benchmark, impl):
    p4 = jet_inputs()
    benchmark.group = "reference-jets"
    benchmark.extra_info["particles"] = len(p4)
    if impl == "fastjet":
        fj = pytest.importorskip("fastjet")

        found = benchmark.pedantic(fastjet_antikt, args=(fj, p4), rounds=5, iterations=1)
    else:
        found = benchmark.pedantic(antikt_numpy, args=(p4,), rounds=2, iterations=1)
    hardest = max(found, key=lambda js: np.hypot(*p4[js, :2].sum(axis=0)))
    benchmark.extra_info["hardest_jet_constituents"] = len(hardest)
    assert sorted(i for js in found for i in js) == list(range(len(p4)))


def test_antikt_numpy_matches_fastjet():
    """The yardstick is only fair if it finds the same jets."""
    fj = pytest.importorskip("fastjet")
    p4 = jet_inputs()
    ref = sorted(sorted(js) for js in fastjet_antikt(fj, p4))
    assert sorted(sorted(js) for js in antikt_numpy(p4)) == ref
