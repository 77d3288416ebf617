"""Digitisation and clustering: module crossings -> cells -> hits (TrackML ``hits``/``cells`` layout).

Each crossing's straight path from entry to exit is projected on the module's (u, v) plane and its
charge (``edep`` / 3.6 eV per electron-hole pair) is shared among the cells that projection crosses,
in proportion to the length inside each (exact segment/grid traversal). Cells of all crossings on a
module add up; each fired cell gets Gaussian readout noise and must pass its technology's threshold.
Fired cells are grouped into 8-connected clusters; a hit is the value-weighted centroid of its cells'
centres, taken to global coordinates by the module transform.

Cell ``value`` scale. In the TrackML files a pixel cell's value is the particle's path length in the
cell in mm (event000000001: endcap clusters sum to 0.30 = the 0.3 mm sensor thickness at any incidence
angle; barrel clusters to half the path, a quirk of that simulation), and every strip cell has value 1.
Here an analogue (pixel) value is ``charge / MIP_ELECTRONS_PER_MM``, the "MIP-equivalent path length"
in mm: with the mean energy loss of a minimum-ionising particle it equals the TrackML scale (~0.3 per
perpendicular pixel crossing). Binary (strip) readout writes 1.0.

Channels: ``ch0 = floor((u + max_hu) / pitch_u)``, ``ch1 = floor((v + hv) / pitch_v)``. Charge from
parts of a path that lie outside the module's trapezoid is lost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backends import get_backend
from ..backends.arrays import namespace_of
from ..errors import InputError
from ..event.schema import CELLS, HITS
from ..event.table import Table
from ..geometry.detector import Detector

#: 1 / (3.6 eV): electron-hole pairs per GeV deposited in silicon.
ELECTRONS_PER_GEV = 1.0 / 3.6e-9
#: Mean energy loss of a MIP in silicon (3.88 MeV/cm) in electrons per mm of path.
MIP_ELECTRONS_PER_MM = 1.08e5
#: Breaks of a segment closer than this (in its [0, 1] parameter) make no piece; must match csrc.
MIN_PIECE = 1e-12
#: A projected displacement (mm) at or below this counts as none; must match csrc.
MIN_STEP = 1e-12
CROSSING_KEYS = ("module_index", "particle_index", "u0", "v0", "w0", "u1", "v1", "w1", "edep")
_SHIFT = 21  # bits per channel index when packing (module, ch0, ch1) into one int64 key
_MAX_CELLS_PER_AXIS = float(1 << _SHIFT)  # channels 0 .. 2^21 - 1 along u and along v


@dataclass(frozen=True)
class ReadoutConfig:
    """One readout technology. ``threshold_e``/``noise_e`` in electrons; ``binary`` writes value 1."""

    threshold_e: float
    noise_e: float
    binary: bool = False

    def __post_init__(self) -> None:
        for k in ("threshold_e", "noise_e"):
            v = getattr(self, k)
            if not np.isfinite(v) or v < 0:
                raise InputError(f"ReadoutConfig.{k} = {v} must be finite and >= 0 (electrons)")


@dataclass
class DigitizationConfig:
    """Readout per technology, with per-volume overrides.

    Defaults: hybrid pixels with a 1000 e- threshold and 100 e- noise (ENC), analogue (the ITk/CMS
    Phase-2 pixel range is 600-1200 e-); strips with binary readout, a 1 fC = 6240 e- threshold and
    1000 e- noise (ATLAS SCT/ITk strips). A module is a strip module when ``pitch_v > strip_aspect *
    pitch_u`` (TrackML strips: 0.08 x 1.2 mm and longer), so the rule needs no volume numbering;
    ``volume_overrides`` maps a volume_id to its own :class:`ReadoutConfig` and wins over it.
    """

    pixel: ReadoutConfig = field(default_factory=lambda: ReadoutConfig(1000.0, 100.0, binary=False))
    strip: ReadoutConfig = field(default_factory=lambda: ReadoutConfig(6240.0, 1000.0, binary=True))
    volume_overrides: dict[int, ReadoutConfig] = field(default_factory=dict)
    strip_aspect: float = 4.0
    electrons_per_gev: float = ELECTRONS_PER_GEV
    #: cell value per electron (analogue readout): value = MIP-equivalent path length in mm.
    value_per_electron: float = 1.0 / MIP_ELECTRONS_PER_MM

    def __post_init__(self) -> None:
        for k in ("strip_aspect", "electrons_per_gev", "value_per_electron"):
            v = getattr(self, k)
            if not np.isfinite(v) or v <= 0:
                raise InputError(f"DigitizationConfig.{k} = {v} must be finite and > 0")
        for k, ro in [("pixel", self.pixel), ("strip", self.strip)] + [
                (f"volume_overrides[{vol}]", ro) for vol, ro in self.volume_overrides.items()]:
            if not isinstance(ro, ReadoutConfig):
                raise InputError(f"DigitizationConfig.{k} must be a ReadoutConfig, got {type(ro).__name__}")

    def module_readout(self, detector: Detector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per module row: threshold (e-), noise (e-), binary flag."""
        strip = detector.pitch_v > self.strip_aspect * detector.pitch_u
        thr = np.where(strip, self.strip.threshold_e, self.pixel.threshold_e)
        noise = np.where(strip, self.strip.noise_e, self.pixel.noise_e)
        binary = np.where(strip, self.strip.binary, self.pixel.binary)
        for vol, ro in self.volume_overrides.items():
            sel = detector.volume_id == vol
            thr[sel], noise[sel], binary[sel] = ro.threshold_e, ro.noise_e, ro.binary
        return thr, noise, binary.astype(bool)


