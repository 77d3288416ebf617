"""Measurements: hits in their module frames with variances, the input of the Kalman filter."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..event import Event
from ..errors import InputError
from ..geometry.detector import Detector

#: Hit resolution = pitch / sqrt(12) times this factor, with a floor (mm). The digitiser's
#: charge-weighted centroids of inclined tracks beat the binary resolution; see tests/reco/test_fit.py.
RESOLUTION_SCALE = 1.0
RESOLUTION_FLOOR = 0.002


@dataclass
class Measurements:
    """Hits of one event in the order of ``event.hits``: module row, local (u, v), variances, global xyz."""

    module_index: np.ndarray
    u: np.ndarray
    v: np.ndarray
    var_u: np.ndarray
    var_v: np.ndarray
    xyz: np.ndarray

    def __len__(self) -> int:
        return len(self.module_index)

    @classmethod
    def from_event(cls, event: Event, detector: Detector, *, resolution_scale: float = RESOLUTION_SCALE,
                   backend=None) -> "Measurements":
        hits = event.hits
        n = len(hits)
        xyz = np.stack([hits["x"], hits["y"], hits["z"]], axis=1).astype(np.float64) if n else np.zeros((0, 3))
        bad = ~np.isfinite(xyz).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"{event.name} hits: non-finite coordinates at row {row} (hit_id {hits['hit_id'][row]})")
        if n == 0:
            z = np.zeros(0)
            return cls(np.zeros(0, np.int64), z, z.copy(), z.copy(), z.copy(), xyz)
        module = detector.index(hits["volume_id"], hits["layer_id"], hits["module_id"])
        local = detector.global_to_local(module, xyz, backend=backend)
        # A hit far off its module's plane or outside its area belongs to another geometry.
        off = np.abs(local[:, 2]) > detector.thickness[module] + 1.0
        off |= ~detector.contains_local(module, np.c_[local[:, :2], np.zeros(n)], tolerance=1.0)
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise InputError(
                f"{event.name}: {int(off.sum())} hit(s) lie outside their module (first: hit_id {hits['hit_id'][row]}, "
                f"local u,v,w = {np.round(local[row], 3).tolist()} mm); is this the detector the event was made with?")
        su = np.maximum(detector.pitch_u[module] / np.sqrt(12.0) * resolution_scale, RESOLUTION_FLOOR)
        sv = np.maximum(detector.pitch_v[module] / np.sqrt(12.0) * resolution_scale, RESOLUTION_FLOOR)
        return cls(module.astype(np.int64), local[:, 0].copy(), local[:, 1].copy(), su * su, sv * sv, xyz)

    def take(self, index) -> "Measurements":
        return Measurements(self.module_index[index], self.u[index], self.v[index], self.var_u[index],
                            self.var_v[index], self.xyz[index])

    def compiled(self):
        from .._corelib import core

        return core().HitArrays(self.module_index, self.u, self.v, self.var_u, self.var_v, self.xyz)
