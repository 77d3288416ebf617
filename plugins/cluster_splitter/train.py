"""``trackcore train cluster_splitter``: simulate jet events, label clusters from truth, train the CNN, export, evaluate.

Event ``i`` of the training set uses seed ``seed + i``; held-out events ``seed + HELD_OUT_OFFSET + i``.
PyTorch runs single-threaded with fixed generators, so one command gives the same numbers again.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from trackcore.errors import InputError

from .baseline import BASELINE_FILE, GATE_KEEP, ChargeBaseline
from .features import cluster_inputs, model_scalars, neighbour_counts
from .truth import pixel_rows, simulate_labelled

HELD_OUT_OFFSET = 100_000
#: Seeds of the minimum-bias training events (held-out <mu>=200 events use 2 x HELD_OUT_OFFSET).
MB_TRAIN_OFFSET = 300_000


@dataclass
class TrainConfig:
    """Settings. Jet pT in GeV; ``single_per_merged``: single-particle clusters kept per merged one."""

    events: int = 1500
    test_events: int = 300
    jets_per_event: int = 2
    jet_pt: tuple[float, float] = (500.0, 2000.0)
    seed: int = 1
    epochs: int = 40  #: the gated training set is small (~35k clusters), so more passes
    batch_size: int = 256
    learning_rate: float = 2e-3
    channels: tuple[int, int] = (8, 16)
    hidden: int = 64
    single_per_merged: float = 3.0
    position_weight: float = 0.5
    pipeline_events: int = 30  #: held-out jet events reconstructed with and without splitting (0: skip)
    mu200_events: int = 1  #: <mu>=200 events reconstructed with and without splitting (0: skip)
    #: <mu>=200 minimum-bias events whose pixel clusters join the training set: low-pT, secondary and
    #: grazing single-particle clusters that jets lack (without them the CNN split ~9% of them).
    mb_events: int = 3
    mb_clusters_per_event: int = 20000  #: subsample of each such event's clusters
    #: The CNN is trained (and run) only on clusters that pass the charge-ratio gate of :mod:`.baseline`,
    #: which keeps this fraction of the merged training clusters.
    gate_keep: float = GATE_KEEP
    notes: dict = field(default_factory=dict)

    def check(self) -> "TrainConfig":
        if not 0.5 <= self.gate_keep <= 1.0:
            raise InputError(f"train cluster_splitter: gate_keep must be in [0.5, 1], got {self.gate_keep!r}")
        if self.mb_events < 0 or self.mb_clusters_per_event < 1:
            raise InputError("train cluster_splitter: mb_events must be >= 0 and mb_clusters_per_event >= 1")
        for name in ("events", "test_events", "epochs", "batch_size", "jets_per_event"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train cluster_splitter: {name} must be >= 1, got {getattr(self, name)!r}")
        if not (0 < self.jet_pt[0] <= self.jet_pt[1]) or self.learning_rate <= 0 or self.single_per_merged <= 0:
            raise InputError("train cluster_splitter: jet_pt must be 0 < lo <= hi; learning_rate, single_per_merged > 0")
        if not 0 <= self.pipeline_events <= self.test_events or self.mu200_events < 0:
            raise InputError(f"train cluster_splitter: pipeline_events must be in [0, test_events={self.test_events}], "
                             f"mu200_events >= 0")
        return self


#: ``--quick`` (tests, smoke runs): seconds on one core.
QUICK = TrainConfig(events=60, test_events=20, epochs=6, batch_size=64, pipeline_events=2, mu200_events=0, hidden=32,
                    mb_events=0)


def jet_particles(seed: int, config: TrainConfig):
    """(particles, jets) of one event: ``jets_per_event`` light jets with pT in ``jet_pt`` (GeV), |eta| < 2."""
    from trackcore.sim.particles import jets

    return jets(np.random.default_rng(seed), n_jets=config.jets_per_event, jet_pt=tuple(config.jet_pt))


def simulate(n_events: int, first_seed: int, config: TrainConfig, *, desc: str, progress: bool = True) -> list:
    """``n_events`` labelled jet events: list of (event, ClusterTruth, jets table)."""
    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector

    detector = trackml_like_detector()
    out = []
    for i in tqdm(range(n_events), desc=desc, unit="event", disable=not progress):
        particles, jets_table = jet_particles(first_seed + i, config)
        event, truth = simulate_labelled(detector, particles, seed=first_seed + i, event_id=first_seed + i)
        out.append((event, truth, jets_table))
    return out


def build_dataset(samples: list, rng: np.random.Generator | None, single_per_merged: float | None) -> dict:
    """Network inputs and targets of the pixel clusters (with >= 2 cells and >= 1 particle) of ``samples``.

    ``base``: the base scalars (the network's ``scalars`` are added by :func:`with_model_scalars`);
    ``y``: class 0, 1, 2 = 1, 2, >= 3 particles; ``n_true``: the count; ``target`` (N, 3, 2): the crossings
    of the (up to) 3 particles with most charge, offsets from the central cell in pitch units (NaN-padded).
    With ``rng``, single-particle clusters are subsampled to ``single_per_merged`` per merged one.
    """
    from trackcore.geometry.builders import trackml_like_detector

    detector = trackml_like_detector()
    parts = {k: [] for k in ("maps", "base", "y", "n_true", "target", "event", "hit_row", "pitch",
                             "centroid_offset", "neighbours")}
    for k, (event, truth, _) in enumerate(samples):
        rows = pixel_rows(event)
        n_cells = np.bincount(np.searchsorted(np.sort(event.hits["hit_id"]), event.cells["hit_id"]),
                              minlength=len(event.hits))[np.argsort(np.argsort(event.hits["hit_id"]))]
        rows = rows[(truth.n_particles[rows] >= 1) & (n_cells[rows] >= 2)]
        if not len(rows):
            continue
        inp = cluster_inputs(event, detector, rows, truth.module_index[rows])
        n = truth.n_particles[rows]
        target = np.full((len(rows), 3, 2), np.nan, np.float32)
        for j, r in enumerate(rows):
            s = truth.of(r)
            m = min(3, s.stop - s.start)
            uv = np.stack([truth.u[s][:m], truth.v[s][:m]], axis=1)
            target[j, :m] = (uv - inp.centre[j]) / inp.pitch[j]
        for key, val in (("maps", inp.maps), ("base", inp.scalars), ("y", np.minimum(n, 3) - 1), ("n_true", n),
                         ("target", target), ("event", np.full(len(rows), k)), ("hit_row", rows),
                         ("pitch", inp.pitch), ("centroid_offset", (inp.centroid - inp.centre) / inp.pitch),
                         ("neighbours", neighbour_counts(event, rows))):
            parts[key].append(val)
    if not parts["y"]:
        raise InputError("train cluster_splitter: the events gave no pixel clusters (empty events?)")
    data = {k: np.concatenate(v) for k, v in parts.items()}
    data["y"] = data["y"].astype(np.int64)
    if rng is not None and single_per_merged:
        data = subsample_singles(data, rng, single_per_merged)
    return data


def subsample_singles(data: dict, rng: np.random.Generator, single_per_merged: float) -> dict:
    """``data`` with at most ``single_per_merged`` single-particle clusters per merged one (random)."""
    single = np.flatnonzero(data["y"] == 0)
    n_keep = min(len(single), int(single_per_merged * max(int((data["y"] > 0).sum()), 1)))
    keep = np.sort(np.r_[np.flatnonzero(data["y"] > 0), rng.choice(single, n_keep, replace=False)])
    return {k: v[keep] for k, v in data.items()}


def with_model_scalars(data: dict, baseline: ChargeBaseline, gated: bool) -> dict:
    """``data`` with the network ``scalars`` (base + charge/size ratios); with ``gated``, only the clusters
    that pass ``baseline``'s gate (what the CNN sees in reconstruction)."""
    if gated:
        keep = baseline.passes_gate(data["base"])
        data = {k: v[keep] for k, v in data.items()}
    return {**data, "scalars": model_scalars(data["base"], baseline)}


def _position_nll(pos, log_sig, target, k: int):
    """Gaussian NLL of ``k`` predicted positions against ``k`` targets, minimised over their pairings."""
    import torch

    best = None
    for perm in itertools.permutations(range(k)):
        t = target[:, list(perm)]
        nll = (0.5 * ((t - pos) / torch.exp(log_sig)) ** 2 + log_sig).sum(dim=(1, 2))
        best = nll if best is None else torch.minimum(best, nll)
    return best


def train_model(data: dict, config: TrainConfig, *, progress: bool = True):
    """Train a :class:`~.model.SplitterCNN`; returns (model, history of per-epoch train/validation loss)."""
    import torch
    from tqdm import tqdm

    from .model import SLOTS, SplitterCNN

    y = data["y"]
    if len(np.unique(y)) < 2:
        raise InputError(f"train cluster_splitter: need clusters of at least two classes, got {np.unique(y).tolist()}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible reductions; the machine is shared
    try:
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        order = np.random.default_rng(config.seed).permutation(len(y))
        n_val = max(1, len(y) // 10)
        val, tr = order[:n_val], order[n_val:]
        model = SplitterCNN(config.channels, config.hidden)
        model.set_normalisation(data["maps"][tr], data["scalars"][tr])
        counts = np.bincount(y[tr], minlength=3).astype(np.float64)
        # sqrt of inverse frequency: merged classes count more, without making singles cheap to split.
        w = np.where(counts > 0, np.sqrt(counts.sum() / np.maximum(counts, 1)), 0.0)
        ce = torch.nn.CrossEntropyLoss(weight=torch.as_tensor(w / w[counts > 0].mean(), dtype=torch.float32))
        opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
        t = {k: torch.as_tensor(data[k]) for k in ("maps", "scalars", "y", "target")}

        def loss_of(idx):
            logits, pos, log_sig = model(t["maps"][idx], t["scalars"][idx])
            yy, target = t["y"][idx], t["target"][idx]
            loss = ce(logits, yy)
            for c, sl in enumerate(SLOTS):
                sel = yy == c
                if sel.any():
                    k = sl.stop - sl.start
                    nll = _position_nll(pos[sel][:, sl], log_sig[sel][:, sl], target[sel][:, :k], k)
                    loss = loss + config.position_weight * nll.sum() / len(idx)
            return loss, logits

        history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "seconds": []}
        t0 = time.perf_counter()
        tr_t, val_t = torch.as_tensor(tr), torch.as_tensor(val)
        for _ in tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress):
            model.train()
            perm = tr_t[torch.randperm(len(tr_t), generator=gen)]
            total, n = 0.0, 0
            for i in range(0, len(perm), config.batch_size):
                idx = perm[i:i + config.batch_size]
                opt.zero_grad()
                loss, _ = loss_of(idx)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                n += len(idx)
            sched.step()
            model.eval()
            with torch.no_grad():
                vloss, logits = loss_of(val_t)
            history["train_loss"].append(total / max(n, 1))
            history["val_loss"].append(float(vloss))
            history["val_accuracy"].append(float((logits.argmax(1) == t["y"][val_t]).float().mean()))
            history["seconds"].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model, history


def run_training(config: TrainConfig, output, *, progress: bool = True) -> dict:
    """The whole job; writes ``model.pt``, ``model.onnx``, ``report.json`` and PNG plots into ``output``."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector

    from . import evaluate, plots
    from .model import export_onnx, predict_torch, save_state
    from .split import DEFAULT_MIN_NEIGHBOURS, DEFAULT_P_SINGLE_MAX, ClusterSplitter, split_counts

    config.check()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_samples = simulate(config.events, config.seed, config, desc="simulate (train)", progress=progress)
    data = build_dataset(train_samples, None, None)
    del train_samples
    if config.mb_events:
        data = _add_minimum_bias(data, config, progress)
    # The baseline (and gate) sees every training cluster; the CNN only those that pass the gate.
    baseline = ChargeBaseline().fit(data["base"], data["y"], config.gate_keep)
    data = subsample_singles(with_model_scalars(data, baseline, gated=True), np.random.default_rng(config.seed),
                             config.single_per_merged)
    model, history = train_model(data, config, progress=progress)
    t_train = time.perf_counter()
    save_state(model, out / "model.pt")
    export_onnx(model, out / "model.onnx")
    baseline.save(out / BASELINE_FILE)

    held = simulate(config.test_events, config.seed + HELD_OUT_OFFSET, config, desc="simulate (held-out)",
                    progress=progress)
    test = with_model_scalars(build_dataset(held, None, None), baseline, gated=False)  # every cluster
    charge_gate = baseline.passes_gate(test["base"])
    gate = charge_gate & (test["neighbours"] >= DEFAULT_MIN_NEIGHBOURS)
    prob = np.zeros((len(test["y"]), 3), np.float32)
    prob[:, 0] = 1.0  # gated out: one particle
    pos = np.zeros((len(test["y"]), 6, 2), np.float32)
    # The CNN on every charge-gated cluster: the sweep below also shows it without the neighbour gate.
    prob_all = prob.copy()
    prob_all[charge_gate], pos[charge_gate], _ = predict_torch(model, test["maps"][charge_gate],
                                                               test["scalars"][charge_gate])
    prob[gate] = prob_all[gate]
    ratio = baseline.ratio(test["base"])
    n_pred = split_counts(prob, DEFAULT_P_SINGLE_MAX, ratio, baseline.cut3)
    res = evaluate.position_residuals(test, prob, pos, test["pitch"], DEFAULT_P_SINGLE_MAX, n_pred)
    pitch = test["pitch"][0] if len(test["pitch"]) else np.array([np.nan, np.nan])
    report = {
        "command": config.notes.get("command", ""),
        "config": {k: v for k, v in asdict(config).items() if k != "notes"},
        "training": {"clusters": int(len(data["y"])), "class_counts": np.bincount(data["y"], minlength=3).tolist(),
                     "seconds": round(t_train - t0, 1), "final_val_accuracy": history["val_accuracy"][-1],
                     "baseline": baseline.to_dict()},
        "held_out": {
            "events": config.test_events, "clusters": int(len(test["y"])),
            "class_counts": np.bincount(test["y"], minlength=3).tolist(), "p_single_max": DEFAULT_P_SINGLE_MAX,
            "gate": {"cut": baseline.gate, "min_neighbours": DEFAULT_MIN_NEIGHBOURS,
                     "pass_rate_by_class": [float(gate[test["y"] == c].mean()) if
                                            (test["y"] == c).any() else None for c in range(3)],
                     "charge_only_pass_rate_by_class": [float(charge_gate[test["y"] == c].mean()) if
                                                        (test["y"] == c).any() else None for c in range(3)]},
            "cnn": evaluate.classification_metrics(test["y"], n_pred - 1),
            "cnn_argmax": evaluate.classification_metrics(test["y"], prob.argmax(1)),
            "p_single_max_sweep": {str(p): evaluate.classification_metrics(
                test["y"], split_counts(prob, p, ratio, baseline.cut3) - 1) for p in (0.05, 0.2, 0.5, 0.9, 0.95)},
            "p_single_max_sweep_charge_gate_only": {str(p): evaluate.classification_metrics(
                test["y"], split_counts(prob_all, p, ratio, baseline.cut3) - 1) for p in (0.05, 0.5, 0.9)},
            "charge_baseline": {**evaluate.classification_metrics(test["y"], baseline.predict(test["base"])),
                                "cuts": [float(baseline.cut2), float(baseline.cut3)]},
            "pitch_over_sqrt12_mm": (pitch / np.sqrt(12.0)).tolist(),
            "residuals_split": evaluate.residual_summary(res["split"]),
            "residuals_unsplit_centroid": evaluate.residual_summary(res["centroid"]),
        },
    }
    splitter = ClusterSplitter(out / "model.onnx")
    detector = trackml_like_detector()
    rows = []
    for event, truth, jets_table in tqdm(held[:config.pipeline_events], desc="reconstruct (jets)", unit="event",
                                         disable=not progress):
        rows.append(evaluate.reconstruct_pair(event, truth, jets_table, splitter, detector))
    report["jet_pipeline"] = evaluate.summarise_pairs(rows) if rows else {}
    mu_rows = []
    for i in tqdm(range(config.mu200_events), desc="reconstruct (mu=200)", unit="event", disable=not progress):
        from trackcore.sim.particles import minimum_bias

        from .truth import simulate_labelled

        seed = config.seed + 2 * HELD_OUT_OFFSET + i
        event, truth = simulate_labelled(detector, minimum_bias(np.random.default_rng(seed), pileup=200.0),
                                         seed=seed, event_id=seed)
        mu_rows.append(evaluate.reconstruct_pair(event, truth, None, splitter, detector))
        mu_rows[-1]["single_split"] = evaluate.false_splits(event, truth, splitter)
    report["mu200_pipeline"] = evaluate.summarise_pairs(mu_rows) if mu_rows else {}
    report["plots"] = plots.write_all(out, history, report, res, test, prob)
    report["seconds_total"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def _add_minimum_bias(data: dict, config: TrainConfig, progress: bool) -> dict:
    """``data`` plus a subsample of the pixel clusters of ``mb_events`` <mu>=200 events (own seeds)."""
    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.particles import minimum_bias

    rng = np.random.default_rng(config.seed + MB_TRAIN_OFFSET)
    parts = [data]
    for i in tqdm(range(config.mb_events), desc="simulate (mu=200 train)", unit="event", disable=not progress):
        seed = config.seed + MB_TRAIN_OFFSET + i
        event, truth = simulate_labelled(trackml_like_detector(), minimum_bias(np.random.default_rng(seed), pileup=200.0),
                                         seed=seed, event_id=seed)
        mb = build_dataset([(event, truth, None)], None, None)
        pick = np.sort(rng.choice(len(mb["y"]), min(len(mb["y"]), config.mb_clusters_per_event), replace=False))
        mb = {k: v[pick] for k, v in mb.items()}
        mb["event"] = mb["event"] + 1 + max(int(p["event"].max()) for p in parts)
        parts.append(mb)
    return {k: np.concatenate([p[k] for p in parts]) for k in data}