@dataclass
class DigitizedHits:
    """Hits and cells in TrackML layout, plus per-hit links back to the simulation.

    ``hit_particle_index``: the particle (index as given in the crossings) with most true charge in
    the hit, -1 for noise; ``hit_crossing_index``: that particle's crossing record (row of the
    crossings arrays) with most charge in the hit, -1 for noise; ``hit_module_index``: Detector row;
    ``hit_local``: (N, 2) local (u, v) of the hit in mm; ``hit_charge``: measured charge (electrons).
    """

    hits: Table
    cells: Table
    hit_particle_index: np.ndarray
    hit_crossing_index: np.ndarray
    hit_module_index: np.ndarray
    hit_local: np.ndarray
    hit_charge: np.ndarray

    def __len__(self) -> int:
        return len(self.hits)

    @classmethod
    def concat(cls, parts: list["DigitizedHits"], first_hit_id: int = 1) -> "DigitizedHits":
        """Parts one after another, hit_ids renumbered first_hit_id.. in that order."""
        offsets = np.cumsum([0] + [len(p) for p in parts])
        hits = {k: np.concatenate([p.hits[k] for p in parts]) for k in HITS}
        hits["hit_id"] = np.arange(first_hit_id, first_hit_id + offsets[-1], dtype=np.int64)
        cells = {k: np.concatenate([p.cells[k] for p in parts]) for k in CELLS}
        # Each part numbers its hits from some first id; shift to the new numbering part by part.
        cells["hit_id"] = np.concatenate([p.cells["hit_id"] - (p.hits["hit_id"][0] if len(p) else 0)
                                          + first_hit_id + off for p, off in zip(parts, offsets)]).astype(np.int64)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return cls(Table(hits, name="hits"), Table(cells, name="cells"), cat("hit_particle_index"),
                   cat("hit_crossing_index"), cat("hit_module_index"),
                   np.concatenate([p.hit_local.reshape(-1, 2) for p in parts]), cat("hit_charge"))


# -- numpy reference kernels (csrc/src/digitization.cpp is the compiled twin) ---------------------------
def _line_crossings(p0: float, d: float, origin: float, pitch: float, ta: float, tb: float) -> np.ndarray:
    """Parameters t in (ta, tb) where p0 + t d crosses a grid line origin + k pitch."""
    if abs(d) <= MIN_STEP:
        return np.empty(0)
    pa, pb = p0 + ta * d, p0 + tb * d
    lo, hi = min(pa, pb), max(pa, pb)
    k = np.arange(np.floor((lo - origin) / pitch) + 1, np.ceil((hi - origin) / pitch) - 1 + 0.5)
    t = ((origin + k * pitch) - p0) / d
    return t[(t > ta) & (t < tb)]


