"""The simulation driver: particles -> transport -> digitisation + clustering -> noise -> Event.

A misaligned detector may be simulated while the nominal one is reconstructed: hit positions come
from the (mis)aligned module frames, module ids are shared.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..event import Event, Table
from ..geometry.detector import Detector
from ..metrics.weights import trackml_weights
from .digitization import DigitizationConfig, digitize, noise_hits
from .pdg import mass_of
from .transport import TransportConfig, transport


@dataclass
class SimulationConfig:
    """Everything the simulation needs besides particles and detector."""

    transport: TransportConfig = field(default_factory=TransportConfig)
    digitization: DigitizationConfig = field(default_factory=DigitizationConfig)
    #: Fraction of noise hits in the final event (TrackML has ~0.15).
    noise_fraction: float = 0.15
    #: Readout noise on cell charges (threshold fluctuations); off gives a noise-free readout.
    readout_noise: bool = True
    #: Fraction of a barrel sensor's thickness that collects charge. TrackML's barrel clusters hold
    #: half the path through the sensor (their summed cell values, and cells per hit, show it) while
    #: endcap clusters hold all of it; 0.5 reproduces the real cells-per-hit of each barrel volume.
    barrel_active_fraction: float = 0.5
    #: Longest charge segment in a sensor's plane (mm). TrackML's longest pixel clusters span ~1.5 mm
    #: (barrel; 0.5 mm in the endcaps): grazing, curling tracks do not deposit along a straight line
    #: through the whole module, as an uncapped straight segment would.
    max_segment: float = 1.5


def crossings_for_digitization(detector: Detector, crossings: dict, barrel_active_fraction: float = 1.0,
                               max_segment: float = np.inf) -> dict:
    """Entry and exit points through the (active) sensor thickness, from mid-plane crossings (straight).

    ``max_segment`` (mm) caps the segment's length in the sensor plane: a curling track grazing a
    sensor leaves it long before a straight line through the thickness would.
    """
    local, d = crossings["local"], crossings["local_direction"]
    t = detector.thickness[crossings["module_index"]].copy()
    barrel = np.array([lay.kind == "barrel" for lay in detector.layers])[detector.layer_index(crossings["module_index"])]
    t[barrel] *= barrel_active_fraction
    dw = np.where(np.abs(d[:, 2]) < 1e-3, np.copysign(1e-3, d[:, 2] + 1e-300), d[:, 2])
    half = d * (t / dw)[:, None]
    in_plane = np.hypot(half[:, 0], half[:, 1])
    half *= np.minimum(1.0, 0.5 * max_segment / np.maximum(in_plane, 1e-300))[:, None]
    entry, exit_ = local - half, local + half
    return {"module_index": crossings["module_index"], "particle_index": crossings["particle_index"],
            "u0": entry[:, 0], "v0": entry[:, 1], "w0": entry[:, 2], "u1": exit_[:, 0], "v1": exit_[:, 1],
            "w1": exit_[:, 2], "edep": crossings["edep"]}


def simulation_weights(truth: Table, particles: Table) -> np.ndarray:
    """TrackML weights, normalised; particles flagged ``secondary`` (made in the material) weigh 0, as in
    TrackML's files."""
    if not len(truth):
        return np.zeros(0)
    w = trackml_weights(truth, particles, normalize=False)
    if "secondary" in particles:
        made_in_material = particles["particle_id"][np.asarray(particles["secondary"]) != 0]
        w[np.isin(truth["particle_id"], made_in_material)] = 0.0
    total = w.sum()
    return w / total if total > 0 else w


