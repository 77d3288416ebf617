"""Fast simulation of one event: the core's transport, then the generator in place of the digitisation.

The steps follow :func:`trackcore.sim.simulate.simulate_event` (transport -> digitisation crossings
-> digitise -> noise -> Event) with :func:`fast_digitize` as the digitisation; the tables have the
same schema, so reconstruction runs unchanged. Differences from the full digitisation, by design:
one cluster per crossing (clusters of two particles touching on a module are not merged; 0.1 % of
the hits of a <mu> = 200 event) and the cluster shape is a staircase along the path.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from trackcore.backends import get_backend
from trackcore.errors import InputError
from trackcore.event import Event, Table
from trackcore.geometry.detector import Detector
from trackcore.sim.digitization import DigitizedHits, noise_hits
from trackcore.sim.pdg import mass_of
from trackcore.sim.simulate import SimulationConfig, assemble_event, crossings_for_digitization
from trackcore.sim.transport import transport

from .clusters import ModuleTables, baseline_observables, conditions, render, segments
from .kernels import fused_kernel
from .model import LEAK, draw_seed

_TABLES: dict[int, ModuleTables] = {}


def module_tables(detector: Detector, simulation: SimulationConfig) -> ModuleTables:
    """:class:`ModuleTables` of ``detector`` (cached per detector object and readout settings)."""
    key = id(detector)
    cached = _TABLES.get(key)
    if cached is None or cached.detector is not detector or cached.config != simulation.digitization:
        cached = _TABLES[key] = ModuleTables(detector, simulation.digitization)
    return cached


def fast_digitize(tables: ModuleTables, crossings: dict, momentum: np.ndarray, generator, rng: np.random.Generator,
                  backend=None, first_hit_id: int = 1) -> DigitizedHits:
    """Hits and cells, one cluster per crossing, from the generator (``None``: the no-ML baseline).

    ``crossings``: :func:`crossings_for_digitization` output (local entry/exit in mm, ``edep`` in
    GeV); ``momentum``: (N, 3) GeV at each crossing; ``generator``: a :class:`~.model.NumpyGenerator`.
    """
    seg = segments(crossings)
    n = len(seg)
    det = tables.detector
    fused = fused_kernel(backend) if hasattr(generator, "compiled_arguments") else None
    if generator is None:
        r = render(tables, crossings, baseline_observables(n), backend=backend, seg=seg)
    elif fused is not None:
        # One compiled pass: conditions -> classifier and generator -> cells (same noise as the numpy path).
        momentum = np.asarray(momentum, np.float64).reshape(-1, 3)
        if len(momentum) != n:
            raise InputError(f"fastsim: momentum has {len(momentum)} rows for {n} crossings")
        cfg = tables.config
        # The kernel also places each cluster in the global frame and gives each cell its hit id.
        out = fused(np.asarray(crossings["module_index"], np.int64), seg, np.asarray(crossings["edep"], np.float64),
                    momentum, tables.packed, cfg.electrons_per_gev, cfg.value_per_electron,
                    *generator.compiled_arguments(), draw_seed(rng), LEAK, centres=det.centre,
                    rotations=det.rotation, first_hit_id=first_hit_id, observables=False)
        r = dict(zip(("cluster", "size", "ch0", "ch1", "value", "charge", "local", "obs", "global", "cell_hit"), out))
    else:
        r = render(tables, crossings, generator.generate_raw(conditions(tables, crossings, momentum, backend=backend),
                                                             rng), backend=backend, seg=seg)
    hit_xc = r["cluster"]
    hit_mod = np.asarray(crossings["module_index"], np.int64)[hit_xc]
    k = len(hit_xc)
    if r.get("global") is not None:
        xyz = r["global"]
    else:
        local = np.zeros((k, 3))
        local[:, :2] = r["local"]
        be = get_backend(backend)
        xyz = be.to_numpy(be.kernel("local_to_global")(det.centre, det.rotation, hit_mod, local))
    hit_id = np.arange(first_hit_id, first_hit_id + k, dtype=np.int64)
    hits = Table({"hit_id": hit_id, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                  "volume_id": det.volume_id[hit_mod], "layer_id": det.layer_id[hit_mod],
                  "module_id": det.module_id[hit_mod]}, name="hits")
    cell_hit = r["cell_hit"] if r.get("cell_hit") is not None else np.repeat(hit_id, r["size"])
    cells = Table({"hit_id": cell_hit, "ch0": r["ch0"], "ch1": r["ch1"], "value": r["value"]}, name="cells")
    pidx = np.asarray(crossings["particle_index"], np.int64)[hit_xc]
    return DigitizedHits(hits, cells, pidx, hit_xc.astype(np.int64), hit_mod, r["local"], r["charge"])


def fast_simulate_event(detector: Detector, particles: Table, generator, *, seed: int = 0, event_id: int = 0,
                        config: SimulationConfig | None = None, field=None, backend=None) -> Event:
    """One event with the fast digitisation: hits, cells, particles (``nhits``) and truth (TrackML weights).

    ``generator``: a :class:`~.model.NumpyGenerator`, or ``None`` for the geometric no-ML baseline.
    Same particles and seed give the same transport as :func:`trackcore.sim.simulate.simulate_event`.
    """
    config = config or SimulationConfig()
    for col in ("particle_id", "particle_type", "vx", "vy", "vz", "px", "py", "pz", "q"):
        if col not in particles:
            raise InputError(f"fastsim: particles: missing column {col!r}")
    if not 0 < config.barrel_active_fraction <= 1:
        raise InputError(f"fastsim: barrel_active_fraction must be in (0, 1], got {config.barrel_active_fraction}")
    rng = np.random.default_rng(seed)
    n = len(particles)
    vertex = np.stack([particles["vx"], particles["vy"], particles["vz"]], axis=1) if n else np.zeros((0, 3))
    momentum = np.stack([particles["px"], particles["py"], particles["pz"]], axis=1) if n else np.zeros((0, 3))
    crossings = transport(detector, vertex, momentum, particles["q"],
                          mass_of(particles["particle_type"]) if n else np.zeros(0), field=field,
                          config=config.transport, seed=seed, backend=backend)
    dc = crossings_for_digitization(detector, crossings, config.barrel_active_fraction, config.max_segment)
    tables = module_tables(detector, config)
    signal = fast_digitize(tables, dc, crossings["momentum"], generator, rng, backend=backend)
    noise = noise_hits(detector, rng, float(config.noise_fraction), n_signal_hits=len(signal.hits),
                       config=config.digitization, first_hit_id=len(signal.hits) + 1, backend=backend)
    return assemble_event(particles, crossings, signal, noise, event_id=event_id,
                          meta={"detector": detector.name, "seed": seed, "n_crossings": len(dc["module_index"]),
                                "fastsim": "baseline" if generator is None
                                else str(getattr(generator, "path", "generator"))})


def settings(config: Mapping[str, Any]) -> dict:
    """Checked hook settings: ``seed`` (int), ``event_id`` (int), ``noise_fraction`` (float), ``backend``."""
    allowed = {"seed", "event_id", "noise_fraction", "backend", "model"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InputError(f"fastsim: unknown setting(s) {unknown}; known: {sorted(allowed)}")
    out = {"seed": config.get("seed", 0), "event_id": config.get("event_id", 0)}
    for k in ("seed", "event_id"):
        if isinstance(out[k], bool) or not isinstance(out[k], (int, np.integer)):
            raise InputError(f"fastsim: setting {k!r} must be an integer, got {out[k]!r}")
    noise = config.get("noise_fraction", 0.15)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= float(noise) < 1.0:
        raise InputError(f"fastsim: setting 'noise_fraction' must be a number in [0, 1), got {noise!r}")
    out["noise_fraction"] = float(noise)
    out["backend"] = config.get("backend")
    out["model"] = config.get("model")
    return out