def _deposit_one(seg: np.ndarray, charge: float, shape: np.ndarray):
    """(ch0, ch1, charge) of the pieces of one projected segment, in traversal order."""
    u0, v0, u1, v1 = (float(x) for x in seg)
    min_hu, max_hu, hv, pu, pv = (float(x) for x in shape)
    du, dv = u1 - u0, v1 - v0
    ta, tb = 0.0, 1.0
    for p0, d, half in ((u0, du, max(min_hu, max_hu)), (v0, dv, hv)):  # clip to the bounding box
        if abs(d) <= MIN_STEP:
            if abs(p0) > half:
                return None
        else:
            t1, t2 = (-half - p0) / d, (half - p0) / d
            ta, tb = max(ta, min(t1, t2)), min(tb, max(t1, t2))
    if not ta < tb:
        return None
    breaks = np.sort(np.concatenate(([ta], _line_crossings(u0, du, -max_hu, pu, ta, tb),
                                     _line_crossings(v0, dv, -hv, pv, ta, tb), [tb])))
    a, b = breaks[:-1], breaks[1:]
    dt = b - a
    tm = (a + b) * 0.5
    u, v = u0 + tm * du, v0 + tm * dv
    hw = min_hu + (max_hu - min_hu) * ((v + hv) / (2.0 * hv))
    c0, c1 = np.floor((u + max_hu) / pu), np.floor((v + hv) / pv)
    n0, n1 = np.ceil(2.0 * max_hu / pu - 1e-9), np.ceil(2.0 * hv / pv - 1e-9)
    ok = (dt > MIN_PIECE) & (np.abs(v) <= hv) & (np.abs(u) <= hw) & (c0 >= 0) & (c0 < n0) & (c1 >= 0) & (c1 < n1)
    return c0[ok].astype(np.int64), c1[ok].astype(np.int64), charge * dt[ok]


def _check_kernel_inputs(module_index, segments, charge, shapes) -> None:
    """The checks of kernel ``digitize_segments`` (host or device arrays, as InputError)."""
    xp = namespace_of(segments, shapes)
    if shapes.ndim != 2 or shapes.shape[1] != 5:
        raise InputError(f"shapes must be (n_modules, 5) min_hu, max_hu, hv, pitch_u, pitch_v; got {shapes.shape}")
    if segments.ndim != 2 or segments.shape[1] != 4:
        raise InputError(f"segments must be (n, 4) u0, v0, u1, v1; got {segments.shape}")
    n = len(segments)
    for name, a in (("module_index", module_index), ("charge", charge)):
        if a.shape != (n,):
            raise InputError(f"{name} must have shape ({n},), got {a.shape}")
    if not bool(xp.isfinite(shapes).all()) or bool((shapes[:, 1:] <= 0).any()) or bool((shapes[:, 0] < 0).any()):
        raise InputError("shapes must be finite and > 0 (>= 0 for min_hu)")
    # Channels must fit the 21 bits cluster_cells accepts; this also bounds the pieces per segment
    # (a 1e-300 mm pitch would loop without bound). Same formulae as the compiled twin.
    with np.errstate(over="ignore"):
        cells_u = xp.ceil(2.0 * xp.maximum(shapes[:, 0], shapes[:, 1]) / shapes[:, 3] - 1e-9)
        cells_v = xp.ceil(2.0 * shapes[:, 2] / shapes[:, 4] - 1e-9)
    bad = ~((cells_u <= _MAX_CELLS_PER_AXIS) & (cells_v <= _MAX_CELLS_PER_AXIS))
    if bool(bad.any()):
        m = int(xp.flatnonzero(bad)[0])
        raise InputError(f"shapes[{m}]: pitch_u = {float(shapes[m, 3]):g} mm, pitch_v = {float(shapes[m, 4]):g} mm give "
                         f"{float(cells_u[m]):g} x {float(cells_v[m]):g} cells; at most 2^21 per axis")
    bad = (module_index < 0) | (module_index >= len(shapes))
    if bool(bad.any()):
        i = int(xp.flatnonzero(bad)[0])
        raise InputError(f"module_index[{i}] = {int(module_index[i])} is outside [0, {len(shapes)})")
    if not bool(xp.isfinite(segments).all()):
        raise InputError(f"segments row {int(xp.flatnonzero(~xp.isfinite(segments).all(1))[0])} is not finite")
    bad = ~xp.isfinite(charge) | (charge < 0)
    if bool(bad.any()):
        raise InputError(f"charge[{int(xp.flatnonzero(bad)[0])}] must be finite and >= 0")


