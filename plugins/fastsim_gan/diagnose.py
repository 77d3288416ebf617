"""What the classifier two-sample test (C2ST) exploits, and how far the renderer alone limits it.

For each module group (pixel, strip) and each sample (GAN, no-ML baseline, *oracle*) this gives
the C2ST AUC against the full digitisation on the crossing's conditions plus all cluster quantities,
and on the conditions plus one quantity at a time (which observable gives the fake away). The
oracle feeds the renderer the full digitisation's own observables of each crossing (widths, size
deficit, charge, centroid residual; crossings without a full hit get the baseline's zeros): its
AUC is the floor that no generator can go below with this renderer.

``python -m plugins.fastsim_gan.diagnose --output DIR [--model generator.npz] [--seed 1] [--events 2]``
writes ``DIR/diagnostics.json``; the held-out events are the training command's (seeds
``seed + 100000 + i``, <mu> = 200).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trackcore.errors import InputError
from trackcore.plugins import write_json

from .clusters import N_OBSERVABLES
from .evaluate import GROUPS, QUANTITIES, c2st_auc, cluster_quantities, fast_quantities


class OracleGenerator:
    """Stands in for :class:`~.model.NumpyGenerator`: returns given per-crossing observables, ignoring the noise.

    :param obs: (N_crossings, :data:`~.clusters.N_OBSERVABLES`) observables of one event.
    """

    def __init__(self, obs: np.ndarray):
        obs = np.asarray(obs, np.float64)
        if obs.ndim != 2 or obs.shape[1] != N_OBSERVABLES:
            raise InputError(f"fastsim diagnose: oracle observables must have shape (N, {N_OBSERVABLES}), got {obs.shape}")
        self.obs = obs
        self.path = "oracle"

    def generate_raw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(x) != len(self.obs):
            raise InputError(f"fastsim diagnose: oracle has {len(self.obs)} crossings, asked for {len(x)}")
        return self.obs


def oracle_observables(event: dict) -> np.ndarray:
    """Per-crossing observables of a ``train.simulate_full`` event: the full digitisation's where the
    crossing made a hit (the last one if several), zeros (the baseline) elsewhere."""
    obs = np.zeros((len(event["x_all"]), N_OBSERVABLES))
    obs[event["hit_crossing"]] = event["y"]
    return obs


def diagnose(events: list[dict], generator, seed: int = 1, c2st_rows: int = 30000) -> dict:
    """C2ST AUCs (all quantities and one at a time) of GAN, baseline and oracle against the full digitisation."""
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.simulate import SimulationConfig

    from .fastsim import module_tables

    if not events:
        raise InputError("fastsim diagnose: no held-out events")
    tables = module_tables(trackml_like_detector(), SimulationConfig())
    samples: dict[str, list] = {"full": [], "gan": [], "baseline": [], "oracle": []}
    for k, ev in enumerate(events):
        xc, q = cluster_quantities(tables, ev["digi"], ev["crossings"], ev["transport"]["local"][:, :2])
        samples["full"].append((ev["x_all"][xc], q))
        # Same noise seeds as evaluate.fidelity_report, so the GAN's whole-sample AUC is report.json's.
        for name, g in (("gan", generator), ("baseline", None), ("oracle", OracleGenerator(oracle_observables(ev)))):
            xf, qf = fast_quantities(ev, g, seed + 7 * k + 1)
            samples[name].append((ev["x_all"][xf], qf))
    cat = {n: (np.concatenate([s[0] for s in v]), np.concatenate([s[1] for s in v])) for n, v in samples.items()}
    report: dict = {"clusters": {n: int(len(v[1])) for n, v in cat.items()}}
    for group, classes in GROUPS.items():
        sel = {n: np.isin(np.argmax(x[:, :4], 1), classes) for n, (x, _) in cat.items()}
        xa, qa = cat["full"][0][sel["full"]], cat["full"][1][sel["full"]]
        rows: dict = {}
        for name in ("gan", "baseline", "oracle"):
            xb, qb = cat[name][0][sel[name]], cat[name][1][sel[name]]
            row = {"all": c2st_auc(np.hstack([xa, qa]), np.hstack([xb, qb]), seed, max_rows=c2st_rows)}
            for qi, qname in enumerate(QUANTITIES):
                row[qname] = c2st_auc(np.hstack([xa, qa[:, [qi]]]), np.hstack([xb, qb[:, [qi]]]), seed,
                                      max_rows=c2st_rows)
            rows[name] = row
        report[group] = rows
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    from .model import NumpyGenerator
    from .train import HELD_OUT_OFFSET, simulate_full

    p = argparse.ArgumentParser(prog="python -m plugins.fastsim_gan.diagnose", description=__doc__.split("\n")[0])
    p.add_argument("--output", required=True, help="folder for diagnostics.json")
    p.add_argument("--model", default=str(Path(__file__).with_name("generator.npz")), help="generator .npz")
    p.add_argument("--seed", type=int, default=1, help="training seed of the model (held-out seeds follow it)")
    p.add_argument("--events", type=int, default=2, help="held-out events (<mu> = 200)")
    args = p.parse_args(argv)
    if args.events < 1:
        raise InputError(f"fastsim diagnose: --events must be >= 1, got {args.events}")
    generator = NumpyGenerator(args.model)
    events = simulate_full(args.events, args.seed + HELD_OUT_OFFSET, 200.0, desc="simulate (held-out)")
    report = {"command": "python -m plugins.fastsim_gan.diagnose " + " ".join(argv if argv is not None else []),
              "model": str(args.model), **diagnose(events, generator, seed=args.seed)}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "diagnostics.json", report)
    for group in GROUPS:
        print(group, {n: round(r["all"], 3) for n, r in report[group].items()})
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
