"""Evaluation of the seed classifier on held-out events, always beside a baseline without ML.

* Classification: confusion matrix and per-class recall against the published matrix, ROC of
  "good vs bad" for the network's P(good) and for the seed finder's weight (the baseline).
* Reconstruction: the full pipeline on held-out events without a classifier, with this plugin,
  and with a cut on the seed weight that keeps as many good seeds as the network does; CKF wall
  and CPU time, efficiency (pT > 1 GeV), TrackML score and fake rate.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from trackcore.hookspecs import SEED_BAD, SEED_CLASS_NAMES, SEED_GOOD, SEED_MEDIUM, SeedClasses
from trackcore.plugins import hookimpl

#: Per-class recall of the published confusion matrix (F. Dietrich, arXiv:1910.06779).
PUBLISHED_RECALL = {"good": 0.985, "medium": 0.957, "bad": 0.967}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int = 3) -> np.ndarray:
    """(n, n) counts, rows = true class, columns = predicted class."""
    return np.bincount(np.asarray(y_true, np.int64) * n + np.asarray(y_pred, np.int64), minlength=n * n).reshape(n, n)


def roc(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false positive rate, true positive rate, AUC) of ``score`` (larger = more positive); ties averaged."""
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    order = np.argsort(-score, kind="stable")
    s, p = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each distinct score
    tp, fp = np.cumsum(p)[last], np.cumsum(~p)[last]
    tpr = np.r_[0.0, tp / max(p.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~p).sum(), 1)]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def weight_cut_for(weight: np.ndarray, good: np.ndarray, keep_fraction: float) -> float:
    """The seed-weight cut (keep ``weight >= cut``) that keeps ``keep_fraction`` of the good seeds."""
    w = np.sort(np.asarray(weight)[np.asarray(good, bool)])
    if len(w) == 0:
        return float("-inf")
    return float(w[int(np.clip(np.floor((1.0 - keep_fraction) * len(w)), 0, len(w) - 1))])


def classification_report(model, test: dict, train: dict, out: Path, history: dict | None = None) -> dict:
    """Metrics of ``model`` on the held-out data set ``test`` (from ``build_dataset``), with plots in ``out``.

    The baseline's cut is fixed on the training seeds (``train``) to keep the same fraction of good
    seeds as the network keeps there (predicted good or medium), then applied to the held-out seeds.
    """
    from .model import predict_torch
    from .onnx_runtime import OnnxSeedClassifier

    t0 = time.perf_counter()
    prob = predict_torch(model, test["x"])
    t_torch = time.perf_counter() - t0
    onnx = OnnxSeedClassifier(out / "model.onnx")
    t0 = time.perf_counter()
    prob_onnx = onnx.predict(test["x"])
    t_onnx = time.perf_counter() - t0
    y, pred = test["y"], prob.argmax(1)
    cm = confusion(y, pred)
    recall = {name: float(cm[k, k] / max(cm[k].sum(), 1)) for k, name in enumerate(SEED_CLASS_NAMES)}

    # Baseline on real seeds (medium seeds have no seed-finder weight).
    real = test["real"]
    train_real = train["real"]
    train_pred = predict_torch(model, train["x"][train_real]).argmax(1)
    train_good = train["y"][train_real] == SEED_GOOD
    keep_ml_train = float((train_pred[train_good] != SEED_BAD).mean()) if train_good.any() else 1.0
    cut = weight_cut_for(train["weight"][train_real], train_good, keep_ml_train)
    good_t, bad_t = y[real] == SEED_GOOD, y[real] == SEED_BAD
    kept_ml = pred[real] != SEED_BAD
    kept_w = test["weight"][real] >= cut
    fpr_ml, tpr_ml, auc_ml = roc(prob[real, SEED_GOOD], good_t)
    fpr_w, tpr_w, auc_w = roc(test["weight"][real], good_t)
    counts = np.bincount(y, minlength=3)
    report = {
        "examples": int(len(y)), "class_counts": counts.tolist(),
        "confusion": cm.tolist(), "recall": recall, "published_recall": PUBLISHED_RECALL,
        "meets_published": {k: recall[k] >= PUBLISHED_RECALL[k] for k in recall},
        "accuracy": float((pred == y).mean()),
        "onnx_vs_torch_max_abs_diff": float(np.abs(prob - prob_onnx).max()) if len(prob) else 0.0,
        "inference_seconds": {"torch": t_torch, "onnxruntime": t_onnx, "seeds": int(len(y))},
        "real_seeds": {
            "n_good": int(good_t.sum()), "n_bad": int(bad_t.sum()),
            "ml": {"good_kept": _frac(kept_ml, good_t), "bad_rejected": _frac(~kept_ml, bad_t),
                   "seeds_kept": float(kept_ml.mean()) if len(kept_ml) else 0.0, "auc_good_vs_bad": auc_ml},
            "weight_cut": {"good_kept": _frac(kept_w, good_t), "bad_rejected": _frac(~kept_w, bad_t),
                           "seeds_kept": float(kept_w.mean()) if len(kept_w) else 0.0, "auc_good_vs_bad": auc_w},
        },
        "baseline": {"weight_cut": cut, "majority_class_accuracy": float(counts.max() / max(counts.sum(), 1)),
                     "note": "weight cut keeps the fraction of good training seeds the network keeps"},
    }
    report["plots"] = _plots(out, cm, (fpr_ml, tpr_ml, auc_ml), (fpr_w, tpr_w, auc_w), history)
    return report


