"""Per-kernel timings on every backend present, written as a Markdown table.

Run with ``pytest benchmarks/test_bench_backends.py -s``; the table goes to stdout and to
``$TRACKCORE_BENCH_TABLE`` (default ``.benchmarks/backends.md``). Rows: kernel, backend, problem
size, median wall time of ``repeats`` calls (after one warm-up call, which also compiles the CUDA
kernels) and time per item. ``cupy`` rows appear only where CuPy and a GPU are present; GPU timings
include a device synchronisation and use device-resident inputs (no host<->device copies). The
numpy twins of GPU-only kernels (``reference``) are Python reference code, timed on smaller inputs.
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np

from trackcore.backends import available_backends, get_backend
from trackcore.backends.cupy_kernels import reference
from trackcore.geometry.builders import trackml_like_detector
from trackcore.reco.seeding import SeedingConfig, _params_for, _selection
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import minimum_bias
from trackcore.sim.simulate import simulate_event

TABLE = Path(os.environ.get("TRACKCORE_BENCH_TABLE", ".benchmarks/backends.md"))


@functools.lru_cache(maxsize=None)
def seeding_inputs(pileup: float) -> tuple:
    det = trackml_like_detector()
    event = simulate_event(det, minimum_bias(3, pileup=pileup), seed=3)
    sp = SpacePoints.from_event(event, det)
    cfg = SeedingConfig()
    sel = _selection(sp, cfg)
    return (sp.x[sel], sp.y[sel], sp.z[sel], sp.r[sel], sp.phi[sel], sp.layer_index[sel], _params_for(sp, sel, cfg))


@functools.lru_cache(maxsize=None)
def ckf_inputs(pileup: float) -> tuple:
    """The ``ckf`` kernel's arguments on a <mu> = pileup event: the default pipeline's first-pass seeds."""
    from trackcore.reco.measurements import Measurements
    from trackcore.reco.pipeline import default_ckf, default_seeding
    from trackcore.reco.seeding import find_seeds
    from trackcore.sim.transport import layer_material

    det = trackml_like_detector()
    event = simulate_event(det, minimum_bias(3, pileup=pileup), seed=3)
    meas = Measurements.from_event(event, det)
    sp = SpacePoints.from_event(event, det)
    seeds = sp.hit_index[find_seeds(sp, default_seeding(det)).hits]
    return (det, meas, seeds, layer_material(det), 2.0, default_ckf().kernel_settings(None), None)


@functools.lru_cache(maxsize=None)
def transport_inputs(pileup: float) -> tuple:
    """The ``transport`` kernel's arguments: the particles of a <mu> = pileup event, default settings."""
    from trackcore.sim.pdg import mass_of
    from trackcore.sim.transport import TransportConfig, layer_material

    det = trackml_like_detector()
    p = minimum_bias(3, pileup=pileup)
    return (det, np.stack([p["vx"], p["vy"], p["vz"]], axis=1), np.stack([p["px"], p["py"], p["pz"]], axis=1),
            np.asarray(p["q"], np.int32), mass_of(p["particle_type"]), layer_material(det), 2.0, None, 3,
            TransportConfig())


