"""The detector: planar modules (TrackML ``detectors.csv`` layout), layers, and frame transforms."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..errors import GeometryError

#: detectors.csv columns, in file order (the optional leading index column is dropped on read).
MODULE_COLUMNS = (
    "volume_id", "layer_id", "module_id", "cx", "cy", "cz",
    "rot_xu", "rot_xv", "rot_xw", "rot_yu", "rot_yv", "rot_yw", "rot_zu", "rot_zv", "rot_zw",
    "module_t", "module_minhu", "module_maxhu", "module_hv", "pitch_u", "pitch_v",
)
#: TrackML volume ids: pixel, short-strip and long-strip endcap-/barrel/endcap+.
PIXEL_VOLUMES = (7, 8, 9)
SHORT_STRIP_VOLUMES = (12, 13, 14)
LONG_STRIP_VOLUMES = (16, 17, 18)


@dataclass(frozen=True)
class Layer:
    """A barrel cylinder or an endcap disk, with the r/z extent of its module centres."""

    volume_id: int
    layer_id: int
    kind: str  # "barrel" or "endcap"
    r_min: float
    r_max: float
    z_min: float
    z_max: float
    n_modules: int
    module_slice: slice  # rows of the (sorted) module table

    @property
    def r_mean(self) -> float:
        return 0.5 * (self.r_min + self.r_max)

    @property
    def z_mean(self) -> float:
        return 0.5 * (self.z_min + self.z_max)


@dataclass
class Detector:
    """Planar modules in columnar arrays, sorted by (volume_id, layer_id, module_id).

    Frames follow TrackML: ``global = centre + rotation @ local`` where the columns of
    ``rotation`` are the module's u, v, w axes in the global frame. ``thickness`` is the half
    thickness ``module_t``; ``min_hu``/``max_hu`` the trapezoid half widths at -hv/+hv.
    """

    volume_id: np.ndarray
    layer_id: np.ndarray
    module_id: np.ndarray
    centre: np.ndarray  # (N, 3)
    rotation: np.ndarray  # (N, 3, 3)
    thickness: np.ndarray
    min_hu: np.ndarray
    max_hu: np.ndarray
    hv: np.ndarray
    pitch_u: np.ndarray
    pitch_v: np.ndarray
    name: str = "detector"
    layers: list[Layer] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.volume_id)
        arrays = {k: np.asarray(getattr(self, k)) for k in (
            "volume_id", "layer_id", "module_id", "centre", "rotation", "thickness",
            "min_hu", "max_hu", "hv", "pitch_u", "pitch_v")}
        for k, a in arrays.items():
            if len(a) != n:
                raise GeometryError(f"{self.name}: {k} has {len(a)} rows, expected {n}")
        if n == 0:
            raise GeometryError(f"{self.name}: the detector has no modules")
        self.centre = np.ascontiguousarray(arrays["centre"], dtype=np.float64).reshape(n, 3)
        self.rotation = np.ascontiguousarray(arrays["rotation"], dtype=np.float64).reshape(n, 3, 3)
        for k in ("volume_id", "layer_id", "module_id"):
            setattr(self, k, arrays[k].astype(np.int32))
        for k in ("thickness", "min_hu", "max_hu", "hv", "pitch_u", "pitch_v"):
            setattr(self, k, arrays[k].astype(np.float64))
        self._check_values()
        order = np.lexsort((self.module_id, self.layer_id, self.volume_id))
        if not np.array_equal(order, np.arange(n)):
            for k in arrays:
                setattr(self, k, np.ascontiguousarray(getattr(self, k)[order]))
        self._keys = self._pack(self.volume_id, self.layer_id, self.module_id)
        dup = self._keys[1:] == self._keys[:-1]
        if dup.any():
            i = int(np.flatnonzero(dup)[0]) + 1
            raise GeometryError(
                f"{self.name}: duplicate module (volume {self.volume_id[i]}, layer {self.layer_id[i]}, "
                f"module {self.module_id[i]})"
            )
        self.layers = self._build_layers()

    # -- validation ------------------------------------------------------------
    def _check_values(self) -> None:
        for k in ("centre", "rotation", "thickness", "min_hu", "max_hu", "hv", "pitch_u", "pitch_v"):
            a = getattr(self, k)
            bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
            if bad.any():
                raise GeometryError(f"{self.name}: non-finite {k} at module row {int(np.flatnonzero(bad)[0])}")
        for k in ("thickness", "hv", "pitch_u", "pitch_v", "max_hu"):
            bad = getattr(self, k) <= 0
            if bad.any():
                raise GeometryError(f"{self.name}: {k} must be > 0 (module row {int(np.flatnonzero(bad)[0])})")
        # Rotations must be orthonormal and right-handed, else local<->global is meaningless.
        r = self.rotation
        err = np.abs(np.einsum("nji,njk->nik", r, r) - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(r)
        bad = (err > 1e-4) | (np.abs(det - 1) > 1e-4)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise GeometryError(
                f"{self.name}: rotation of module row {i} (volume {self.volume_id[i]}, layer {self.layer_id[i]}, "
                f"module {self.module_id[i]}) is not a proper rotation (|R^T R - 1| = {err[i]:.3g}, det = {det[i]:.4f})"
            )

    # -- lookups ------------------------------------------------------------------
    @staticmethod
    def _pack(volume, layer, module) -> np.ndarray:
        return (np.asarray(volume, np.int64) << 40) | (np.asarray(layer, np.int64) << 24) | np.asarray(module, np.int64)

    def __len__(self) -> int:
        return len(self.volume_id)

    def index(self, volume_id, layer_id, module_id) -> np.ndarray:
        """Row index of each (volume, layer, module); raises :class:`GeometryError` for unknown ids."""
        keys = self._pack(volume_id, layer_id, module_id)
        pos = np.searchsorted(self._keys, keys)
        pos_c = np.minimum(pos, len(self._keys) - 1)
        bad = self._keys[pos_c] != keys
        if np.any(bad):
            flat = np.flatnonzero(np.atleast_1d(bad))[0]
            v, l, m = (np.atleast_1d(np.asarray(a))[flat] for a in (volume_id, layer_id, module_id))
            raise GeometryError(
                f"{self.name}: unknown module (volume {v}, layer {l}, module {m}) "
                f"({int(np.count_nonzero(bad))} unknown in all)"
            )
        return pos_c.astype(np.int64)

    def layer(self, volume_id: int, layer_id: int) -> Layer:
        for lay in self.layers:
            if lay.volume_id == volume_id and lay.layer_id == layer_id:
                return lay
        raise GeometryError(f"{self.name}: no layer (volume {volume_id}, layer {layer_id})")

    @property
    def module_layer_index(self) -> np.ndarray:
        """Index into :attr:`layers` of every module row (:meth:`layer_index` of all rows)."""
        return self._module_layer

    def layer_index(self, module_index: np.ndarray) -> np.ndarray:
        """Index into :attr:`layers` of each module row."""
        return self._module_layer[np.asarray(module_index)]

    # -- transforms ----------------------------------------------------------
    def global_to_local(self, module_index, xyz, backend=None) -> np.ndarray:
        """(N, 3) global points to the local (u, v, w) frames of ``module_index``."""
        from ..backends import get_backend

        return get_backend(backend).kernel("global_to_local")(
            self.centre, self.rotation, np.asarray(module_index, np.int64), np.asarray(xyz, np.float64))

    def local_to_global(self, module_index, uvw, backend=None) -> np.ndarray:
        """(N, 3) local (u, v, w) points of ``module_index`` to global (x, y, z)."""
        from ..backends import get_backend

        return get_backend(backend).kernel("local_to_global")(
            self.centre, self.rotation, np.asarray(module_index, np.int64), np.asarray(uvw, np.float64))

    def half_width_at(self, module_index, v) -> np.ndarray:
        """Trapezoid half width in u at local v (linear from min_hu at -hv to max_hu at +hv)."""
        i = np.asarray(module_index)
        t = (np.asarray(v) + self.hv[i]) / (2 * self.hv[i])
        return self.min_hu[i] + (self.max_hu[i] - self.min_hu[i]) * t

    def contains_local(self, module_index, uvw, tolerance: float = 0.0) -> np.ndarray:
        """Whether local points lie within each module's trapezoid (and thickness)."""
        uvw = np.asarray(uvw)
        i = np.asarray(module_index)
        return ((np.abs(uvw[:, 1]) <= self.hv[i] + tolerance)
                & (np.abs(uvw[:, 0]) <= self.half_width_at(i, uvw[:, 1]) + tolerance)
                & (np.abs(uvw[:, 2]) <= self.thickness[i] + tolerance))

    # -- structure ---------------------------------------------------------------
    def _build_layers(self) -> list[Layer]:
        layer_key = (self.volume_id.astype(np.int64) << 16) | self.layer_id
        starts = np.flatnonzero(np.r_[True, layer_key[1:] != layer_key[:-1]])
        ends = np.r_[starts[1:], len(layer_key)]
        self._module_layer = np.repeat(np.arange(len(starts)), ends - starts)
        r = np.hypot(self.centre[:, 0], self.centre[:, 1])
        z = self.centre[:, 2]
        # A barrel module's normal (w) is radial, so it has no z component; an endcap's is along z.
        wz = np.abs(self.rotation[:, 2, 2])
        layers = []
        for s, e in zip(starts, ends):
            kind = "endcap" if wz[s:e].mean() > 0.5 else "barrel"
            layers.append(Layer(int(self.volume_id[s]), int(self.layer_id[s]), kind, float(r[s:e].min()),
                                float(r[s:e].max()), float(z[s:e].min()), float(z[s:e].max()), int(e - s),
                                slice(int(s), int(e))))
        return layers

    def summary(self) -> str:
        """A table of the layers: kind, module count, r and z extents (mm)."""
        lines = [f"{self.name}: {len(self)} modules in {len(self.layers)} layers, "
                 f"{len(np.unique(self.volume_id))} volumes",
                 f"{'volume':>6} {'layer':>5} {'kind':>7} {'modules':>7} {'r_min':>8} {'r_max':>8} {'z_min':>9} {'z_max':>9}"]
        for lay in self.layers:
            lines.append(f"{lay.volume_id:>6} {lay.layer_id:>5} {lay.kind:>7} {lay.n_modules:>7} "
                         f"{lay.r_min:8.1f} {lay.r_max:8.1f} {lay.z_min:9.1f} {lay.z_max:9.1f}")
        return "\n".join(lines)

    def to_columns(self) -> dict[str, np.ndarray]:
        """The module table as detectors.csv columns."""
        cols = {"volume_id": self.volume_id, "layer_id": self.layer_id, "module_id": self.module_id,
                "cx": self.centre[:, 0], "cy": self.centre[:, 1], "cz": self.centre[:, 2]}
        for r, row in enumerate("xyz"):
            for c, col in enumerate("uvw"):
                cols[f"rot_{row}{col}"] = self.rotation[:, r, c]
        cols.update(module_t=self.thickness, module_minhu=self.min_hu, module_maxhu=self.max_hu,
                    module_hv=self.hv, pitch_u=self.pitch_u, pitch_v=self.pitch_v)
        return cols

    @classmethod
    def from_columns(cls, cols: dict, name: str = "detector") -> "Detector":
        missing = [c for c in MODULE_COLUMNS if c not in cols]
        if missing:
            raise GeometryError(f"{name}: missing detector column(s) {missing}")
        rot = np.stack([np.stack([np.asarray(cols[f"rot_{r}{c}"], np.float64) for c in "uvw"], axis=-1)
                        for r in "xyz"], axis=-2)
        return cls(volume_id=np.asarray(cols["volume_id"]), layer_id=np.asarray(cols["layer_id"]),
                   module_id=np.asarray(cols["module_id"]),
                   centre=np.stack([np.asarray(cols[k], np.float64) for k in ("cx", "cy", "cz")], axis=1),
                   rotation=rot, thickness=cols["module_t"], min_hu=cols["module_minhu"],
                   max_hu=cols["module_maxhu"], hv=cols["module_hv"], pitch_u=cols["pitch_u"],
                   pitch_v=cols["pitch_v"], name=name)

    def cached_view(self, key: str, build):
        """``build(self)`` made once per Detector object and kept (e.g. the compiled core's geometry)."""
        views = self.__dict__.setdefault("_views", {})
        if key not in views:
            views[key] = build(self)
        return views[key]

    def without_views(self) -> "Detector":
        """A shallow copy without the cached views (some cannot be pickled, e.g. for Dask workers)."""
        out = copy.copy(self)
        out.__dict__.pop("_views", None)
        return out

    def with_modules(self, centre: np.ndarray, rotation: np.ndarray, name: str | None = None) -> "Detector":
        """A copy with moved/rotated modules (same order), e.g. a misaligned detector."""
        return Detector(self.volume_id, self.layer_id, self.module_id, centre, rotation, self.thickness,
                        self.min_hu, self.max_hu, self.hv, self.pitch_u, self.pitch_v, name=name or self.name)
