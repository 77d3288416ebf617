"""Measurements: hits in their module frames with variances, the input of the Kalman filter."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..event import Event, Table
from ..errors import InputError
from ..geometry.detector import LONG_STRIP_VOLUMES, PIXEL_VOLUMES, SHORT_STRIP_VOLUMES, Detector

#: Hit resolution scale (multiplies every sigma).
RESOLUTION_SCALE = 1.0

#: Centroid resolution in units of the pitch, by (technology, layer kind) and axis, for clusters
#: 1, 2, ... 6 (6: or more) cells wide along that axis: the 68.3 % quantile of |hit - true crossing|
#: (a Gaussian's sigma; it keeps the moderate tails that a clipped RMS hides, and for a flat
#: one-cell residual it is 0.34 pitch rather than 0.29).
#: Made by ``calibrate_cluster_resolution(trackml_like_detector(), events)`` on three <mu> = 200
#: minimum-bias events (simulate_event seeds 1001-1003, default SimulationConfig): the environment
#: reconstruction runs in. Low-pT particles cross modules at large angles, so a 2-strip cluster there
#: is a normal, not a lucky, crossing: the table differs from isolated muons' by up to 6x.
CLUSTER_RESOLUTION: dict[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...]]] = {
    ("long_strip", "barrel"): ((0.221, 0.229, 0.211, 0.205, 0.219, 0.231), (0.337, 0.168, 0.168, 0.168, 0.168, 0.168)),
    ("long_strip", "endcap"): ((0.189, 0.226, 0.219, 0.222, 0.226, 0.223), (0.335, 0.164, 0.164, 0.164, 0.164, 0.164)),
    ("pixel", "barrel"): ((0.236, 0.096, 0.033, 0.023, 0.017, 0.014), (0.223, 0.062, 0.031, 0.022, 0.018, 0.016)),
    ("pixel", "endcap"): ((0.321, 0.239, 0.033, 0.022, 0.022, 0.031), (0.222, 0.13, 0.035, 0.023, 0.021, 0.026)),
    ("short_strip", "barrel"): ((0.234, 0.217, 0.21, 0.218, 0.235, 0.239), (0.28, 0.123, 0.123, 0.123, 0.123, 0.123)),
    ("short_strip", "endcap"): ((0.26, 0.174, 0.212, 0.226, 0.241, 0.245), (0.32, 0.083, 0.083, 0.083, 0.083, 0.083)),
}
#: Smallest hit sigma (mm) for reconstruction in pile-up: long pixel clusters have a ~1 um core but
#: tails of tens of um (delta rays, cells lost at edges or thresholds, merged clusters); a filter that
#: trusts the core rejects those hits or is pulled by them. 8 um (pitch / 7) keeps their pulls sane.
RESOLUTION_FLOOR = 0.008

#: The same table for isolated muons (pT 0.5-20 GeV): RMS of centroid - truth after dropping
#: residuals beyond 5 robust sigmas, made by calibrate_cluster_resolution(..., estimator="clipped_rms")
#: on 4 x 2000 muons (|eta| < 2.5 for seeds 0, 1 and < 3 for seeds 2, 3; vertex sigma 15 um x 15 um x
#: 5.5 mm). The right error model for single-particle studies (the fit-pull tests use it).
ISOLATED_MUON_RESOLUTION: dict[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Made by calibrate_cluster_resolution() on 4 x 2000 muons (pT 0.5-20 GeV; |eta| < 2.5 for seeds 0, 1
    # and < 3 for seeds 2, 3; vertex sigma 15 um x 15 um x 5.5 mm) through trackml_like_detector() with the
    # default SimulationConfig: RMS of centroid - truth in pitch units for cluster widths 1..6 (6: or
    # wider); sparse widths repeat the narrower value.
    ("long_strip", "barrel"): ((0.198, 0.133, 0.133, 0.133, 0.133, 0.133), (0.285, 0.285, 0.285, 0.285, 0.285, 0.285)),
    ("long_strip", "endcap"): ((0.258, 0.099, 0.099, 0.099, 0.099, 0.099), (0.283, 0.283, 0.283, 0.283, 0.283, 0.283)),
    ("pixel", "barrel"): ((0.198, 0.139, 0.139, 0.139, 0.139, 0.139), (0.203, 0.076, 0.031, 0.025, 0.022, 0.019)),
    ("pixel", "endcap"): ((0.28, 0.258, 0.258, 0.258, 0.258, 0.258), (0.113, 0.063, 0.031, 0.031, 0.031, 0.031)),
    ("short_strip", "barrel"): ((0.192, 0.131, 0.131, 0.131, 0.131, 0.131), (0.244, 0.126, 0.126, 0.126, 0.126, 0.126)),
    ("short_strip", "endcap"): ((0.276, 0.034, 0.034, 0.034, 0.034, 0.034), (0.268, 0.032, 0.032, 0.032, 0.032, 0.032)),
}
#: Hit sigma floor (mm) that goes with :data:`ISOLATED_MUON_RESOLUTION`.
ISOLATED_MUON_FLOOR = 0.001


@dataclass(frozen=True)
class HitErrorModel:
    """Hit errors: a resolution table (see :data:`CLUSTER_RESOLUTION`) and a sigma floor in mm."""

    table: dict
    floor: float


#: For events with pile-up (the default of reconstruction).
PILEUP_ERRORS = HitErrorModel(CLUSTER_RESOLUTION, RESOLUTION_FLOOR)
#: For isolated single particles (muon guns, fit validation).
ISOLATED_MUON_ERRORS = HitErrorModel(ISOLATED_MUON_RESOLUTION, ISOLATED_MUON_FLOOR)
#: The error models by the names a run configuration uses.
HIT_ERROR_MODELS = {"pileup": PILEUP_ERRORS, "isolated_muon": ISOLATED_MUON_ERRORS}


def hit_error_model(spec: "str | HitErrorModel | None") -> HitErrorModel:
    """A :class:`HitErrorModel` from a name of :data:`HIT_ERROR_MODELS`, a model, or None (pile-up)."""
    if spec is None:
        return PILEUP_ERRORS
    if isinstance(spec, HitErrorModel):
        return spec
    if spec not in HIT_ERROR_MODELS:
        raise InputError(f"hit errors {spec!r}: not one of {', '.join(HIT_ERROR_MODELS)}")
    return HIT_ERROR_MODELS[spec]
#: Without cells (or for volumes outside the TrackML numbering): the binary resolution.
BINARY_RESOLUTION = 1.0 / np.sqrt(12.0)
_TECHNOLOGY = {**{v: "pixel" for v in PIXEL_VOLUMES}, **{v: "short_strip" for v in SHORT_STRIP_VOLUMES},
               **{v: "long_strip" for v in LONG_STRIP_VOLUMES}}


def cluster_widths(hits: Table, cells: Table | None) -> np.ndarray:
    """(N, 2) number of cells spanned along u (ch0) and v (ch1) by each hit's cluster; 0 without cells."""
    out = np.zeros((len(hits), 2), np.int64)
    if cells is None or len(cells) == 0 or len(hits) == 0:
        return out
    hid = np.asarray(hits["hit_id"])
    order = np.argsort(hid, kind="stable")
    pos = np.searchsorted(hid[order], cells["hit_id"])
    pos = np.minimum(pos, len(hid) - 1)
    known = hid[order][pos] == cells["hit_id"]  # Event validation rejects unknown ids; be safe anyway
    row = order[pos[known]]
    for axis, col in enumerate(("ch0", "ch1")):
        ch = np.asarray(cells[col], np.int64)[known]
        hi = np.full(len(hits), np.iinfo(np.int64).min)
        lo = np.full(len(hits), np.iinfo(np.int64).max)
        np.maximum.at(hi, row, ch)
        np.minimum.at(lo, row, ch)
        has = hi >= lo
        out[has, axis] = hi[has] - lo[has] + 1
    return out