def simulate_event(detector: Detector, particles: Table, *, field=None, config: SimulationConfig | None = None,
                   seed: int = 0, event_id: int = 0, backend=None,
                   simulation_detector: Detector | None = None, threads: int | None = None) -> Event:
    """Simulate one event of ``particles`` (TrackML particle columns) through ``detector``.

    ``simulation_detector`` (default: ``detector``) is where the particles really fly, e.g. a
    misaligned copy; hits are labelled with the shared module ids. Returns an Event with hits,
    cells, particles (``nhits`` filled) and truth (TrackML weights). ``threads``: worker threads of
    the compiled transport (None or 0: one per CPU); the event does not depend on it.
    """
    config = config or SimulationConfig()
    sim_det = simulation_detector or detector
    if len(sim_det) != len(detector) or not np.array_equal(sim_det.module_id, detector.module_id):
        raise InputError("simulation_detector must have the same modules as detector")
    for col in ("particle_id", "particle_type", "vx", "vy", "vz", "px", "py", "pz", "q"):
        if col not in particles:
            raise InputError(f"particles: missing column {col!r}")
    rng = np.random.default_rng(seed)
    n = len(particles)
    vertex = np.stack([particles["vx"], particles["vy"], particles["vz"]], axis=1) if n else np.zeros((0, 3))
    momentum = np.stack([particles["px"], particles["py"], particles["pz"]], axis=1) if n else np.zeros((0, 3))
    crossings = transport(sim_det, vertex, momentum, particles["q"], mass_of(particles["particle_type"]) if n else
                          np.zeros(0), field=field, config=config.transport, seed=seed, backend=backend,
                          threads=threads)
    readout_rng = rng if config.readout_noise else None
    if not 0 < config.barrel_active_fraction <= 1:
        raise InputError(f"barrel_active_fraction must be in (0, 1], got {config.barrel_active_fraction}")
    signal = digitize(sim_det, crossings_for_digitization(sim_det, crossings, config.barrel_active_fraction,
                                                 config.max_segment),
                      config.digitization, readout_rng,
                      backend=backend)
    noise = noise_hits(sim_det, rng, float(config.noise_fraction), n_signal_hits=len(signal.hits),
                       config=config.digitization, first_hit_id=len(signal.hits) + 1, backend=backend)

    return assemble_event(particles, crossings, signal, noise, event_id=event_id,
                          meta={"detector": detector.name, "seed": seed,
                                "n_crossings": len(crossings["module_index"])})


def assemble_event(particles: Table, crossings: dict, signal, noise, *, event_id: int = 0,
                   meta: dict | None = None) -> Event:
    """The Event of digitised ``signal`` and ``noise`` hits (:class:`DigitizedHits`) of ``particles``.

    Truth holds each signal hit's particle and its true crossing at the module mid-plane (position mm,
    momentum GeV, from the transport's ``crossings``); noise hits have particle 0 and their own
    position. ``nhits`` is filled in a copy of ``particles``, and TrackML weights in the truth. Used by
    the full simulation and by fast simulations that replace only the digitisation.
    """
    n = len(particles)
    hits = Table({k: np.concatenate([signal.hits[k], noise.hits[k]]) for k in signal.hits.columns}, name="hits")
    cells = Table({k: np.concatenate([signal.cells[k], noise.cells[k]]) for k in signal.cells.columns}, name="cells")
    pidx, xidx, n_noise = signal.hit_particle_index, signal.hit_crossing_index, len(noise.hits)
    pid = np.concatenate([particles["particle_id"][pidx] if len(pidx) else np.zeros(0, np.int64),
                          np.zeros(n_noise, np.int64)])
    # Truth position/momentum: the particle's true crossing at the module mid-plane (noise: the hit itself).
    tpos = np.concatenate([crossings["position"][xidx].reshape(-1, 3),
                           np.stack([noise.hits["x"], noise.hits["y"], noise.hits["z"]], axis=1)])
    tmom = np.concatenate([crossings["momentum"][xidx].reshape(-1, 3), np.zeros((n_noise, 3))])
    truth = Table({"hit_id": hits["hit_id"], "particle_id": pid, "tx": tpos[:, 0], "ty": tpos[:, 1],
                   "tz": tpos[:, 2], "tpx": tmom[:, 0], "tpy": tmom[:, 1], "tpz": tmom[:, 2]}, name="truth")
    parts = particles.copy()
    counts = np.bincount(pidx, minlength=n) if len(pidx) else np.zeros(n, np.int64)
    parts["nhits"] = counts.astype(np.int32)
    truth["weight"] = simulation_weights(truth, parts)
    return Event(hits=hits, cells=cells, particles=parts, truth=truth, event_id=event_id, meta=dict(meta or {}))