def digitize_segments_numpy(module_index, segments, charge, shapes):
    """Numpy reference of kernel ``digitize_segments``: (crossing, ch0, ch1, charge) per cell piece."""
    module_index = np.asarray(module_index, np.int64)
    segments, charge, shapes = (np.asarray(a, np.float64) for a in (segments, charge, shapes))
    _check_kernel_inputs(module_index, segments, charge, shapes)
    parts = []
    for i in range(len(segments)):
        r = _deposit_one(segments[i], float(charge[i]), shapes[module_index[i]])
        if r is not None and len(r[0]):
            parts.append((np.full(len(r[0]), i, np.int64),) + r)
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return tuple(np.concatenate(col) for col in zip(*parts))


def cluster_cells_numpy(module, ch0, ch1) -> np.ndarray:
    """Numpy reference of kernel ``cluster_cells``: 8-connected cluster label of each cell.

    Cells must be sorted by (module, ch0, ch1) without duplicates; labels 0..K-1 follow the order of
    each cluster's first cell.
    """
    module, ch0, ch1 = (np.asarray(a, np.int64) for a in (module, ch0, ch1))
    if module.ndim != 1 or ch0.shape != module.shape or ch1.shape != module.shape:
        raise InputError(f"module, ch0, ch1 must be 1-D of one length; got {module.shape}, {ch0.shape}, {ch1.shape}")
    lim = 1 << _SHIFT
    if len(module) and (min(module.min(), ch0.min(), ch1.min()) < 0 or max(module.max(), ch0.max(), ch1.max()) >= lim):
        raise InputError("cell module/ch0/ch1 outside [0, 2^21)")
    key = (module << (2 * _SHIFT)) | (ch0 << _SHIFT) | ch1
    if (np.diff(key) <= 0).any():
        i = int(np.flatnonzero(np.diff(key) <= 0)[0]) + 1
        raise InputError(f"cells must be sorted by (module, ch0, ch1) without duplicates; cell {i} is not after cell {i - 1}")
    src, dst = [], []
    for d0, d1 in ((0, 1), (1, -1), (1, 0), (1, 1)):
        a, b = ch0 + d0, ch1 + d1
        # A neighbour outside [0, 2^21) does not exist; packing it would carry into the next field
        # (channel 2^21 of row a is channel 0 of row a + 1).
        inside = (b >= 0) & (b < lim) & (a < lim)
        target = (module << (2 * _SHIFT)) | (np.where(inside, a, 0) << _SHIFT) | np.where(inside, b, 0)
        pos = np.minimum(np.searchsorted(key, target), max(len(key) - 1, 0))
        hit = inside & (key[pos] == target) if len(key) else np.zeros(0, bool)
        src.append(np.flatnonzero(hit))
        dst.append(pos[hit])
    src, dst = np.concatenate(src), np.concatenate(dst)
    label = np.arange(len(key))
    while True:  # min-label propagation with pointer jumping: each cell ends at its cluster's first cell
        new = label.copy()
        np.minimum.at(new, src, label[dst])
        np.minimum.at(new, dst, label[src])
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    return np.unique(label, return_inverse=True)[1].astype(np.int64)


