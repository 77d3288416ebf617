"""PNG plots of the cluster splitter evaluation: loss, confusion matrices, residuals."""
from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ("1", "2", ">=3")


def write_all(out: Path, history: dict, report: dict, res: dict, test: dict, prob: np.ndarray) -> list[str]:
    """Write loss.png, confusion_matrix.png, residuals.png into ``out``; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(history["train_loss"], label="train")
    ax.plot(history["val_loss"], label="validation")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss (CE + position NLL)"), ax.legend()
    fig.tight_layout(), fig.savefig(out / "loss.png", dpi=90), plt.close(fig)
    names.append("loss.png")

    held = report["held_out"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, key, title in zip(axes, ("cnn", "charge_baseline"), ("gate + CNN", "charge-ratio baseline")):
        cm = np.asarray(held[key]["confusion_row_normalised"])
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{cm[i, j]:.3f}\n({held[key]['confusion'][i][j]})", ha="center", va="center",
                        color="white" if cm[i, j] > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(3), CLASS_NAMES), ax.set_yticks(range(3), CLASS_NAMES)
        ax.set_xlabel("predicted particles"), ax.set_ylabel("true particles")
        ax.set_title(f"{title}: balanced acc. {held[key]['balanced_accuracy']:.3f}")
    fig.tight_layout(), fig.savefig(out / "confusion_matrix.png", dpi=90), plt.close(fig)
    names.append("confusion_matrix.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    pitch12 = np.asarray(held["pitch_over_sqrt12_mm"]) * 1000
    for k, (ax, axis) in enumerate(zip(axes, "uv")):
        bins = np.linspace(-150, 150, 61)
        for key, label in (("split", "split hits (CNN)"), ("centroid", "unsplit centroid")):
            if len(res[key]):
                ax.hist(np.clip(res[key][:, k] * 1000, -150, 150), bins, histtype="step", density=True, label=label)
        ax.axvspan(-pitch12[k], pitch12[k], color="grey", alpha=0.2, label="+-pitch/sqrt(12)")
        ax.set_xlabel(f"residual {axis} (um)"), ax.legend(fontsize=7)
    fig.tight_layout(), fig.savefig(out / "residuals.png", dpi=90), plt.close(fig)
    names.append("residuals.png")
    return names
