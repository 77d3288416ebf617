"""Seed classifier plugin: features and labels, a tiny model that learns, ONNX = PyTorch, the pipeline
hook, the shipped model, the command line and bad input."""
from __future__ import annotations

import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("scipy")

from plugins.seed_classifier import evaluate, plugin  # noqa: E402
from plugins.seed_classifier.features import (FEATURE_NAMES, N_FEATURES, cluster_table, medium_seeds,  # noqa: E402
                                              seed_context, seed_features, truth_labels)
from plugins.seed_classifier.model import SeedMLP, export_onnx, load_state, predict_torch, save_state  # noqa: E402
from plugins.seed_classifier.onnx_runtime import OnnxSeedClassifier  # noqa: E402
from plugins.seed_classifier.train import (TrainConfig, build_dataset, config_from_args, find_event_seeds,  # noqa: E402
                                           simulate, train_model)
from trackcore.errors import InputError, PluginError  # noqa: E402
from trackcore.event import Event, Table  # noqa: E402
from trackcore.hookspecs import SEED_BAD, SEED_GOOD, SEED_MEDIUM, Seeds  # noqa: E402
from trackcore.plugins import get_plugin_manager, list_plugins  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PILEUP = 200.0  # the target's pile-up: there the seed weight separates bad seeds poorly
CONFIG = TrainConfig(events=1, test_events=1, pileup=PILEUP, seed=5, epochs=6, batch_size=256, hidden=(32, 32),
                     max_examples_per_event=40000, pipeline_events=0)


@pytest.fixture(scope="module")
def events():
    """One training event and one held-out event (another seed)."""
    return (simulate(1, 5, PILEUP, desc="", progress=False), simulate(1, 9005, PILEUP, desc="", progress=False)[0])


@pytest.fixture(scope="module")
def datasets(events):
    train_events, test_event = events
    train = build_dataset(train_events, CONFIG, np.random.default_rng(0), progress=False)
    test = build_dataset([test_event], CONFIG, np.random.default_rng(1), progress=False)
    return train, test


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    train, _ = datasets
    model, history = train_model(train["x"], train["y"], CONFIG, progress=False)
    out = tmp_path_factory.mktemp("seedcls")
    save_state(model, out / "model.pt")
    export_onnx(model, out / "model.onnx")
    return model, history, out


# -- features and labels -------------------------------------------------------------------
def test_labels_follow_truth_and_medium_seeds_move_one_hit(events):
    event = events[1]
    hit_index, _ = find_event_seeds(event)
    labels = truth_labels(event, hit_index)
    pid = event.truth_aligned()["particle_id"]
    p = pid[hit_index]
    one = (p[:, 0] == p[:, 1]) & (p[:, 1] == p[:, 2]) & (p[:, 0] != 0)
    assert set(np.unique(labels)) == {SEED_GOOD, SEED_BAD}
    assert one[labels == SEED_GOOD].all()  # good: one particle ...
    assert not one[labels == SEED_BAD].all()  # ... bad: mostly mixed (or too-short particles)
    good = hit_index[labels == SEED_GOOD][:500]
    medium = medium_seeds(event, good, np.random.default_rng(0))
    assert 0.9 * len(good) < len(medium) <= len(good)
    # Exactly one hit differs from some good seed, on the same layer, from another particle.
    hits = event.hits
    layer = hits["volume_id"].astype(np.int64) * 1000 + hits["layer_id"]
    changed = medium != good[: len(medium)] if len(medium) == len(good) else None
    if changed is not None:
        assert (changed.sum(1) == 1).all()
        old, new = good[changed.any(1)][changed[changed.any(1)]], medium[changed]
        assert (layer[old] == layer[new]).all() and (pid[old] != pid[new]).all()


