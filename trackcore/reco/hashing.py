"""Hashing track finder: approximate-nearest-neighbour buckets of space points, triplet seeding inside them.

After Amrouche, Golling, Kiehn and Salzburger (arXiv:2101.06428) and the ACTS hashing seeder: every
space point gets a feature vector in which hits of one track lie close,

    f = (w_phi cos(phi), w_phi sin(phi), w_eta eta)

with phi and eta (pseudorapidity, from cot theta = (z - z_b) / rho) measured from the beam spot
(x_b, y_b, z_b); phi enters as a point on a circle so that +-pi are neighbours. A track bends in
phi by at most C B dr / (2 pT) (0.04 rad from r = 32 to 172 mm at 1 GeV, 2 T) and moves in eta by
its z0 offset from the beam spot (a 5.5 mm luminous region in TrackML), so ``phi_weight`` ~ 4
balances the two spreads. Query hits are the hits on the first seeded layer a straight line from
the beam spot through the hit crosses (the innermost barrel layer centrally, the first disk it
meets at high |eta|), found from the layers' hit extents so no detector is needed. Each query's
bucket is its ``bucket_size`` nearest space points (itself included) by one of

* ``faiss_exact``: faiss ``IndexFlatL2`` (exhaustive, the reference),
* ``faiss_ivf``: faiss ``IndexIVFFlat`` (coarse k-means cells, ``ivf_nprobe`` probed),
* ``faiss_hnsw``: faiss ``IndexHNSWFlat`` (graph search),
* ``lsh``: the compiled multi-table random-projection LSH (kernel ``lsh_knn``; candidates are the
  points sharing a key with the query in any of ``lsh_tables`` tables, ranked exactly).

Identical buckets are merged, then the seeder of :mod:`trackcore.reco.seeding` runs inside each bucket
(kernel ``seed_buckets``, one grid parameter set for the whole event); triplets found in several
buckets are kept once, with their best weight. faiss is optional: ``pip install trackcore[ann]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from ..backends import get_backend
from ..errors import BackendError, InputError
from .seeding import SeedingConfig, Seeds, derived_parameters, estimate_parameters
from .spacepoints import SpacePoints

__all__ = ["HashingConfig", "Buckets", "METHODS", "hit_features", "query_hits", "bucket_hits", "hashing_seeds",
           "bucket_metrics"]

METHODS = ("faiss_exact", "faiss_ivf", "faiss_hnsw", "lsh")


@dataclass
class HashingConfig:
    """Hashing settings. Lengths in mm; feature weights are per rad of phi and per unit of eta."""

    method: str = "faiss_ivf"  # one of METHODS
    bucket_size: int = 50  # hits per bucket (the query's k nearest, itself included)
    phi_weight: float = 4.0  # feature scale of phi (as a chord of a circle of this radius)
    eta_weight: float = 1.0  # feature scale of eta
    beam_spot: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mm, origin of phi and eta
    query_layers: tuple[int, ...] | None = None  # layer_index values of the query hits (None: first crossed)
    query_margin: float = 20.0  # mm, layer edge band of the first-crossed-layer rule (both readings count)
    ivf_nlist: int = 1024  # faiss_ivf: k-means cells (at most one per 40 hits)
    ivf_nprobe: int = 16  # faiss_ivf: cells searched per query
    hnsw_m: int = 16  # faiss_hnsw: graph degree
    hnsw_ef_search: int = 64  # faiss_hnsw: search breadth (raised to bucket_size if smaller)
    lsh_tables: int = 8  # lsh: hash tables (more: higher recall, bigger candidate sets)
    lsh_projections: int = 3  # lsh: quantised projections per table (more: smaller hash cells)
    lsh_width: float = 0.5  # lsh: quantisation step in feature units
    lsh_seed: int = 0  # lsh: seed of the random projections
    seeding: SeedingConfig = field(default_factory=SeedingConfig)  # selection and triplet cuts

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"HashingConfig.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("bucket_size", "ivf_nlist", "ivf_nprobe", "hnsw_m", "hnsw_ef_search", "lsh_tables",
                     "lsh_projections", "lsh_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "lsh_seed" else 1):
                raise InputError(f"HashingConfig.{name} must be an integer >= {0 if name == 'lsh_seed' else 1}, got {v!r}")
        if self.bucket_size < 3:
            raise InputError(f"HashingConfig.bucket_size must be >= 3 (a triplet), got {self.bucket_size}")
        for name in ("phi_weight", "eta_weight", "lsh_width", "query_margin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise InputError(f"HashingConfig.{name} must be a finite number, got {v!r}")
            if v <= 0 and (name != "query_margin" or v < 0):
                raise InputError(f"HashingConfig.{name} must be {'>=' if name == 'query_margin' else '>'} 0, got {v!r}")
        bs = tuple(float(v) for v in self.beam_spot)
        if len(bs) != 3 or not all(math.isfinite(v) for v in bs):
            raise InputError(f"HashingConfig.beam_spot must be three finite numbers (mm), got {self.beam_spot!r}")
        self.beam_spot = bs
        if self.query_layers is not None:
            self.query_layers = tuple(int(v) for v in self.query_layers)
        if not isinstance(self.seeding, SeedingConfig):
            raise InputError(f"HashingConfig.seeding must be a SeedingConfig, got {type(self.seeding).__name__}")


@dataclass
class Buckets:
    """``members[i]`` (space-point indices, nearest first, -1 for empty slots) is the bucket of query
    space point ``query[i]``; ``seconds`` is the wall time of the index build and search."""

    query: np.ndarray
    members: np.ndarray
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.query)

    def sizes(self) -> np.ndarray:
        return (self.members >= 0).sum(axis=1)


def _selection(sp: SpacePoints, config: SeedingConfig) -> np.ndarray:
    keep = (sp.r >= config.r_min) & (sp.r <= config.r_max)
    if config.volumes is not None:
        keep &= np.isin(sp.volume_id, np.asarray(config.volumes))
    return np.flatnonzero(keep)


def _check(sp: SpacePoints) -> None:
    if not isinstance(sp, SpacePoints):
        raise InputError(f"hashing: expected SpacePoints, got {type(sp).__name__}")
    for name in ("x", "y", "z"):
        bad = ~np.isfinite(getattr(sp, name))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"hashing: space point row {i} (hit row {int(sp.hit_index[i])}) has a non-finite "
                             f"{name} ({getattr(sp, name)[i]})")


def hit_features(sp: SpacePoints, config: HashingConfig | None = None) -> np.ndarray:
    """(N, 3) float64 features (w_phi cos phi, w_phi sin phi, w_eta eta) around the beam spot.

    Raises :class:`InputError` naming the row for a non-finite coordinate or a hit on the beam line
    (rho = 0, where phi and eta are undefined).
    """
    config = config or HashingConfig()
    _check(sp)
    bx, by, bz = config.beam_spot
    dx, dy = sp.x - bx, sp.y - by
    rho = np.hypot(dx, dy)
    if (rho <= 0).any():
        i = int(np.flatnonzero(rho <= 0)[0])
        raise InputError(f"hashing: space point row {i} (hit row {int(sp.hit_index[i])}) lies on the beam line; "
                         "its phi and eta are undefined")
    phi = np.arctan2(dy, dx)
    eta = np.arcsinh((sp.z - bz) / rho)
    return np.column_stack([config.phi_weight * np.cos(phi), config.phi_weight * np.sin(phi),
                            config.eta_weight * eta])


def query_hits(sp: SpacePoints, config: HashingConfig | None = None) -> np.ndarray:
    """Indices of the query space points among ``sp``.

    With ``query_layers`` those layers' hits; otherwise each hit whose layer is the first one a
    straight line from the beam spot through the hit crosses. A layer is a barrel (hits spread
    more in z than in r) or a disk; a line crosses it where it meets the layer's mean radius
    (barrel) or mean z (disk) within the layer's hit extent. Lines within ``query_margin`` of an
    extent's edge may or may not meet the layer (module edges, gaps): there the first layer under
    both readings (extent narrowed and widened by the margin) holds queries.
    """
    config = config or HashingConfig()
    if config.query_layers is not None:
        return np.flatnonzero(np.isin(sp.layer_index, np.asarray(config.query_layers)))
    if len(sp) == 0:
        return np.zeros(0, np.int64)
    bx, by, bz = config.beam_spot
    rho = np.hypot(sp.x - bx, sp.y - by)
    cot = (sp.z - bz) / rho
    layers, inverse = np.unique(sp.layer_index, return_inverse=True)
    extents = []
    for j in range(len(layers)):
        on = inverse == j
        extents.append((rho[on].min(), rho[on].max(), sp.z[on].min(), sp.z[on].max()))
    query = np.zeros(len(sp), bool)
    # A line near a layer's edge may pass it (gap, module edge) or not: count both readings.
    for m in (-config.query_margin, config.query_margin):
        crossing = np.full((len(sp), len(layers)), np.inf)  # radius where the line meets each layer
        for j, (r_lo, r_hi, z_lo, z_hi) in enumerate(extents):
            if z_hi - z_lo >= r_hi - r_lo:  # barrel
                r_mid = 0.5 * (r_lo + r_hi)
                zc = bz + cot * r_mid
                crossing[(zc >= z_lo - m) & (zc <= z_hi + m), j] = r_mid
            else:  # disk
                with np.errstate(divide="ignore", invalid="ignore"):
                    rc = (0.5 * (z_lo + z_hi) - bz) / cot
                ok = (rc >= r_lo - m) & (rc <= r_hi + m)
                crossing[ok, j] = rc[ok]
        query |= (np.argmin(crossing, axis=1) == inverse) & np.isfinite(crossing.min(axis=1))
    return np.flatnonzero(query)


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise BackendError("hashing methods faiss_exact, faiss_ivf and faiss_hnsw need faiss: "
                           "pip install trackcore[ann] (or pip install faiss-cpu); method='lsh' needs none") from exc
    return faiss


def _faiss_knn(features: np.ndarray, query: np.ndarray, k: int, config: HashingConfig) -> np.ndarray:
    faiss = _faiss()
    x = np.ascontiguousarray(features, np.float32)
    n, d = x.shape
    if config.method == "faiss_exact":
        index = faiss.IndexFlatL2(d)
    elif config.method == "faiss_hnsw":
        index = faiss.IndexHNSWFlat(d, int(config.hnsw_m))
        index.hnsw.efSearch = max(int(config.hnsw_ef_search), k)
    else:
        # faiss wants >= 39 training points per cell.
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, max(1, min(int(config.ivf_nlist), n // 40)))
        index.train(x)
        index.nprobe = min(int(config.ivf_nprobe), index.nlist)
    index.add(x)
    _, labels = index.search(np.ascontiguousarray(x[query]), k)
    return np.asarray(labels, np.int64)


def bucket_hits(spacepoints: SpacePoints, config: HashingConfig | None = None, backend=None) -> Buckets:
    """The bucket of every query hit among the seeding selection of ``spacepoints`` (indices into it).

    Buckets hold ``min(bucket_size, number of selected hits)`` slots; approximate methods may
    leave slots empty (-1). No selected hit, or no query hit, gives no buckets.
    """
    import time

    config = config or HashingConfig()
    _check(spacepoints)
    sel = _selection(spacepoints, config.seeding)
    sub = spacepoints.take(sel)
    t0 = time.perf_counter()
    query = query_hits(sub, config)
    k = min(int(config.bucket_size), len(sel))
    if len(query) == 0 or k == 0:
        return Buckets(np.zeros(0, np.int64), np.zeros((0, max(k, 0)), np.int64), time.perf_counter() - t0)
    features = hit_features(sub, config)
    if config.method == "lsh":
        rng = np.random.default_rng(config.lsh_seed)
        proj = rng.normal(size=(config.lsh_tables, config.lsh_projections, features.shape[1]))
        offsets = rng.uniform(0.0, config.lsh_width, size=(config.lsh_tables, config.lsh_projections))
        local = get_backend(backend).kernel("lsh_knn")(features, query, proj, offsets, float(config.lsh_width), k)
        local = np.asarray(local, np.int64)
    else:
        local = _faiss_knn(features, query, k, config)
    members = np.where(local >= 0, sel[np.maximum(local, 0)], -1)
    return Buckets(sel[query], members, time.perf_counter() - t0)


def hashing_seeds(spacepoints: SpacePoints, config: HashingConfig | None = None, backend=None) -> Seeds:
    """Triplet seeds found inside the hashing buckets of ``spacepoints``, duplicates removed, best first.

    A drop-in for :func:`trackcore.reco.seeding.find_seeds` (same :class:`Seeds`, indices into
    ``spacepoints``); the triplet cuts and the space-point selection are those of ``config.seeding``.
    """
    config = config or HashingConfig()
    buckets = bucket_hits(spacepoints, config, backend=backend)
    if len(buckets) == 0 or buckets.members.shape[1] < 3:
        return Seeds.empty()
    sp = spacepoints
    sel = _selection(sp, config.seeding)
    params = derived_parameters(config.seeding, float(sp.r[sel].min()), float(sp.r[sel].max()),
                                float(sp.z[sel].min()), float(sp.z[sel].max()))
    # A bucket spans a narrow phi-eta patch, so its (phi, z) grid would be nearly empty cells that
    # cost more than they save: seed each bucket in one cell (the grid only narrows the search;
    # the seeds do not depend on it).
    params.update(n_phi=1, inv_phi_bin=1.0 / (2.0 * math.pi), n_z=1)
    # Queries of one track often find the same neighbours: seed each distinct bucket once.
    members = np.unique(np.sort(buckets.members, axis=1), axis=0)
    hits, weight = get_backend(backend).kernel("seed_buckets")(sp.x, sp.y, sp.z, sp.r, sp.phi, sp.layer_index,
                                                               members, params)
    hits = np.asarray(hits, np.int64).reshape(-1, 3)
    if len(hits) == 0:
        return Seeds.empty()
    return Seeds(hits, np.asarray(weight, np.float64), *estimate_parameters(sp, hits, config.seeding.bz))


def bucket_metrics(buckets: Buckets, particle: np.ndarray, reconstructable: np.ndarray, min_hits: int = 4) -> dict:
    """Bucket tracking efficiency and purity.

    ``particle`` is the particle id of every space point (0 for noise); ``reconstructable`` the ids
    of the particles counted. Efficiency: the fraction of them with at least ``min_hits`` hits
    together in one bucket. Purity: the mean over buckets of the fraction of its hits that belong
    to its most frequent particle (noise never counts); ``found_hit_fraction``: the mean fraction of
    a bucket's hits that belong to a particle with ``min_hits`` hits in it.
    """
    particle = np.asarray(particle)
    reconstructable = np.unique(np.asarray(reconstructable))
    members = buckets.members
    valid = members >= 0
    pid = np.where(valid, particle[np.maximum(members, 0)], 0)
    ids, dense = np.unique(pid, return_inverse=True)
    dense = dense.reshape(pid.shape)
    row = np.broadcast_to(np.arange(len(members))[:, None], pid.shape)
    use = valid & (pid != 0)
    key = row[use].astype(np.int64) * len(ids) + dense[use]
    pairs, counts = np.unique(key, return_counts=True)
    pair_row, pair_particle = pairs // max(len(ids), 1), ids[pairs % max(len(ids), 1)]
    found = np.unique(pair_particle[counts >= min_hits])
    size = np.maximum(valid.sum(axis=1), 1)
    majority = np.zeros(len(members))
    np.maximum.at(majority, pair_row, counts)
    in_found = np.zeros(len(members))
    np.add.at(in_found, pair_row[counts >= min_hits], counts[counts >= min_hits])
    n = len(reconstructable)
    return {
        "efficiency": float(np.isin(reconstructable, found).sum() / n) if n else float("nan"),
        "purity": float((majority / size).mean()) if len(members) else float("nan"),
        "found_hit_fraction": float((in_found / size).mean()) if len(members) else float("nan"),
        "n_buckets": len(members), "mean_size": float(valid.sum(axis=1).mean()) if len(members) else 0.0,
        "n_reconstructable": n,
    }
