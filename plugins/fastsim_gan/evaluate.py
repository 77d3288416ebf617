"""Evaluation of the fast simulation on held-out events, always beside the no-ML geometric baseline.

* Fidelity: per module class (pixel, strip), the distributions of cluster size, total charge,
  width in u and v and centroid residual (u, v; mm) of the full digitisation against the GAN and
  against the baseline (the straight path's cells, the deposited charge, the centroid on the
  crossing): 1-D Wasserstein distance and KS statistic, and a classifier two-sample test (an MLP
  told the crossing's conditions and the cluster's quantities; AUC 0.5 = indistinguishable).
* Reconstruction: the default pipeline on the same particles after full and after fast simulation.
* Speed: the digitisation step alone (full C++ digitisation vs generator + renderer) per event.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .clusters import MODULE_CLASSES, conditions, geometry, observables

QUANTITIES = ("cluster_size", "total_charge", "width_u", "width_v", "residual_u_mm", "residual_v_mm")
GROUPS = {"pixel": (0, 1), "strip": (2, 3)}


def cluster_quantities(tables, digi, crossings: dict, true_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(crossing row, (n, 6) :data:`QUANTITIES`) of the signal hits of a digitisation (full or fast)."""
    xc, y = observables(tables, digi, crossings, true_local)
    geo = geometry(tables, crossings)
    m = geo["module"][xc]
    q = np.empty((len(xc), len(QUANTITIES)))
    q[:, 2] = y[:, 0] + geo["width_u"][xc]
    q[:, 3] = y[:, 1] + geo["width_v"][xc]
    q[:, 0] = q[:, 2] + q[:, 3] - 1 - y[:, 2]
    expected = np.asarray(crossings["edep"])[xc] * tables.config.electrons_per_gev * tables.config.value_per_electron
    q[:, 1] = np.where(tables.binary[m], q[:, 0], np.exp(y[:, 3]) * expected)
    q[:, 4] = y[:, 4] * tables.pitch_u[m]
    q[:, 5] = y[:, 5] * tables.pitch_v[m]
    return xc, q


def fast_quantities(event: dict, generator, seed: int):
    """Fast-digitise a held-out event (from ``train.simulate_full``) and return its :func:`cluster_quantities`."""
    from .fastsim import fast_digitize, module_tables
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.simulate import SimulationConfig

    tables = module_tables(trackml_like_detector(), SimulationConfig())
    digi = fast_digitize(tables, event["crossings"], event["transport"]["momentum"], generator,
                         np.random.default_rng(seed))
    return cluster_quantities(tables, digi, event["crossings"], event["transport"]["local"][:, :2])