def test_features_shape_local_frame_and_cluster_shapes(events):
    event = events[1]
    hit_index, _ = find_event_seeds(event)
    x = seed_features(event, hit_index[:100])
    assert x.shape == (100, N_FEATURES) and x.dtype == np.float32 and np.isfinite(x).all()
    # Rotating the event about the beam line changes no feature (seed-local frame).
    rotated = Event(hits=event.hits.copy(), cells=event.cells, truth=event.truth, particles=event.particles)
    c, s = np.cos(0.7), np.sin(0.7)
    rotated.hits["x"], rotated.hits["y"] = c * event.hits["x"] - s * event.hits["y"], s * event.hits["x"] + c * event.hits["y"]
    np.testing.assert_allclose(seed_features(rotated, hit_index[:100]), x, rtol=1e-4, atol=1e-3)
    clusters = cluster_table(event)
    counts = np.bincount(np.searchsorted(np.sort(event.hits["hit_id"]), event.cells["hit_id"]),
                         minlength=len(event.hits))
    assert np.array_equal(clusters[np.argsort(event.hits["hit_id"]), 0], counts)
    assert (clusters[:, 2] >= 1).all() and (clusters[:, 3] >= 1).all()


def test_seed_context_counts_pairs_compatible_curvature_and_hit_use():
    # Seeds 0 and 1 share the b-m pair with alike curvature, seed 2 shares it with another curvature;
    # seed 3 shares nothing. Hit 1 is used by seeds 0-2.
    seeds = np.array([[0, 1, 2], [0, 1, 3], [0, 1, 4], [5, 6, 7]])
    curv = np.array([1e-3, 1e-3 + 0.5e-4, -1e-3, 2e-3])
    ctx = seed_context(seeds, curv, seeds, curv, 8, in_reference=True)
    assert ctx[:, 0].tolist() == [3, 3, 3, 1]  # seeds sharing b-m, itself included
    assert ctx[:, 3].tolist() == [2, 2, 1, 1]  # ... with |delta curvature| < 1.5e-4 / mm
    assert ctx[:, 1].tolist() == [1, 1, 1, 1] and ctx[:, 7].tolist() == [3, 3, 3, 1]
    # A seed outside the list counts as if added to it.
    alone = seed_context(seeds[:1], curv[:1], seeds[1:], curv[1:], 8, in_reference=False)
    np.testing.assert_array_equal(alone, ctx[:1])


def test_context_features_of_a_seed_left_out_match_the_full_list(events):
    # Training's medium seeds are featured against the real seed list they are not part of; the
    # "+1 for itself" rule must give what the pipeline computes for a seed inside its list.
    event = events[1]
    hit_index, _ = find_event_seeds(event)
    full = seed_features(event, hit_index[:2000])
    ctx = [FEATURE_NAMES.index(n) for n in ("n_bm", "n_bt_compat", "m_n_seeds")]
    one = seed_features(event, hit_index[7:8], reference=np.delete(hit_index[:2000], 7, axis=0))
    np.testing.assert_allclose(one[0], full[7], rtol=1e-6)
    assert (full[:, ctx] >= 1).all()


# -- learning ----------------------------------------------------------------------------------
def test_tiny_model_beats_baselines_on_held_out_event(datasets, trained):
    train, test = datasets
    model, history, out = trained
    assert history["train_loss"][-1] < history["train_loss"][0]
    report = evaluate.classification_report(model, test, train, out, history)
    counts = np.bincount(test["y"], minlength=3)
    assert counts.min() > 100  # the held-out event has all three classes
    assert report["accuracy"] > report["baseline"]["majority_class_accuracy"] + 0.3
    ml, cut = report["real_seeds"]["ml"], report["real_seeds"]["weight_cut"]
    # Keeping about as many good seeds, the network rejects more bad seeds than the seed-weight cut.
    assert abs(ml["good_kept"] - cut["good_kept"]) < 0.05
    assert ml["bad_rejected"] > cut["bad_rejected"] + 0.1
    assert ml["auc_good_vs_bad"] > cut["auc_good_vs_bad"]
    assert {"confusion_matrix.png", "roc.png", "loss.png"} <= {p.name for p in out.glob("*.png")}


