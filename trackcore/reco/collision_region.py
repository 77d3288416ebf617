"""The luminous region along the beam, estimated from the event's own hits before seeding.

Seeding keeps a doublet only when its line meets the beam line inside the collision region
(``SeedingConfig.z0_min/z0_max``). That window has to cover the luminous region of whatever data
is reconstructed: TrackML events come with sigma_z of 5.5 mm (event 1000, this package's
simulation) and of ~50 mm (the shared real subset), so a fixed window is either 27 sigma wide on
the first or cuts the second. The estimate here narrows the configured window to the event: straight
tracklets of high-pT particles through the four innermost barrel layers point back to their
vertices, and the robust spread of their z0 (median, MAD) gives the region.

Tracklets: pairs on the two innermost barrel layers within the phi window of ``min_pt``, confirmed
by hits on the third and fourth layers where the straight (r, z) line and the linear phi(r) of the
pair predict them. The confirmation removes nearly all random pairs, so the median and MAD see the vertices.
Too few tracklets (a sparse or non-barrel event) leave the configured window unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..backends.arrays import namespace_of, repeat_index
from ..errors import InputError
from ..geometry.detector import Detector
from .seeding_numpy import C_LIGHT
from .spacepoints import SpacePoints


@dataclass(frozen=True)
class CollisionRegionConfig:
    """Settings of :func:`estimate_collision_region`. Lengths in mm, momenta in GeV, field in T."""

    enabled: bool = True  #: narrow the seeding window per event; false keeps the configured z0_min/z0_max
    min_pt: float = 2.0  #: GeV, tracklets are searched for particles above this pT (straight enough)
    #: half-width of the region in units of the tracklets' robust z0 spread. One event's tracklets
    #: come from a few busy collisions, so the spread is uncertain by ~30 %: 4 sigma still covers
    #: the 3 sigma of vertices. Against 5 sigma + 25 mm: 8 % less reconstruction time on <mu> = 200,
    #: score -0.0011 / +0.0004 / +0.0005 / +0.0006 (seeds 11, 12, 13, 2024); 3 sigma + 15 mm lost 0.0028.
    n_sigma: float = 4.0
    #: mm added to each side: a soft particle's doublet line misses its vertex by up to ~15 mm at
    #: |eta| = 4 (z is linear in arc length, not radius)
    margin: float = 20.0
    min_tracklets: int = 50  #: fewer tracklets than this keep the configured window
    max_inner_points: int = 3000  #: inner-layer points used (evenly thinned above; enough for the median/MAD)
    phi_tolerance: float = 0.002  #: rad, third-hit phi window around the prediction at its radius
    z_tolerance: float = 1.0  #: mm, third-hit z window around the straight-line prediction at its radius

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InputError(f"CollisionRegionConfig.enabled must be true or false, got {self.enabled!r}")
        for name in ("min_pt", "n_sigma", "phi_tolerance", "z_tolerance"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise InputError(f"CollisionRegionConfig.{name} must be a finite number > 0, got {v!r}")
        if not (np.isfinite(self.margin) and self.margin >= 0):
            raise InputError(f"CollisionRegionConfig.margin must be finite and >= 0, got {self.margin!r}")
        for name in ("min_tracklets", "max_inner_points"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise InputError(f"CollisionRegionConfig.{name} must be a positive integer, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class CollisionRegion:
    """The seeding window along the beam (mm) and how it was found.

    ``estimated`` is False when too few tracklets were found (or no three barrel layers exist): then
    ``z_min``/``z_max`` are the configured window and ``centre``/``sigma`` are NaN.
    """

    z_min: float
    z_max: float
    centre: float  #: median tracklet z0 (mm)
    sigma: float  #: robust spread of the tracklets' z0 (1.4826 MAD, mm): vertices and resolution together
    n_tracklets: int
    estimated: bool


def barrel_layers(detector: Detector, volumes: Iterable[int] | None = None) -> list[int]:
    """Indices into ``detector.layers`` of its barrel layers (in ``volumes`` when given), innermost first."""
    wanted = None if volumes is None else {int(v) for v in volumes}
    found = [(layer.r_min, index) for index, layer in enumerate(detector.layers)
             if layer.kind == "barrel" and (wanted is None or layer.volume_id in wanted)]
    return [index for _, index in sorted(found)]


def _window_pairs(phi_a, phi_b_sorted, half_width):
    """(index into a, index into sorted b) of every pair with |phi_b - phi_a| <= half_width, across +-pi."""
    xp = namespace_of(phi_a, phi_b_sorted)
    n_b = len(phi_b_sorted)
    # b repeated at -2pi and +2pi so a window crossing +-pi is one contiguous range.
    ext = xp.concatenate([phi_b_sorted - 2 * np.pi, phi_b_sorted, phi_b_sorted + 2 * np.pi])
    lo = xp.searchsorted(ext, phi_a - half_width, side="left")
    hi = xp.searchsorted(ext, phi_a + half_width, side="right")
    # A window wider than 2 pi (a huge bending allowance: Bz 1e30 T) holds each b once, not up to
    # three times: the copies multiplied at every layer until memory and time ran out.
    count = xp.minimum(hi - lo, n_b)
    a = repeat_index(count, xp)
    start = (lo - xp.cumsum(count) + count)[a]
    b = (start + xp.arange(len(a))) % n_b
    return a, b


def _wrap(d):
    return (d + np.pi) % (2 * np.pi) - np.pi


def find_tracklets(sp: SpacePoints, layers: list[int], bz: float, z_window: tuple[float, float],
                   config: CollisionRegionConfig):
    """z0 (mm) of the tracklets through the four innermost barrel ``layers`` (three when there are
    only three) whose line meets the beam inside ``z_window`` (mm); on the device for device space points."""
    xp = namespace_of(sp.r)
    l1, l2 = (xp.flatnonzero(sp.layer_index == layer) for layer in layers[:2])
    if len(l1) > config.max_inner_points:  # evenly thinned: the estimate needs hundreds, not thousands
        l1 = l1[xp.linspace(0, len(l1) - 1, config.max_inner_points).astype(xp.int64)]
    if not len(l1) or not len(l2):
        return xp.empty(0)
    l2 = l2[xp.argsort(sp.phi[l2], kind="stable")]
    # Bending between the layers at min_pt: dphi = dr / (2 R) with R = pT / (c B), plus resolution.
    k_bend = C_LIGHT * abs(bz) / (2.0 * config.min_pt)
    half_width = k_bend * (xp.median(sp.r[l2]) - xp.median(sp.r[l1])) * 1.2 + 0.002
    a, b = _window_pairs(sp.phi[l1], sp.phi[l2], half_width)
    i, j = l1[a], l2[b]
    dr = sp.r[j] - sp.r[i]
    ok = dr > 1.0
    i, j, dr = i[ok], j[ok], dr[ok]
    cot = (sp.z[j] - sp.z[i]) / dr
    z0 = sp.z[i] - sp.r[i] * cot
    inside = (z0 >= z_window[0]) & (z0 <= z_window[1])
    j, dr, cot, z0 = j[inside], dr[inside], cot[inside], z0[inside]
    slope = _wrap(sp.phi[j] - sp.phi[i[inside]]) / dr  # dphi / dr (rad/mm)
    for layer in layers[2:4]:
        # The next hit, predicted at its own radius: straight in (r, z), phi linear in r (a circle
        # through the beam line at small angles). Candidates come from the phi window at the layer's
        # median radius, widened by the bending over the layer's radial spread.
        ln = xp.flatnonzero(sp.layer_index == layer)
        if not len(ln) or not len(j):
            return xp.empty(0)
        ln = ln[xp.argsort(sp.phi[ln], kind="stable")]
        r_med, r_half_spread = xp.median(sp.r[ln]), 0.5 * (sp.r[ln].max() - sp.r[ln].min())  # np.ptp
        reach = config.phi_tolerance + k_bend * 2.4 * r_half_spread
        pa, pb = _window_pairs(_wrap(sp.phi[j] + slope * (r_med - sp.r[j])), sp.phi[ln], reach)
        k = ln[pb]
        dr_next = sp.r[k] - sp.r[j[pa]]
        hit = (xp.abs(sp.z[k] - (sp.z[j[pa]] + cot[pa] * dr_next)) <= config.z_tolerance) & (
            xp.abs(_wrap(sp.phi[k] - sp.phi[j[pa]] - slope[pa] * dr_next)) <= config.phi_tolerance)
        # One continuation per tracklet (module overlaps can give two).
        chain, first = xp.unique(pa[hit], return_index=True)
        k = k[hit][first]
        j, slope, cot, z0 = k, slope[chain], cot[chain], z0[chain]
    return z0


def estimate_collision_region(sp: SpacePoints, detector: Detector, z0_min: float, z0_max: float, bz: float, *,
                              volumes: Iterable[int] | None = None,
                              config: CollisionRegionConfig | None = None) -> CollisionRegion:
    """The part of the configured window [z0_min, z0_max] (mm) holding this event's collisions.

    Never wider than the configured window; unchanged when fewer than ``config.min_tracklets``
    tracklets are found or ``detector`` has fewer than three barrel layers (in ``volumes``, the
    seeding volumes, when given). ``bz`` (T) sets the tracklets' phi window.
    """
    config = config or CollisionRegionConfig()
    if not (np.isfinite(z0_min) and np.isfinite(z0_max) and z0_min <= z0_max):
        raise InputError(f"collision region: the configured window [{z0_min}, {z0_max}] mm is not a finite interval")
    if not (np.isfinite(bz) and bz != 0):
        raise InputError(f"collision region: bz must be finite and non-zero, got {bz!r}")
    unchanged = CollisionRegion(float(z0_min), float(z0_max), float("nan"), float("nan"), 0, False)
    layers = barrel_layers(detector, volumes)
    if len(layers) < 3:
        return unchanged
    z0 = find_tracklets(sp, layers, bz, (z0_min, z0_max), config)
    if len(z0) < config.min_tracklets:
        return CollisionRegion(float(z0_min), float(z0_max), float("nan"), float("nan"), len(z0), False)
    xp = namespace_of(z0)
    centre = float(xp.median(z0))
    sigma = float(1.4826 * xp.median(xp.abs(z0 - centre)))
    half = config.n_sigma * sigma + config.margin
    return CollisionRegion(max(float(z0_min), centre - half), min(float(z0_max), centre + half), centre, sigma,
                           len(z0), True)
