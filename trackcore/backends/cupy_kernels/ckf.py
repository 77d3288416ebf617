"""Kernel ``ckf`` on the GPU: the combinatorial Kalman filter, ambiguity resolution and perigee fit.

The arguments and the result are those of the ``cpu`` kernel (:func:`trackcore.reco.ckf.ckf_cpu`)
and of its numpy reference (:func:`trackcore.reco.ckf_numpy.ckf_numpy`); the kernels are in
``csrc/cuda/ckf.cu`` over the search of ``csrc/include/trackcore/ckf_device.hpp``. Seeds are
followed in waves, one GPU thread per seed, and committed in seed order by a one-thread kernel, so
the tracks are the one-thread result of the core. Every array stays on the device: measurements
and seeds that are device arrays are read there, and the result's arrays are device arrays unless
every input came from the host. The detector's arrays go to the device once per detector.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...errors import BackendError, InputError
from . import field_grid, inputs

#: The settings in the order of ``trackcore::dev::config_from`` (csrc/include/trackcore/ckf_device.hpp).
CONFIG_KEYS = ("chi2_max", "max_branches", "max_candidates", "max_holes", "min_measurements", "max_shared", "mass",
               "max_step", "max_turn", "max_path", "sigma_phi", "sigma_theta", "sigma_qop_rel", "edge_tolerance",
               "layer_depth", "skip_used_seeds", "skip_used_hits", "refine", "rescue_min_measurements")
#: The beam the device buffers hold (ckf_device.hpp kMaxCandidates, kMaxBranches).
MAX_CANDIDATES, MAX_BRANCHES = 8, 4
#: Seeds followed per wave: each needs a Scratch (~0.2 MB) of device memory while it runs.
WAVE = 4096
_STATS = ("seeds_used", "seeds_skipped", "candidates", "tracks_before_ambiguity", "rescued")


def _config_array(settings: dict) -> np.ndarray:
    from ...reco.ckf import CkfConfig

    values = CkfConfig().as_dict()
    unknown = sorted(set(settings) - set(values) - {"threads"})
    if unknown:
        raise InputError(f"ckf: unknown CKF setting(s) {unknown}")
    values.update({k: v for k, v in settings.items() if k != "threads"})
    config = CkfConfig(**values).check()
    if not (1 <= config.max_candidates <= MAX_CANDIDATES and 1 <= config.max_branches <= MAX_BRANCHES):
        raise BackendError(f"the cupy CKF holds max_candidates <= {MAX_CANDIDATES} and max_branches <= "
                           f"{MAX_BRANCHES}; got {config.max_candidates} and {config.max_branches} (use the cpu backend)")
    if config.min_measurements < 3:
        raise InputError(f"ckf: min_measurements = {config.min_measurements} must be >= 3")
    return np.array([float(getattr(config, k)) for k in CONFIG_KEYS], np.float64)


def _host_geometry(detector) -> dict:
    """The detector as the flat arrays of ``trackcore::dev::GeometryView`` (the core's bin grids)."""
    from ...reco.kalman_numpy import grid_geometry

    g = grid_geometry(detector)
    n_layers = g.n_layers
    extent = np.array([[g.r_lo[k], g.r_hi[k], g.z_lo[k], g.z_hi[k], g.q_lo[k], g.q_hi[k]] for k in range(n_layers)],
                      np.float64).reshape(n_layers, 6)
    grid = np.zeros((n_layers, 3), np.int32)
    starts, modules, first = [0], [], 0
    for k in range(n_layers):
        bins = g.bins[k]
        if bins:
            grid[k] = (g.nphi[k], g.nq[k], first)
            for b in bins:
                modules.extend(b)
                starts.append(len(modules))
            first += len(bins)
        else:  # a layer without modules: no bins
            grid[k] = (0, 0, first)
    return {
        "centre": np.ascontiguousarray(detector.centre, np.float64),
        "rot": np.ascontiguousarray(detector.rotation, np.float64).reshape(-1, 9),
        "hv": np.ascontiguousarray(detector.hv, np.float64),
        "half_t": np.ascontiguousarray(detector.thickness, np.float64),  # half thickness (the transport's)
        "min_hu": np.ascontiguousarray(detector.min_hu, np.float64),
        "max_hu": np.ascontiguousarray(detector.max_hu, np.float64),
        "layer": np.asarray(g.layer, np.int32), "n_layers": n_layers,
        "layer_kind": np.asarray(g.kind, np.int32), "layer_extent": extent, "layer_grid": grid,
        "bin_start": np.asarray(starts, np.int32), "bin_modules": np.asarray(modules if modules else [0], np.int32),
        "world_r": float(g.world_r), "world_z": float(g.world_z),
    }


def _device_geometry(rt, detector) -> dict:
    """:func:`_host_geometry` on ``rt``'s device, made once per detector and runtime."""
    host = detector.cached_view("cupy_ckf_geometry", _host_geometry)
    cache = detector.cached_view("cupy_ckf_device_geometry", lambda _: {})
    key = id(rt)
    if key not in cache:
        cache[key] = {k: (rt.xp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}
    return cache[key]


def _sizes(rt) -> dict:
    sizes = getattr(rt, "_ckf_sizes", None)
    if sizes is None:
        out = rt.xp.zeros(4, rt.xp.int64)
        rt.launch(rt.function("ckf", "tc_ckf_sizes"), 1, (out,))
        context, scratch, record, _ = (int(v) for v in rt.to_host(out))
        if context > 4096:
            raise BackendError(f"ckf kernels: the context ({context} bytes) outgrows its 4096-byte buffer")
        sizes = {"context": context, "scratch": scratch, "record": record}
        rt._ckf_sizes = sizes
    return sizes


def ckf(detector, measurements, seeds, layer_x0, bz: float, settings: dict, field_map=None, *, runtime) -> dict:
    """Follow each seed (rows of ``measurements``, shape (N, 3), best first) on the GPU.

    The dict of :func:`trackcore.reco.ckf.ckf_cpu`: ``offsets``, ``hits``, ``perigee``,
    ``covariance``, ``chi2``, ``ndf``, ``seed``, ``fitted`` and ``stats``. Seeds or buffers that
    outgrow the device buffers (none on <mu> = 200 events) are counted in ``stats`` as
    ``device_overflow`` (no track) and ``device_refine_overflow`` (kept unrefined), with a warning.
    """
    rt, xp = runtime, runtime.xp
    config = _config_array(settings)
    n_modules = len(detector)
    host_f, (u, v, var_u, var_v, xyz) = inputs(rt, measurements.u, measurements.v, measurements.var_u,
                                               measurements.var_v, measurements.xyz, dtype=np.float64)
    host_i, (module,) = inputs(rt, measurements.module_index, dtype=np.int64)
    host_in = host_f and host_i and not rt.is_device(seeds)
    n_hits = len(module)
    seeds = xp.ascontiguousarray(xp.asarray(seeds), dtype=xp.int64).reshape(-1, 3)
    x0 = xp.ascontiguousarray(xp.asarray(layer_x0), dtype=xp.float64)
    if xyz.shape != (n_hits, 3) or any(a.shape != (n_hits,) for a in (u, v, var_u, var_v)):
        raise InputError("ckf: measurements arrays disagree in length")
    if x0.shape != (len(detector.layers),):
        raise InputError(f"ckf: layer_x0 has shape {x0.shape}, expected ({len(detector.layers)},)")
    if n_hits and (int(module.min()) < 0 or int(module.max()) >= n_modules):
        raise InputError("ckf: measurement module rows outside the detector")
    n_seeds = len(seeds)
    if n_seeds and (int(seeds.min()) < 0 or int(seeds.max()) >= n_hits):
        raise InputError("ckf: seed hit index outside the hits")
    for name, a in (("u", u), ("v", v), ("var_u", var_u), ("var_v", var_v), ("xyz", xyz), ("layer_x0", x0)):
        if n_hits and not bool(xp.isfinite(a).all()):
            raise InputError(f"ckf: measurements {name} must be finite")
    sizes = _sizes(rt)
    geo = _device_geometry(rt, detector)

    # Hits grouped by module, each module's hits in increasing order (ModuleHits of the core).
    order = xp.argsort(module * max(n_hits, 1) + xp.arange(n_hits, dtype=xp.int64)).astype(xp.int32)
    counts = xp.bincount(module, minlength=n_modules) if n_hits else xp.zeros(n_modules, xp.int64)
    module_start = xp.concatenate([xp.zeros(1, xp.int64), xp.cumsum(counts)]).astype(xp.int32)
    meas = xp.ascontiguousarray(xp.stack([u, v, var_u, var_v], axis=1)[order])

    grid, br, bzg = field_grid(rt, field_map, x0, "ckf")
    context = xp.zeros(4096, xp.uint8)
    cfg = xp.asarray(config)
    rt.launch(rt.function("ckf", "tc_ckf_setup"), 1, (
        context, geo["centre"], geo["rot"], geo["hv"], geo["min_hu"], geo["max_hu"], geo["layer"],
        np.int32(geo["n_layers"]), geo["layer_kind"], geo["layer_extent"], geo["layer_grid"], geo["bin_start"],
        geo["bin_modules"], x0, np.float64(geo["world_r"]), np.float64(geo["world_z"]), np.int64(n_hits), module,
        u, v, var_u, var_v, xyz, module_start, order, meas, np.float64(bz), np.int32(grid[0]), np.int32(grid[1]),
        np.float64(grid[2]), np.float64(grid[3]), np.float64(grid[4]), np.float64(grid[5]), br, bzg, cfg))

    # 1. Seeds followed in waves, one thread each; a one-thread commit after each wave, in seed order.
    stats = xp.zeros(7, xp.int64)
    used = xp.zeros(max(n_hits, 1), xp.uint8)
    records = xp.zeros(max(n_seeds, 1) * sizes["record"], xp.uint8)
    found = xp.zeros(max(n_seeds, 1), xp.int64)
    wave = min(getattr(rt, "ckf_wave", WAVE), max(n_seeds, 1))
    scratch = xp.empty(wave * sizes["scratch"], xp.uint8)
    follow, commit = rt.function("ckf", "tc_ckf_follow"), rt.function("ckf", "tc_ckf_commit")
    for first in range(0, n_seeds, wave):
        n = min(wave, n_seeds - first)
        rt.launch(follow, n, (context, np.int64(first), np.int64(n), seeds, used, scratch, records))
        rt.launch(commit, 1, (context, np.int64(first), np.int64(n), seeds, used, records, found, stats))

    # 2. Ambiguity resolution (one thread), then refinement and perigee fit of the accepted tracks.
    n_found = int(rt.to_host(stats[3:4])[0])
    owner = xp.full(max(n_hits, 1), -1, xp.int32)
    accepted = xp.zeros(max(n_found, 1), xp.int64)
    n_accepted_d = xp.zeros(1, xp.int64)
    rt.launch(rt.function("ckf", "tc_ckf_resolve"), 1, (
        context, np.int64(n_found), found, records, xp.zeros(2 * max(n_found, 1), xp.float64),
        xp.zeros(max(n_found, 1), xp.int64), xp.zeros(max(n_found, 1), xp.int64), owner, accepted, n_accepted_d))
    n_acc = int(rt.to_host(n_accepted_d)[0])
    refined = xp.zeros(max(n_acc, 1) * sizes["record"], xp.uint8)
    m = max(n_acc, 1)
    perigee, cov, chi2 = xp.zeros((m, 5)), xp.zeros((m, 25)), xp.zeros(m)
    ndf, fitted = xp.zeros(m, xp.int64), xp.zeros(m, xp.uint8)
    for first in range(0, n_acc, wave):  # the refinement's search needs a Scratch per thread too
        n = min(wave, n_acc - first)
        rt.launch(rt.function("ckf", "tc_ckf_refine_fit"), n, (
            context, np.int64(n), accepted[first:], found, records, refined[first * sizes["record"]:], scratch,
            perigee[first:], cov[first:], chi2[first:], ndf[first:], fitted[first:]))
    # 3. The hits each track keeps (one thread, in order), then the kept tracks compacted.
    keep = xp.zeros(max(n_acc, 1), xp.int64)
    start = xp.zeros(max(n_acc, 1), xp.int64)
    count = xp.zeros(max(n_acc, 1), xp.int64)
    out_hits = xp.zeros(max(n_hits, 1), xp.int64)
    rt.launch(rt.function("ckf", "tc_ckf_final"), 1, (
        context, np.int64(n_acc), accepted, owner, refined, xp.zeros(max(n_hits, 1), xp.uint8), out_hits, keep,
        start, count, stats))

    sel = xp.nonzero(keep[:n_acc])[0]
    n_hits_kept = count[sel]
    offsets = xp.concatenate([xp.zeros(1, xp.int64), xp.cumsum(n_hits_kept)]).astype(xp.int64)
    total = int(rt.to_host(offsets[-1:])[0])
    out = {
        "offsets": offsets, "hits": out_hits[:total].copy(), "perigee": perigee[sel], "covariance": cov[sel].reshape(-1, 5, 5),
        "chi2": chi2[sel], "ndf": ndf[sel], "seed": found[accepted[:n_acc][sel]].copy(), "fitted": fitted[sel] != 0,
    }
    if host_in:
        out = {k: rt.to_host(a) for k, a in out.items()}
    counters = [int(c) for c in rt.to_host(stats)]
    out["stats"] = dict(zip(_STATS, (counters[0], counters[1], counters[2], counters[3], counters[4])))
    if counters[5] or counters[6]:
        out["stats"].update(device_overflow=counters[5], device_refine_overflow=counters[6])
        warnings.warn(f"cupy ckf: {counters[5]} seeds outgrew the device buffers (no track) and {counters[6]} "
                      "refinements did (track kept unrefined); the cpu backend has no such limits", RuntimeWarning,
                      stacklevel=2)
    return out
