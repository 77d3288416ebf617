"""``trackcore train fastsim_gan``: simulate events with the full digitisation, train the conditional GAN,
export the generator, evaluate on held-out events.

Event ``i`` of the training set is simulated with seed ``seed + i``, held-out events with
``seed + 100000 + i``; PyTorch runs single-threaded with a fixed generator, so one command gives
the same numbers again.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from trackcore.errors import InputError
from trackcore.plugins import write_json

from .clusters import INTEGER_OBSERVABLES, N_CONDITIONS, conditions, observables

#: Offset of the held-out events' seeds from the training seed.
HELD_OUT_OFFSET = 100_000


@dataclass
class TrainConfig:
    """Training settings: <mu> ``pileup``, Adam ``learning_rate``, MLP ``hidden`` widths, ``steps`` of batch ``batch_size``."""

    events: int = 3
    test_events: int = 2
    pileup: float = 200.0
    seed: int = 1
    steps: int = 6000
    batch_size: int = 2048
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (32, 32)
    critic_hidden: tuple[int, ...] = (64, 64)
    noise_dim: int = 4
    reco_events: int = 2  #: held-out events reconstructed after full and fast simulation (0: skip)
    notes: dict = field(default_factory=dict)

    def check(self) -> "TrainConfig":
        for name in ("events", "test_events", "steps", "batch_size", "noise_dim"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train fastsim_gan: {name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.pileup > 0 and self.learning_rate > 0):
            raise InputError("train fastsim_gan: pileup and learning_rate must be > 0")
        if not 0 <= self.reco_events <= self.test_events:
            raise InputError(f"train fastsim_gan: reco_events must be in [0, test_events={self.test_events}]")
        return self


#: ``--quick``: small events, few steps; seconds on one core (tests, smoke runs).
QUICK = TrainConfig(events=1, test_events=1, pileup=10.0, steps=300, batch_size=512, hidden=(16, 16),
                    critic_hidden=(32, 32), reco_events=1)


def simulate_full(n_events: int, first_seed: int, pileup: float, *, desc: str = "", progress: bool = True) -> list[dict]:
    """Fully digitised minimum-bias events: per event the particles, transport crossings, digitisation
    crossings, the :class:`DigitizedHits`, the conditions of every crossing and the observables of its hits."""
    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.digitization import digitize
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.pdg import mass_of
    from trackcore.sim.simulate import SimulationConfig, crossings_for_digitization
    from trackcore.sim.transport import transport

    from .fastsim import module_tables

    detector = trackml_like_detector()
    config = SimulationConfig()
    tables = module_tables(detector, config)
    out = []
    for i in tqdm(range(n_events), desc=desc, unit="event", disable=not progress):
        seed = first_seed + i
        p = minimum_bias(np.random.default_rng(seed), pileup=pileup)
        vertex, mom = (np.stack([p[a], p[b], p[c]], axis=1) for a, b, c in (("vx", "vy", "vz"), ("px", "py", "pz")))
        cr = transport(detector, vertex, mom, p["q"], mass_of(p["particle_type"]), config=config.transport, seed=seed)
        dc = crossings_for_digitization(detector, cr, config.barrel_active_fraction, config.max_segment)
        t0 = time.perf_counter()
        digi = digitize(detector, dc, config.digitization, np.random.default_rng(seed))
        t_full = time.perf_counter() - t0
        x_all = conditions(tables, dc, cr["momentum"])
        xc, y = observables(tables, digi, dc, cr["local"][:, :2])
        out.append({"seed": seed, "particles": p, "transport": cr, "crossings": dc, "digi": digi, "x_all": x_all,
                    "hit_crossing": xc, "x": x_all[xc], "y": y, "seconds_full_digitization": t_full})
    return out


def train_gan(x: np.ndarray, y: np.ndarray, config: TrainConfig, *, progress: bool = True):
    """Train the conditional GAN on conditions ``x`` and observables ``y``.

    Returns (generator, critic, :class:`~.model.Normalisation`, history). Integer observables get
    uniform noise in [-0.5, 0.5) (dequantisation) so the generator learns a density it can round.
    Loss: non-saturating GAN (binary cross-entropy on the critic's logits).
    """
    import torch
    from tqdm import tqdm

    from .model import Normalisation, make_networks

    if x.ndim != 2 or x.shape[1] != N_CONDITIONS or len(x) != len(y) or len(x) == 0:
        raise InputError(f"train fastsim_gan: need (N, {N_CONDITIONS}) conditions with N > 0 observables, "
                         f"got {x.shape} and {y.shape}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config.seed)
        gen_t = torch.Generator().manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        yq = y.copy()
        yq[:, INTEGER_OBSERVABLES] += rng.uniform(-0.5, 0.5, (len(y), len(INTEGER_OBSERVABLES)))
        norm = Normalisation(x, yq)
        xt = torch.as_tensor((x - norm.x_mean) / norm.x_std, dtype=torch.float32)
        yt = torch.as_tensor((yq - norm.y_mean) / norm.y_std, dtype=torch.float32)
        gen, _ = make_networks(config.hidden, config.noise_dim)
        _, critic = make_networks(config.critic_hidden, config.noise_dim)
        opt_g = torch.optim.Adam(gen.parameters(), lr=config.learning_rate, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(critic.parameters(), lr=config.learning_rate, betas=(0.5, 0.9))
        bce = torch.nn.BCEWithLogitsLoss()
        history = {"step": [], "loss_generator": [], "loss_critic": [], "seconds": []}
        t0 = time.perf_counter()
        ones, zeros = torch.ones(config.batch_size, 1), torch.zeros(config.batch_size, 1)
        acc_g = acc_d = 0.0
        every = max(1, config.steps // 100)
        for step in tqdm(range(1, config.steps + 1), desc="train", unit="step", disable=not progress):
            idx = torch.randint(len(xt), (config.batch_size,), generator=gen_t)
            xb, yb = xt[idx], yt[idx]
            z = torch.randn(config.batch_size, config.noise_dim, generator=gen_t)
            fake = gen(torch.cat([xb, z], 1))
            opt_d.zero_grad()
            loss_d = bce(critic(torch.cat([xb, yb], 1)), ones) + bce(critic(torch.cat([xb, fake.detach()], 1)), zeros)
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = bce(critic(torch.cat([xb, fake], 1)), ones)
            loss_g.backward()
            opt_g.step()
            acc_g += loss_g.item()
            acc_d += loss_d.item()
            if step % every == 0:
                history["step"].append(step)
                history["loss_generator"].append(acc_g / every)
                history["loss_critic"].append(acc_d / every)
                history["seconds"].append(time.perf_counter() - t0)
                acc_g = acc_d = 0.0
    finally:
        torch.set_num_threads(threads)
    gen.eval()
    return gen, critic, norm, history


def run_training(config: TrainConfig, output: str | Path, *, progress: bool = True) -> dict:
    """Data, training, export, evaluation. Writes ``model.pt`` (generator and critic state dicts),
    ``generator.npz`` (what the plugin runs), ``report.json`` and PNG plots into ``output``."""
    import torch

    from . import evaluate
    from .model import NumpyGenerator, export_numpy

    config.check()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    train_events = simulate_full(config.events, config.seed, config.pileup, desc="simulate (train)", progress=progress)
    x = np.concatenate([e["x"] for e in train_events])
    y = np.concatenate([e["y"] for e in train_events])
    del train_events
    t_data = time.perf_counter()
    gen, critic, norm, history = train_gan(x, y, config, progress=progress)
    t_train = time.perf_counter()
    torch.save({"generator": gen.state_dict(), "critic": critic.state_dict(), "hidden": list(config.hidden),
                "critic_hidden": list(config.critic_hidden), "noise_dim": config.noise_dim}, out / "model.pt")
    export_numpy(gen, norm, config.noise_dim, out / "generator.npz")
    generator = NumpyGenerator(out / "generator.npz")
    test_events = simulate_full(config.test_events, config.seed + HELD_OUT_OFFSET, config.pileup,
                                desc="simulate (held-out)", progress=progress)
    report = {"command": config.notes.get("command", ""),
              "config": {k: v for k, v in asdict(config).items() if k != "notes"},
              "training": {"examples": int(len(x)), "history": history, "seconds_data": t_data - t_start,
                           "seconds_train": t_train - t_data}}
    report["held_out"] = evaluate.fidelity_report(test_events, generator, out, history, seed=config.seed)
    report["speed"] = evaluate.speed_report(test_events, generator)
    if config.reco_events:
        report["reconstruction"] = evaluate.reconstruction_report(test_events[:config.reco_events], generator,
                                                                  progress=progress)
    report["seconds_total"] = time.perf_counter() - t_start
    write_json(out / "report.json", report)
    return report


def config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` of ``trackcore train fastsim_gan`` options."""
    base = QUICK if args.quick else TrainConfig()
    changes = {"seed": args.seed}
    for name in ("events", "steps", "pileup"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if args.test_events is not None:
        changes["test_events"] = args.test_events
        changes["reco_events"] = min(base.reco_events, args.test_events)
    return replace(base, **changes).check()


def main(argv: list[str] | None = None) -> int:
    """``python -m plugins.fastsim_gan.train [options]``: ``trackcore train fastsim_gan`` with this plugin
    registered by hand, for checkouts where its entry point is not installed."""
    from trackcore.cli.main import build_parser
    from trackcore.plugins import get_plugin_manager

    from . import plugin

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="fastsim_gan")
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(pm).parse_args(["train", "fastsim_gan", *argv])
    args.plugin_manager = pm
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
