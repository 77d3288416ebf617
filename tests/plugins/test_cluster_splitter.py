"""Cluster splitter plugin: cluster truth, inputs, the charge-ratio gate, a tiny model that learns, ONNX = PyTorch,
the pipeline hook, the truth rule after splitting, the shipped model, the command line and bad input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from plugins.cluster_splitter import evaluate, plugin  # noqa: E402
from plugins.cluster_splitter.baseline import BASELINE_FILE, ChargeBaseline  # noqa: E402
from plugins.cluster_splitter.features import (N_BASE_SCALARS, N_SCALARS, WINDOW_U, WINDOW_V,  # noqa: E402
                                               cluster_inputs, neighbour_counts)
from plugins.cluster_splitter.model import export_onnx, load_state, predict_torch, save_state  # noqa: E402
from plugins.cluster_splitter.onnx_runtime import OnnxClusterSplitter  # noqa: E402
from plugins.cluster_splitter.split import MODEL_PATH, ClusterSplitter, split_counts  # noqa: E402
from plugins.cluster_splitter.train import (QUICK, build_dataset, simulate, train_model,  # noqa: E402
                                            with_model_scalars)
from plugins.cluster_splitter.truth import pixel_rows, simulate_labelled  # noqa: E402
from trackcore.errors import InputError  # noqa: E402
from trackcore.event import Event, Table  # noqa: E402
from trackcore.geometry.builders import trackml_like_detector  # noqa: E402
from trackcore.plugins import get_plugin_manager, list_plugins  # noqa: E402

CONFIG = replace(QUICK, events=80, test_events=40, seed=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector():
    return trackml_like_detector()


@pytest.fixture(scope="module")
def samples():
    """Training and held-out jet events (other seeds)."""
    return (simulate(CONFIG.events, CONFIG.seed, CONFIG, desc="", progress=False),
            simulate(CONFIG.test_events, CONFIG.seed + 100_000, CONFIG, desc="", progress=False))


@pytest.fixture(scope="module")
def train_data(samples):
    return build_dataset(samples[0], None, None)


@pytest.fixture(scope="module")
def baseline(train_data):
    return ChargeBaseline().fit(train_data["base"], train_data["y"])


@pytest.fixture(scope="module")
def trained(train_data, baseline, tmp_path_factory):
    data = with_model_scalars(train_data, baseline, gated=True)
    model, history = train_model(data, CONFIG, progress=False)
    path = tmp_path_factory.mktemp("splitter") / "model.onnx"
    export_onnx(model, path)
    baseline.save(path.parent / BASELINE_FILE)
    return model, history, data, path


def test_cluster_truth_agrees_with_event_truth(samples):
    event, truth, _ = samples[0][0]
    rows = pixel_rows(event)
    n = truth.n_particles
    assert (n[rows] >= 2).sum() > 0, "jet cores must give merged clusters"
    # The particle with most charge is the event truth's majority particle on single-particle hits.
    pid = event.truth_aligned()["particle_id"]
    one = np.flatnonzero(n == 1)
    assert np.mean(truth.particle_id[truth.offsets[one]] == pid[one]) > 0.99
    # Entries are sorted by decreasing charge within each hit.
    for r in rows[n[rows] >= 2][:20]:
        assert np.all(np.diff(truth.charge[truth.of(r)]) <= 0)


def test_inputs_centre_on_the_hit(samples, detector):
    event, truth, _ = samples[0][0]
    rows = pixel_rows(event)[:200]
    inp = cluster_inputs(event, detector, rows)
    assert inp.maps.shape == (len(rows), 1, WINDOW_U, WINDOW_V) and inp.scalars.shape == (len(rows), N_BASE_SCALARS)
    cheap = cluster_inputs(event, detector, rows, with_maps=False)
    np.testing.assert_array_equal(cheap.scalars, inp.scalars)
    assert cheap.maps.shape == (len(rows), 1, 0, 0)
    xyz = detector.local_to_global(inp.module_index, np.c_[inp.centroid, np.zeros(len(rows))])
    hits = np.stack([event.hits[c][rows] for c in "xyz"], axis=1)
    assert np.abs(xyz - hits).max() < 1e-6  # the digitiser's hit is the value-weighted centroid
    assert np.all(inp.maps.sum(axis=(1, 2, 3)) > 0) and np.all(inp.captured > 0.5)


def test_gate_keeps_merged_and_drops_singles(samples, baseline, tmp_path):
    test = build_dataset(samples[1], None, None)
    ratio, gate = baseline.ratio(test["base"]), baseline.passes_gate(test["base"])
    # One particle gives a charge ratio near 1, two near 2 (the calibration is per incidence bin).
    assert abs(np.median(ratio[test["y"] == 0]) - 1) < 0.1 and abs(np.median(ratio[test["y"] == 1]) - 2) < 0.3
    assert gate[test["y"] > 0].mean() > 0.95 and gate[test["y"] == 0].mean() < 0.05
    assert 1.0 < baseline.gate <= baseline.cut2 < baseline.cut3
    baseline.save(tmp_path / "b.json")
    again = ChargeBaseline.load(tmp_path / "b.json")
    np.testing.assert_array_equal(again.ratio(test["base"]), ratio)
    scal = with_model_scalars(test, baseline, gated=False)["scalars"]
    assert scal.shape == (len(test["y"]), N_SCALARS) and np.allclose(np.exp(scal[:, -2]), ratio, rtol=1e-4)


def test_tiny_model_beats_always_single(trained, samples, baseline):
    model, history, _, _ = trained
    test = with_model_scalars(build_dataset(samples[1], None, None), baseline, gated=False)
    gate = baseline.passes_gate(test["base"])
    prob = np.tile(np.float32([1, 0, 0]), (len(test["y"]), 1))
    pos = np.zeros((len(test["y"]), 6, 2), np.float32)
    prob[gate], pos[gate], sig = predict_torch(model, test["maps"][gate], test["scalars"][gate])
    ml = evaluate.classification_metrics(test["y"], prob.argmax(1))
    # "always one particle" has balanced accuracy 1/3; gate + tiny model must find merged clusters.
    assert ml["balanced_accuracy"] > 0.6, ml
    assert history["val_loss"][-1] < history["val_loss"][0]
    # Positions of correctly counted 2-particle clusters beat the unsplit centroid.
    res = evaluate.position_residuals(test, prob, pos, test["pitch"], 0.5)
    if len(res["split"]) >= 20:
        assert np.median(np.abs(res["split"][:, 1])) < np.median(np.abs(res["centroid"][:, 1]))
    assert np.all(sig > 0)


def test_onnx_matches_torch_and_state_roundtrip(trained, tmp_path):
    model, _, data, path = trained
    maps, scalars = data["maps"][:300], data["scalars"][:300]
    p_t, pos_t, sig_t = predict_torch(model, maps, scalars)
    p_o, pos_o, sig_o = OnnxClusterSplitter(path).predict(maps, scalars)
    np.testing.assert_allclose(p_o, p_t, atol=1e-5)
    np.testing.assert_allclose(pos_o, pos_t, atol=1e-4)
    np.testing.assert_allclose(sig_o, sig_t, rtol=1e-4)
    save_state(model, tmp_path / "m.pt")
    np.testing.assert_allclose(predict_torch(load_state(tmp_path / "m.pt"), maps, scalars)[0], p_t, atol=1e-6)


def test_split_counts_rule():
    prob = np.array([[0.9, 0.05, 0.05], [0.1, 0.6, 0.3], [0.1, 0.3, 0.6], [0.3, 0.6, 0.1]])
    assert split_counts(prob, 0.2).tolist() == [1, 2, 3, 1]
    assert split_counts(np.zeros((0, 3)), 0.2).shape == (0,)
    # With the charge ratio, 2 vs 3 is the baseline's cut, whatever the CNN prefers.
    assert split_counts(prob, 0.2, np.array([5.0, 3.0, 2.0, 3.0]), 2.6).tolist() == [1, 3, 2, 1]


def test_pipeline_hook_splits_and_keeps_event_valid(trained, samples, detector):
    _, _, _, path = trained
    event, truth, jets = samples[1][0]
    splitter = ClusterSplitter(path, detector=detector, p_single_max=1.0)  # split whatever the model can
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin.SplitterPlugin(splitter), name="cluster_splitter")
    from trackcore.reco.pipeline import ReconstructionConfig, reconstruct

    ev = Event(event.hits, event.cells, event.particles, None, event.event_id)
    untouched = Event(event.hits, event.cells, event.particles, None, event.event_id)
    reconstruct(untouched, detector, plugin_manager=pm)  # splitting is opt-in
    assert untouched.hits is event.hits
    reco = reconstruct(ev, detector, ReconstructionConfig(split_clusters=True), plugin_manager=pm)
    assert len(ev.hits) > len(event.hits)  # the pipeline took the split hits
    ev.validate()
    kept = np.isin(event.hits["hit_id"], ev.hits["hit_id"])
    assert kept.sum() < len(event.hits) and len(reco.tracks) > 0
    # Unsplit hits keep their ids and positions; new ids are fresh.
    same = np.isin(ev.hits["hit_id"], event.hits["hit_id"][kept])
    np.testing.assert_array_equal(ev.hits["x"][same], event.hits["x"][kept])
    assert set(ev.cells["hit_id"]) == set(ev.hits["hit_id"])


def test_only_gated_clusters_reach_the_cnn(trained, samples, detector, baseline):
    _, _, _, path = trained
    event = samples[1][2][0]
    result = ClusterSplitter(path, detector=detector, p_single_max=1.0, min_neighbours=0).split(event)
    rows = pixel_rows(event)
    inp = cluster_inputs(event, detector, rows, with_maps=False)
    n_cells = np.diff(inp.cell_offsets)
    expected = rows[baseline.passes_gate(inp.scalars) & (n_cells >= 2)]
    np.testing.assert_array_equal(np.sort(result.candidate_rows), np.sort(expected))
    assert 0 < len(expected) < 0.2 * len(rows) and set(result.split_rows) <= set(expected)
    # The neighbour gate (default 2) keeps the dense ones of those only.
    dense = ClusterSplitter(path, detector=detector, p_single_max=1.0).split(event)
    expected_dense = expected[neighbour_counts(event, expected) >= 2]
    np.testing.assert_array_equal(np.sort(dense.candidate_rows), np.sort(expected_dense))
    assert 0 < len(expected_dense) < len(expected)


def test_neighbour_counts_match_brute_force(samples):
    event = samples[1][3][0]
    h = event.hits
    rows = np.arange(0, len(h), 7)
    xyz = np.stack([h["x"], h["y"], h["z"]], axis=1)
    same = ((h["volume_id"][rows, None] == h["volume_id"][None]) & (h["layer_id"][rows, None] == h["layer_id"][None])
            & (h["module_id"][rows, None] == h["module_id"][None]))
    close = np.linalg.norm(xyz[rows, None] - xyz[None], axis=2) <= 1.0
    expected = (same & close).sum(1) - 1  # not itself
    np.testing.assert_array_equal(neighbour_counts(event, rows), expected)
    assert expected.max() >= 2  # a jet event has dense spots: the check is not all zeros
    np.testing.assert_array_equal(neighbour_counts(event, rows[:0]), np.zeros(0, np.int64))
    with pytest.raises(InputError, match="radius"):
        neighbour_counts(event, rows, radius=0.0)


def test_truth_after_split_is_consistent(trained, samples, detector):
    _, _, _, path = trained
    event, truth, _ = samples[1][1]
    result = ClusterSplitter(path, detector=detector, p_single_max=1.0).split(event)
    assert len(result.split_rows) > 0
    new_truth = evaluate.split_truth(event, truth, result, detector)
    ev = Event(result.hits, result.cells, event.particles, new_truth, event.event_id).validate()
    assert abs(new_truth["weight"].sum() - 1) < 1e-9
    # Each split hit of a merged cluster goes to one of that cluster's particles, each particle once.
    t = ev.truth_aligned()
    for parent in np.unique(result.parent_row)[:30]:
        mine = result.new_rows[result.parent_row == parent]
        pids = t["particle_id"][mine]
        real = pids[pids != 0]
        assert len(set(real)) == len(real)
        assert set(real) <= set(truth.particle_id[truth.of(int(parent))])


@pytest.mark.skipif(not MODEL_PATH.is_file(), reason="shipped model not trained yet")
def test_shipped_model_rarely_splits_single_clusters(detector):
    from trackcore.sim.particles import minimum_bias

    event, truth = simulate_labelled(detector, minimum_bias(np.random.default_rng(7), pileup=20.0), seed=7)
    splitter = ClusterSplitter(detector=detector)
    fs = evaluate.false_splits(event, truth, splitter)
    # 0.05% on <mu>=200 (report.json; 1.2% before any gate).
    assert fs["single_split"] <= 0.003 * fs["single_clusters"], fs
    # Merged clusters of a dense jet event (a held-out seed) are split.
    jet_event, jet_truth, _ = simulate(1, 100_001, CONFIG, desc="", progress=False)[0]
    fs_jet = evaluate.false_splits(jet_event, jet_truth, splitter)
    assert fs_jet["merged_split"] >= 0.5 * fs_jet["merged_clusters"] > 0, fs_jet
    # The gate: only a small part of the clusters reaches the CNN.
    result = splitter.split(event)
    assert len(result.candidate_rows) < 0.2 * len(pixel_rows(event))
    status = plugin.trackcore_model_status()
    assert status[0]["present"] and status[0]["path"] == str(MODEL_PATH)


def test_bad_input(trained, samples, tmp_path, detector):
    _, _, _, path = trained
    with pytest.raises(InputError, match="not found"):
        ClusterSplitter(tmp_path / "missing.onnx").split(samples[1][0][0])
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not a readable ONNX"):
        OnnxClusterSplitter(tmp_path / "junk.onnx")
    session = OnnxClusterSplitter(path)
    with pytest.raises(InputError, match="maps must have shape"):
        session.predict(np.zeros((2, 1, 7, 7), np.float32), np.zeros((2, N_SCALARS), np.float32))
    with pytest.raises(InputError, match="scalars must have shape"):
        session.predict(np.zeros((2, 1, WINDOW_U, WINDOW_V), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(InputError, match="p_single_max"):
        ClusterSplitter(path, p_single_max=0.0)
    with pytest.raises(InputError, match="min_neighbours"):
        ClusterSplitter(path, min_neighbours=-1)
    splitter = ClusterSplitter(path, detector=detector)
    event = samples[1][0][0]
    with pytest.raises(InputError, match="no cells"):
        splitter.split(Event(event.hits, None))
    with pytest.raises(InputError, match="missing column 'value'"):
        splitter.split(event, Table({k: event.cells[k] for k in ("hit_id", "ch0", "ch1")}))
    # An empty event: nothing to split, the same (empty) tables back.
    empty = Event(event.hits.take(np.zeros(0, np.int64)), event.cells.take(np.zeros(0, np.int64)))
    result = splitter.split(empty)
    assert len(result.hits) == 0 and len(result.split_rows) == 0
    with pytest.raises(InputError, match="missing.pt not found"):
        load_state(tmp_path / "missing.pt")
    # A model without its baseline.json, or a broken one.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.onnx").write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="baseline file .* not found"):
        ClusterSplitter(lone / "model.onnx", detector=detector).split(event)
    (lone / BASELINE_FILE).write_text('{"edges": [1.0], "median": [[1, 1]], "median_cells": [[1, 1], [1, 1]], '
                                      '"cut2": 1.5, "cut3": 2.6, "gate": 1.4}')
    with pytest.raises(InputError, match="median tables must have shape"):
        ChargeBaseline.load(lone / BASELINE_FILE)
    (lone / BASELINE_FILE).write_text("{}")
    with pytest.raises(InputError, match="not a baseline file"):
        ChargeBaseline.load(lone / BASELINE_FILE)


def test_command_line_and_listing():
    from trackcore.cli.main import build_parser

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="cluster_splitter")
    args = build_parser(pm).parse_args(["train", "cluster_splitter", "--quick", "--epochs", "2", "-o", "x"])
    config = plugin.config_from_args(args)
    assert config.epochs == 2 and config.events == QUICK.events
    info = {p.name: p for p in list_plugins(pm)}["cluster_splitter"]
    assert "trackcore_split_clusters" in info.hooks and info.models[0].name == "cluster_splitter"
    with pytest.raises(InputError, match="events"):
        replace(QUICK, events=0).check()