def _frac(mask: np.ndarray, of: np.ndarray) -> float:
    return float(mask[of].mean()) if of.any() else float("nan")


def _plots(out: Path, cm: np.ndarray, ml: tuple, baseline: tuple, history: dict | None) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional output; the JSON report has the numbers
        return []
    paths = []
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(3):
        for j in range(3):
            ax.text(j, i, f"{100 * frac[i, j]:.1f}%", ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(3), SEED_CLASS_NAMES), ax.set_yticks(range(3), SEED_CLASS_NAMES)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title("seed classes, held-out events")
    paths.append(_save(fig, out / "confusion_matrix.png"))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(ml[0], ml[1], label=f"MLP P(good), AUC {ml[2]:.4f}")
    ax.plot(baseline[0], baseline[1], "--", label=f"seed weight (no ML), AUC {baseline[2]:.4f}")
    ax.set_xlabel("bad seeds kept (false positive rate)"), ax.set_ylabel("good seeds kept (true positive rate)")
    ax.set_title("real seeds, good vs bad"), ax.legend(loc="lower right"), ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "roc.png"))
    if history:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        epochs = np.arange(1, len(history["train_loss"]) + 1)
        ax.plot(epochs, history["train_loss"], label="training")
        ax.plot(epochs, history["val_loss"], label="validation")
        ax.set_xlabel("epoch"), ax.set_ylabel("weighted cross-entropy"), ax.legend(), ax.grid(alpha=0.3)
        paths.append(_save(fig, out / "loss.png"))
    return paths


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


# -- reconstruction with and without the classifier ------------------------------------------
class WeightCutBaseline:
    """A non-ML seed 'classifier' for comparison: bad when the seed-finder weight is below ``cut``."""

    def __init__(self, cut: float):
        self.cut = float(cut)

    @hookimpl
    def trackcore_classify_seeds(self, event, seeds):
        q = np.zeros(len(seeds)) if seeds.quality is None else seeds.quality
        label = np.where(q >= self.cut, SEED_GOOD, SEED_BAD).astype(np.int8)
        return SeedClasses(label, (q >= self.cut).astype(np.float32))


class CpuTimer:
    """Records the process CPU time (s) of each pipeline stage: robust to other jobs on a shared machine."""

    def __init__(self):
        self.last = time.process_time()
        self.cpu: dict[str, float] = {}

    def reset(self) -> None:
        self.last, self.cpu = time.process_time(), {}

    @hookimpl
    def trackcore_observe_stage(self, stage_name, event, outputs, seconds):
        now = time.process_time()
        self.cpu[stage_name] = now - self.last
        self.last = now