def resolution_in_pitch(detector: Detector, module: np.ndarray, widths: np.ndarray,
                        table: dict | None = None) -> np.ndarray:
    """(N, 2) centroid resolution in pitch units from ``table`` (default :data:`CLUSTER_RESOLUTION`; width 0: unknown)."""
    table_all = CLUSTER_RESOLUTION if table is None else table
    out = np.full((len(module), 2), BINARY_RESOLUTION)
    layer_kind = np.array([lay.kind for lay in detector.layers])[detector.layer_index(module)] if len(module) else \
        np.zeros(0, str)
    volume = detector.volume_id[module]
    for (tech, kind), table in table_all.items():
        vols = [v for v, t in _TECHNOLOGY.items() if t == tech]
        sel = np.isin(volume, vols) & (layer_kind == kind)
        for axis in range(2):
            w = widths[sel, axis]
            known = w > 0
            vals = np.asarray(table[axis])[np.clip(w, 1, len(table[axis])) - 1]
            out[np.flatnonzero(sel)[known], axis] = vals[known]
    return out


@dataclass
class Measurements:
    """Hits of one event in the order of ``event.hits``: module row, local (u, v) in mm, their variances
    (mm^2, from the cluster-width error model :data:`CLUSTER_RESOLUTION`), global xyz (mm)."""

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
                   errors: "HitErrorModel | str | None" = None, backend=None) -> "Measurements":
        hits = event.hits
        n = len(hits)
        for col in ("hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"):
            if col not in hits:
                raise InputError(f"{event.name} hits: missing column {col!r}")
        # A repeated hit_id would make the submission ambiguous (one id, two track ids).
        ids = np.sort(np.asarray(hits["hit_id"]))
        repeated = ids[1:][ids[1:] == ids[:-1]]
        if len(repeated):
            raise InputError(f"{event.name} hits: hit_id {np.unique(repeated)[:5].tolist()} appear(s) more than once "
                             f"({len(repeated)} repeats)")
        xyz = np.stack([hits["x"], hits["y"], hits["z"]], axis=1).astype(np.float64) if n else np.zeros((0, 3))
        bad = ~np.isfinite(xyz).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"{event.name} hits: non-finite coordinates at row {row} (hit_id {hits['hit_id'][row]})")
        if n == 0:
            z = np.zeros(0)
            return cls(np.zeros(0, np.int64), z, z.copy(), z.copy(), z.copy(), xyz)
        module = detector.index(hits["volume_id"], hits["layer_id"], hits["module_id"])
        errors = hit_error_model(errors)
        k = resolution_in_pitch(detector, module, cluster_widths(hits, event.cells), errors.table)
        from ..backends import get_backend
        from ..backends.arrays import detector_array

        be = get_backend(backend)
        xp = be.xp
        if xp is not np:
            # A device backend: the chain's one upload of the event (module rows, positions, resolution
            # in pitch units); everything after stays on the device until the tracks come back.
            module, xyz, k = xp.asarray(module), xp.asarray(xyz), xp.asarray(k)

        def table(name):
            return detector_array(detector, name, xp)

        local = be.kernel("global_to_local")(table("centre"), table("rotation"), module, xyz)
        # A hit far off its module's plane or outside its area belongs to another geometry.
        u, v, w = local[:, 0], local[:, 1], local[:, 2]
        hv, min_hu = table("hv")[module], table("min_hu")[module]
        half_u = min_hu + (table("max_hu")[module] - min_hu) * ((v + hv) / (2 * hv))  # trapezoid half width at v
        off = (xp.abs(w) > table("thickness")[module] + 1.0) | ~((xp.abs(v) <= hv + 1.0) & (xp.abs(u) <= half_u + 1.0))
        if bool(off.any()):
            row = int(xp.flatnonzero(off)[0])
            n_off = int(off.sum())
            at = [round(float(c), 3) for c in local[row]]
            raise InputError(
                f"{event.name}: {n_off} hit(s) lie outside their module (first: hit_id {hits['hit_id'][row]}, "
                f"local u,v,w = {at} mm); is this the detector the event was made with?")
        su = xp.maximum(table("pitch_u")[module] * k[:, 0] * resolution_scale, errors.floor)
        sv = xp.maximum(table("pitch_v")[module] * k[:, 1] * resolution_scale, errors.floor)
        return cls(module.astype(xp.int64), u.copy(), v.copy(), su * su, sv * sv, xyz)

    def take(self, index) -> "Measurements":
        return Measurements(self.module_index[index], self.u[index], self.v[index], self.var_u[index],
                            self.var_v[index], self.xyz[index])

    def compiled(self):
        from .._corelib import core

        return core().HitArrays(self.module_index, self.u, self.v, self.var_u, self.var_v, self.xyz)


