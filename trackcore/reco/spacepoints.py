"""Space points: hit positions with the cylindrical coordinates and detector indices seeding needs."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

import numpy as np

from ..errors import GeometryError, InputError
from ..event.event import Event
from ..backends.arrays import namespace_of
from ..geometry.detector import Detector


@dataclass
class SpacePoints:
    """One row per hit. Lengths in mm, ``phi`` in rad in [-pi, pi].

    ``hit_index`` is the row in ``event.hits``; ``module_index`` the row in the detector's module
    table; ``layer_index`` the index into ``detector.layers``; ``volume_id`` and ``layer_id`` the
    TrackML volume and layer (-1 where unknown).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    r: np.ndarray
    phi: np.ndarray
    hit_index: np.ndarray
    module_index: np.ndarray
    layer_index: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Host numpy arrays, or device arrays when x is one (the cupy backend's chain): never mixed.
        xp = namespace_of(self.x)
        n = len(self.x)
        if self.layer_id is None:
            self.layer_id = xp.full(n, -1, xp.int64)
        for f in fields(self):
            a = xp.asarray(getattr(self, f.name))
            if a.ndim != 1 or len(a) != n:
                raise InputError(f"SpacePoints: {f.name} must be 1-D with {n} rows, got shape {a.shape}")
            dtype = xp.float64 if f.name in ("x", "y", "z", "r", "phi") else (
                xp.int32 if f.name == "volume_id" else xp.int64)
            setattr(self, f.name, xp.ascontiguousarray(a, dtype=dtype))

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index) -> "SpacePoints":
        """The rows selected by an integer index array or a boolean mask."""
        return SpacePoints(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def from_xyz(cls, x, y, z, *, layer_index, volume_id=None, module_index=None,
                 hit_index=None, layer_id=None) -> "SpacePoints":
        """Space points from global positions (mm); missing indices default to -1 (volume 0)."""
        x, y, z = (np.asarray(a, np.float64) for a in (x, y, z))
        if not (x.shape == y.shape == z.shape) or x.ndim != 1:
            raise InputError(f"SpacePoints.from_xyz: x, y, z must be 1-D of one length, got {x.shape}, {y.shape}, {z.shape}")
        _check_finite(np.column_stack([x, y, z]), "SpacePoints.from_xyz")
        n = len(x)
        fill = np.full(n, -1, np.int64)
        return cls(x, y, z, np.hypot(x, y), np.arctan2(y, x),
                   np.arange(n) if hit_index is None else hit_index,
                   fill if module_index is None else module_index, layer_index,
                   np.zeros(n, np.int32) if volume_id is None else volume_id, layer_id)

    @classmethod
    def from_event(cls, event: Event, detector: Detector, volumes: Iterable[int] | None = None) -> "SpacePoints":
        """Space points of ``event.hits`` (only those in ``volumes`` when given), in hit order.

        Raises :class:`InputError` for a non-finite coordinate (naming the row and hit_id) and
        :class:`GeometryError` for a hit on a module ``detector`` does not have (naming the hit).
        """
        hits = event.hits
        for col in ("hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"):
            if col not in hits:
                raise InputError(f"{event.name} hits: missing column {col!r}")
        rows = np.arange(len(hits))
        if volumes is not None:
            rows = rows[np.isin(hits["volume_id"], np.asarray(list(volumes)))]
        xyz = np.column_stack([np.asarray(hits[c], np.float64)[rows] for c in ("x", "y", "z")])
        _check_finite(xyz, f"{event.name} hits", rows, hits["hit_id"])
        vol, lay, mod = (np.asarray(hits[c])[rows] for c in ("volume_id", "layer_id", "module_id"))
        module_index = _module_rows(detector, vol, lay, mod, rows, hits["hit_id"], event.name)
        x, y, z = xyz.T
        return cls(x, y, z, np.hypot(x, y), np.arctan2(y, x), rows, module_index,
                   detector.layer_index(module_index), vol, lay)


def from_measurements(measurements, detector: Detector, volumes: Iterable[int] | None = None) -> SpacePoints:
    """:meth:`SpacePoints.from_event` from an event's :class:`~trackcore.reco.measurements.Measurements`
    (checked already), on the device when they are device arrays: the same rows and values."""
    from ..backends.arrays import detector_array

    xyz, module = measurements.xyz, measurements.module_index
    xp = namespace_of(xyz)
    volume_of = detector_array(detector, "volume_id", xp)
    rows = xp.arange(len(module), dtype=xp.int64)
    if volumes is not None:
        rows = xp.flatnonzero(xp.isin(volume_of[module], xp.asarray([int(v) for v in volumes])))
    module = module[rows]
    x, y, z = (xp.ascontiguousarray(xyz[rows, k]) for k in range(3))
    layer_index = detector_array(detector, "module_layer_index", xp)[module]
    return SpacePoints(x, y, z, xp.hypot(x, y), xp.arctan2(y, x), rows, module, layer_index, volume_of[module],
                       detector_array(detector, "layer_id", xp)[module])


def _check_finite(xyz: np.ndarray, where: str, rows=None, hit_id=None) -> None:
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = i if rows is None else int(rows[i])
        ident = "" if hit_id is None else f" (hit_id {int(hit_id[row])})"
        col = "xyz"[int(np.flatnonzero(~np.isfinite(xyz[i]))[0])]
        raise InputError(f"{where}: row {row}{ident} has a non-finite {col} ({xyz[i].tolist()})")


def _module_rows(detector: Detector, vol, lay, mod, rows, hit_id, where: str) -> np.ndarray:
    try:
        return detector.index(vol, lay, mod)
    except GeometryError:
        pass
    # Only on failure: find the first hit whose module is unknown, to name it.
    def pack(v, l, m):
        return (np.asarray(v, np.int64) << 40) | (np.asarray(l, np.int64) << 24) | np.asarray(m, np.int64)

    bad = ~np.isin(pack(vol, lay, mod), pack(detector.volume_id, detector.layer_id, detector.module_id))
    i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
    row = int(rows[i])
    raise GeometryError(
        f"{where} hits: row {row} (hit_id {int(hit_id[row])}) is on module (volume {int(vol[i])}, "
        f"layer {int(lay[i])}, module {int(mod[i])}) which detector {detector.name!r} does not have"
    )