def problems(rng) -> dict:
    """kernel -> (size label, n items, args builder(n) ) with n per backend kind ('fast' or 'reference')."""
    det = trackml_like_detector()

    def transform(n):
        idx = rng.integers(0, len(det), n)
        return (det.centre, det.rotation, idx, det.centre[idx] + rng.normal(0, 20, (n, 3)))

    def helix(n):
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        pos = rng.normal(0, 5, (n, 3))
        return (pos, d, rng.choice([-1, 1], n) / rng.uniform(0.3, 20, n), 2.0, pos + 200 * d, d, 0.0, 5000.0)

    def rk(n):  # the TrackML solenoid map, planes 200 mm ahead
        from trackcore.geometry.field import trackml_field_map
        from trackcore.sim.transport import field_arguments

        pos, d, qop, _, point, normal, s_min, _ = helix(n)
        return (pos, d, qop, field_arguments(trackml_field_map())[1], point, normal, s_min, 1000.0)

    def kalman(n):
        a = rng.normal(size=(n, 5, 5)) * 0.05
        p = np.column_stack([rng.normal(0, 1, (n, 2)), rng.uniform(-3, 3, n), rng.uniform(0.2, 3, n), rng.normal(0, 1, n)])
        return (p, a @ a.transpose(0, 2, 1) + np.eye(5) * 1e-4, p[:, :2] + rng.normal(0, 0.05, (n, 2)), np.full((n, 2), 2.5e-3))

    def lsh(n):
        return (rng.normal(0, 3, (n, 3)), rng.normal(size=(4, 6, 3)), rng.uniform(0, 2, (4, 6)), 2.0)

    return {
        "global_to_local": (transform, {"fast": 1_000_000, "reference": 1_000_000}),
        "seeding_grid": (lambda n: (seeding_inputs(n)[4], seeding_inputs(n)[2], seeding_inputs(n)[3], seeding_inputs(n)[6]),
                         {"fast": 60.0, "reference": 60.0}),
        "find_seeds": (lambda n: seeding_inputs(n), {"fast": 60.0, "reference": 5.0}),
        "helix_to_plane": (helix, {"fast": 1_000_000, "reference": 20_000}),
        "rk_to_plane": (rk, {"fast": 1_000_000, "reference": 5_000}),
        "kalman_update": (kalman, {"fast": 1_000_000, "reference": 200_000}),
        "lsh_keys": (lsh, {"fast": 1_000_000, "reference": 1_000_000}),
        # CKF + ambiguity resolution + perigee fit from the first pass's seeds (cpu: every core).
        "ckf": (lambda n: ckf_inputs(n), {"fast": 60.0, "reference": 5.0}),
        # The simulation's transport of every particle of the event (cpu: one worker thread).
        "transport": (lambda n: transport_inputs(n), {"fast": 200.0, "reference": 5.0}),
    }


def kernels_by_backend() -> dict:
    """backend label -> (kind, {kernel name: callable}, to-device function, synchronise function)."""
    twins = {"helix_to_plane": reference.helix_to_plane_numpy, "rk_to_plane": reference.rk_to_plane_numpy,
             "kalman_update": reference.kalman_update_numpy, "lsh_keys": reference.lsh_keys_numpy}
    status = available_backends()
    out = {"numpy": ("reference", {**get_backend("numpy").kernels, **twins}, lambda a: a, lambda: None)}
    if status["cpu"] == "ok":
        out["cpu"] = ("fast", get_backend("cpu").kernels, lambda a: a, lambda: None)
    if status["cupy"] == "ok":
        b = get_backend("cupy")
        cp = b.xp
        def to_device(a):
            from trackcore.reco.measurements import Measurements

            if isinstance(a, Measurements):  # the CKF's hits, device-resident as in the reconstruction chain
                return Measurements(*(cp.asarray(getattr(a, k)) for k in ("module_index", "u", "v", "var_u", "var_v",
                                                                            "xyz")))
            return cp.asarray(a) if isinstance(a, np.ndarray) else a

        out["cupy"] = ("fast", b.kernels, to_device, cp.cuda.get_current_device().synchronize)
    return out


def size_of(name: str, args: tuple) -> str:
    if name in ("seeding_grid", "find_seeds"):
        return f"{len(args[0])} space points"
    if name == "ckf":
        return f"{len(args[2])} seeds"
    if name == "transport":
        return f"{len(args[1])} particles"
    return f"{len(args[3] if name == 'global_to_local' else args[0])} items"


def test_bench_backends(capsys):
    rng = np.random.default_rng(0)
    rows = []
    for backend, (kind, kernels, to_dev, sync) in kernels_by_backend().items():
        for name, (build, sizes) in problems(rng).items():
            if name not in kernels:
                continue
            args = tuple(to_dev(a) for a in build(sizes[kind]))
            fn = kernels[name]
            fn(*args)  # warm-up (CUDA compilation, caches)
            sync()
            repeats = 5 if kind == "fast" else 2
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(*args)
                sync()
                times.append(time.perf_counter() - t0)
            t = float(np.median(times))
            label = size_of(name, args)
            n = int(label.split()[0])
            rows.append((name, backend, label, t * 1e3, t / n * 1e9))
    rows.sort()
    lines = ["| kernel | backend | size | median ms | ns / item |", "|---|---|---|---:|---:|"]
    lines += [f"| {k} | {b} | {s} | {ms:.2f} | {ns:.1f} |" for k, b, s, ms, ns in rows]
    table = "\n".join(lines) + "\n"
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(table)
    with capsys.disabled():
        print("\n" + table)
    assert {r[1] for r in rows} >= {"numpy"} and all(r[3] > 0 for r in rows)