def test_training_is_reproducible(datasets):
    train, _ = datasets
    cfg = TrainConfig(epochs=1, batch_size=512, hidden=(8,), seed=3)
    a, _ = train_model(train["x"][:3000], train["y"][:3000], cfg, progress=False)
    b, _ = train_model(train["x"][:3000], train["y"][:3000], cfg, progress=False)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_onnx_and_pytorch_agree(datasets, trained):
    _, test = datasets
    model, _, out = trained
    p_torch = predict_torch(model, test["x"])
    p_onnx = OnnxSeedClassifier(out / "model.onnx").predict(test["x"])
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-5)
    np.testing.assert_allclose(p_onnx.sum(1), 1.0, atol=1e-5)
    reloaded = load_state(out / "model.pt")
    np.testing.assert_array_equal(predict_torch(reloaded, test["x"][:1000]), p_torch[:1000])


# -- the pipeline hook -------------------------------------------------------------------------
def test_hook_through_plugin_manager(events, trained):
    event = events[1]
    _, _, out = trained
    pm = get_plugin_manager(load_entrypoints=False)
    clf = plugin.SeedClassifier(out / "model.onnx")
    pm.register(clf, name="seed_classifier")
    hit_index, weight = find_event_seeds(event)
    result = pm.hook.trackcore_classify_seeds(event=event, seeds=Seeds(hit_index, np.zeros((len(hit_index), 5)),
                                                                       weight))
    result.check(len(hit_index))
    prob = clf.probabilities(event, hit_index)
    np.testing.assert_array_equal(result.score, prob[:, SEED_GOOD])
    assert np.array_equal(result.label == SEED_BAD, prob[:, SEED_BAD] >= plugin.DEFAULT_BAD_THRESHOLD)
    truth = truth_labels(event, hit_index)
    assert (result.label[truth == SEED_GOOD] != SEED_BAD).mean() > 0.9
    assert (result.label[truth == SEED_BAD] == SEED_BAD).mean() > 0.5  # the seed-weight cut: ~0.2
    # A stricter threshold drops fewer seeds.
    strict = plugin.SeedClassifier(out / "model.onnx", bad_threshold=0.99).labels(prob)
    assert (strict == SEED_BAD).sum() < (result.label == SEED_BAD).sum()
    assert set(np.unique(result.label)) <= {SEED_GOOD, SEED_MEDIUM, SEED_BAD}


def test_pipeline_drops_bad_seeds(events, trained):
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.reco.pipeline import ReconstructionConfig, reconstruct

    event = events[1]
    _, _, out = trained
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin.SeedClassifier(out / "model.onnx"), name="seed_classifier")
    reco = reconstruct(event, trackml_like_detector(), ReconstructionConfig(classify_seeds=True), plugin_manager=pm)
    stage = reco.outputs["seed_classification"]
    n = len(reco.outputs["seeding"]["hit_index"])
    assert stage["label"].shape == (n,) and len(stage["hit_index"]) == (stage["label"] != SEED_BAD).sum() < n
    assert len(reco.tracks) > 100


def test_pipeline_comparison_runs_the_classifier(trained):
    # Each way must really reach the CKF with its own seeds (the classifier stage is opt-in).
    _, _, out = trained
    small = simulate(1, 9105, 20.0, desc="", progress=False)
    rows = evaluate.pipeline_comparison(small, out / "model.onnx", weight_cut=1e9, progress=False, repeats=1)
    ref = rows["no classifier"]
    assert ref["seeds_kept"] == ref["seeds"] > 0
    assert rows["seed weight cut (no ML)"]["seeds_kept"] == 0  # an impossible cut drops every seed
    ml = rows[f"ML classifier (P(bad) >= {plugin.DEFAULT_BAD_THRESHOLD})"]
    assert 0 < ml["seeds_kept"] < ml["seeds"] == ref["seeds"]
    assert rows["ML classifier (argmax)"]["seeds_kept"] <= ml["seeds_kept"]


def test_shipped_model_is_present_and_consistent():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="seed_classifier")
    (info,) = list_plugins(pm)
    assert "trackcore_classify_seeds" in info.hooks and "trackcore_add_commands" in info.hooks
    (status,) = info.models
    assert status.present and Path(status.path) == plugin.MODEL_PATH
    shipped = load_state(plugin.MODEL_DIR / "model.pt")
    x = np.random.default_rng(0).normal(size=(64, N_FEATURES)).astype(np.float32) * 10
    np.testing.assert_allclose(OnnxSeedClassifier(plugin.MODEL_PATH).predict(x), predict_torch(shipped, x), atol=1e-5)
    assert (plugin.MODEL_DIR / "report.json").is_file()