# -- public API -------------------------------------------------------------------------------------------
def _validate_crossings(detector: Detector, crossings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [k for k in CROSSING_KEYS if k not in crossings]
    if missing:
        raise InputError(f"crossings: missing key(s) {missing} (need {', '.join(CROSSING_KEYS)})")
    out = {k: np.asarray(crossings[k]) for k in CROSSING_KEYS}
    n = len(out["module_index"]) if out["module_index"].ndim == 1 else -1
    for k, a in out.items():
        if a.ndim != 1 or len(a) != n:
            raise InputError(f"crossings[{k!r}]: must be 1-D with the length of module_index, got shape {a.shape}")
        if k.endswith("index"):
            if a.dtype.kind not in "iu":
                raise InputError(f"crossings[{k!r}]: must be integers, got dtype {a.dtype}")
            out[k] = a.astype(np.int64)
        else:
            out[k] = a.astype(np.float64)
            bad = ~np.isfinite(out[k])
            if bad.any():
                raise InputError(f"crossings[{k!r}]: non-finite value at row {int(np.flatnonzero(bad)[0])}")
    bad = (out["module_index"] < 0) | (out["module_index"] >= len(detector))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"crossings['module_index'][{i}] = {out['module_index'][i]} is not a row of "
                         f"{detector.name} (0..{len(detector) - 1})")
    bad = out["edep"] < 0
    if bad.any():
        raise InputError(f"crossings['edep']: negative energy at row {int(np.flatnonzero(bad)[0])}")
    return out


def _module_shapes(detector: Detector) -> np.ndarray:
    return np.stack([detector.min_hu, detector.max_hu, detector.hv, detector.pitch_u, detector.pitch_v], axis=1)


def _assemble(detector: Detector, mod, ch0, ch1, value, charge, label, backend, first_hit_id: int):
    """Hits (value-weighted centroid of cell centres) and cells tables from labelled cells."""
    n_hits = int(label.max()) + 1 if len(label) else 0
    u = -detector.max_hu[mod] + (ch0 + 0.5) * detector.pitch_u[mod]
    v = -detector.hv[mod] + (ch1 + 0.5) * detector.pitch_v[mod]
    wsum = np.bincount(label, weights=value, minlength=n_hits)
    local = np.zeros((n_hits, 3))
    local[:, 0] = np.bincount(label, weights=value * u, minlength=n_hits) / wsum
    local[:, 1] = np.bincount(label, weights=value * v, minlength=n_hits) / wsum
    hit_mod = np.zeros(n_hits, np.int64)
    hit_mod[label] = mod
    be = get_backend(backend)
    xyz = be.to_numpy(be.kernel("local_to_global")(detector.centre, detector.rotation, hit_mod, local))
    hit_id = np.arange(first_hit_id, first_hit_id + n_hits, dtype=np.int64)
    hits = Table({"hit_id": hit_id, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                  "volume_id": detector.volume_id[hit_mod], "layer_id": detector.layer_id[hit_mod],
                  "module_id": detector.module_id[hit_mod]}, name="hits")
    order = np.argsort(label, kind="stable")  # cells grouped by hit, each in (ch0, ch1) order
    cells = Table({"hit_id": hit_id[label[order]], "ch0": ch0[order].astype(np.int32),
                   "ch1": ch1[order].astype(np.int32), "value": value[order].astype(np.float64)}, name="cells")
    return hits, cells, hit_mod, local[:, :2], np.bincount(label, weights=charge, minlength=n_hits)


def _order_by(major: np.ndarray, minor: np.ndarray, bits: int = 31) -> np.ndarray:
    """Stable order by (major, minor); one packed int64 argsort when both fit in ``bits`` bits (faster)."""
    if len(major) and min(major.min(), minor.min()) >= 0 and major.max() < (1 << (62 - bits)) and minor.max() < (
            1 << bits):
        return np.argsort((major << bits) | minor, kind="stable")
    return np.lexsort((minor, major))


def _majority(group: np.ndarray, item: np.ndarray, weight: np.ndarray, n_groups: int):
    """Per group: the item with the largest summed weight (ties: smallest item)."""
    out = np.full(n_groups, -1, np.int64)
    if not len(group):
        return out
    order = _order_by(group, item)
    g, it, w = group[order], item[order], weight[order]
    start = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (it[1:] != it[:-1])])
    g, it, s = g[start], it[start], np.add.reduceat(w, start)
    # (group, item) pairs are in increasing order: per group, the first item whose sum is the group's
    # largest is the answer (ties: the smallest item), found without sorting again.
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    is_best = s == np.repeat(np.maximum.reduceat(s, group_start), np.diff(np.r_[group_start, len(s)]))
    best = np.flatnonzero(is_best)
    first = best[np.r_[True, g[best][1:] != g[best][:-1]]]
    out[g[first]] = it[first]
    return out