def c2st_auc(a: np.ndarray, b: np.ndarray, seed: int, max_rows: int = 30000, epochs: int = 8) -> float:
    """Classifier two-sample test: AUC of an MLP separating rows of ``a`` from rows of ``b`` on a held-out half."""
    import torch

    rng = np.random.default_rng(seed)
    a = a[rng.permutation(len(a))[:max_rows]]
    b = b[rng.permutation(len(b))[:max_rows]]
    x = np.concatenate([a, b]).astype(np.float32)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))].astype(np.float32)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    half = len(x) // 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                  torch.nn.ReLU(), torch.nn.Linear(64, 1))
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        xt, yt = torch.as_tensor(x[:half]), torch.as_tensor(y[:half])[:, None]
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(half, generator=gen)
            for i in range(0, half, 512):
                idx = perm[i:i + 512]
                opt.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        with torch.no_grad():
            score = net(torch.as_tensor(x[half:]))[:, 0].numpy()
    finally:
        torch.set_num_threads(threads)
    return auc(score, y[half:] > 0.5)


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged); symmetric: max(AUC, 1 - AUC) is not taken."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fidelity_report(events: list[dict], generator, out: Path | None = None, history: dict | None = None,
                    seed: int = 1, c2st_rows: int = 30000) -> dict:
    """Distances of GAN and baseline to the full digitisation on held-out ``events`` (see the module doc);
    the two-sample classifier sees at most ``c2st_rows`` clusters of each sample."""
    from scipy.stats import ks_2samp, wasserstein_distance

    from .fastsim import module_tables
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.simulate import SimulationConfig

    tables = module_tables(trackml_like_detector(), SimulationConfig())
    samples: dict[str, list] = {"full": [], "gan": [], "baseline": []}
    for k, ev in enumerate(events):
        true_local = ev["transport"]["local"][:, :2]
        xc, q = cluster_quantities(tables, ev["digi"], ev["crossings"], true_local)
        samples["full"].append((ev["x_all"][xc], q))
        for name, g in (("gan", generator), ("baseline", None)):
            xf, qf = fast_quantities(ev, g, seed + 7 * k + 1)
            samples[name].append((ev["x_all"][xf], qf))
    cat = {name: (np.concatenate([s[0] for s in v]), np.concatenate([s[1] for s in v])) for name, v in samples.items()}
    report: dict = {"clusters": {name: int(len(v[1])) for name, v in cat.items()}}
    for group, classes in GROUPS.items():
        sel = {name: np.isin(np.argmax(x[:, :4], 1), classes) for name, (x, _) in cat.items()}
        rows: dict = {}
        for qi, qname in enumerate(QUANTITIES):
            ref = cat["full"][1][sel["full"], qi]
            row = {"full_mean": float(ref.mean()), "full_std": float(ref.std())}
            for name in ("gan", "baseline"):
                v = cat[name][1][sel[name], qi]
                row[name] = {"mean": float(v.mean()), "std": float(v.std()),
                             "wasserstein": float(wasserstein_distance(ref, v)), "ks": float(ks_2samp(ref, v).statistic)}
            rows[qname] = row
        c2st = {}
        for name in ("gan", "baseline"):
            fa = np.concatenate([cat["full"][0][sel["full"]], cat["full"][1][sel["full"]]], axis=1)
            fb = np.concatenate([cat[name][0][sel[name]], cat[name][1][sel[name]]], axis=1)
            c2st[name] = c2st_auc(fa, fb, seed, max_rows=c2st_rows)
        report[group] = {"quantities": rows, "c2st_auc": c2st, "c2st_target": 0.6,
                         "c2st_meets_target": {k: v <= 0.6 for k, v in c2st.items()}}
    if out is not None:
        report["plots"] = _plots(Path(out), cat, history)
    return report