def test_entry_point_declared():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["trackcore"]["seed_classifier"] == "plugins.seed_classifier.plugin"


def test_train_command_is_wired():
    from trackcore.cli.main import build_parser

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="seed_classifier")
    parser = build_parser(pm)
    args = parser.parse_args(["train", "seed_classifier", "--quick", "--events", "3", "--seed", "7", "-o", "x"])
    assert args.func is plugin._run_train
    cfg = config_from_args(args)
    assert (cfg.events, cfg.seed, cfg.pileup) == (3, 7, 20.0)
    # A second ML plugin adds its stage to the same 'train' command.
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    from trackcore.plugins import train_subparsers

    train_subparsers(sub).add_parser("other_stage")
    assert parser.parse_args(["train", "other_stage"]).stage == "other_stage"


# -- bad input ---------------------------------------------------------------------------------
def test_missing_model_file(events, tmp_path):
    clf = plugin.SeedClassifier(tmp_path / "nope.onnx")
    assert clf.trackcore_model_status()[0]["present"] is False
    with pytest.raises(InputError, match="nope.onnx not found"):
        clf.probabilities(events[1], np.zeros((0, 3), np.int64))
    with pytest.raises(InputError, match="not found"):
        load_state(tmp_path / "nope.pt")


def test_wrong_input_shape(trained, tmp_path):
    _, _, out = trained
    session = OnnxSeedClassifier(out / "model.onnx")
    with pytest.raises(InputError, match=rf"shape \(N, {N_FEATURES}\)"):
        session.predict(np.zeros((4, N_FEATURES - 1), np.float32))
    with pytest.raises(InputError, match="not finite"):
        session.predict(np.full((2, N_FEATURES), np.nan, np.float32))
    other = SeedMLP(n_features=5, hidden=(4,))
    export_onnx(other, tmp_path / "narrow.onnx")
    with pytest.raises(InputError, match="expects input shape"):
        OnnxSeedClassifier(tmp_path / "narrow.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        OnnxSeedClassifier(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match=rf"must be \(N, {N_FEATURES}\)"):
        train_model(np.zeros((10, 3), np.float32), np.zeros(10, np.int64), CONFIG, progress=False)


def test_empty_event_and_bad_seeds(events, trained):
    _, _, out = trained
    clf = plugin.SeedClassifier(out / "model.onnx")
    empty = Event(hits=Table({c: np.zeros(0) for c in ("hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id")}),
                  cells=Table({c: np.zeros(0) for c in ("hit_id", "ch0", "ch1", "value")}))
    result = clf.trackcore_classify_seeds(empty, Seeds(np.zeros((0, 3), np.int64), np.zeros((0, 5))))
    assert result.label.shape == (0,) and result.score.shape == (0,)
    with pytest.raises(InputError, match="refers to hit rows"):
        clf.probabilities(events[1], np.array([[0, 1, len(events[1].hits)]]))
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        seed_features(events[1], np.zeros((4, 2), np.int64))
    with pytest.raises(InputError, match="no seeds"):
        build_dataset([empty], CONFIG, np.random.default_rng(0), progress=False)
    with pytest.raises(InputError, match="no truth"):
        truth_labels(Event(hits=events[1].hits), np.zeros((0, 3), np.int64))
    with pytest.raises(InputError, match="bad_threshold"):
        plugin.SeedClassifier(bad_threshold=1.5)
    # Without cells the cluster features are unknown: the plugin leaves the seeds alone, with a warning.
    no_cells = Event(hits=events[1].hits)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert clf.trackcore_classify_seeds(no_cells, Seeds(np.zeros((1, 3), np.int64), np.zeros((1, 5)))) is None
    assert any("no cells" in str(w.message) for w in caught)
    with pytest.raises(PluginError, match="Seeds"):
        clf.trackcore_classify_seeds(events[1], np.zeros((1, 3)))


def test_train_needs_torch_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(PluginError, match="needs PyTorch"):
        plugin._run_train(None)
