"""Particle transport through a detector: helix (constant field) or Runge-Kutta (field map) stepping,
sensitive-module crossings, multiple scattering and energy loss. Kernel ``transport`` on each backend.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..backends import get_backend
from ..errors import InputError
from ..geometry.detector import Detector, LONG_STRIP_VOLUMES, PIXEL_VOLUMES, SHORT_STRIP_VOLUMES

#: Material (x/X0 at normal incidence) lumped at each layer's sensors: sensor + support + services.
#: Typical HL-LHC silicon tracker values (pixel ~1.5%, strips ~2.5-3% per layer).
DEFAULT_LAYER_X0 = {PIXEL_VOLUMES: 0.015, SHORT_STRIP_VOLUMES: 0.025, LONG_STRIP_VOLUMES: 0.030}
FALLBACK_LAYER_X0 = 0.02
#: Most steps one particle may take (max_path / max_step): a zero or tiny max_step would never end.
#: The compiled kernel enforces the same limit.
MAX_STEPS_PER_PARTICLE = 1e7


@dataclass
class TransportConfig:
    """Settings of the transport. Lengths in mm, momenta in GeV."""

    max_step: float = 50.0
    max_path: float = 10000.0
    max_crossings: int = 60
    min_p: float = 0.05
    multiple_scattering: bool = True
    energy_loss: bool = True
    use_rk: bool = False
    #: Stop a particle after this fraction of a full transverse turn (ACTS loop protection, as in the
    #: TrackML simulation: 0.5 = half a loop); 0 follows loopers until max_path/max_crossings/min_p.
    loop_fraction: float = 0.5
    layer_x0: dict | None = None  # {(volume_id, layer_id): x/X0}; missing layers use DEFAULT_LAYER_X0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first setting out of range (checked again at each use)."""
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise InputError(f"TransportConfig.{name} = {value!r} must be a number")
            if not np.isfinite(value):
                raise InputError(f"TransportConfig.{name} = {value} must be finite")
            return float(value)

        max_step, max_path, min_p = number("max_step"), number("max_path"), number("min_p")
        number("loop_fraction")
        if max_step <= 0:
            raise InputError(f"TransportConfig.max_step = {max_step} mm must be > 0")
        if max_path < 0:
            raise InputError(f"TransportConfig.max_path = {max_path} mm must be >= 0")
        if max_path / max_step > MAX_STEPS_PER_PARTICLE:
            raise InputError(f"TransportConfig: max_path / max_step = {max_path / max_step:.3g} steps per particle; "
                             f"at most {MAX_STEPS_PER_PARTICLE:.0e}")
        if min_p < 0:
            raise InputError(f"TransportConfig.min_p = {min_p} GeV must be >= 0")
        mc = self.max_crossings
        if isinstance(mc, bool) or not isinstance(mc, (int, np.integer)) or not 0 <= mc < 2**31:
            raise InputError(f"TransportConfig.max_crossings = {mc!r} must be an integer in [0, 2^31)")

    def as_dict(self) -> dict:
        return asdict(self)


def layer_material(detector: Detector, overrides: dict | None = None) -> np.ndarray:
    """x/X0 per layer of ``detector`` (in ``detector.layers`` order)."""
    out = np.full(len(detector.layers), FALLBACK_LAYER_X0)
    for i, lay in enumerate(detector.layers):
        for volumes, x0 in DEFAULT_LAYER_X0.items():
            if lay.volume_id in volumes:
                out[i] = x0
        if overrides and (lay.volume_id, lay.layer_id) in overrides:
            out[i] = overrides[(lay.volume_id, lay.layer_id)]
    if np.any(out < 0) or not np.all(np.isfinite(out)):
        raise InputError("layer material x/X0 must be finite and >= 0")
    return out


def compiled_geometry(detector: Detector):
    """The compiled core's view of ``detector`` (built once per Detector object, then cached)."""
    return detector.cached_view("compiled_geometry", _build_compiled_geometry)


def _build_compiled_geometry(detector: Detector):
    from .._corelib import core

    kinds = np.array([0 if lay.kind == "barrel" else 1 for lay in detector.layers], np.int32)
    module_layer = detector.layer_index(np.arange(len(detector))).astype(np.int32)
    return core().Geometry(detector.centre, detector.rotation, detector.thickness, detector.min_hu,
                           detector.max_hu, detector.hv, module_layer, kinds)


