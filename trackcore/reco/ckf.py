"""Combinatorial Kalman filter, ambiguity resolution and track fit (compiled core)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..backends import get_backend
from ..backends.arrays import namespace_of
from ..errors import InputError
from ..geometry.detector import Detector
from ..sim.transport import TransportConfig, compiled_geometry, field_arguments, layer_material
from .measurements import Measurements
from ..threads import resolve_threads
from .tracks import Tracks


@dataclass
class CkfConfig:
    """Settings of the track following. Lengths in mm, momenta in GeV, angles in rad."""

    chi2_max: float = 15.0  #: max chi2 of a 2-D measurement added to a track
    max_branches: int = 2  #: compatible hits followed per layer
    max_candidates: int = 4  #: trajectories kept per seed (beam width)
    max_holes: int = 2  #: consecutive crossed modules without a hit before a track stops
    min_measurements: int = 5  #: hits of a track kept after ambiguity resolution
    max_shared: int = 2  #: hits a track may share with better tracks
    mass: float = 0.13957  #: mass hypothesis for material effects (pion)
    #: mm and rad: the longest step of the layer search and its most bending; the candidate search
    #: pads each chord by its sagitta (<= 0.8 mm here), so shorter steps only cost time (0.05 rad
    #: and 50 mm found the same tracks on <mu> = 200, 15 % slower)
    max_step: float = 100.0
    max_turn: float = 0.2
    #: mm of path a track is followed; the outermost endcap disks (|z| 2.95 m) lie ~3 m along a
    #: forward track from the first pixel layer, so 3000 lost their hits
    max_path: float = 4500.0
    sigma_phi: float = 0.02  #: seed covariance
    sigma_theta: float = 0.02
    sigma_qop_rel: float = 0.25
    edge_tolerance: float = 1.0  #: mm beyond a module edge still searched for hits
    layer_depth: float = 30.0  #: mm of path after a layer's first crossing searched for overlapping modules
    skip_used_seeds: bool = True  #: skip seeds that have ``skip_used_hits`` hits on earlier tracks
    skip_used_hits: int = 3  #: 1, 2 or 3: how many used hits make a seed skipped
    refine: bool = True  #: search inward of the seed, then re-follow the track from its innermost hit
    #: A trajectory with fewer than min_measurements hits but at least this many is refined before it
    #: is dropped: a seed near the outer end of its track (wide doublets, displaced tracks) finds few
    #: hits outward and its inward hits come only with the refinement. 0 turns it off.
    rescue_min_measurements: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def kernel_settings(self, threads: int | None = None) -> dict:
        """The settings as the ``ckf`` kernels take them, with the worker thread count
        (:func:`~trackcore.threads.resolve_threads`; the numpy reference ignores it)."""
        return dict(self.as_dict(), threads=resolve_threads(threads))

    def check(self) -> "CkfConfig":
        """Raise :class:`InputError` naming a setting out of range (the ranges the compiled kernel
        enforces, checked here for every backend: a zero step or a 1e30 seed covariance makes the
        layer search step forever, NaN and negative values silently find no track)."""
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise InputError(f"CKF setting {what}")

        for name in ("max_branches", "max_candidates", "max_holes", "min_measurements", "max_shared",
                     "skip_used_hits", "rescue_min_measurements"):
            value = getattr(self, name)
            need(isinstance(value, (int, np.integer)) and not isinstance(value, bool),
                 f"{name} = {value!r} must be an integer")
        need(self.max_branches >= 1 and self.max_candidates >= 1, "max_branches, max_candidates must be >= 1")
        need(self.min_measurements >= 3, f"min_measurements = {self.min_measurements} must be >= 3")
        need(self.max_holes >= 0 and self.max_shared >= 0 and self.rescue_min_measurements >= 0,
             "max_holes, max_shared, rescue_min_measurements must be >= 0")
        need(self.skip_used_hits in (1, 2, 3), f"skip_used_hits = {self.skip_used_hits} must be 1, 2 or 3")
        f = {name: float(getattr(self, name)) for name in ("chi2_max", "mass", "max_step", "max_turn", "max_path",
                                                            "sigma_phi", "sigma_theta", "sigma_qop_rel",
                                                            "edge_tolerance", "layer_depth")}
        need(f["chi2_max"] > 0 and np.isfinite(f["chi2_max"]), f"chi2_max = {f['chi2_max']:g} must be finite and > 0")
        need(1e-6 <= f["mass"] <= 1e4, f"mass = {f['mass']:g} GeV must be in [1e-6, 1e4]")
        need(np.isfinite(f["max_step"]) and f["max_step"] > 0, f"max_step = {f['max_step']:g} mm must be finite and > 0")
        need(1e-3 <= f["max_turn"] <= 2 * np.pi, f"max_turn = {f['max_turn']:g} rad must be in [1e-3, 2 pi]")
        need(np.isfinite(f["max_path"]) and f["max_path"] >= 0, f"max_path = {f['max_path']:g} mm must be finite and >= 0")
        need(f["max_path"] / f["max_step"] <= 1e7, f"max_path / max_step = {f['max_path'] / f['max_step']:g} steps; at most 1e7")
        need(0 <= f["sigma_phi"] <= np.pi and 0 <= f["sigma_theta"] <= np.pi,
             f"sigma_phi, sigma_theta = {f['sigma_phi']:g}, {f['sigma_theta']:g} rad must be in [0, pi]")
        need(0 <= f["sigma_qop_rel"] <= 10, f"sigma_qop_rel = {f['sigma_qop_rel']:g} must be in [0, 10]")
        for name in ("edge_tolerance", "layer_depth"):
            need(np.isfinite(f[name]) and f[name] >= 0, f"{name} = {f[name]:g} mm must be finite and >= 0")
        return self


def find_tracks(measurements: Measurements, seeds: np.ndarray, detector: Detector, *, field=None,
                config: CkfConfig | None = None, material: dict | None = None, backend=None,
                threads: int | None = None) -> tuple[Tracks, dict]:
    """Follow each seed (rows of ``measurements``, shape (N, 3), best first) through the detector.

    Returns the tracks after ambiguity resolution (each hit on at most one track) with perigee
    parameters from the backward filter, and counters (seeds used/skipped, candidates).
    ``threads``: worker threads of the compiled CKF (None or 0: one per CPU). Seeds are followed in
    parallel and committed in seed order, so the tracks and counters do not depend on it.
    """
    config = (config or CkfConfig()).check()
    settings = config.kernel_settings(threads)
    xp = namespace_of(measurements.xyz)  # device arrays stay on the device (the cupy backend's chain)
    seeds = xp.ascontiguousarray(xp.asarray(seeds), dtype=xp.int64).reshape(-1, 3)
    if len(seeds) and (int(seeds.min()) < 0 or int(seeds.max()) >= len(measurements)):
        raise InputError("seeds refer to hits outside the event")
    if len(measurements) == 0 or len(seeds) == 0:
        return Tracks.empty(xp), {"seeds_used": 0, "seeds_skipped": 0, "candidates": 0, "tracks_before_ambiguity": 0, "rescued": 0}
    bz, fmap = field_arguments(field)
    out = get_backend(backend).kernel("ckf")(detector, measurements, seeds, layer_material(detector, material), bz,
                                             settings, fmap)
    return Tracks.from_kernel(out), dict(out["stats"])


def ckf_cpu(detector: Detector, measurements: Measurements, seeds: np.ndarray, layer_x0: np.ndarray, bz: float,
            config: dict, field_map=None) -> dict:
    """The ``cpu`` kernel ``ckf``: the compiled CKF, with the arguments of the numpy reference ``ckf_numpy``."""
    from .._corelib import core

    return core().ckf(compiled_geometry(detector), measurements.compiled(), seeds, layer_x0, bz, field_map, config)


def fit_tracks(measurements: Measurements, track_hits: list[np.ndarray], detector: Detector, *, field=None,
               config: CkfConfig | None = None, material: dict | None = None, threads: int | None = None) -> Tracks:
    """Kalman fit (forward filter, backward filter, perigee) of given hit sequences (inner to outer),
    on ``threads`` worker threads (None or 0: one per CPU; the fits do not depend on it)."""
    config = (config or CkfConfig()).check()
    settings = config.kernel_settings(threads)
    from .._corelib import core

    lengths = np.array([len(h) for h in track_hits], np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    flat = np.concatenate(track_hits).astype(np.int64) if len(track_hits) else np.zeros(0, np.int64)
    if len(flat) and (flat.min() < 0 or flat.max() >= len(measurements)):
        raise InputError("track hits refer to hits outside the event")
    bz, fmap = field_arguments(field)
    out = core().fit_tracks(compiled_geometry(detector), measurements.compiled(), offsets, flat,
                            layer_material(detector, material), bz, fmap, settings)
    return Tracks.from_kernel(out)
