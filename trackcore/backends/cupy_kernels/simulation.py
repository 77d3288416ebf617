"""Kernel ``transport`` on the GPU: particles carried through the detector, one per GPU thread.

Arguments and result are those of the ``cpu`` kernel (:func:`trackcore.sim.transport.transport_cpu`)
and of its numpy reference (:func:`trackcore.sim.transport_numpy.transport_numpy`); the kernel is
``tc_transport`` in ``csrc/cuda/simulation.cu`` over ``csrc/include/trackcore/transport_device.hpp``,
the core's transport step for step. Each particle draws from its own random stream, so the
crossings do not depend on the order the GPU runs the particles in. Each particle gets
``max_crossings`` rows of output, compacted in particle order afterwards.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import BackendError, InputError
from . import field_grid, inputs, outputs
from .ckf import _device_geometry

#: The settings in the order of ``trackcore::dev::transport_settings``.
TRANSPORT_KEYS = ("max_step", "max_path", "min_p", "loop_fraction", "max_crossings", "multiple_scattering",
                  "energy_loss", "use_rk")
MAX_CANDIDATES = 2048  # transport_device.hpp kTransportMaxCand: modules one step may look at
#: Particles per launch: each needs MAX_CANDIDATES ints of scratch while it runs.
WAVE = 16384
MAX_STEPS_PER_PARTICLE = 1e7  # max_path / max_step, as the compiled binding allows


def _config_array(config) -> np.ndarray:
    values = [float(getattr(config, k)) for k in TRANSPORT_KEYS]
    max_step, max_path, min_p, loop_fraction, max_crossings = values[:5]
    if not (math.isfinite(max_step) and max_step > 0):
        raise InputError(f"transport: max_step = {max_step:g} mm must be finite and > 0")
    if not (math.isfinite(max_path) and max_path >= 0):
        raise InputError(f"transport: max_path = {max_path:g} mm must be finite and >= 0")
    if not max_path / max_step <= MAX_STEPS_PER_PARTICLE:
        raise InputError(f"transport: max_path / max_step = {max_path / max_step:g} steps per particle; at most 1e7")
    if not (0 <= max_crossings <= 10_000 and max_crossings == int(max_crossings)):
        raise InputError(f"transport: max_crossings = {max_crossings:g} must be an integer in [0, 10000]")
    if not (math.isfinite(min_p) and min_p >= 0) or not math.isfinite(loop_fraction):
        raise InputError("transport: min_p must be finite and >= 0, loop_fraction finite")
    return np.asarray(values, np.float64)


def transport(detector, vertex, momentum, charge, mass, layer_x0, bz: float, field_map, seed: int, config,
              threads: int = 1, *, runtime) -> dict:
    """The ``transport`` kernel on ``runtime`` (``threads`` is the cpu backend's and is ignored here)."""
    rt, xp = runtime, runtime.xp
    host_f, (vertex, momentum, mass, x0) = inputs(rt, vertex, momentum, mass, layer_x0, dtype=np.float64)
    host_i, (charge,) = inputs(rt, charge, dtype=np.int32)
    host = host_f and host_i
    n = len(vertex)
    for name, a, shape in (("vertex", vertex, (n, 3)), ("momentum", momentum, (n, 3)), ("charge", charge, (n,)),
                           ("mass", mass, (n,)), ("layer_x0", x0, (len(detector.layers),))):
        if a.shape != shape:
            raise InputError(f"transport: {name} must have shape {shape}, got {a.shape}")
    if n:
        bad = ~(xp.isfinite(vertex).all(axis=1) & xp.isfinite(momentum).all(axis=1))
        if bool(bad.any()):
            raise InputError(f"particle {int(xp.flatnonzero(bad)[0])} has a non-finite vertex or momentum")
        bad = (charge == 0) | ((momentum * momentum).sum(axis=1) <= 0) | ~(mass > 0)
        if bool(bad.any()):
            raise InputError(f"particle {int(xp.flatnonzero(bad)[0])} needs charge != 0, |p| > 0 and mass > 0")
    if not (0 <= int(seed) < 2 ** 64):
        raise InputError(f"seed must be an unsigned 64-bit integer, got {seed}")
    if not (math.isfinite(bz) and abs(bz) <= 1e4):
        raise InputError(f"transport: Bz = {bz:g} T must be finite, |Bz| <= 1e4 T")
    cfg = _config_array(config)
    max_crossings = int(cfg[4])
    geo = _device_geometry(rt, detector)
    grid, br, bzg = field_grid(rt, field_map, x0, "transport")

    rows = max(n * max_crossings, 1)
    module = xp.empty(rows, xp.int64)
    pos, mom, local, dir_local = (xp.empty((rows, 3)) for _ in range(4))
    edep, path = xp.empty(rows), xp.empty(rows)
    count, status = xp.zeros(max(n, 1), xp.int32), xp.zeros(max(n, 1), xp.int32)
    fail = xp.zeros((max(n, 1), 2))
    wave = min(getattr(rt, "transport_wave", WAVE), max(n, 1))
    cand = xp.empty(wave * MAX_CANDIDATES, xp.int32)
    fn, cfg_d = rt.function("simulation", "tc_transport"), xp.asarray(cfg)
    for first in range(0, n, wave):
        m = min(wave, n - first)
        rt.launch(fn, m, (
            np.int64(first), np.int64(m), vertex, momentum, charge, mass, geo["centre"], geo["rot"], geo["half_t"], geo["hv"],
            geo["min_hu"], geo["max_hu"], geo["layer"], np.int32(geo["n_layers"]), geo["layer_kind"],
            geo["layer_extent"], geo["layer_grid"], geo["bin_start"], geo["bin_modules"], x0,
            np.float64(geo["world_r"]), np.float64(geo["world_z"]), np.float64(bz), np.int32(grid[0]),
            np.int32(grid[1]), np.float64(grid[2]), np.float64(grid[3]), np.float64(grid[4]), np.float64(grid[5]),
            br, bzg, cfg_d, np.uint64(int(seed)), cand, module, pos, mom, local, dir_local, edep, path, count, status,
            fail))
    if n and bool((status[:n] != 0).any()):
        ip = int(xp.flatnonzero(status[:n] != 0)[0])
        if int(status[ip]) == 1:
            ds, p = (float(v) for v in fail[ip])
            raise ValueError(f"transport: particle {ip} needs more than 2e7 steps ({ds:g} mm each: |p| = {p:g} GeV "
                             "curls in the field); raise min_p, set loop_fraction > 0 or check the field")
        raise BackendError(f"transport on the GPU: particle {ip} met more than {MAX_CANDIDATES} candidate modules in "
                           "one step; run it with backend='cpu'")
    # Rows of the crossings made, in particle order: the first count[ip] rows of each particle.
    keep = (xp.arange(max_crossings)[None, :] < count[:n, None]).ravel() if n and max_crossings else \
        xp.zeros(0, bool)
    sel = xp.flatnonzero(keep)
    out = {
        "particle_index": (sel // max(max_crossings, 1)).astype(xp.int64), "module_index": module[sel],
        "position": pos[sel], "momentum": mom[sel], "local": local[sel], "local_direction": dir_local[sel],
        "edep": edep[sel], "path": path[sel],
    }
    arrays = outputs(rt, host, *out.values())
    return dict(zip(out, arrays if isinstance(arrays, tuple) else (arrays,)))


def digitize_segments(module_index, segments, charge, shapes, *, runtime):
    """Kernel ``digitize_segments``: (crossing, ch0, ch1, charge) per cell piece, crossings in order and
    each crossing's pieces in traversal order (the core's and the numpy reference's)."""
    from ...sim.digitization import _check_kernel_inputs

    rt, xp = runtime, runtime.xp
    host_i, (idx,) = inputs(rt, module_index, dtype=np.int64)
    host_f, (seg, q, sh) = inputs(rt, segments, charge, shapes, dtype=np.float64)
    host = host_i and host_f
    _check_kernel_inputs(idx, seg, q, sh)
    n = len(seg)
    count = xp.zeros(max(n, 1), xp.int64)
    if n:
        rt.launch(rt.function("simulation", "tc_digitize_count"), n, (np.int64(n), idx, seg, q, sh, count))
    offset = xp.zeros(max(n, 1), xp.int64)
    if n > 1:
        offset[1:] = xp.cumsum(count[: n - 1])
    total = int(offset[n - 1] + count[n - 1]) if n else 0
    crossing, ch0, ch1 = (xp.empty(max(total, 1), xp.int64) for _ in range(3))
    piece = xp.empty(max(total, 1))
    if total:
        rt.launch(rt.function("simulation", "tc_digitize_write"), n,
                  (np.int64(n), idx, seg, q, sh, offset, crossing, ch0, ch1, piece))
    return outputs(rt, host, crossing[:total], ch0[:total], ch1[:total], piece[:total])


def cluster_cells(module, ch0, ch1, *, runtime):
    """Kernel ``cluster_cells``: the 8-connected cluster label of each cell (cells sorted by (module, ch0,
    ch1) without duplicates; labels 0..K-1 in the order of each cluster's first cell), one module per thread."""
    rt, xp = runtime, runtime.xp
    host, (mod, a, b) = inputs(rt, module, ch0, ch1, dtype=np.int64)
    if mod.ndim != 1 or a.shape != mod.shape or b.shape != mod.shape:
        raise InputError(f"module, ch0, ch1 must be 1-D of one length; got {mod.shape}, {a.shape}, {b.shape}")
    n = len(mod)
    if n == 0:
        return outputs(rt, host, xp.zeros(0, xp.int64))
    lim = 1 << 21
    if bool(((mod < 0) | (a < 0) | (b < 0) | (mod >= lim) | (a >= lim) | (b >= lim)).any()):
        raise InputError("cell module/ch0/ch1 outside [0, 2^21)")
    key = (mod << 42) | (a << 21) | b
    bad = key[1:] <= key[:-1]
    if bool(bad.any()):
        i = int(xp.flatnonzero(bad)[0]) + 1
        raise InputError(f"cells must be sorted by (module, ch0, ch1) without duplicates; cell {i} is not after cell {i - 1}")
    # Each module's cells are contiguous: one thread clusters one module's, then the modules'
    # cluster numbers are offset by the clusters of the modules before them.
    start = xp.concatenate([xp.zeros(1, xp.int64), xp.flatnonzero(mod[1:] != mod[:-1]) + 1,
                            xp.full(1, n, xp.int64)]).astype(xp.int64)
    n_mod = len(start) - 1
    parent, label = xp.empty(n, xp.int64), xp.empty(n, xp.int64)
    n_clusters = xp.empty(n_mod, xp.int64)
    rt.launch(rt.function("simulation", "tc_cluster_modules"), n_mod,
              (np.int64(n_mod), start, a, b, parent, label, n_clusters))
    before = xp.concatenate([xp.zeros(1, xp.int64), xp.cumsum(n_clusters)[:-1]])
    module_of_cell = xp.searchsorted(start, xp.arange(n, dtype=xp.int64), side="right") - 1
    return outputs(rt, host, label + before[module_of_cell])