def digitize(detector: Detector, crossings: dict[str, np.ndarray], config: DigitizationConfig | None = None,
             rng: np.random.Generator | None = None, backend=None, first_hit_id: int = 1) -> DigitizedHits:
    """Cells and clustered hits from module crossings.

    ``crossings`` holds equal-length 1-D arrays, one row per crossing of a sensitive module:
    ``module_index`` (Detector row), ``particle_index`` (caller's particle row), ``u0, v0, w0`` entry and
    ``u1, v1, w1`` exit point in the module's local frame (mm; w = -/+ module_t), ``edep`` deposited
    energy (GeV). ``rng`` draws the readout noise; ``None`` means noise-free. ``backend`` picks the
    kernels (numpy reference or compiled cpu); both give identical cells. Hit ids run from
    ``first_hit_id`` in (module row, first cell) order.
    """
    config = config or DigitizationConfig()
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise InputError(f"digitize: rng must be a numpy Generator or None, got {type(rng).__name__}")
    c = _validate_crossings(detector, crossings)
    be = get_backend(backend)
    seg = np.stack([c["u0"], c["v0"], c["u1"], c["v1"]], axis=1)
    xc, ch0, ch1, q = (be.to_numpy(a) for a in be.kernel("digitize_segments")(
        c["module_index"], seg, c["edep"] * config.electrons_per_gev, _module_shapes(detector)))
    mod = c["module_index"][xc]
    # Merge the pieces of all crossings into cells: sort by (module, ch0, ch1), one row per cell.
    # The kernel emits pieces in crossing order, so a stable sort keeps that order within a cell.
    order = _order_by(mod, (ch0 << _SHIFT) | ch1, bits=2 * _SHIFT) if len(mod) and max(ch0.max(), ch1.max()) < (
        1 << _SHIFT) else np.lexsort((xc, ch1, ch0, mod))
    xc, ch0, ch1, q, mod = xc[order], ch0[order], ch1[order], q[order], mod[order]
    new_cell = np.r_[True, (mod[1:] != mod[:-1]) | (ch0[1:] != ch0[:-1]) | (ch1[1:] != ch1[:-1])] if len(mod) else \
        np.zeros(0, bool)
    cell_of = np.cumsum(new_cell) - 1
    first = np.flatnonzero(new_cell)
    cmod, cch0, cch1 = mod[first], ch0[first], ch1[first]
    true_q = np.bincount(cell_of, weights=q, minlength=len(first))
    thr, noise, binary = config.module_readout(detector)
    meas_q = true_q + (rng.standard_normal(len(first)) * noise[cmod] if rng is not None else 0.0)
    keep = (meas_q > 0) & (meas_q >= thr[cmod])
    kept = np.flatnonzero(keep)
    cmod, cch0, cch1, meas_q = cmod[kept], cch0[kept], cch1[kept], meas_q[kept]
    label = np.asarray(be.to_numpy(be.kernel("cluster_cells")(cmod, cch0, cch1)), np.int64)
    value = np.where(binary[cmod], 1.0, meas_q * config.value_per_electron)
    hits, cells, hit_mod, local, hit_q = _assemble(detector, cmod, cch0, cch1, value, meas_q, label, backend,
                                                   first_hit_id)
    # Truth: the particle with most true charge in the hit, then its crossing with most charge there.
    cell_label = np.full(len(first), -1, np.int64)
    cell_label[kept] = label
    hit_of = cell_label[cell_of]
    live = hit_of >= 0
    h, xl, ql = hit_of[live], xc[live], q[live]
    pl = c["particle_index"][xl]
    best_particle = _majority(h, pl, ql, len(hits))
    mine = pl == best_particle[h]
    best_crossing = _majority(h[mine], xl[mine], ql[mine], len(hits))
    return DigitizedHits(hits, cells, best_particle, best_crossing, hit_mod, local, hit_q)


