"""Held-out evaluation of the cluster splitter, each number beside a non-ML baseline.

* Classification 1 / 2 / >= 3 particles (confusion matrices) vs the charge-ratio baseline of :mod:`.baseline`
  (the cluster charge over the median single-particle charge at that incidence, two cuts fitted on the
  training set). The ML classifier is the gate (a lower cut on the same ratio) followed by the CNN.
* Position residuals of the split hits (best pairing with the true crossings) vs the unsplit centroid
  (the baseline hit every particle of a merged cluster gets without splitting), beside pitch/sqrt(12).
* Reconstruction with and without splitting (through the pipeline hook): TrackML score, and in jet cores
  (dR < 0.05 from a jet axis with pT > 500 GeV) the shared-cluster fraction and the track efficiency.

Truth after splitting (evaluation only, the hook cannot know it): each split hit takes the contributing
particle of its parent cluster whose crossing is nearest (each particle once, nearest pairs first); a split
hit left without a particle is a fake hit (particle_id 0, weight 0). Weights are recomputed as the
simulation does (TrackML weights, 0 for secondaries).
"""
from __future__ import annotations

import numpy as np

from trackcore.event import Event, Table
from trackcore.plugins import hookimpl
from trackcore.sim.simulate import simulation_weights

from .baseline import ChargeBaseline  # noqa: F401 - re-exported: the non-ML baseline lives beside the gate
from .split import ClusterSplitter, SplitResult, split_counts
from .truth import ClusterTruth, pixel_rows

#: Jet core: within this dR of the axis of a jet above JET_CORE_PT (GeV).
JET_CORE_DR, JET_CORE_PT = 0.05, 500.0
#: Particles counted in the jet-core efficiency: pT above this (GeV) and at least 4 truth hits.
EFF_MIN_PT = 1.0