def calibrate_cluster_resolution(detector: Detector, events, min_hits: int = 200, max_width: int = 6,
                                 estimator: str = "quantile68") -> dict:
    """A :data:`CLUSTER_RESOLUTION` table measured on simulated ``events`` (with truth and cells).

    For each (technology, barrel/endcap), axis and cluster width 1 .. max_width (the last: or more): the RMS of (hit - true
    crossing) in the module frame, in pitch units, after dropping residuals beyond 5 robust sigmas.
    Classes with fewer than ``min_hits`` hits take the value of the next smaller width (or the binary
    resolution for width 1).
    """
    samples: dict = {}
    kinds = np.array([lay.kind for lay in detector.layers])
    for ev in events:
        hits, truth = ev.hits, ev.truth_aligned()
        mod = detector.index(hits["volume_id"], hits["layer_id"], hits["module_id"])
        loc = detector.global_to_local(mod, np.c_[hits["x"], hits["y"], hits["z"]])
        tloc = detector.global_to_local(mod, np.c_[truth["tx"], truth["ty"], truth["tz"]])
        widths = np.clip(cluster_widths(hits, ev.cells), 1, max_width)
        tech = np.array([_TECHNOLOGY.get(int(v), "") for v in detector.volume_id[mod]])
        kind = kinds[detector.layer_index(mod)]
        pitch = np.c_[detector.pitch_u[mod], detector.pitch_v[mod]]
        signal = truth["particle_id"] != 0
        for axis in range(2):
            r = (loc[:, axis] - tloc[:, axis]) / pitch[:, axis]
            for key in set(zip(tech[signal], kind[signal])):
                for w in range(1, max_width + 1):
                    sel = signal & (tech == key[0]) & (kind == key[1]) & (widths[:, axis] == w)
                    samples.setdefault((key, axis, w), []).append(r[sel])
    table: dict = {}
    for key in sorted({k for k, _, _ in samples}):
        axes = []
        for axis in range(2):
            vals, last = [], BINARY_RESOLUTION
            for w in range(1, max_width + 1):
                r = np.concatenate(samples.get((key, axis, w), [np.zeros(0)]))
                if len(r) >= min_hits:
                    if estimator not in ("quantile68", "clipped_rms"):
                        raise InputError(f"calibrate_cluster_resolution: unknown estimator {estimator!r}")
                    if estimator == "quantile68":
                        last = float(np.quantile(np.abs(r), 0.6827))
                    else:
                        mad = 1.4826 * np.median(np.abs(r - np.median(r)))
                        r = r[np.abs(r) < 5 * max(mad, 1e-3)]
                        last = float(np.sqrt(np.mean(r ** 2)))
                vals.append(round(last, 3))
            axes.append(tuple(vals))
        table[key] = tuple(axes)
    return table