def noise_hits(detector: Detector, rng: np.random.Generator, n_or_fraction: int | float, n_signal_hits: int = 0,
               config: DigitizationConfig | None = None, max_cells: int = 3, first_hit_id: int = 1,
               backend=None) -> DigitizedHits:
    """Random small clusters (1..max_cells cells) on modules drawn with probability proportional to area.

    ``n_or_fraction``: an int is the number of noise hits; a float in [0, 1) the fraction of noise in
    the final hit set, given ``n_signal_hits`` (TrackML events have ~0.15). Cell charges are the
    threshold plus an exponential tail (scale max(3 noise, threshold / 5)); truth links are -1.
    """
    config = config or DigitizationConfig()
    if isinstance(n_or_fraction, (bool, np.bool_)) or not isinstance(n_or_fraction, (int, np.integer, float)):
        raise InputError(f"noise_hits: n_or_fraction must be an int or a float, got {n_or_fraction!r}")
    if isinstance(n_or_fraction, (int, np.integer)):
        if n_or_fraction < 0:
            raise InputError(f"noise_hits: number of noise hits {n_or_fraction} must be >= 0")
        n = int(n_or_fraction)
    else:
        if not 0.0 <= n_or_fraction < 1.0:
            raise InputError(f"noise_hits: noise fraction {n_or_fraction} must be in [0, 1)")
        n = int(round(n_or_fraction / (1.0 - n_or_fraction) * n_signal_hits))
    if max_cells < 1:
        raise InputError(f"noise_hits: max_cells = {max_cells} must be >= 1")
    area = 2.0 * detector.hv * (detector.min_hu + detector.max_hu)
    mod = np.sort(rng.choice(len(detector), size=n, p=area / area.sum()))
    # Uniform seed points in each trapezoid by rejection from its bounding box.
    u, v = np.empty(n), np.empty(n)
    todo = np.arange(n)
    while len(todo):
        m = mod[todo]
        uu = rng.uniform(-1, 1, len(todo)) * np.maximum(detector.min_hu[m], detector.max_hu[m])
        vv = rng.uniform(-1, 1, len(todo)) * detector.hv[m]
        ok = np.abs(uu) <= detector.half_width_at(m, vv)
        u[todo[ok]], v[todo[ok]] = uu[ok], vv[ok]
        todo = todo[~ok]
    ch0 = np.floor((u + detector.max_hu[mod]) / detector.pitch_u[mod]).astype(np.int64)
    ch1 = np.floor((v + detector.hv[mod]) / detector.pitch_v[mod]).astype(np.int64)
    # Extra cells are random 8-neighbours of the seed, so each noise cluster stays connected.
    size = 1 + rng.binomial(max_cells - 1, 0.3, n)
    hit = np.repeat(np.arange(n), size)
    is_seed = np.r_[True, hit[1:] != hit[:-1]] if len(hit) else np.zeros(0, bool)
    offset = rng.integers(-1, 2, (len(hit), 2))
    offset[is_seed] = 0
    cm, c0, c1 = mod[hit], ch0[hit] + offset[:, 0], ch1[hit] + offset[:, 1]
    cu = -detector.max_hu[cm] + (c0 + 0.5) * detector.pitch_u[cm]
    cv = -detector.hv[cm] + (c1 + 0.5) * detector.pitch_v[cm]
    ok = is_seed | (detector.contains_local(cm, np.stack([cu, cv, np.zeros_like(cu)], axis=1)) & (c0 >= 0) & (c1 >= 0))
    hit, cm, c0, c1 = hit[ok], cm[ok], c0[ok], c1[ok]
    order = np.lexsort((c1, c0, hit))
    hit, cm, c0, c1 = hit[order], cm[order], c0[order], c1[order]
    dup = np.r_[False, (hit[1:] == hit[:-1]) & (c0[1:] == c0[:-1]) & (c1[1:] == c1[:-1])] if len(hit) else np.zeros(0, bool)
    hit, cm, c0, c1 = hit[~dup], cm[~dup], c0[~dup], c1[~dup]
    thr, noise, binary = config.module_readout(detector)
    charge = thr[cm] + rng.exponential(np.maximum(3.0 * noise[cm], thr[cm] / 5.0) + 1e-9)
    value = np.where(binary[cm], 1.0, charge * config.value_per_electron)
    hits, cells, hit_mod, local, hit_q = _assemble(detector, cm, c0, c1, value, charge, hit, backend, first_hit_id)
    minus = np.full(n, -1, np.int64)
    return DigitizedHits(hits, cells, minus, minus.copy(), hit_mod, local, hit_q)