# -- classification --------------------------------------------------------------------------------
def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """3x3 counts, rows = true class (1, 2, >= 3 particles), columns = predicted."""
    cm = np.zeros((3, 3), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    cm = confusion(y, pred)
    rows = np.maximum(cm.sum(1, keepdims=True), 1)
    return {"confusion": cm.tolist(), "confusion_row_normalised": np.round(cm / rows, 4).tolist(),
            "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
            "balanced_accuracy": float(np.mean(np.diag(cm) / rows[:, 0])),
            "single_split_rate": float(cm[0, 1:].sum() / max(cm[0].sum(), 1))}


# -- positions ----------------------------------------------------------------------------------
def position_residuals(data: dict, prob: np.ndarray, pos: np.ndarray, pitch: np.ndarray,
                       p_single_max: float, n_pred: np.ndarray | None = None) -> dict:
    """Residuals (mm) of the predicted positions of clusters split into their true count (2 or 3 best),
    best pairing; and of the baseline centroid against every particle of the same clusters. ``n_pred``:
    the predicted counts (default: :func:`split_counts` of ``prob`` at ``p_single_max``)."""
    import itertools

    n_pred = split_counts(prob, p_single_max) if n_pred is None else np.asarray(n_pred)
    res, base = [], []
    slot = {2: 1, 3: 3}
    for i in np.flatnonzero((n_pred >= 2) & (n_pred == np.minimum(data["n_true"], 3))):
        k = int(n_pred[i])
        p = pos[i, slot[k]:slot[k] + k]
        t = data["target"][i, :k]
        best = min(itertools.permutations(range(k)), key=lambda perm: np.sum((t[list(perm)] - p) ** 2))
        res.append((p - t[list(best)]) * pitch[i])
        base.append((data["centroid_offset"][i] - t) * pitch[i])
    res = np.concatenate(res) if res else np.zeros((0, 2))
    base = np.concatenate(base) if base else np.zeros((0, 2))
    return {"split": res, "centroid": base}


def residual_summary(res: np.ndarray) -> dict:
    """RMS and the half width of the central 68% (mm) per axis."""
    if not len(res):
        return {"n": 0}
    q = np.percentile(res, [16, 84], axis=0)
    return {"n": int(len(res)), "rms_u_mm": float(np.sqrt(np.mean(res[:, 0] ** 2))),
            "rms_v_mm": float(np.sqrt(np.mean(res[:, 1] ** 2))), "q68_u_mm": float((q[1, 0] - q[0, 0]) / 2),
            "q68_v_mm": float((q[1, 1] - q[0, 1]) / 2)}


# -- truth after splitting --------------------------------------------------------------------------
def split_truth(event: Event, truth: ClusterTruth, result: SplitResult, detector) -> Table:
    """The event truth for ``result.hits`` (see the module docstring for the rule)."""
    old = event.truth_aligned()
    keep = np.ones(len(event.hits), bool)
    keep[result.split_rows] = False
    cols = {k: np.asarray(old[k])[keep] for k in old.columns}
    n_new = len(result.parent_row)
    pid = np.zeros(n_new, np.int64)
    tpos = np.zeros((n_new, 3))
    tmom = np.zeros((n_new, 3))
    tpos_local = result.local.copy()
    for parent in np.unique(result.parent_row):
        mine = np.flatnonzero(result.parent_row == parent)
        s = truth.of(int(parent))
        cand = np.stack([truth.u[s], truth.v[s]], axis=1)
        if not len(cand):
            continue
        d = np.linalg.norm(result.local[mine][:, None] - cand[None], axis=2)
        taken_h, taken_p = set(), set()
        for flat in np.argsort(d, axis=None):
            h, p = divmod(int(flat), d.shape[1])
            if h in taken_h or p in taken_p:
                continue
            taken_h.add(h), taken_p.add(p)
            pid[mine[h]] = truth.particle_id[s][p]
            tpos_local[mine[h]] = cand[p]
            tmom[mine[h]] = truth.momentum[s][p]
    module = truth.module_index[result.parent_row]
    tpos = detector.local_to_global(module, np.c_[tpos_local, np.zeros(n_new)]) if n_new else tpos
    fake = pid == 0
    tpos[fake] = np.stack([result.hits[c][result.new_rows] for c in ("x", "y", "z")], axis=1)[fake]
    new = {"hit_id": result.hits["hit_id"][result.new_rows], "particle_id": pid, "tx": tpos[:, 0], "ty": tpos[:, 1],
           "tz": tpos[:, 2], "tpx": tmom[:, 0], "tpy": tmom[:, 1], "tpz": tmom[:, 2], "weight": np.zeros(n_new)}
    table = Table({k: np.concatenate([cols[k], np.asarray(new[k], cols[k].dtype)]) for k in cols}, name="truth")
    table["weight"] = simulation_weights(table, event.particles)
    return table


class TruthKeepingSplitter:
    """Evaluation plugin: the splitter's hook, plus the truth update of :func:`split_truth` (needs the
    :class:`ClusterTruth` of the event, which only a simulation has). Keeps the last split per event name."""

    def __init__(self, splitter: ClusterSplitter, truths: dict[str, ClusterTruth]):
        self.splitter, self.truths, self.results = splitter, truths, {}

    @hookimpl
    def trackcore_split_clusters(self, event, clusters):
        result = self.splitter.split(event, clusters)
        if result is None:
            return None
        truth = split_truth(event, self.truths[event.name], result, self.splitter.detector)
        self.results[event.name] = result
        return result.hits, result.cells, truth


# -- reconstruction -------------------------------------------------------------------------------
def _eta_phi(x, y, z):
    r = np.hypot(x, y)
    return np.arcsinh(z / np.maximum(r, 1e-9)), np.arctan2(y, x)


def _in_core(eta, phi, jets: Table) -> np.ndarray:
    inside = np.zeros(len(eta), bool)
    for j in np.flatnonzero(np.asarray(jets["pt"]) > JET_CORE_PT):
        dphi = np.angle(np.exp(1j * (phi - jets["phi"][j])))
        inside |= np.hypot(eta - jets["eta"][j], dphi) < JET_CORE_DR
    return inside


def _matched_particles(truth_pid_of_hit: np.ndarray, track_of_hit: np.ndarray) -> dict[int, int]:
    """particle_id -> a track whose hits are > 50% from it (tracks of >= 3 hits), as tracking_rates counts."""
    on = track_of_hit >= 0
    out = {}
    t, p = track_of_hit[on], truth_pid_of_hit[on]
    for tid in np.unique(t):
        ps = p[t == tid]
        if len(ps) < 3:
            continue
        vals, counts = np.unique(ps, return_counts=True)
        k = counts.argmax()
        if vals[k] != 0 and 2 * counts[k] > len(ps):
            out.setdefault(int(vals[k]), int(tid))
    return out


def jet_core_metrics(event: Event, truth: ClusterTruth, jets: Table, reco, split: SplitResult | None,
                     original_xyz: np.ndarray, original_pixel_rows: np.ndarray) -> dict:
    """Shared-cluster fraction and track efficiency in the jet cores of one reconstructed event.

    The final tracks never share a hit (the ambiguity resolution forbids it), so a *shared cluster* is an
    original pixel cluster that >= 2 found particles (matched to tracks) crossed but that reaches the
    tracks as fewer hits than that (unsplit, or split into too few): the clusters ATLAS counts as shared.
    """
    pid = event.truth_aligned()["particle_id"]
    matched = _matched_particles(pid, reco.track_id_of_hits())
    orig_rows = original_pixel_rows
    n_hits_of = np.ones(len(truth.offsets) - 1, np.int64)
    if split is not None:
        np.add.at(n_hits_of, split.parent_row, 1)
        n_hits_of[split.split_rows] -= 1
    eta, phi = _eta_phi(*(original_xyz[orig_rows].T))
    core = orig_rows[_in_core(eta, phi, jets)]
    m = np.array([sum(int(p) in matched for p in truth.particle_id[truth.of(r)]) for r in core], np.int64)
    with_found = m >= 1
    shared = (m >= 2) & (n_hits_of[core] < m)
    # Efficiency: jet particles near a core axis with pT > EFF_MIN_PT and >= 4 truth hits.
    parts = event.particles
    p_eta, p_phi = _eta_phi(parts["px"], parts["py"], parts["pz"])
    pt = np.hypot(parts["px"], parts["py"])
    nh = np.bincount(np.searchsorted(parts["particle_id"], pid[pid > 0]), minlength=len(parts))
    sel = _in_core(p_eta, p_phi, jets) & (pt > EFF_MIN_PT) & (nh >= 4)
    found = np.array([int(p) in matched for p in parts["particle_id"][sel]], bool)
    return {"core_clusters_on_tracks": int(with_found.sum()), "shared_clusters": int(shared.sum()),
            "core_particles": int(sel.sum()), "core_found": int(found.sum())}


def reconstruct_pair(event: Event, truth: ClusterTruth, jets: Table | None, splitter: ClusterSplitter, detector
                     ) -> dict:
    """Reconstruct a copy of ``event`` without and one with splitting (pipeline hook); their metrics."""
    from trackcore.api import reconstruct_event
    from trackcore.plugins import get_plugin_manager
    from trackcore.reco.pipeline import ReconstructionConfig

    rows = pixel_rows(event)
    xyz = np.stack([event.hits[c] for c in ("x", "y", "z")], axis=1)
    out = {}
    for name in ("without", "with"):
        ev = Event(event.hits, event.cells, event.particles, event.truth, event.event_id, dict(event.meta))
        pm, plugin = None, None
        if name == "with":
            pm = get_plugin_manager(load_entrypoints=False)
            plugin = TruthKeepingSplitter(splitter, {ev.name: truth})
            pm.register(plugin, name="cluster_splitter_eval")
        reco, res = reconstruct_event(ev, detector, plugin_manager=pm, config=ReconstructionConfig(split_clusters=True))
        split = plugin.results.get(ev.name) if plugin else None
        row = {"score": float(res.score), "efficiency_pt1": float(res.rates["efficiency_pt"]) if res.rates else None,
               "fake_rate": float(res.rates["fake_rate"]) if res.rates else None,
               "n_split": int(len(split.split_rows)) if split else 0, "seconds": float(res.timings["total"]),
               "split_seconds": float(res.timings.get("measurements", 0.0))}
        if jets is not None:
            row.update(jet_core_metrics(ev, truth, jets, reco, split, xyz, rows))
        out[name] = row
    return out


def false_splits(event: Event, truth: ClusterTruth, splitter: ClusterSplitter) -> dict:
    """How often the splitter fires on clusters one particle made, and on merged ones (one event)."""
    result = splitter.split(event)
    rows = pixel_rows(event)
    n = truth.n_particles[rows]
    split = np.isin(rows, result.split_rows) if result is not None else np.zeros(len(rows), bool)
    single, merged = n == 1, n >= 2
    return {"single_clusters": int(single.sum()), "single_split": int((split & single).sum()),
            "merged_clusters": int(merged.sum()), "merged_split": int((split & merged).sum()),
            "noise_split": int((split & (n == 0)).sum())}


def summarise_pairs(rows: list[dict]) -> dict:
    """Sums of counts and means of rates over events, for ``without`` and ``with`` splitting."""
    out = {}
    for name in ("without", "with"):
        r = [row[name] for row in rows]
        s = {k: float(np.mean([x[k] for x in r])) for k in ("score", "efficiency_pt1", "fake_rate", "seconds",
                                                           "split_seconds")}
        s["n_split"] = int(sum(x["n_split"] for x in r))
        if "core_particles" in r[0]:
            for k in ("core_clusters_on_tracks", "shared_clusters", "core_particles", "core_found"):
                s[k] = int(sum(x[k] for x in r))
            s["shared_cluster_fraction"] = s["shared_clusters"] / max(s["core_clusters_on_tracks"], 1)
            s["core_efficiency"] = s["core_found"] / max(s["core_particles"], 1)
        out[name] = s
    if "single_split" in rows[0]:
        out["false_splits"] = {k: int(sum(row["single_split"][k] for row in rows)) for k in rows[0]["single_split"]}
    out["events"] = len(rows)
    return out
