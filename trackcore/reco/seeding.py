"""ACTS-like triplet seeding on a (phi, z) space-point grid.

For each middle space point, bottom partners at smaller radius and top partners at larger radius
form doublets that pass: different layer from the middle, radial distance in [dr_min, dr_max],
|cot theta| <= cot_theta_max, the doublet line reaching r = 0 within [z0_min, z0_max], and a phi
window (bending of a min-pT helix between the two radii, plus what an impact parameter d0_max
adds). Bottom x top pairs then pass, in the conformal frame of the middle (u, v = x, y / (x^2 +
y^2), where a circle through the middle is the line v = A u + B): cot-theta compatibility within
the space-point errors plus multiple scattering (sigma_scattering x Highland theta0 of the seed's
pT, x/X0 = rad_length_per_seed), 2R = sqrt(1 + A^2) / |B| >= 2 R(min_pt), and |d0| ~
|(A - B r_m) r_m| <= d0_max. The seed filter (ACTS) weights each triplet

    weight = compat_weight * N_compatible - impact_weight * |d0| - z0_weight * |z0|

where N_compatible (capped at compat_limit) counts other layers holding a top of the same
(bottom, middle) whose curvature 1/(2R) agrees within delta_inv_helix_diameter: a second top
confirms the helix. Each middle keeps its max_seeds_per_middle best; the event keeps max_seeds.

Seeds are ordered by weight, best first (ties by middle, bottom, top index); the ``cpu`` and
``numpy`` kernels return identical seeds in identical order.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backends import get_backend
from ..backends.arrays import namespace_of, to_host
from ..errors import InputError
from .seeding_numpy import C_LIGHT, SpacePointGrid, estimate_parameters_numpy
from .spacepoints import SpacePoints
from ..threads import resolve_threads

__all__ = ["SeedingConfig", "Seeds", "find_seeds", "build_grid", "derived_parameters", "estimate_parameters",
           "C_LIGHT"]


@dataclass
class SeedingConfig:
    """Seeding settings. Lengths in mm, momenta in GeV, field in T, angles in rad."""

    volumes: tuple[int, ...] | None = (7, 8, 9)  # TrackML volumes to seed from (None: all); pixels
    r_min: float = 20.0  # mm, space points at smaller radius are ignored
    r_max: float = 1100.0  # mm, ... and at larger radius
    # GeV, lowest seed pT. 0.7 keeps full efficiency above 1 GeV (the triplet pT resolution is a few %)
    # at ~25% less time than 0.5 in a pile-up-200-like event; lower it to seed softer particles.
    min_pt: float = 0.7
    bz: float = 2.0  # T, solenoid field along z
    delta_r_min: float = 5.0  # mm, radial distance middle - bottom and top - middle
    delta_r_max: float = 150.0  # mm
    cot_theta_max: float = 27.29  # |cot theta| of doublets (eta 4)
    z0_min: float = -200.0  # mm, collision region: doublet line at r = 0
    z0_max: float = 200.0  # mm
    d0_max: float = 2.0  # mm, |transverse impact parameter|
    sigma_scattering: float = 5.0  # allowance in units of the Highland theta0
    rad_length_per_seed: float = 0.015  # x/X0 crossed between bottom and top (one pixel layer)
    sp_sigma_r: float = 0.05  # mm, space-point error in r
    sp_sigma_z: float = 0.05  # mm, space-point error in z
    phi_window_scale: float = 1.0  # safety factor on the doublet phi window
    phi_window_margin: float = 0.002  # rad, added to the doublet phi window (resolution, scattering)
    z_bin_width: float = 50.0  # mm, grid bin size in z
    phi_bins_per_window: int = 3  # phi bins across the widest doublet phi window (from min_pt, d0_max, delta_r_max)
    delta_inv_helix_diameter: float = 3e-5  # 1/mm, curvature agreement of two confirming tops
    compat_weight: float = 200.0  # weight per confirming top layer
    compat_limit: int = 2  # at most this many confirming layers count
    impact_weight: float = 1.0  # weight per mm of |d0|
    z0_weight: float = 0.01  # weight per mm of |z0|
    max_seeds_per_middle: int = 5
    max_seeds: int = 500_000  # per event, best weight first
    # (volume_id, layer_id) pairs whose space points may be the middle of a seed (the others are still
    # bottoms and tops); None: every layer. Like ACTS's middle space-point range, this removes seeds
    # that repeat what neighbouring middle layers find. Grid seeding only (hashing seeds from all).
    middle_layers: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        positive = ("min_pt", "delta_r_min", "cot_theta_max", "rad_length_per_seed", "phi_window_scale",
                    "z_bin_width", "r_max", "phi_bins_per_window")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "volumes":
                if v is not None:
                    self.volumes = tuple(int(x) for x in v)
                continue
            if f.name == "middle_layers":
                if v is not None:
                    try:
                        self.middle_layers = tuple((int(a), int(b)) for a, b in v)
                    except (TypeError, ValueError):
                        raise InputError(f"SeedingConfig.middle_layers must be (volume_id, layer_id) pairs or None, "
                                         f"got {v!r}") from None
                continue
            if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or not math.isfinite(v):
                raise InputError(f"SeedingConfig.{f.name} must be a finite number, got {v!r}")
            if f.name in positive and v <= 0:
                raise InputError(f"SeedingConfig.{f.name} must be > 0, got {v!r}")
            if v < 0 and f.name not in ("z0_min", "z0_max", "bz"):
                raise InputError(f"SeedingConfig.{f.name} must be >= 0, got {v!r}")
        if self.bz == 0:
            raise InputError("SeedingConfig.bz must be non-zero: seeding measures curvature")
        # As the compiled core: |Bz| <= 1e4 T. min_pt 1e-300 GeV made the helix diameter 0 (ZeroDivisionError).
        if abs(self.bz) > 1e4:
            raise InputError(f"SeedingConfig.bz = {self.bz!r} T is absurd: |bz| <= 1e4 T")
        if self.min_pt < 1e-6:
            raise InputError(f"SeedingConfig.min_pt = {self.min_pt!r} GeV is absurd: at least 1e-6 GeV")
        if self.delta_r_max < self.delta_r_min:
            raise InputError(f"SeedingConfig: delta_r_max {self.delta_r_max} < delta_r_min {self.delta_r_min}")
        if self.z0_max < self.z0_min:
            raise InputError(f"SeedingConfig: z0_max {self.z0_max} < z0_min {self.z0_min}")
        if self.r_max <= self.r_min:
            raise InputError(f"SeedingConfig: r_max {self.r_max} <= r_min {self.r_min}")
        for k in ("compat_limit", "max_seeds_per_middle", "max_seeds", "phi_bins_per_window"):
            if int(getattr(self, k)) != getattr(self, k):
                raise InputError(f"SeedingConfig.{k} must be an integer, got {getattr(self, k)!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def highland(x_over_x0: float) -> float:
    """Highland theta0 x p (GeV rad) for a beta = 1 particle crossing x/X0."""
    return 13.6e-3 * math.sqrt(x_over_x0) * (1.0 + 0.038 * math.log(x_over_x0))


def derived_parameters(config: SeedingConfig, r_lo: float, r_hi: float, z_lo: float, z_hi: float) -> dict:
    """The numbers both kernels use, for space points spanning r in [r_lo, r_hi], z in [z_lo, z_hi] (mm).

    ``phi_bins_per_window`` phi bins span at least the widest doublet phi window, so that many bins
    on each side of a middle's bin hold every partner that can pass; z bins are ``z_bin_width`` wide.
    """
    c = config
    radius_min = c.min_pt / (C_LIGHT * abs(c.bz))  # mm, helix radius at min pT
    k = 1.0 / (2.0 * radius_min)
    kr = k * r_hi
    if kr < 1.0:
        w_max = c.phi_window_scale * (c.delta_r_max * k / math.sqrt(1.0 - kr * kr)
                                      + c.d0_max * (1.0 / r_lo - 1.0 / (r_lo + c.delta_r_max))) + c.phi_window_margin
        n_phi = max(1, min(4096, int(math.floor(2 * math.pi * c.phi_bins_per_window / (w_max * (1 + 1e-6))))))
    else:
        n_phi = 1
    span = max(z_hi - z_lo, 0.0)
    n_z = max(1, min(4096, int(math.ceil(span / c.z_bin_width))))
    scatter_per_curv2 = (c.sigma_scattering * highland(c.rad_length_per_seed) / (C_LIGHT * abs(c.bz))) ** 2 * 4.0
    min_helix_diameter2 = (2.0 * radius_min) ** 2
    return {
        "n_phi": n_phi, "phi_neighbours": int(c.phi_bins_per_window), "n_z": n_z, "inv_phi_bin": n_phi / (2 * math.pi), "z_lo": float(z_lo),
        "inv_z_bin": n_z / span if span > 0 else 1.0 / c.z_bin_width,
        "dr_min": float(c.delta_r_min), "dr_max": float(c.delta_r_max), "cot_max": float(c.cot_theta_max),
        "z0_min": float(c.z0_min), "z0_max": float(c.z0_max), "k_bend": k, "d0_max": float(c.d0_max),
        "phi_scale": float(c.phi_window_scale), "phi_margin": float(c.phi_window_margin),
        "min_helix_diameter2": min_helix_diameter2, "var_r": c.sp_sigma_r ** 2, "var_z": c.sp_sigma_z ** 2,
        "scatter_per_curv2": scatter_per_curv2, "scatter_min2": scatter_per_curv2 / min_helix_diameter2,
        "delta_inv_helix_diameter": float(c.delta_inv_helix_diameter), "compat_weight": float(c.compat_weight),
        "impact_weight": float(c.impact_weight), "z0_weight": float(c.z0_weight),
        "compat_limit": int(c.compat_limit), "max_seeds_per_middle": int(c.max_seeds_per_middle),
        "max_seeds": int(c.max_seeds),
    }


@dataclass
class Seeds:
    """Triplet seeds, best weight first.

    ``hits`` (N, 3) are space-point indices (bottom, middle, top). Estimated from the triplet's
    circle (through the three points in x-y) and its z slope: ``pt`` GeV, ``charge`` (+-1, from the
    bending sense under the configured Bz), ``phi`` and ``theta`` (rad) of the direction at the
    bottom hit, ``z0`` and ``d0`` (mm) at the point of closest approach to the z axis (d0 signed as
    in the ATLAS/ACTS perigee: x = -d0 sin(phi0), y = d0 cos(phi0)), ``cot_theta``.
    """

    hits: np.ndarray
    weight: np.ndarray
    pt: np.ndarray
    charge: np.ndarray
    phi: np.ndarray
    theta: np.ndarray
    z0: np.ndarray
    d0: np.ndarray
    cot_theta: np.ndarray

    def __len__(self) -> int:
        return len(self.hits)

    @classmethod
    def empty(cls, xp=np) -> "Seeds":
        """No seeds, as arrays of ``xp`` (numpy, or the device namespace of a device chain)."""
        f = xp.zeros(0)
        return cls(xp.zeros((0, 3), xp.int64), f, f.copy(), xp.zeros(0, xp.int32), f.copy(), f.copy(), f.copy(),
                   f.copy(), f.copy())

    def take(self, index) -> "Seeds":
        return Seeds(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def event_hits(self, spacepoints: SpacePoints) -> np.ndarray:
        """(N, 3) rows of ``event.hits`` of each seed's bottom, middle and top."""
        return spacepoints.hit_index[self.hits]


