"""Detectors built in code: the TrackML layout (no data files needed) and a small generic one.

Conventions (identical to TrackML ``detectors.csv``; ``global = centre + R @ (u, v, w)``):

* barrel module: ``v`` along +z, ``w`` radial-ish (the stave normal, turned by ``tilt`` about z
  from the radial direction), ``u = z x w``. Staves sit at ``phi_k = -pi + (k + 1/2) 2pi/n_phi``;
  modules along a stave at ``z_j`` spaced ``z_pitch`` apart, centred on z = 0, and the centre
  radius alternates ``radius + stagger`` (even j) / ``radius - stagger`` (odd j), so neighbours
  overlap in z. Module ids run phi-fastest, then z.
* endcap module: ``v`` radial outwards (the trapezoid's long side, ``max_hu``, is outside),
  ``w = sign(z) z``, ``u = v x w``. Each ring places ``n_phi`` modules at
  ``phi_k = -pi + (k + 1/2) 2pi/n_phi``, shifted in |z| by ``dz_pattern[k % len]`` from the
  disk's nominal |z| (positive = away from the interaction point), so neighbours overlap.
  Module ids run in order of phi over all rings of the disk.
* layer ids are 2, 4, 6, ...; in the negative endcap they count from the far (-z) end, in the
  positive endcap from the interaction point, as in TrackML.

All lengths in mm, angles in radians. The numbers in the tables below were read off the real
TrackML ``detectors.csv`` (per-layer radii, |z|, module counts, ring radii, staggers, tilts,
module sizes and pitches).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detector import Detector

__all__ = ["ModuleShape", "BarrelLayerSpec", "EndcapRingSpec", "EndcapSpec", "build_detector",
           "trackml_like_detector", "generic_detector", "TRACKML_BARRELS", "TRACKML_ENDCAPS"]


@dataclass(frozen=True)
class ModuleShape:
    """Module half thickness, trapezoid half widths at -hv/+hv, half length, pitches (mm)."""

    thickness: float
    min_hu: float
    max_hu: float
    hv: float
    pitch_u: float
    pitch_v: float


@dataclass(frozen=True)
class BarrelLayerSpec:
    """A barrel layer: ``n_phi`` staves of ``n_z`` modules at ``radius`` +- ``stagger`` (mm)."""

    volume_id: int
    layer_id: int
    radius: float
    n_phi: int
    n_z: int
    z_pitch: float
    stagger: float
    tilt: float  # rad, rotation of the module normal away from radial, about +z
    shape: ModuleShape


@dataclass(frozen=True)
class EndcapRingSpec:
    """One ring of a disk: ``n_phi`` modules centred at ``radius``, |z| offsets cycled from ``dz_pattern``."""

    radius: float
    n_phi: int
    dz_pattern: tuple[float, ...]
    shape: ModuleShape


@dataclass(frozen=True)
class EndcapSpec:
    """A pair of endcap volumes (-z, +z) with disks at nominal ``abs_z`` (ascending) built from ``rings``."""

    volume_neg: int
    volume_pos: int
    abs_z: tuple[float, ...]
    rings: tuple[EndcapRingSpec, ...]


# -- TrackML tables (from detectors.csv) -----------------------------------------------------
PIXEL = ModuleShape(0.15, 8.4, 8.4, 36.0, 0.05, 0.05625)
SHORT_STRIP_BARREL = ModuleShape(0.25, 24.0, 24.0, 54.0, 0.08, 1.2)
LONG_STRIP_BARREL = ModuleShape(0.35, 24.0, 24.0, 54.0, 0.12, 10.8)
_SS_EC = [ModuleShape(0.25, lo, hi, 78.0, 0.08, 1.2) for lo, hi in ((16.4, 24.2), (24.2, 32.2), (32.2, 40.0))]
_LS_EC = [ModuleShape(0.35, lo, hi, 78.0, 0.12, 10.4) for lo, hi in ((54.0, 64.2), (66.0, 72.0))]
_PIX_TILT = np.radians(8.021)  # arccos(0.99022) = angle between w and the radial direction
_STRIP_TILT = -np.radians(8.594)

#: volume, layer, radius, staves, modules per stave, z pitch, radius stagger, tilt, module
TRACKML_BARRELS = (
    BarrelLayerSpec(8, 2, 32.0, 16, 14, 70.0, 0.25, _PIX_TILT, PIXEL),
    BarrelLayerSpec(8, 4, 72.0, 32, 14, 70.0, 0.25, _PIX_TILT, PIXEL),
    BarrelLayerSpec(8, 6, 116.0, 52, 14, 70.0, 0.25, _PIX_TILT, PIXEL),
    BarrelLayerSpec(8, 8, 172.0, 78, 14, 70.0, 0.25, _PIX_TILT, PIXEL),
    BarrelLayerSpec(13, 2, 260.0, 40, 21, 103.0, 1.5, _STRIP_TILT, SHORT_STRIP_BARREL),
    BarrelLayerSpec(13, 4, 360.0, 56, 21, 103.0, 1.5, _STRIP_TILT, SHORT_STRIP_BARREL),
    BarrelLayerSpec(13, 6, 500.0, 78, 21, 103.0, 1.5, _STRIP_TILT, SHORT_STRIP_BARREL),
    BarrelLayerSpec(13, 8, 660.0, 102, 21, 103.0, 1.5, _STRIP_TILT, SHORT_STRIP_BARREL),
    BarrelLayerSpec(17, 2, 820.0, 120, 21, 103.0, 1.5, _STRIP_TILT, LONG_STRIP_BARREL),
    BarrelLayerSpec(17, 4, 1020.0, 152, 21, 103.0, 1.5, _STRIP_TILT, LONG_STRIP_BARREL),
)

#: endcap volumes (-z, +z), disk |z|, rings (radius, modules, |z| offset pattern, module)
TRACKML_ENDCAPS = (
    EndcapSpec(7, 9, (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0), (
        EndcapRingSpec(66.0, 40, (2.5, -2.0, 2.0, -2.5), PIXEL),
        EndcapRingSpec(140.0, 68, (2.0, -2.0), PIXEL))),
    EndcapSpec(12, 14, (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0), (
        EndcapRingSpec(318.0, 54, (-1.5, -4.5), _SS_EC[0]),
        EndcapRingSpec(470.0, 56, (4.5, 1.5), _SS_EC[1]),
        EndcapRingSpec(622.0, 60, (-1.5, -4.5), _SS_EC[2]))),
    EndcapSpec(16, 18, (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0), (
        EndcapRingSpec(828.0, 48, (-2.5, -5.5), _LS_EC[0]),
        EndcapRingSpec(942.0, 50, (5.5, 2.5), _LS_EC[1]))),
)

# -- generic: 4 pixel barrel layers (8 modules per stave) + 3 pixel disks per side -----------------
GENERIC_BARRELS = tuple(
    BarrelLayerSpec(8, 2 * (i + 1), r, n, 8, 70.0, 0.25, _PIX_TILT, PIXEL)
    for i, (r, n) in enumerate(((32.0, 16), (72.0, 32), (116.0, 52), (172.0, 78))))
GENERIC_ENDCAPS = (EndcapSpec(7, 9, (350.0, 450.0, 550.0), TRACKML_ENDCAPS[0].rings),)


# -- construction ------------------------------------------------------------------------------
def _phi(n: int) -> np.ndarray:
    return -np.pi + (np.arange(n) + 0.5) * (2 * np.pi / n)


def _columns(n: int, shape: ModuleShape) -> dict[str, np.ndarray]:
    return {k: np.full(n, getattr(shape, k), np.float64)
            for k in ("thickness", "min_hu", "max_hu", "hv", "pitch_u", "pitch_v")}


def _barrel(spec: BarrelLayerSpec) -> dict[str, np.ndarray]:
    n = spec.n_phi * spec.n_z
    phi = np.tile(_phi(spec.n_phi), spec.n_z)  # phi fastest, then z
    j = np.repeat(np.arange(spec.n_z), spec.n_phi)
    z = (j - 0.5 * (spec.n_z - 1)) * spec.z_pitch
    r = spec.radius + np.where(j % 2 == 0, spec.stagger, -spec.stagger)
    a = phi + spec.tilt  # direction of w in the transverse plane
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 1, 0] = -np.sin(a), np.cos(a)  # u = z x w
    rot[:, 2, 1] = 1.0  # v = z
    rot[:, 0, 2], rot[:, 1, 2] = np.cos(a), np.sin(a)  # w
    cols = {"volume_id": np.full(n, spec.volume_id), "layer_id": np.full(n, spec.layer_id),
            "module_id": np.arange(1, n + 1),
            "centre": np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1), "rotation": rot}
    cols.update(_columns(n, spec.shape))
    return cols


def _disk(volume_id: int, layer_id: int, z_sign: float, abs_z: float,
          rings: tuple[EndcapRingSpec, ...]) -> dict[str, np.ndarray]:
    parts = []
    for ring in rings:
        phi = _phi(ring.n_phi)
        dz = np.resize(np.asarray(ring.dz_pattern, np.float64), ring.n_phi)
        c = np.stack([ring.radius * np.cos(phi), ring.radius * np.sin(phi), z_sign * (abs_z + dz)], axis=1)
        part = {"phi": phi, "centre": c}
        part.update(_columns(ring.n_phi, ring.shape))
        parts.append(part)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cols.pop("phi"), kind="stable")  # ids in phi order over all rings
    cols = {k: v[order] for k, v in cols.items()}
    n = len(order)
    phi = np.arctan2(cols["centre"][:, 1], cols["centre"][:, 0])
    rot = np.zeros((n, 3, 3))
    # v radial out; w = sign(z) z; u = v x w = sign(z) (sin phi, -cos phi, 0)
    rot[:, 0, 0], rot[:, 1, 0] = z_sign * np.sin(phi), -z_sign * np.cos(phi)
    rot[:, 0, 1], rot[:, 1, 1] = np.cos(phi), np.sin(phi)
    rot[:, 2, 2] = z_sign
    cols.update(volume_id=np.full(n, volume_id), layer_id=np.full(n, layer_id),
                module_id=np.arange(1, n + 1), rotation=rot)
    return cols


def build_detector(barrels: tuple[BarrelLayerSpec, ...], endcaps: tuple[EndcapSpec, ...],
                   name: str = "detector") -> Detector:
    """A :class:`Detector` from barrel-layer and endcap tables (see the module docstring)."""
    parts = [_barrel(b) for b in barrels]
    for ec in endcaps:
        n = len(ec.abs_z)
        for i, abs_z in enumerate(ec.abs_z):
            # -z layers are numbered from the far end, +z layers from the interaction point.
            parts.append(_disk(ec.volume_neg, 2 * (n - i), -1.0, abs_z, ec.rings))
            parts.append(_disk(ec.volume_pos, 2 * (i + 1), 1.0, abs_z, ec.rings))
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return Detector(name=name, **cols)


def trackml_like_detector() -> Detector:
    """The TrackML detector layout (18,728 modules, volumes 7-18), built without data files."""
    return build_detector(TRACKML_BARRELS, TRACKML_ENDCAPS, name="trackml")


def generic_detector() -> Detector:
    """A small pixel detector for fast tests: 4 barrel layers + 3 disks per side, 2,072 modules.

    Same module shapes and conventions as the TrackML pixel volumes (7/8/9); barrel modules
    span |z| <= 281 mm, disks sit at |z| = 350, 450, 550 mm.
    """
    return build_detector(GENERIC_BARRELS, GENERIC_ENDCAPS, name="generic")
