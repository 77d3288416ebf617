"""``trackcore train seed_classifier``: simulate events, build the seed data set, train, export, evaluate.

Everything is driven by one seed: event ``i`` of the training set is simulated with seed
``seed + i``, held-out events with ``seed + 100000 + i`` (never seen in training), and PyTorch
runs single-threaded with a fixed generator, so a given command gives the same numbers again.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from trackcore.errors import InputError
from trackcore.event import Event
from trackcore.plugins import write_json

from .features import (
    FEATURE_NAMES,
    N_FEATURES,
    seed_features,
    training_examples,
    truth_labels,
)

#: Offset of the held-out events' seeds from the training seed.
HELD_OUT_OFFSET = 100_000


@dataclass
class TrainConfig:
    """Training settings. ``pileup`` is <mu>; ``learning_rate`` for Adam; ``hidden`` the MLP widths."""

    events: int = 8  #: training events (10% of their seeds are the validation set of the loss curve)
    test_events: int = 3  #: held-out events for the evaluation
    pileup: float = 200.0
    seed: int = 1
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 2e-3
    hidden: tuple[int, ...] = (128, 128)
    medium_fraction: float = 1.0  #: medium seeds made per good seed
    max_examples_per_event: int = 0  #: subsample each event's examples to this many (0: all)
    pipeline_events: int = 3  #: held-out events reconstructed with / without the classifier (0: skip)
    notes: dict = field(default_factory=dict)

    def check(self) -> "TrainConfig":
        for name in ("events", "test_events", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train seed_classifier: {name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.pileup > 0 and self.learning_rate > 0 and self.medium_fraction >= 0):
            raise InputError("train seed_classifier: pileup and learning_rate must be > 0, medium_fraction >= 0")
        if self.pipeline_events < 0 or self.pipeline_events > self.test_events:
            raise InputError(f"train seed_classifier: pipeline_events must be in [0, test_events={self.test_events}]")
        return self


#: Settings of ``--quick`` (tests, smoke runs): small events, few epochs, seconds on one core.
QUICK = TrainConfig(events=2, test_events=1, pileup=20.0, epochs=6, batch_size=512, hidden=(32, 32),
                    pipeline_events=1)


def simulate(n_events: int, first_seed: int, pileup: float, *, desc: str, progress: bool = True) -> list[Event]:
    """``n_events`` minimum-bias events (seeds ``first_seed + i``) on the TrackML-like detector."""
    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.simulate import simulate_event

    detector = trackml_like_detector()
    events = []
    for i in tqdm(range(n_events), desc=desc, unit="event", disable=not progress):
        seed = first_seed + i
        particles = minimum_bias(np.random.default_rng(seed), pileup=pileup)
        events.append(simulate_event(detector, particles, seed=seed, event_id=seed))
    return events


def find_event_seeds(event: Event):
    """(hit_index (N, 3) rows of ``event.hits``, seed-finder weight (N,)) of the seeding the
    reconstruction pipeline runs by default (its first pass), so the model learns the seeds it will see."""
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.reco.pipeline import default_seeding
    from trackcore.reco.seeding import find_seeds
    from trackcore.reco.spacepoints import SpacePoints

    config = default_seeding()
    sp = SpacePoints.from_event(event, trackml_like_detector(), volumes=config.volumes)
    seeds = find_seeds(sp, config)
    return (sp.hit_index[seeds.hits] if len(seeds) else np.zeros((0, 3), np.int64)), seeds.weight


def build_dataset(events: list[Event], config: TrainConfig, rng: np.random.Generator, *,
                  progress: bool = True, desc: str = "seeds") -> dict:
    """Features ``x`` (M, F), labels ``y`` (M,), and for the real seeds their weight and event number."""
    from tqdm import tqdm

    xs, ys, weights, real, event_no = [], [], [], [], []
    for k, event in enumerate(tqdm(events, desc=desc, unit="event", disable=not progress)):
        hit_index, weight = find_event_seeds(event)
        if len(hit_index) == 0:
            continue
        x, y = training_examples(event, hit_index, rng, medium_fraction=config.medium_fraction)
        is_real = np.arange(len(x)) < len(hit_index)
        w = np.concatenate([weight, np.full(len(x) - len(hit_index), np.nan)])
        if config.max_examples_per_event and len(x) > config.max_examples_per_event:
            pick = np.sort(rng.choice(len(x), config.max_examples_per_event, replace=False))
            x, y, w, is_real = x[pick], y[pick], w[pick], is_real[pick]
        xs.append(x), ys.append(y), weights.append(w), real.append(is_real), event_no.append(np.full(len(x), k))
    if not xs or sum(len(x) for x in xs) == 0:
        raise InputError("train seed_classifier: the events gave no seeds to learn from (empty events?)")
    return {"x": np.concatenate(xs), "y": np.concatenate(ys).astype(np.int64), "weight": np.concatenate(weights),
            "real": np.concatenate(real), "event": np.concatenate(event_no)}


def train_model(x: np.ndarray, y: np.ndarray, config: TrainConfig, *, progress: bool = True):
    """Train a :class:`~.model.SeedMLP`; returns (model, history with per-epoch train/validation loss).

    Classes are weighted by inverse frequency so that each class's recall counts the same.
    """
    import torch
    from tqdm import tqdm

    from .model import SeedMLP

    if x.ndim != 2 or x.shape[1] != N_FEATURES or len(x) != len(y):
        raise InputError(f"train seed_classifier: features must be (N, {N_FEATURES}) with N labels, "
                         f"got {x.shape} and {y.shape}")
    if len(np.unique(y)) < 2:
        raise InputError(f"train seed_classifier: need at least two classes, got {np.unique(y).tolist()}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible reductions, and the machine is shared
    try:
        gen = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        order = rng.permutation(len(x))
        n_val = max(1, len(x) // 10)
        val, tr = order[:n_val], order[n_val:]
        model = SeedMLP(N_FEATURES, config.hidden)
        model.set_normalisation(x[tr])
        counts = np.bincount(y[tr], minlength=3).astype(np.float64)
        class_weight = torch.as_tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / 3.0, 0.0),
                                       dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
        opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
        xt, yt = torch.as_tensor(x[tr]), torch.as_tensor(y[tr])
        xv, yv = torch.as_tensor(x[val]), torch.as_tensor(y[val])
        history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "seconds": []}
        t0 = time.perf_counter()
        for _ in tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress):
            model.train()
            perm = torch.randperm(len(xt), generator=gen)
            total, n = 0.0, 0
            for i in range(0, len(perm), config.batch_size):
                idx = perm[i:i + config.batch_size]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                n += len(idx)
            sched.step()
            model.eval()
            with torch.no_grad():
                logits = model(xv)
                history["val_loss"].append(float(loss_fn(logits, yv)))
                history["val_accuracy"].append(float((logits.argmax(1) == yv).float().mean()))
            history["train_loss"].append(total / max(n, 1))
            history["seconds"].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model, history


def run_training(config: TrainConfig, output: str | Path, *, progress: bool = True) -> dict:
    """The whole job: data, training, ONNX export, evaluation; writes into ``output``:
    ``model.pt`` (state dict), ``model.onnx``, ``report.json`` and the PNG plots. Returns the report."""
    from . import evaluate
    from .model import export_onnx, save_state

    config.check()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    train_events = simulate(config.events, config.seed, config.pileup, desc="simulate (train)", progress=progress)
    data = build_dataset(train_events, config, rng, progress=progress, desc="seeds (train)")
    del train_events
    t_data = time.perf_counter()
    model, history = train_model(data["x"], data["y"], config, progress=progress)
    t_train = time.perf_counter()
    save_state(model, out / "model.pt")
    export_onnx(model, out / "model.onnx")

    test_events = simulate(config.test_events, config.seed + HELD_OUT_OFFSET, config.pileup,
                           desc="simulate (held-out)", progress=progress)
    test = build_dataset(test_events, config, np.random.default_rng(config.seed + HELD_OUT_OFFSET),
                         progress=progress, desc="seeds (held-out)")
    report = {
        "command": config.notes.get("command", ""),
        "config": {k: v for k, v in asdict(config).items() if k != "notes"},
        "features": list(FEATURE_NAMES),
        "training": {"examples": int(len(data["y"])), "class_counts": np.bincount(data["y"], minlength=3).tolist(),
                     "history": history, "seconds_data": t_data - t_start, "seconds_train": t_train - t_data},
    }
    report["held_out"] = evaluate.classification_report(model, test, data, out, history)
    if config.pipeline_events:
        report["pipeline"] = evaluate.pipeline_comparison(test_events[:config.pipeline_events], out / "model.onnx",
                                                          report["held_out"]["baseline"]["weight_cut"],
                                                          progress=progress)
    report["seconds_total"] = time.perf_counter() - t_start
    write_json(out / "report.json", report)
    return report


def config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` of ``trackcore train seed_classifier`` options."""
    base = QUICK if args.quick else TrainConfig()
    changes = {"seed": args.seed}
    if args.events is not None:
        changes["events"] = args.events
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.test_events is not None:
        changes["test_events"] = args.test_events
        changes["pipeline_events"] = min(base.pipeline_events, args.test_events)
    return replace(base, **changes).check()


__all__ = ["HELD_OUT_OFFSET", "QUICK", "TrainConfig", "build_dataset", "config_from_args", "find_event_seeds",
           "run_training", "seed_features", "simulate", "train_model", "truth_labels"]
