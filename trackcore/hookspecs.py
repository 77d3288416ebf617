"""Hook specifications: the points where plugins extend trackcore.

A plugin is a module (or object) with functions named after these hooks and marked with
``trackcore.hookimpl``; it registers through the ``trackcore`` entry-point group (see
:mod:`trackcore.plugins`). A hook implementation may accept any subset of the arguments
specified here, by name.

Hooks marked *firstresult* stop at the first implementation that returns something other than
``None``; an implementation returns ``None`` to say "not mine, ask the next one". Implementations
registered later are called first (pluggy's LIFO order); use ``tryfirst``/``trylast`` to choose.

The small data contracts the hooks exchange (:class:`Seeds`, :class:`SeedClasses`) live here too,
so that a plugin needs only ``trackcore`` to speak them. Units: mm, GeV, rad, elementary charge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Protocol

import numpy as np
import pluggy

from .errors import InputError, PluginError

if TYPE_CHECKING:
    import argparse

    from .event import Event, Table
    from .geometry import Detector

hookspec = pluggy.HookspecMarker("trackcore")

#: Column order of :attr:`Seeds.params`: perigee parameters at the beam line.
SEED_PARAM_NAMES = ("d0", "z0", "phi", "theta", "qop")
#: Units of :data:`SEED_PARAM_NAMES`: mm, mm, rad, rad, e/GeV (charge over momentum).
SEED_PARAM_UNITS = ("mm", "mm", "rad", "rad", "e/GeV")
#: Seed class labels returned by :func:`trackcore_classify_seeds`.
SEED_GOOD, SEED_MEDIUM, SEED_BAD = 0, 1, 2
SEED_CLASS_NAMES = ("good", "medium", "bad")


# -- data contracts ----------------------------------------------------------------------
@dataclass(frozen=True)
class Seeds:
    """Triplet seeds of one event.

    ``hit_index``: (N, 3) int64, rows of ``event.hits`` (not hit_ids), ordered inner to outer.
    ``params``: (N, 5) float64 estimated perigee parameters, columns :data:`SEED_PARAM_NAMES`
    in :data:`SEED_PARAM_UNITS`. ``quality``: optional (N,) float64 score of the seed finder
    (larger is better), or ``None``. Shapes are checked on construction (:class:`InputError`).
    """

    hit_index: np.ndarray
    params: np.ndarray
    quality: np.ndarray | None = None

    def __post_init__(self) -> None:
        hit_index = np.asarray(self.hit_index)
        params = np.asarray(self.params, dtype=np.float64)
        if hit_index.ndim != 2 or hit_index.shape[1] != 3:
            raise InputError(f"seeds: hit_index must have shape (N, 3), got {hit_index.shape}")
        if not np.issubdtype(hit_index.dtype, np.integer) and hit_index.size:
            raise InputError(f"seeds: hit_index must be integer, got {hit_index.dtype}")
        n = len(hit_index)
        if params.shape != (n, len(SEED_PARAM_NAMES)):
            raise InputError(f"seeds: params must have shape ({n}, {len(SEED_PARAM_NAMES)}) "
                             f"for columns {SEED_PARAM_NAMES}, got {params.shape}")
        object.__setattr__(self, "hit_index", hit_index.astype(np.int64, copy=False))
        object.__setattr__(self, "params", params)
        if self.quality is not None:
            quality = np.asarray(self.quality, dtype=np.float64)
            if quality.shape != (n,):
                raise InputError(f"seeds: quality must have shape ({n},), got {quality.shape}")
            object.__setattr__(self, "quality", quality)

    def __len__(self) -> int:
        return len(self.hit_index)


class SeedClasses(NamedTuple):
    """What :func:`trackcore_classify_seeds` returns.

    ``label``: (N,) int8, one of :data:`SEED_GOOD`, :data:`SEED_MEDIUM`, :data:`SEED_BAD`.
    ``score``: (N,) float32 in [0, 1], the probability the seed is good (for cuts and ROC curves).
    """

    label: np.ndarray
    score: np.ndarray

    def check(self, n_seeds: int, plugin: str = "plugin") -> "SeedClasses":
        """Raise :class:`PluginError` naming ``plugin`` unless both arrays have ``n_seeds`` rows."""
        label, score = np.asarray(self.label), np.asarray(self.score)
        if label.shape != (n_seeds,) or score.shape != (n_seeds,):
            raise PluginError(f"{plugin}: trackcore_classify_seeds returned label {label.shape} and "
                              f"score {score.shape}, expected ({n_seeds},) each")
        if n_seeds and not np.isin(label, (SEED_GOOD, SEED_MEDIUM, SEED_BAD)).all():
            raise PluginError(f"{plugin}: trackcore_classify_seeds returned labels outside 0, 1, 2")
        return self


class StageRegistry(Protocol):
    """The pipeline's ordered registry of named reconstruction stages (see :func:`trackcore_register_stages`).

    A *stage* is a callable ``fn(event, state) -> Mapping[str, Any] | None``: ``state`` is the
    pipeline's mapping from earlier stage names to their outputs; what ``fn`` returns is stored
    in ``state`` under the stage's name and passed to :func:`trackcore_observe_stage`.
    """

    def add(self, name: str, fn: Callable[..., Mapping[str, Any] | None], after: str | None = None,
            before: str | None = None, replace: bool = False) -> None:
        """Add stage ``name``: at the end, or right after/before an existing stage.

        ``replace=True`` swaps the function of an existing stage in place (keeping its position);
        adding an existing name without it, or naming an unknown ``after``/``before`` stage,
        raises :class:`trackcore.PluginError`.
        """


# -- pipeline ----------------------------------------------------------------------------
@hookspec
def trackcore_register_stages(registry: StageRegistry) -> None:
    """Add, insert or replace named reconstruction stages.

    Called once when a reconstruction pipeline is built, after the built-in stages (space
    points, seeding, track finding, ambiguity resolution, fit) are in ``registry``, so a plugin
    can place its stage relative to them, e.g.
    ``registry.add("seed_classifier", fn, after="seeding")``.

    :param registry: the pipeline's :class:`StageRegistry`.
    :return: nothing; the registry is changed in place.
    """


@hookspec
def trackcore_observe_stage(stage_name: str, event: Event, outputs: Mapping[str, Any] | None,
                            seconds: float) -> None:
    """Watch the pipeline: called after each stage has run on an event.

    For monitoring, timing reports and debugging dumps. Implementations must not change
    ``event`` or ``outputs``.

    :param stage_name: the stage's registered name.
    :param event: the event being reconstructed.
    :param outputs: what the stage returned (``None`` if nothing).
    :param seconds: wall-clock time the stage took (s).
    :return: nothing.
    """


# -- ML stages ---------------------------------------------------------------------------
@hookspec(firstresult=True)
def trackcore_classify_seeds(event: Event, seeds: Seeds) -> SeedClasses | None:
    """Label each seed good, medium or bad so that bad seeds are dropped before track finding.

    Called by the pipeline after seeding, once per event (all seeds in one call, for batching).

    :param event: the event; ``event.hits`` holds the rows that ``seeds.hit_index`` points to
        (x, y, z in mm).
    :param seeds: the event's :class:`Seeds`, N >= 0 (an empty batch must give empty arrays).
    :return: a :class:`SeedClasses` with N rows, or ``None`` to leave seeds to the next plugin.
    """


@hookspec(firstresult=True)
def trackcore_split_clusters(event: Event, clusters: Table) -> tuple[Table, Table] | None:
    """Split clusters that several particles made into one hit per particle.

    Called by the pipeline before space-point formation, once per event with cells.

    :param event: the event (its ``hits``, ``cells`` and, for ``volume_id``/``layer_id``/
        ``module_id``, the modules the clusters lie on).
    :param clusters: candidate merged clusters: cells rows (``hit_id``, ``ch0``, ``ch1``,
        ``value`` — channel indices along u and v, deposited charge) of the hits to examine;
        the rows sharing a ``hit_id`` form one cluster.
    :return: ``(hits, cells)``: the event's complete new hits and cells tables (TrackML schema,
        x/y/z in mm), in which each split cluster's hit is replaced by one hit per particle with
        a fresh ``hit_id`` and its cells re-assigned; hits not split keep their ``hit_id``.
        ``(hits, cells, truth)`` also gives the truth of the new hits (a simulation study);
        without it the pipeline drops the event's truth once hit ids change, with a warning.
        ``None`` to leave clusters as they are. The pipeline calls this only when
        ``ReconstructionConfig.split_clusters`` is on.
    """


@hookspec(firstresult=True)
def trackcore_align(detector: Detector, events: list[Event], config: Mapping[str, Any]) -> np.ndarray | None:
    """Estimate module alignment corrections from reconstructed tracks.

    Called by ``trackcore align`` / the alignment API with a batch of events.

    :param detector: the nominal (possibly misaligned) detector; its module rows define the order.
    :param events: events with hits (and, for studies, truth) recorded with that detector.
    :param config: plugin settings (e.g. ``{"iterations": 200, "learning_rate": 1e-4}``).
    :return: (n_modules, 6) float64 corrections in module row order: translations du, dv, dw
        (mm, in each module's local frame) and rotations alpha, beta, gamma (rad, Euler
        x-z'-x'' about the local axes); ``None`` if this plugin does not align.
    """


@hookspec
def trackcore_tag_jets(event: Event, jets: Table, tracks: Table) -> dict[str, np.ndarray] | None:
    """Score jets (b-tagging, quark/gluon): every tagger that answers contributes.

    Called after jet finding, once per event.

    :param event: the event.
    :param jets: one row per jet: ``jet_id``, ``pt`` (GeV), ``eta``, ``phi`` (rad), ``mass`` (GeV).
    :param tracks: one row per reconstructed track: ``track_id``, perigee ``d0``, ``z0`` (mm),
        ``phi``, ``theta`` (rad), ``qop`` (e/GeV), their fitted errors ``sigma_d0``, ``sigma_z0``
        (mm; impact-parameter significances need them), and ``jet_id`` of its jet (-1 for none).
    :return: tagger name -> (n_jets,) float scores in jet row order (e.g. ``{"b": p_b}``), or
        ``None``. The caller merges the dicts of all implementations.
    """


@hookspec(firstresult=True)
def trackcore_fast_simulate(particles: Table, detector: Detector, config: Mapping[str, Any]) -> Event | None:
    """Simulate the detector response fast (e.g. a generative model instead of propagation).

    Called by the simulation driver when fast simulation is chosen, once per event.

    :param particles: generated particles (TrackML particles schema: vertex vx, vy, vz in mm,
        momentum px, py, pz in GeV, charge q).
    :param detector: the detector to simulate.
    :param config: plugin settings (e.g. ``{"seed": 1}``).
    :return: an :class:`Event` with ``hits``, ``cells``, ``truth`` and ``particles`` tables in
        the TrackML schema, or ``None`` to fall back to the next plugin / full simulation.
    """


# -- command line and reporting -----------------------------------------------------------
@hookspec
def trackcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add subcommands to the ``trackcore`` command line.

    Called once while the CLI parser is built, after the built-in commands.

    :param subparsers: the argparse sub-parser action; add a command with
        ``p = subparsers.add_parser("name", help="...")`` and give it a function with
        ``p.set_defaults(func=run)``, where ``run(args) -> int | None`` returns the exit status
        (``None`` means 0). ``args.plugin_manager`` holds the plugin manager. Raise
        :class:`trackcore.TrackcoreError` for a clean error message.
    :return: nothing.
    """


@hookspec
def trackcore_model_status() -> list[dict[str, Any]]:
    """Report the trained models a plugin needs, so ``trackcore plugins`` can show them.

    Called by :func:`trackcore.plugins.list_plugins`; must be cheap (no model loading).

    :return: one dict per model: ``name`` (str), ``version`` (str), ``path`` (str, where the
        model file is expected) and ``present`` (bool, whether that file exists). An empty list
        if the plugin needs no model.
    """