def _check_spacepoints(sp: SpacePoints) -> None:
    if not isinstance(sp, SpacePoints):
        raise InputError(f"find_seeds: expected SpacePoints, got {type(sp).__name__}")
    xp = namespace_of(sp.x)
    for name in ("x", "y", "z", "r", "phi"):
        bad = ~xp.isfinite(getattr(sp, name))
        if bool(bad.any()):
            i = int(xp.flatnonzero(bad)[0])
            raise InputError(f"space points: {name} is not finite ({getattr(sp, name)[i]}) at row {i} "
                             f"(hit row {int(sp.hit_index[i])})")


def _selection(sp: SpacePoints, config: SeedingConfig) -> np.ndarray:
    xp = namespace_of(sp.r)
    keep = (sp.r >= config.r_min) & (sp.r <= config.r_max)
    if config.volumes is not None:
        keep &= xp.isin(sp.volume_id, xp.asarray(config.volumes))
    return xp.flatnonzero(keep)


def _params_for(sp: SpacePoints, sel: np.ndarray, config: SeedingConfig) -> dict:
    r, z = sp.r[sel], sp.z[sel]
    extent = to_host(namespace_of(r).stack([r.min(), r.max(), z.min(), z.max()]))  # one read from a device, not four
    return derived_parameters(config, *(float(v) for v in extent))


