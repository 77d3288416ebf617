"""The reconstruction pipeline: named, typed stages run in order on one event.

Built-in stages: ``measurements`` -> ``spacepoints`` -> ``seeding`` -> ``seed_classification``
(only when a plugin implements ``trackcore_classify_seeds``) -> ``track_finding`` (CKF, ambiguity
resolution and the backward fit). Plugins add, insert or replace stages through
``trackcore_register_stages`` and watch them through ``trackcore_observe_stage``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import PluginError
from ..event import Event
from ..geometry.detector import Detector
from .ckf import CkfConfig, find_tracks
from .measurements import Measurements
from .tracks import Tracks

StageFn = Callable[[Event, dict], Mapping[str, Any] | None]


@dataclass
class Stage:
    name: str
    fn: StageFn


@dataclass
class ReconstructionConfig:
    """Settings of every built-in stage."""

    seeding: Any = None  # trackcore.reco.seeding.SeedingConfig (default when None)
    ckf: CkfConfig = field(default_factory=CkfConfig)
    seed_volumes: tuple[int, ...] | None = None  # volumes used for seeding (None: the seeder's default)
    #: seed classes dropped when a seed classifier plugin is present (2 = bad)
    drop_seed_labels: tuple[int, ...] = (2,)


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
                   plugin_manager=None) -> Pipeline:
    """The default chain for ``detector``; plugins (if a manager is given) may change it."""
    from . import seeding as seeding_mod
    from .spacepoints import SpacePoints

    config = config or ReconstructionConfig()
    seeding_config = config.seeding or seeding_mod.SeedingConfig()

    def measurements(event: Event, state: dict):
        hits_split = None
        if plugin_manager is not None and event.cells is not None:
            hits_split = plugin_manager.hook.trackcore_split_clusters(event=event, clusters=event.hits)
        if hits_split is not None:
            event.hits, event.cells = hits_split
        return {"measurements": Measurements.from_event(event, detector, backend=backend)}

    def spacepoints(event: Event, state: dict):
        kw = {} if config.seed_volumes is None else {"volumes": config.seed_volumes}
        return {"spacepoints": SpacePoints.from_event(event, detector, **kw)}

    def seeding(event: Event, state: dict):
        sp = state["spacepoints"]["spacepoints"]
        seeds = seeding_mod.find_seeds(sp, seeding_config, backend=backend)
        return {"seeds": seeds, "hit_index": sp.hit_index[seeds.hits] if len(seeds) else np.zeros((0, 3), np.int64)}

    def track_finding(event: Event, state: dict):
        seeds = state["seeding"]["hit_index"]
        classified = state.get("seed_classification")
        if classified is not None:
            seeds = classified["hit_index"]
        tracks, stats = find_tracks(state["measurements"]["measurements"], seeds, detector, field=field,
                                    config=config.ckf)
        return {"tracks": tracks, "stats": stats}

    pipeline = Pipeline([Stage("measurements", measurements), Stage("spacepoints", spacepoints),
                         Stage("seeding", seeding), Stage("track_finding", track_finding)], plugin_manager)

    if plugin_manager is not None:
        impls = plugin_manager.hook.trackcore_classify_seeds.get_hookimpls()
        if impls:
            pipeline.add("seed_classification", _seed_classification(plugin_manager, config), after="seeding")
        plugin_manager.hook.trackcore_register_stages(registry=pipeline)
    return pipeline


def _seed_classification(plugin_manager, config: ReconstructionConfig) -> StageFn:
    from ..hookspecs import Seeds as HookSeeds

    def stage(event: Event, state: dict):
        seeds = state["seeding"]["seeds"]
        hit_index = state["seeding"]["hit_index"]
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

    return stage


def reconstruct(event: Event, detector: Detector, config: ReconstructionConfig | None = None, *, field=None,
                backend=None, plugin_manager=None) -> Reconstruction:
    """Run the default pipeline (changed by plugins, if a plugin manager is given) on one event."""
    return build_pipeline(detector, config, field=field, backend=backend, plugin_manager=plugin_manager).run(event)