def speed_report(events: list[dict], generator, repeats: int = 5) -> dict:
    """Best-of-``repeats`` time (s) of the full and the fast digitisation step per held-out event, both
    wall (``perf_counter``) and CPU of this process (``process_time``: less disturbed by other jobs on a
    shared machine). The speed-ups are from the CPU times."""
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.digitization import digitize
    from trackcore.sim.simulate import SimulationConfig

    from .fastsim import fast_digitize, module_tables

    detector, config = trackml_like_detector(), SimulationConfig()
    tables = module_tables(detector, config)
    wall: dict[str, list] = {"full": [], "gan": [], "baseline": []}
    cpu: dict[str, list] = {"full": [], "gan": [], "baseline": []}
    for ev in events:
        dc, mom = ev["crossings"], ev["transport"]["momentum"]
        for name, fn in (("full", lambda: digitize(detector, dc, config.digitization, np.random.default_rng(0))),
                         ("gan", lambda: fast_digitize(tables, dc, mom, generator, np.random.default_rng(0))),
                         ("baseline", lambda: fast_digitize(tables, dc, mom, None, np.random.default_rng(0)))):
            best_wall = best_cpu = np.inf
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                best_wall, best_cpu = min(best_wall, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
            wall[name].append(best_wall)
            cpu[name].append(best_cpu)
    out = {f"{name}_digitization_s": v for name, v in wall.items()}
    out.update({f"{name}_digitization_cpu_s": v for name, v in cpu.items()})
    out.update({"crossings": [int(len(ev["crossings"]["module_index"])) for ev in events], "repeats": repeats,
                "speedup_gan": float(np.sum(cpu["full"]) / np.sum(cpu["gan"])),
                "speedup_baseline": float(np.sum(cpu["full"]) / np.sum(cpu["baseline"])), "target_speedup": 10.0})
    return out


def reconstruction_report(events: list[dict], generator, progress: bool = True) -> dict:
    """TrackML score and efficiencies of the default pipeline after full, fast (GAN) and baseline simulation."""
    from tqdm import tqdm

    from trackcore.api import reconstruct_event
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.simulate import simulate_event

    from .fastsim import fast_simulate_event

    detector = trackml_like_detector()
    rows: dict[str, list] = {"full": [], "gan": [], "baseline": []}
    for ev in tqdm(events, desc="reconstruct", unit="event", disable=not progress):
        made = {"full": simulate_event(detector, ev["particles"], seed=ev["seed"], event_id=ev["seed"]),
                "gan": fast_simulate_event(detector, ev["particles"], generator, seed=ev["seed"], event_id=ev["seed"]),
                "baseline": fast_simulate_event(detector, ev["particles"], None, seed=ev["seed"], event_id=ev["seed"])}
        for name, event in made.items():
            _, result = reconstruct_event(event, detector)
            rows[name].append({"hits": int(len(event.hits)), "score": float(result.score),
                               "efficiency": float(result.rates["efficiency"]),
                               "efficiency_pt": float(result.rates["efficiency_pt"]),
                               "fake_rate": float(result.rates["fake_rate"])})
    summary = {name: {k: float(np.mean([r[k] for r in v])) for k in ("score", "efficiency", "efficiency_pt",
                                                                     "fake_rate")} for name, v in rows.items()}
    for name in ("gan", "baseline"):
        summary[name]["delta_score"] = summary[name]["score"] - summary["full"]["score"]
        summary[name]["delta_efficiency"] = summary[name]["efficiency"] - summary["full"]["efficiency"]
    return {"per_event": rows, "mean": summary, "target_abs_delta": 0.01}


def _plots(out: Path, cat: dict, history: dict | None) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional output; the JSON report has the numbers
        return []
    paths = []
    for group, classes in GROUPS.items():
        fig, axes = plt.subplots(2, 3, figsize=(11, 6))
        for qi, (qname, ax) in enumerate(zip(QUANTITIES, axes.ravel())):
            ref = cat["full"][1][np.isin(np.argmax(cat["full"][0][:, :4], 1), classes), qi]
            lo, hi = np.quantile(ref, [0.001, 0.999])
            integer = qname in ("cluster_size", "width_u", "width_v") or (group == "strip" and qname == "total_charge")
            bins = np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.5) if integer else np.linspace(lo, hi, 60)
            for name, color, line in (("full", "k", "-"), ("gan", "C0", "-"), ("baseline", "C1", "--")):
                v = cat[name][1][np.isin(np.argmax(cat[name][0][:, :4], 1), classes), qi]
                ax.hist(v, bins=bins, histtype="step", density=True, label=name, color=color, linestyle=line)
            ax.set_xlabel(qname), ax.set_yscale("log")
        axes[0, 0].legend()
        fig.suptitle(f"{group} clusters, held-out events: full digitisation vs GAN vs geometric baseline")
        paths.append(_save(fig, out / f"fidelity_{group}.png"))
    if history and history["step"]:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(history["step"], history["loss_critic"], label="critic")
        ax.plot(history["step"], history["loss_generator"], label="generator")
        ax.set_xlabel("step"), ax.set_ylabel("BCE"), ax.legend(), ax.grid(alpha=0.3)
        paths.append(_save(fig, out / "loss.png"))
    return paths


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


__all__ = ["MODULE_CLASSES", "QUANTITIES", "auc", "c2st_auc", "cluster_quantities", "conditions", "fidelity_report",
           "reconstruction_report", "speed_report"]