def pipeline_comparison(events, onnx_path: Path, weight_cut: float, *, progress: bool = True,
                        repeats: int = 2) -> dict:
    """Reconstruct ``events`` (with truth) four ways and sum/pool the results per way.

    The CKF CPU time of an event is the minimum over ``repeats`` runs (the machine is shared)."""
    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.metrics import score_event, tracking_rates
    from trackcore.plugins import get_plugin_manager
    from trackcore.reco.pipeline import ReconstructionConfig, reconstruct

    from .plugin import DEFAULT_BAD_THRESHOLD, SeedClassifier

    detector = trackml_like_detector()
    ways = {"no classifier": None, "seed weight cut (no ML)": WeightCutBaseline(weight_cut),
            f"ML classifier (P(bad) >= {DEFAULT_BAD_THRESHOLD})": SeedClassifier(onnx_path),
            "ML classifier (argmax)": SeedClassifier(onnx_path, bad_threshold=None)}
    # The classifier stage is opt-in in the pipeline; without this flag every way would be the same.
    config = ReconstructionConfig(classify_seeds=True)
    rows = {name: {"events": 0, "ckf_wall_s": 0.0, "ckf_cpu_s": 0.0, "classifier_wall_s": 0.0, "total_wall_s": 0.0,
                   "seeds": 0, "seeds_kept": 0, "found_pt": 0, "reconstructable_pt": 0, "tracks": 0, "fake": 0,
                   "score_sum": 0.0} for name in ways}
    for event in tqdm(events, desc="reconstruct (held-out)", unit="event", disable=not progress):
        for name, plugin in ways.items():
            ckf_cpu = []
            for _ in range(max(1, repeats)):
                pm = get_plugin_manager(load_entrypoints=False)
                timer = CpuTimer()
                pm.register(timer, name="cpu_timer")
                if plugin is not None:
                    pm.register(plugin, name="seed_classifier")
                timer.reset()
                reco = reconstruct(event, detector, config, plugin_manager=pm)
                ckf_cpu.append(timer.cpu["track_finding"])
            hit_id, track_id = reco.submission()
            rates = tracking_rates(event, hit_id, reco.track_id_of_hits())
            row = rows[name]
            row["events"] += 1
            row["ckf_wall_s"] += reco.timings["track_finding"]
            row["ckf_cpu_s"] += min(ckf_cpu)
            row["classifier_wall_s"] += reco.timings.get("seed_classification", 0.0)
            row["total_wall_s"] += sum(reco.timings.values())
            n_seeds = len(reco.outputs["seeding"]["hit_index"])
            cls = reco.outputs.get("seed_classification")
            row["seeds"] += n_seeds
            row["seeds_kept"] += n_seeds if cls is None else len(cls["hit_index"])
            row["found_pt"] += rates.n_found_pt
            row["reconstructable_pt"] += rates.n_reconstructable_pt
            row["tracks"] += rates.n_tracks
            row["fake"] += rates.n_fake
            row["score_sum"] += score_event(event, hit_id, track_id)
    for row in rows.values():
        n = max(row["events"], 1)
        row["efficiency_pt"] = row["found_pt"] / max(row["reconstructable_pt"], 1)
        row["fake_rate"] = row["fake"] / max(row["tracks"], 1)
        row["trackml_score"] = row.pop("score_sum") / n
    ref = rows["no classifier"]
    for row in rows.values():
        row["ckf_cpu_speedup"] = ref["ckf_cpu_s"] / max(row["ckf_cpu_s"], 1e-9)
        row["ckf_wall_speedup"] = ref["ckf_wall_s"] / max(row["ckf_wall_s"], 1e-9)
        row["efficiency_pt_loss_points"] = 100.0 * (ref["efficiency_pt"] - row["efficiency_pt"])
        row["trackml_score_loss"] = ref["trackml_score"] - row["trackml_score"]
    return rows


__all__ = ["CpuTimer", "PUBLISHED_RECALL", "WeightCutBaseline", "classification_report", "confusion",
           "pipeline_comparison", "roc", "weight_cut_for", "SEED_MEDIUM"]
