"""Magnetic fields (Tesla; positions in mm): a constant solenoid field and an axially symmetric (r, z) map.

``GridFieldMap`` holds Br and Bz on a regular (r, z) grid and interpolates bilinearly; its grid
arrays (``r_grid``, ``z_grid``, ``br``, ``bz``; float64, C-contiguous, ``br``/``bz`` of shape
(len(r_grid), len(z_grid))) are what the compiled Runge-Kutta stepper takes.

Points outside the map: by default (``outside="zero"``) the field there is zero, which is the
physical limit far from the coil; ``"clamp"`` uses the nearest grid edge value and ``"error"``
raises :class:`InputError` naming the first such point.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from .io import read_csv_columns, write_csv_columns

__all__ = ["MagneticField", "ConstantField", "GridFieldMap", "solenoid_field_map", "read_field_map",
           "write_field_map", "default_field", "OUTSIDE_POLICIES"]

OUTSIDE_POLICIES = ("zero", "clamp", "error")
_FIELD_MAP_COLUMNS = ("r", "z", "Br", "Bz")


@runtime_checkable
class MagneticField(Protocol):
    """What propagators need: ``field_at`` (N, 3) mm -> (N, 3) T, and whether it is constant.

    Constant fields also have a float ``bz`` (T, along +z).
    """

    is_constant: bool

    def field_at(self, xyz: np.ndarray) -> np.ndarray: ...


def _points(xyz) -> np.ndarray:
    p = np.asarray(xyz, np.float64)
    if p.ndim == 1 and p.shape[0] == 3:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"field_at: expected (N, 3) positions in mm, got shape {p.shape}")
    return p


@dataclass(frozen=True)
class ConstantField:
    """A uniform field ``(0, 0, bz)`` in Tesla; the default 2 T is the TrackML solenoid."""

    bz: float = 2.0
    is_constant: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.bz):
            raise InputError(f"ConstantField: bz must be finite, got {self.bz}")

    def field_at(self, xyz) -> np.ndarray:
        """(N, 3) field in Tesla at (N, 3) positions in mm."""
        out = np.zeros((len(_points(xyz)), 3))
        out[:, 2] = self.bz
        return out


def _check_axis(name: str, grid, source: str) -> np.ndarray:
    g = np.ascontiguousarray(grid, dtype=np.float64)
    if g.ndim != 1 or len(g) < 2:
        raise InputError(f"{source}: {name} must be 1-D with at least 2 points, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise InputError(f"{source}: {name} has non-finite values")
    step = np.diff(g)
    if np.any(step <= 0):
        i = int(np.flatnonzero(step <= 0)[0])
        raise InputError(f"{source}: {name} spacing must be > 0 (step {i}: {g[i]} -> {g[i + 1]})")
    # Regular spacing lets lookups compute the cell index directly (also in the C++ stepper).
    if np.max(np.abs(step - step.mean())) > 1e-6 * max(abs(step.mean()), 1.0):
        raise InputError(f"{source}: {name} must be regularly spaced (steps {step.min()} to {step.max()} mm)")
    return g


class GridFieldMap:
    """Axially symmetric field on a regular (r, z) grid, bilinear in (r, z).

    Parameters: ``r_grid`` (mm, >= 0, ascending), ``z_grid`` (mm, ascending), ``br`` and ``bz``
    (Tesla, shape (len(r_grid), len(z_grid))), ``outside`` one of ``"zero"``, ``"clamp"``, ``"error"``.
    """

    is_constant = False

    def __init__(self, r_grid, z_grid, br, bz, outside: str = "zero", source: str = "field map"):
        self.source = source
        self.r_grid = _check_axis("r_grid", r_grid, source)
        self.z_grid = _check_axis("z_grid", z_grid, source)
        if self.r_grid[0] < 0:
            raise InputError(f"{source}: r_grid must start at r >= 0, got {self.r_grid[0]}")
        shape = (len(self.r_grid), len(self.z_grid))
        for name, arr in (("br", br), ("bz", bz)):
            a = np.ascontiguousarray(arr, dtype=np.float64)
            if a.shape != shape:
                raise InputError(f"{source}: {name} has shape {a.shape}, expected (len(r_grid), len(z_grid)) = {shape}")
            bad = ~np.isfinite(a)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise InputError(f"{source}: {name} is not finite at r={self.r_grid[i]}, z={self.z_grid[j]}")
            setattr(self, name, a)
        if outside not in OUTSIDE_POLICIES:
            raise InputError(f"{source}: outside must be one of {OUTSIDE_POLICIES}, got {outside!r}")
        self.outside = outside

    def __repr__(self) -> str:
        return (f"GridFieldMap({self.source!r}, r {self.r_grid[0]}..{self.r_grid[-1]} mm x {len(self.r_grid)}, "
                f"z {self.z_grid[0]}..{self.z_grid[-1]} mm x {len(self.z_grid)}, outside={self.outside!r})")

    @property
    def dr(self) -> float:
        return float(self.r_grid[1] - self.r_grid[0])

    @property
    def dz(self) -> float:
        return float(self.z_grid[1] - self.z_grid[0])

    def _cell(self, x: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = (x - grid[0]) / (grid[1] - grid[0])
        i = np.clip(np.floor(f).astype(np.int64), 0, len(grid) - 2)
        return i, np.clip(f - i, 0.0, 1.0)

    def field_rz(self, r, z) -> tuple[np.ndarray, np.ndarray]:
        """(Br, Bz) in Tesla at radii ``r`` and ``z`` (mm), bilinear; outside per ``self.outside``."""
        r = np.asarray(r, np.float64)
        z = np.asarray(z, np.float64)
        out = ((r < self.r_grid[0]) | (r > self.r_grid[-1]) | (z < self.z_grid[0]) | (z > self.z_grid[-1])
               | ~np.isfinite(r) | ~np.isfinite(z))
        if self.outside == "error" and out.any():
            k = int(np.flatnonzero(out.reshape(-1))[0])
            raise InputError(f"{self.source}: point {k} at r={r.reshape(-1)[k]}, z={z.reshape(-1)[k]} mm is outside "
                             f"the map (r {self.r_grid[0]}..{self.r_grid[-1]}, z {self.z_grid[0]}..{self.z_grid[-1]})")
        i, tr = self._cell(np.nan_to_num(r), self.r_grid)
        j, tz = self._cell(np.nan_to_num(z), self.z_grid)
        vals = []
        for a in (self.br, self.bz):
            v = ((1 - tr) * (1 - tz) * a[i, j] + tr * (1 - tz) * a[i + 1, j]
                 + (1 - tr) * tz * a[i, j + 1] + tr * tz * a[i + 1, j + 1])
            if self.outside == "zero":
                v = np.where(out, 0.0, v)
            vals.append(v)
        return vals[0], vals[1]

    def field_at(self, xyz) -> np.ndarray:
        """(N, 3) field (Bx, By, Bz) in Tesla at (N, 3) positions in mm."""
        p = _points(xyz)
        r = np.hypot(p[:, 0], p[:, 1])
        br, bz = self.field_rz(r, p[:, 2])
        # Br points along the radial unit vector; on the axis Br = 0 by symmetry.
        safe = np.where(r > 0, r, 1.0)
        return np.stack([br * p[:, 0] / safe, br * p[:, 1] / safe, bz], axis=1)

    @classmethod
    def solenoid(cls, **kwargs) -> "GridFieldMap":
        """Shortcut for :func:`solenoid_field_map`."""
        return solenoid_field_map(**kwargs)


def solenoid_field_map(bz: float = 2.0, radius: float = 1200.0, half_length: float = 2700.0,
                       edge_r: float = 100.0, edge_z: float = 600.0, r_max: float = 1500.0,
                       z_max: float = 4000.0, dr: float = 10.0, dz: float = 10.0,
                       outside: str = "zero") -> GridFieldMap:
    """A finite-solenoid model on a grid: ``bz`` (T) at the centre, smooth fall-off, divergence-free.

    ``Bz(r, z) = B0 h(r) g(z)`` with ``h = (1 - tanh((r - radius)/edge_r))/2`` and
    ``g = (tanh((z + L)/edge_z) - tanh((z - L)/edge_z))/2`` (L = ``half_length``), scaled so
    ``Bz(0, 0) = bz`` (edge_z defaults to R/2: a real coil's field falls over a length of order
    its radius, to half at the coil end); ``Br`` follows from div B = 0 on the axially symmetric field:
    ``Br(r, z) = -B0 g'(z) / r * int_0^r r' h(r') dr'``. Defaults resemble the ATLAS-like 2 T
    solenoid around the TrackML tracker (|z| < 3 m, r < 1.03 m); lengths in mm.
    """
    for name, v in (("radius", radius), ("half_length", half_length), ("edge_r", edge_r), ("edge_z", edge_z),
                    ("r_max", r_max), ("z_max", z_max), ("dr", dr), ("dz", dz)):
        if not (np.isfinite(v) and v > 0):
            raise InputError(f"solenoid_field_map: {name} must be finite and > 0, got {v}")
    if not np.isfinite(bz):
        raise InputError(f"solenoid_field_map: bz must be finite, got {bz}")
    nr, nz = int(round(r_max / dr)) + 1, int(round(2 * z_max / dz)) + 1
    r = np.linspace(0.0, (nr - 1) * dr, nr)
    z = np.linspace(-(nz - 1) * dz / 2, (nz - 1) * dz / 2, nz)
    h = 0.5 * (1 - np.tanh((r - radius) / edge_r))
    g = 0.5 * (np.tanh((z + half_length) / edge_z) - np.tanh((z - half_length) / edge_z))
    dg = 0.5 / edge_z * (np.cosh((z + half_length) / edge_z) ** -2 - np.cosh((z - half_length) / edge_z) ** -2)
    b0 = bz / (0.5 * (1 - np.tanh(-radius / edge_r)) * np.tanh(half_length / edge_z))
    # int_0^r r' h(r') dr' by the trapezoid rule on a 16x finer grid (h is smooth on edge_r >> dr/16).
    fine = np.linspace(0.0, r[-1], 16 * (nr - 1) + 1)
    hf = fine * 0.5 * (1 - np.tanh((fine - radius) / edge_r))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (hf[1:] + hf[:-1]) * np.diff(fine))])[::16]
    with np.errstate(divide="ignore", invalid="ignore"):
        h_int = np.where(r > 0, cum / np.where(r > 0, r, 1.0), 0.0)
    br = -b0 * h_int[:, None] * dg[None, :]
    bzz = b0 * h[:, None] * g[None, :]
    return GridFieldMap(r, z, br, bzz, outside=outside, source=f"solenoid({bz} T, R={radius}, L={half_length})")


def read_field_map(path: str | os.PathLike, outside: str = "zero") -> GridFieldMap:
    """Read a CSV[.gz] with columns ``r,z,Br,Bz`` (mm, Tesla), one row per grid node in any order.

    The rows must fill a regular (r, z) grid exactly once; errors name the file and the line.
    """
    cols = read_csv_columns(path, _FIELD_MAP_COLUMNS, what="field map")
    r_vals, r_idx = np.unique(cols["r"], return_inverse=True)
    z_vals, z_idx = np.unique(cols["z"], return_inverse=True)
    nr, nz = len(r_vals), len(z_vals)
    flat = r_idx * nz + z_idx
    order = np.argsort(flat, kind="stable")
    dup = np.flatnonzero(flat[order][1:] == flat[order][:-1])
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise InputError(f"{path}: grid node r={cols['r'][a]}, z={cols['z'][a]} appears on lines "
                         f"{cols['_line'][a]} and {cols['_line'][b]}")
    if len(flat) != nr * nz:
        raise InputError(f"{path}: {len(flat)} rows do not fill the {nr} x {nz} (r, z) grid of their "
                         f"distinct values ({nr * nz - len(flat)} nodes missing)")
    br = np.empty(nr * nz)
    bz = np.empty(nr * nz)
    br[flat], bz[flat] = cols["Br"], cols["Bz"]
    return GridFieldMap(r_vals, z_vals, br.reshape(nr, nz), bz.reshape(nr, nz), outside=outside,
                        source=str(path))


def write_field_map(fmap: GridFieldMap, path: str | os.PathLike) -> Path:
    """Write ``fmap`` as CSV ``r,z,Br,Bz`` (gzip when ``path`` ends in ``.gz``); atomic and exact."""
    rr, zz = np.meshgrid(fmap.r_grid, fmap.z_grid, indexing="ij")
    return write_csv_columns(path, {"r": rr.ravel(), "z": zz.ravel(), "Br": fmap.br.ravel(), "Bz": fmap.bz.ravel()})


#: Solenoid parameters (mm) of :func:`trackml_field_map`.
TRACKML_SOLENOID = {"bz": 2.0, "radius": 1200.0, "half_length": 2500.0, "edge_z": 1000.0}


def trackml_field_map() -> GridFieldMap:
    """The field of the TrackML challenge data: a 2 T solenoid that weakens towards the endcaps.

    A :func:`solenoid_field_map` fitted to the bending of the true momenta in the real TrackML event
    (the shared ``event000000001``, 643 hit pairs with pT > 0.5 GeV): per pair, the measured bending
    field ``Bz - cot(theta) Br (r.t)`` at the mid point against the model's, half-length and edge
    length on a 100 mm grid. Measured bending: ~2.0 T for |z| < 0.5 m, 1.7 T at 1-1.5 m, 1.1 T at
    1.5-2 m, <= 0.3 T beyond 2 m; a uniform 2 T field mis-predicts the forward tracks (reconstruction
    of that event: TrackML score 0.747 with 2 T, 0.789 with this map).
    """
    return solenoid_field_map(**TRACKML_SOLENOID)


#: Field names accepted by :func:`field_from_spec` besides a field-map file.
FIELD_NAMES = ("constant", "trackml")


def field_from_spec(spec: str | None):
    """A field from a run setting: "constant" (uniform 2 T, the simulation's), "trackml" (the TrackML
    data's, :func:`trackml_field_map`), or the path of a field-map file (:func:`read_field_map`)."""
    if spec is None or spec == "constant":
        return default_field()
    if spec == "trackml":
        return trackml_field_map()
    if not Path(spec).is_file():
        raise InputError(f"field {spec!r}: not one of {', '.join(FIELD_NAMES)} and no such field-map file")
    return read_field_map(spec)


def default_field() -> ConstantField:
    """The TrackML default: a uniform 2 T solenoid field along +z."""
    return ConstantField(2.0)
