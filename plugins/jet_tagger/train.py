"""``trackcore train jet_tagger``: simulate jets, train the Deep Sets b-tagger and the q/g CNN, evaluate.

One seed drives everything: b-tag training event ``i`` uses seed ``seed + i``, held-out events
``seed + 100000 + i``; the q/g training jets come from seed ``seed``, held-out ones from
``seed + 100000``; PyTorch runs on one thread with fixed generators, so a command gives the same
numbers again. The reconstructed b-tag track sets are cached as ``.npz`` under ``cache_dir``
(a temporary folder by default, never the repository).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from trackcore.errors import InputError
from trackcore.plugins import write_json

from . import btag, qg
from .evaluate import B_EFFICIENCY

HELD_OUT_OFFSET = 100_000


@dataclass
class TrainConfig:
    """Settings; ``*_events`` are simulated events (each with ``jets_per_event`` jets), ``qg_jets`` per class."""

    seed: int = 1
    tasks: tuple[str, ...] = ("btag", "qg")
    btag_events: int = 2000
    btag_test_events: int = 4000
    jets_per_event: int = 4
    pileup: float = 0.0  #: <mu> of minimum bias added to the b-tag events (0: none, for speed)
    btag_epochs: int = 40
    qg_jets: int = 20000
    qg_test_jets: int = 10000
    qg_epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 1e-3
    cache_dir: str = ""  #: "" = a folder under the system temporary directory
    notes: dict = field(default_factory=dict)

    def check(self) -> "TrainConfig":
        for name in ("btag_events", "btag_test_events", "jets_per_event", "btag_epochs", "qg_jets", "qg_test_jets",
                     "qg_epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train jet_tagger: {name} must be >= 1, got {getattr(self, name)!r}")
        if not self.tasks or any(t not in ("btag", "qg") for t in self.tasks):
            raise InputError(f"train jet_tagger: tasks must be btag and/or qg, got {self.tasks!r}")
        if self.pileup < 0 or self.learning_rate <= 0:
            raise InputError("train jet_tagger: pileup must be >= 0 and learning_rate > 0")
        return self


#: ``--quick`` (tests, smoke runs): seconds on one core.
QUICK = TrainConfig(btag_events=80, btag_test_events=60, btag_epochs=8, qg_jets=400, qg_test_jets=300, qg_epochs=4,
                    batch_size=64)


def btag_sample(config: TrainConfig, held_out: bool, *, progress: bool = True) -> dict:
    """The b-tag jets of the training or held-out events, from the ``.npz`` cache when present."""
    n = config.btag_test_events if held_out else config.btag_events
    first = config.seed + (HELD_OUT_OFFSET if held_out else 0)
    cache = Path(config.cache_dir or Path(tempfile.gettempdir()) / "trackcore-jet_tagger-cache")
    path = cache / f"btag-{first}-{n}-j{config.jets_per_event}-mu{config.pileup:g}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    data = btag.simulate_btag_sample(n, first, jets_per_event=config.jets_per_event, pileup=config.pileup,
                                     progress=progress, desc="b-tag " + ("held-out" if held_out else "train"))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)
    return data


def _fit(model, inputs: list[np.ndarray], target: np.ndarray, config: TrainConfig, epochs: int, *,
         progress: bool, desc: str) -> dict:
    """Adam + cosine schedule on binary cross-entropy; 10% of ``inputs`` held back for the loss curve."""
    import torch
    from tqdm import tqdm

    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(target))
    n_val = max(1, len(target) // 10)
    val, tr = order[:n_val], order[n_val:]
    tensors = [torch.as_tensor(a) for a in inputs]
    y = torch.as_tensor(target.astype(np.float32))
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    tr_t, val_t = torch.as_tensor(tr), torch.as_tensor(val)
    history = {"train_loss": [], "val_loss": [], "seconds": []}
    t0 = time.perf_counter()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress):
        model.train()
        perm = tr_t[torch.randperm(len(tr_t), generator=gen)]
        total = 0.0
        for i in range(0, len(perm), config.batch_size):
            idx = perm[i:i + config.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(*(t[idx] for t in tensors)), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        model.eval()
        with torch.no_grad():
            history["val_loss"].append(float(loss_fn(model(*(t[val_t] for t in tensors)), y[val_t])))
        history["train_loss"].append(total / len(tr))
        history["seconds"].append(time.perf_counter() - t0)
    model.eval()
    return history


def _seeded(config: TrainConfig):
    import torch

    torch.manual_seed(config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible reductions; the machine is shared
    return threads


def train_btag(data: dict, config: TrainConfig, *, progress: bool = True):
    """A :class:`~.models.DeepSets` trained on ``data`` (from :func:`btag_sample`); (model, history)."""
    import torch

    from .models import DeepSets

    if len(np.unique(data["is_b"])) < 2:
        raise InputError("train jet_tagger: the b-tag sample needs both b and light jets")
    threads = _seeded(config)
    try:
        model = DeepSets(btag.N_TRACK_FEATURES)
        model.set_normalisation(data["x"], data["mask"])
        history = _fit(model, [data["x"].astype(np.float32), data["mask"]], data["is_b"], config, config.btag_epochs,
                       progress=progress, desc="train b-tag")
    finally:
        torch.set_num_threads(threads)
    return model, history


def train_qg(data: dict, config: TrainConfig, *, progress: bool = True):
    """A :class:`~.models.JetCNN` trained on ``data`` (from :func:`qg.simulate_qg_sample`); (model, history)."""
    import torch

    from .models import JetCNN

    threads = _seeded(config)
    try:
        model = JetCNN(len(qg.CHANNELS), qg.PIXELS)
        model.set_normalisation(data["images"])
        history = _fit(model, [data["images"].astype(np.float32)], data["is_quark"], config, config.qg_epochs,
                       progress=progress, desc="train q/g")
    finally:
        torch.set_num_threads(threads)
    return model, history


def run_training(config: TrainConfig, output: str | Path, *, progress: bool = True) -> dict:
    """Train and evaluate the chosen tasks; write models, ``report.json`` and PNG plots into ``output``.

    Files: ``btag_deepsets.pt``, ``ip3d.json`` (baseline templates), ``qg_cnn.pt``, ``roc_btag.png``,
    ``roc_qg.png``, ``loss.png``. Returns the report.
    """
    from . import evaluate
    from .models import save

    config.check()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report: dict = {"command": config.notes.get("command", ""),
                    "config": {k: v for k, v in asdict(config).items() if k not in ("notes", "cache_dir")}}
    histories = {}
    if "btag" in config.tasks:
        train = btag_sample(config, False, progress=progress)
        test = btag_sample(config, True, progress=progress)
        model, histories["b-tag Deep Sets"] = train_btag(train, config, progress=progress)
        save(model, out / "btag_deepsets.pt", {"n_features": btag.N_TRACK_FEATURES})
        ip3d = btag.IP3D().fit(train["x"], train["mask"], train["is_b"])
        (out / "ip3d.json").write_text(json.dumps(ip3d.state()) + "\n")
        report["btag"] = evaluate.btag_report(model, ip3d, train, test, out, histories["b-tag Deep Sets"])
    if "qg" in config.tasks:
        train = qg.simulate_qg_sample(config.qg_jets, config.seed, progress=progress, desc="q/g train")
        test = qg.simulate_qg_sample(config.qg_test_jets, config.seed + HELD_OUT_OFFSET, progress=progress,
                                     desc="q/g held-out")
        model, histories["q/g CNN"] = train_qg(train, config, progress=progress)
        save(model, out / "qg_cnn.pt", {"channels": len(qg.CHANNELS), "pixels": qg.PIXELS})
        baseline = qg.MultiplicityWidth().fit(train["multiplicity"], train["width"], train["is_quark"])
        report["qg"] = evaluate.qg_report(model, baseline, train, test, out, histories["q/g CNN"])
    evaluate.plot_losses(histories, out / "loss.png")
    report["seconds_total"] = time.perf_counter() - t_start
    write_json(out / "report.json", report)
    return report


def config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` of ``trackcore train jet_tagger`` options."""
    base = QUICK if args.quick else TrainConfig()
    changes: dict = {"seed": args.seed, "tasks": tuple(args.tasks) if args.tasks else base.tasks,
                     "pileup": args.pileup if args.pileup is not None else base.pileup}
    for name in ("btag_events", "btag_epochs", "qg_jets", "qg_epochs"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if args.cache_dir is not None:
        changes["cache_dir"] = str(args.cache_dir)
    return replace(base, **changes).check()


__all__ = ["B_EFFICIENCY", "HELD_OUT_OFFSET", "QUICK", "TrainConfig", "btag_sample", "config_from_args",
           "run_training", "train_btag", "train_qg"]
