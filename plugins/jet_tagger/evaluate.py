"""Held-out evaluation of the jet taggers, each beside its baseline without ML, with PNG plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import qg

B_EFFICIENCY = 0.7


def roc(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false positive rate, true positive rate, AUC) of ``score`` (larger = more positive); ties grouped."""
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    order = np.argsort(-score, kind="stable")
    s, p = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp, fp = np.cumsum(p)[last], np.cumsum(~p)[last]
    tpr = np.r_[0.0, tp / max(p.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~p).sum(), 1)]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def rejection_at(score: np.ndarray, is_signal: np.ndarray, efficiency: float = B_EFFICIENCY) -> dict:
    """Background rejection 1 / eps_bkg at the cut keeping ``efficiency`` of the signal.

    :return: ``rejection`` (``None`` when no background jet passes), ``rejection_stat_error`` (from the
        Poisson count of passing background), ``rejection_lower_95cl`` (n_background / 3.0 when none
        passes: the 95% CL Poisson limit on zero counts), ``n_background_pass``, ``n_background``,
        ``signal_efficiency`` (achieved) and ``cut``.
    """
    score, sig = np.asarray(score, np.float64), np.asarray(is_signal, bool)
    cut = float(np.quantile(score[sig], 1.0 - efficiency, method="lower"))
    n_pass = int((score[~sig] > cut).sum())
    n_bkg = int((~sig).sum())
    rej = n_bkg / n_pass if n_pass else None
    return {"rejection": rej, "rejection_stat_error": rej / np.sqrt(n_pass) if n_pass else None,
            "rejection_lower_95cl": n_bkg / 3.0 if n_pass == 0 else None, "n_background_pass": n_pass,
            "n_background": n_bkg, "signal_efficiency": float((score[sig] > cut).mean()), "cut": cut}


def rejection_value(row: dict) -> float:
    """A rejection row's value for comparisons: the rejection, or its 95% CL lower bound when none passes."""
    return row["rejection"] if row["rejection"] is not None else row["rejection_lower_95cl"]


def auc_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Statistical standard error of an AUC (Hanley and McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / max(n_pos * n_neg, 1)
    return float(np.sqrt(max(var, 0.0)))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def btag_report(model, ip3d, train: dict, test: dict, out: Path, history: dict) -> dict:
    """Light-jet rejection at 70% b efficiency and AUC of the network and IP3D on the held-out jets;
    writes ``roc_btag.png`` (light rejection vs b efficiency)."""
    from .models import predict

    p_nn = predict(model, test["x"].astype(np.float32), test["mask"])
    s_ip = ip3d.score(test["x"], test["mask"])
    b = np.asarray(test["is_b"], bool)
    rows = {}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in (("Deep Sets", p_nn), ("IP3D (no ML)", s_ip)):
        fpr, tpr, auc = roc(s, b)
        rows[name] = dict(rejection_at(s, b), auc=auc)
        ok = (fpr > 0) & (tpr >= 0.3)
        rej = rows[name]["rejection"]
        text = f"{rej:.0f}" if rej is not None else f"> {rows[name]['rejection_lower_95cl']:.0f} (95% CL)"
        ax.plot(tpr[ok], 1 / fpr[ok], label=f"{name}: rej@70% {text}, AUC {auc:.3f}")
    ax.set_yscale("log"), ax.set_xlabel("b-jet efficiency"), ax.set_ylabel("light-jet rejection")
    ax.axvline(B_EFFICIENCY, color="grey", lw=0.5)
    ax.set_title(f"b vs light, {len(b)} held-out track jets"), ax.legend(fontsize=7), fig.tight_layout()
    fig.savefig(out / "roc_btag.png", dpi=110), plt.close(fig)
    return {"train_jets": int(len(train["is_b"])), "train_b_fraction": float(np.mean(train["is_b"])),
            "test_jets": int(len(b)), "test_b_jets": int(b.sum()), "b_efficiency": B_EFFICIENCY,
            "deep_sets": rows["Deep Sets"], "ip3d_baseline": rows["IP3D (no ML)"],
            "network_beats_baseline": bool(rejection_value(rows["Deep Sets"]) > rejection_value(rows["IP3D (no ML)"])),
            "auc_stat_error": auc_error(rows["Deep Sets"]["auc"], int(b.sum()), int((~b).sum())),
            "final_train_loss": history["train_loss"][-1], "final_val_loss": history["val_loss"][-1],
            "mean_tracks_per_jet": float(test["mask"].sum(1).mean()), "history": history}


def qg_report(model, baseline: qg.MultiplicityWidth, train: dict, test: dict, out: Path, history: dict) -> dict:
    """AUC (quark = positive) of the CNN and the multiplicity-width baseline on held-out jets; ``roc_qg.png``."""
    from .models import predict

    is_q = np.asarray(test["is_quark"], bool)
    scores = {"CNN": predict(model, test["images"].astype(np.float32)),
              "multiplicity+width (no ML)": baseline.score(test["multiplicity"], test["width"]),
              "multiplicity only (no ML)": -np.asarray(test["multiplicity"], np.float64)}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    aucs = {}
    for name, s in scores.items():
        fpr, tpr, aucs[name] = roc(s, is_q)
        ax.plot(fpr, tpr, label=f"{name}: AUC {aucs[name]:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("gluon-jet efficiency"), ax.set_ylabel("quark-jet efficiency")
    ax.set_title(f"quark vs gluon, {len(is_q)} held-out toy-shower jets"), ax.legend(fontsize=7), fig.tight_layout()
    fig.savefig(out / "roc_qg.png", dpi=110), plt.close(fig)
    q = np.asarray(train["is_quark"], bool)
    return {"train_jets": int(len(q)), "test_jets": int(len(is_q)), "auc_cnn": aucs["CNN"],
            "auc_baseline": aucs["multiplicity+width (no ML)"], "auc_multiplicity": aucs["multiplicity only (no ML)"],
            "network_beats_baseline": bool(aucs["CNN"] > aucs["multiplicity+width (no ML)"]),
            "auc_stat_error": auc_error(aucs["CNN"], int(is_q.sum()), int((~is_q).sum())),
            "mean_multiplicity": {"quark": float(train["multiplicity"][q].mean()),
                                  "gluon": float(train["multiplicity"][~q].mean())},
            "mean_width": {"quark": float(train["width"][q].mean()), "gluon": float(train["width"][~q].mean())},
            "final_train_loss": history["train_loss"][-1], "final_val_loss": history["val_loss"][-1], "history": history}


def plot_losses(histories: dict, path: Path) -> None:
    """Training and validation loss per epoch of each trained network, in one PNG."""
    if not histories:
        return
    plt = _plt()
    fig, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.5), squeeze=False)
    for ax, (name, h) in zip(axes[0], histories.items()):
        ax.plot(h["train_loss"], label="train"), ax.plot(h["val_loss"], label="validation")
        ax.set_title(name), ax.set_xlabel("epoch"), ax.set_ylabel("BCE loss"), ax.legend()
    fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)