def build_grid(spacepoints: SpacePoints, config: SeedingConfig | None = None, backend=None) -> SpacePointGrid:
    """The (phi, z) grid of the seeding space points; ``order`` indexes ``spacepoints``."""
    config = config or SeedingConfig()
    _check_spacepoints(spacepoints)
    sel = _selection(spacepoints, config)
    if len(sel) == 0:
        return SpacePointGrid(1, 1, 1, 1 / (2 * math.pi), 0.0, 1.0, np.zeros(0, np.int64), np.zeros(2, np.int64))
    p = _params_for(spacepoints, sel, config)
    order, offsets = get_backend(backend).kernel("seeding_grid")(
        spacepoints.phi[sel], spacepoints.z[sel], spacepoints.r[sel], p)
    return SpacePointGrid(p["n_phi"], p["phi_neighbours"], p["n_z"], p["inv_phi_bin"], p["z_lo"], p["inv_z_bin"],
                          sel[np.asarray(order, np.int64)], np.asarray(offsets, np.int64))


def find_seeds(spacepoints: SpacePoints, config: SeedingConfig | None = None, backend=None,
               threads: int | None = None) -> Seeds:
    """Triplet seeds from ``spacepoints`` (see the module docstring), best weight first. ``threads``:
    worker threads of the compiled kernel (None or 0: one per CPU; the seeds do not depend on it)."""
    config = config or SeedingConfig()
    n_threads = resolve_threads(threads)
    _check_spacepoints(spacepoints)
    sel = _selection(spacepoints, config)
    sp = spacepoints
    xp = namespace_of(sp.x)
    if len(sel) < 3:
        return Seeds.empty(xp)
    kernel = get_backend(backend).kernel("find_seeds")
    # The kernel also estimates the track parameters (bz given): in the compiled core that is ~10x
    # cheaper than the numpy estimate over ~10^5 seeds.
    middle = None
    if config.middle_layers is not None:
        pairs = np.asarray(config.middle_layers, np.int64).reshape(-1, 2)
        key = sp.volume_id[sel].astype(xp.int64) * 1_000_000 + sp.layer_id[sel]
        middle = xp.isin(key, xp.asarray(pairs[:, 0] * 1_000_000 + pairs[:, 1]))
    params = dict(_params_for(sp, sel, config), threads=n_threads)  # threads: read by the compiled kernel only
    hits, weight, track = kernel(sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel],
                                 params, bz=float(config.bz), middle=middle)
    hits = sel[xp.asarray(hits, xp.int64).reshape(-1, 3)]
    track = xp.asarray(track, xp.float64).reshape(-1, 7)
    pt, charge, phi, theta, z0, d0, cot = (xp.ascontiguousarray(track[:, k]) for k in range(7))
    return Seeds(hits, xp.asarray(weight, xp.float64), pt, charge.astype(xp.int32), phi, theta, z0, d0, cot)


def estimate_parameters(sp: SpacePoints, hits: np.ndarray, bz: float) -> tuple:
    """(pt GeV, charge, phi rad, theta rad, z0 mm, d0 mm, cot_theta) of triplets ``hits`` (N, 3 space-point
    indices) from their circle in x-y (numpy; :func:`find_seeds` gets the same from its kernel)."""
    return estimate_parameters_numpy(sp.x, sp.y, sp.z, np.asarray(hits, np.int64).reshape(-1, 3), bz)
