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

from .clusters import N_CONDITIONS, conditions, observables

#: Offset of the held-out events' seeds from the training seed.
HELD_OUT_OFFSET = 100_000


@dataclass
class TrainConfig:
    """Training settings: <mu> ``pileup``, Adam ``learning_rate``, MLP ``hidden`` widths, GAN ``steps`` and
    classifier ``class_steps`` of batch ``batch_size``, at most ``max_classes`` joint integer classes."""

    events: int = 3
    test_events: int = 2
    pileup: float = 200.0
    seed: int = 1
    steps: int = 12000
    batch_size: int = 2048
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    class_hidden: tuple[int, ...] = (32,)
    class_steps: int = 3000
    max_classes: int = 24
    reco_events: int = 2  #: held-out events reconstructed after full and fast simulation (0: skip)
    notes: dict = field(default_factory=dict)

    def check(self) -> "TrainConfig":
        for name in ("events", "test_events", "steps", "batch_size", "class_steps", "max_classes"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train fastsim_gan: {name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.pileup > 0 and self.learning_rate > 0):
            raise InputError("train fastsim_gan: pileup and learning_rate must be > 0")
        if not 0 <= self.reco_events <= self.test_events:
            raise InputError(f"train fastsim_gan: reco_events must be in [0, test_events={self.test_events}]")
        return self


#: ``--quick``: small events, few steps; seconds on one core (tests, smoke runs).
QUICK = TrainConfig(events=1, test_events=1, pileup=10.0, steps=300, batch_size=512, hidden=(16, 16),
                    critic_hidden=(32, 32), class_hidden=(16,), class_steps=300, max_classes=12, reco_events=1)


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
    """Train the classifier of the integer observables and the conditional GAN of the continuous ones.

    Returns (classifier, generator, critic, classes, :class:`~.model.Normalisation`, history). The
    classifier minimises the cross-entropy of the joint integer class (:func:`~.model.integer_classes`);
    the GAN (non-saturating binary cross-entropy on the critic's logits) generates log_charge, res_u
    and res_v given the conditions and the cluster's true class, from uniform noise as at inference.
    """
    import torch
    from tqdm import tqdm

    from .model import (CONTINUOUS_COLUMNS, NOISE_DIM, NOISE_HALF_WIDTH, Normalisation, class_of, integer_classes,
                        make_networks)

    if x.ndim != 2 or x.shape[1] != N_CONDITIONS or len(x) != len(y) or len(x) == 0:
        raise InputError(f"train fastsim_gan: need (N, {N_CONDITIONS}) conditions with N > 0 observables, "
                         f"got {x.shape} and {y.shape}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config.seed)
        gen_t = torch.Generator().manual_seed(config.seed)
        classes = integer_classes(y, config.max_classes)
        label = class_of(y, classes)
        norm = Normalisation(x, y)
        ints = classes[label].astype(np.float64)
        ints = (ints - ints.mean(0)) / np.maximum(ints.std(0), 1e-6)
        xt = torch.as_tensor((x - norm.x_mean) / norm.x_std, dtype=torch.float32)
        yt = torch.as_tensor((y[:, list(CONTINUOUS_COLUMNS)] - norm.y_mean) / norm.y_std, dtype=torch.float32)
        it = torch.as_tensor(ints, dtype=torch.float32)
        lt = torch.as_tensor(label, dtype=torch.int64)
        onehot = torch.eye(len(classes))
        classifier, gen, critic = make_networks(config.hidden, config.critic_hidden, len(classes), config.class_hidden)
        history = {"step": [], "loss_generator": [], "loss_critic": [], "seconds": [], "class_step": [],
                   "loss_classifier": []}
        t0 = time.perf_counter()
        opt_c = torch.optim.Adam(classifier.parameters(), lr=config.learning_rate)
        acc_c = 0.0
        every = max(1, config.class_steps // 50)
        for step in tqdm(range(1, config.class_steps + 1), desc="train classifier", unit="step", disable=not progress):
            idx = torch.randint(len(xt), (config.batch_size,), generator=gen_t)
            opt_c.zero_grad()
            loss_c = torch.nn.functional.cross_entropy(classifier(xt[idx]), lt[idx])
            loss_c.backward()
            opt_c.step()
            acc_c += loss_c.item()
            if step % every == 0:
                history["class_step"].append(step)
                history["loss_classifier"].append(acc_c / every)
                acc_c = 0.0
        opt_g = torch.optim.Adam(gen.parameters(), lr=config.learning_rate, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(critic.parameters(), lr=config.learning_rate, betas=(0.5, 0.9))
        bce = torch.nn.BCEWithLogitsLoss()
        ones, zeros = torch.ones(config.batch_size, 1), torch.zeros(config.batch_size, 1)
        acc_g = acc_d = 0.0
        every = max(1, config.steps // 100)
        for step in tqdm(range(1, config.steps + 1), desc="train GAN", unit="step", disable=not progress):
            idx = torch.randint(len(xt), (config.batch_size,), generator=gen_t)
            xb, yb, ib = xt[idx], yt[idx], it[idx]
            z = (torch.rand(config.batch_size, NOISE_DIM, generator=gen_t) * 2 - 1) * NOISE_HALF_WIDTH
            fake = gen(torch.cat([xb, onehot[lt[idx]], z], 1))
            opt_d.zero_grad()
            loss_d = (bce(critic(torch.cat([xb, ib, yb], 1)), ones)
                      + bce(critic(torch.cat([xb, ib, fake.detach()], 1)), zeros))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = bce(critic(torch.cat([xb, ib, fake], 1)), ones)
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
    classifier.eval()
    gen.eval()
    return classifier, gen, critic, classes, norm, history


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
    classifier, gen, critic, classes, norm, history = train_gan(x, y, config, progress=progress)
    t_train = time.perf_counter()
    torch.save({"classifier": classifier.state_dict(), "generator": gen.state_dict(), "critic": critic.state_dict(),
                "classes": classes.tolist(), "hidden": list(config.hidden), "critic_hidden": list(config.critic_hidden),
                "class_hidden": list(config.class_hidden)},
               out / "model.pt")
    export_numpy(classifier, gen, classes, norm, out / "generator.npz")
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