def field_arguments(field) -> tuple[float, tuple | None]:
    """(bz, field_map) for the kernels: a constant Bz, or the (r, z) grid of a map."""
    if field is None:
        return 2.0, None
    if getattr(field, "is_constant", False):
        return float(field.bz), None
    try:
        r, z, br, bz = (np.asarray(a, np.float64) for a in (field.r_grid, field.z_grid, field.br, field.bz))
    except AttributeError as exc:
        raise InputError(f"field {field!r} is neither constant nor an (r, z) grid map") from exc
    dr, dz = r[1] - r[0], z[1] - z[0]
    if not (np.allclose(np.diff(r), dr) and np.allclose(np.diff(z), dz)):
        raise InputError("field map grid must be regularly spaced in r and z")
    return 0.0, (float(r[0]), float(dr), len(r), float(z[0]), float(dz), len(z), br, bz)


def transport(detector: Detector, vertex: np.ndarray, momentum: np.ndarray, charge: np.ndarray, mass: np.ndarray,
              *, field=None, config: TransportConfig | None = None, seed: int = 0, backend=None,
              threads: int | None = None) -> dict:
    """Transport particles (vertex mm (N,3), momentum GeV (N,3), charge, mass GeV) through ``detector``.

    Returns the sensitive-module crossings in path order per particle: ``particle_index``,
    ``module_index``, ``position`` (global, mm), ``momentum`` (GeV, before the material at that
    crossing), ``local`` (u, v, w at the module mid-plane), ``local_direction``, ``edep`` (GeV in the
    sensor) and ``path`` (mm from the vertex). ``threads``: worker threads of the compiled transport
    (None or 0: one per CPU); every particle draws from its own random stream, so the crossings do
    not depend on it.
    """
    from ..threads import resolve_threads

    n_threads = resolve_threads(threads)
    config = config or TransportConfig()
    config.validate()  # fields may have been changed after construction
    vertex = _points(vertex, "vertex")
    momentum = _points(momentum, "momentum")
    charge = np.asarray(charge, np.int32)
    mass = np.asarray(mass, np.float64)
    n = len(vertex)
    if not (len(momentum) == len(charge) == len(mass) == n):
        raise InputError("vertex, momentum, charge and mass must have the same number of particles")
    bad = ~(np.isfinite(vertex).all(1) & np.isfinite(momentum).all(1))
    if bad.any():
        raise InputError(f"particle {int(np.flatnonzero(bad)[0])} has a non-finite (NaN/inf) vertex or momentum")
    if np.any(charge == 0):
        raise InputError(f"particle {int(np.flatnonzero(charge == 0)[0])} is neutral: only charged particles are transported")
    if not np.all(mass > 0):
        raise InputError("every particle needs a mass > 0 (GeV)")
    # The compiled kernel's bounds, here for every backend: beyond them the stepping overflows or
    # never ends (a mass of 1e300 GeV crashed the compiled transport, |p| = 1e300 lost the particle).
    if np.any(mass > 1e4):
        i = int(np.flatnonzero(mass > 1e4)[0])
        raise InputError(f"particle {i}: mass = {mass[i]:g} GeV; at most 1e4 GeV")
    if np.any(np.abs(momentum) > 1e15):
        i = int(np.flatnonzero((np.abs(momentum) > 1e15).any(1))[0])
        raise InputError(f"particle {i}: a momentum component of {np.abs(momentum[i]).max():g} GeV; at most 1e15 GeV")
    if np.any(np.einsum("ij,ij->i", momentum, momentum) <= 0):
        raise InputError("every particle needs a non-zero momentum")
    bz, fmap = field_arguments(field)
    if not (np.isfinite(bz) and abs(bz) <= 1e4):
        raise InputError(f"field: Bz = {bz:g} T must be finite, |Bz| <= 1e4 T")
    if fmap is None and bz == 0.0 and config.use_rk is False and field is not None and not getattr(field, "is_constant", True):
        raise InputError("a helix needs a non-zero field")
    kernel = get_backend(backend).kernel("transport")
    return kernel(detector, vertex, momentum, charge, mass, layer_material(detector, config.layer_x0), bz, fmap,
                  int(seed), config, threads=n_threads)


def _points(a, name: str) -> np.ndarray:
    """(N, 3) float64 array; a single (3,) point is accepted. Other shapes are an error, not a reshape."""
    arr = np.atleast_2d(np.asarray(a, np.float64))
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3), got {np.shape(a)}")
    return np.ascontiguousarray(arr)


def transport_cpu(detector, vertex, momentum, charge, mass, layer_x0, bz, field_map, seed, config, threads: int = 1):
    """The ``cpu`` kernel: the compiled transport engine, on ``threads`` worker threads."""
    from .._corelib import core

    return core().transport(compiled_geometry(detector), vertex, momentum, charge, mass, layer_x0, bz=bz,
                            field_map=field_map, seed=seed, max_step=config.max_step, max_path=config.max_path,
                            max_crossings=config.max_crossings, min_p=config.min_p,
                            multiple_scattering=config.multiple_scattering, energy_loss=config.energy_loss,
                            use_rk=config.use_rk, loop_fraction=config.loop_fraction, threads=threads)
