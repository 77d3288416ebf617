"""Jet tagger plugin: FastJet = brute-force anti-kt, signed impact parameters, b-tagging and q/g networks
that learn, the toy shower's colour factors, the hook and ``trackcore tag``/``train``, bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fastjet")

from plugins.jet_tagger import btag, plugin, qg, shower  # noqa: E402
from plugins.jet_tagger.evaluate import rejection_at, rejection_value, roc  # noqa: E402
from plugins.jet_tagger.jets import antikt, four_momenta, track_jets  # noqa: E402
from plugins.jet_tagger.models import DeepSets, JetCNN, load, predict, save  # noqa: E402
from plugins.jet_tagger.train import TrainConfig, btag_sample, train_btag, train_qg  # noqa: E402
from trackcore.errors import InputError  # noqa: E402
from trackcore.event import Table  # noqa: E402
from trackcore.plugins import get_plugin_manager, list_plugins  # noqa: E402

torch.set_num_threads(1)
CONFIG = TrainConfig(seed=3, btag_events=100, btag_test_events=60, btag_epochs=15, qg_jets=400, qg_test_jets=300,
                     qg_epochs=5, batch_size=64, learning_rate=2e-3)


# -- anti-kt ------------------------------------------------------------------------------------
def brute_force_antikt(p4: np.ndarray, r: float) -> list[frozenset]:
    """Textbook anti-kt, O(n^3): E-scheme, distance in rapidity and azimuth; constituent sets of all jets."""
    objs = [(p.copy(), frozenset([i])) for i, p in enumerate(p4)]
    jets = []
    while objs:
        def kin(p):
            return (math.hypot(p[0], p[1]), 0.5 * math.log((p[3] + p[2]) / (p[3] - p[2])), math.atan2(p[1], p[0]))
        k = [kin(p) for p, _ in objs]
        best, pair = min((1 / k[i][0] ** 2, (i, None)) for i in range(len(objs)))
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                dphi = (k[i][2] - k[j][2] + math.pi) % (2 * math.pi) - math.pi
                d = min(k[i][0] ** -2, k[j][0] ** -2) * ((k[i][1] - k[j][1]) ** 2 + dphi ** 2) / r**2
                if d < best:
                    best, pair = d, (i, j)
        i, j = pair
        if j is None:
            jets.append(objs.pop(i)[1])
        else:
            merged = (objs[i][0] + objs[j][0], objs[i][1] | objs[j][1])
            objs = [o for n, o in enumerate(objs) if n not in (i, j)] + [merged]
    return jets


@pytest.mark.parametrize("seed", range(5))
def test_fastjet_matches_brute_force_antikt(seed):
    rng = np.random.default_rng(seed)
    n = 25
    pt = rng.exponential(10.0, n) + 0.5
    eta = np.r_[rng.normal(0.3, 0.3, n // 2), rng.uniform(-2, 2, n - n // 2)]  # a core and a spread
    phi = rng.uniform(-np.pi, np.pi, n)
    p4 = four_momenta(pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), rng.uniform(0, 0.5, n))
    jets, index = antikt(p4, r=0.4)
    expected = brute_force_antikt(p4, 0.4)
    got = [frozenset(np.flatnonzero(index == k).tolist()) for k in range(len(jets))]
    assert set(got) == set(expected) and len(got) == len(expected)
    for k, members in enumerate(got):  # E-scheme sums, hardest first
        s = p4[list(members)].sum(0)
        assert jets["pt"][k] == pytest.approx(math.hypot(s[0], s[1]), rel=1e-12)
    assert np.all(np.diff(jets["pt"]) <= 0)


# -- signed impact parameters -----------------------------------------------------------------------
def test_impact_parameter_sign_follows_the_jet_side():
    rng = np.random.default_rng(1)
    n = 200
    d0, phi, jet_phi = rng.normal(0, 0.1, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(-np.pi, np.pi, n)
    theta, z0, jet_eta = rng.uniform(0.5, 2.6, n), rng.normal(0, 1, n), rng.uniform(-2, 2, n)
    tracks = Table({"d0": d0, "z0": z0, "phi": phi, "theta": theta, "qop": np.full(n, 0.1),
                    "sigma_d0": np.full(n, 0.02), "sigma_z0": np.full(n, 0.05)}, name="tracks")
    ip = btag.signed_impact_parameters(tracks, jet_eta, jet_phi, pv_z=0.0)
    pca = d0[:, None] * np.column_stack([-np.sin(phi), np.cos(phi)])  # the perigee point
    side = np.sign((pca * np.column_stack([np.cos(jet_phi), np.sin(jet_phi)])).sum(1))
    np.testing.assert_array_equal(np.sign(ip["d0"]), side)
    np.testing.assert_allclose(np.abs(ip["sd0"]), np.abs(d0) / 0.02)
    eta = -np.log(np.tan(theta / 2))
    np.testing.assert_array_equal(np.sign(ip["z0"]), np.sign((jet_eta - eta) * z0))


# -- b-tagging -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def btag_data(tmp_path_factory):
    config = TrainConfig(**{**CONFIG.__dict__, "cache_dir": str(tmp_path_factory.mktemp("cache"))})
    return config, btag_sample(config, False, progress=False), btag_sample(config, True, progress=False)


def test_btag_sample_has_displaced_tracks_in_b_jets(btag_data):
    _, train, _ = btag_data
    b = train["is_b"]
    assert 0.25 < b.mean() < 0.75 and len(b) > 200
    sd0 = train["x"][..., 0]  # squashed signed d0 significance
    big = ((sd0 > np.log1p(3.0)) & train["mask"]).sum(1)
    assert big[b].mean() > 2 * big[~b].mean()  # lifetime: b jets have many more tracks with sd0 > 3


def test_deep_sets_learns_and_ip3d_separates_on_held_out_jets(btag_data, tmp_path):
    config, train, test = btag_data
    model, history = train_btag(train, config, progress=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    ip3d = btag.IP3D().fit(train["x"], train["mask"], train["is_b"])
    auc_nn = roc(predict(model, test["x"], test["mask"]), test["is_b"])[2]
    auc_ip = roc(ip3d.score(test["x"], test["mask"]), test["is_b"])[2]
    assert auc_nn > 0.85 and auc_ip > 0.85
    # Padding and track order do not change the Deep Sets output.
    perm = np.random.default_rng(0).permutation(btag.MAX_TRACKS)
    np.testing.assert_allclose(predict(model, test["x"][:, perm], test["mask"][:, perm]),
                               predict(model, test["x"], test["mask"]), atol=1e-5)
    save(model, tmp_path / "m.pt", {"n_features": btag.N_TRACK_FEATURES})
    np.testing.assert_allclose(predict(load(DeepSets, tmp_path / "m.pt"), test["x"], test["mask"]),
                               predict(model, test["x"], test["mask"]))


def test_rejection_at_fixed_efficiency():
    score = np.r_[np.arange(10.0), np.arange(10.0) - 5]
    sig = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    r = rejection_at(score, sig, 0.7)  # cut keeps 7 of 10 signal (scores 3..9): background 4 only passes
    assert r["signal_efficiency"] == pytest.approx(0.6) or r["signal_efficiency"] == pytest.approx(0.7)
    assert r["n_background_pass"] == int((score[~sig] > r["cut"]).sum()) and r["rejection"] == 10 / r["n_background_pass"]
    none = rejection_at(np.r_[np.ones(10), np.zeros(6)], np.r_[np.ones(10, bool), np.zeros(6, bool)])
    assert none["rejection"] is None and none["rejection_lower_95cl"] == pytest.approx(2.0)


# -- quark / gluon --------------------------------------------------------------------------------
def test_toy_shower_gluons_radiate_more_with_colour_factors():
    rng = np.random.default_rng(2)
    n_q = np.mean([len(shower.shower(rng, 200.0, False)) - 1 for _ in range(1500)])
    n_g = np.mean([len(shower.shower(rng, 200.0, True)) - 1 for _ in range(1500)])
    # Leading log: emissions scale with the colour charge; C_A / C_F = 2.25 (less with g -> qq~ and cascades).
    assert 1.5 < n_g / n_q < 3.0
    parts = shower.shower(rng, 200.0, True)
    had = shower.hadronise(rng, parts)
    assert had[:, 0].sum() <= parts[:, 0].sum() + 1e-9 and set(np.unique(had[:, 3])) <= {-1.0, 0.0, 1.0}


@pytest.fixture(scope="module")
def qg_data():
    return (qg.simulate_qg_sample(CONFIG.qg_jets, 11, progress=False),
            qg.simulate_qg_sample(CONFIG.qg_test_jets, 12, progress=False))


def test_cnn_and_baseline_separate_quarks_from_gluons(qg_data):
    train, test = qg_data
    assert train["images"].shape == (2 * CONFIG.qg_jets, 3, qg.PIXELS, qg.PIXELS)
    q = train["is_quark"]
    assert train["multiplicity"][~q].mean() > train["multiplicity"][q].mean()
    # The charged-multiplicity channel counts the charged constituents inside the image window.
    assert np.all(train["images"][:, 2].sum((1, 2)) <= train["multiplicity"])
    model, history = train_qg(train, CONFIG, progress=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    baseline = qg.MultiplicityWidth().fit(train["multiplicity"], train["width"], q)
    assert roc(baseline.score(test["multiplicity"], test["width"]), test["is_quark"])[2] > 0.6
    assert roc(predict(model, test["images"]), test["is_quark"])[2] > 0.6


# -- hook, commands, shipped models -------------------------------------------------------------------
@pytest.fixture(scope="module")
def reco_dir(tmp_path_factory):
    """Reconstruction outputs of one simulated event with two b and two light jets."""
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.output import write_outputs
    from trackcore.reco.pipeline import reconstruct
    from trackcore.sim.particles import jets
    from trackcore.sim.simulate import simulate_event

    detector = trackml_like_detector()
    parts, _ = jets(np.random.default_rng(7), n_jets=4, jet_pt=(80, 200), flavour=["b", "light", "b", "light"])
    event = simulate_event(detector, parts, seed=7, event_id=7)
    reco = reconstruct(event, detector)
    out = tmp_path_factory.mktemp("reco")
    write_outputs(out, event.name, reco.tracks, *reco.submission(), ("csv",))
    return out


def _pm():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="jet_tagger")
    return pm


def test_shipped_models_and_model_status():
    assert plugin.BTAG_MODEL.is_file() and plugin.IP3D_TEMPLATES.is_file() and plugin.QG_MODEL.is_file()
    (info,) = [i for i in list_plugins(_pm()) if i.name == "jet_tagger"]
    assert {"trackcore_tag_jets", "trackcore_add_commands", "trackcore_model_status"} <= set(info.hooks)
    assert all(m.present for m in info.models)
    report = json.loads((plugin.MODEL_DIR / "report.json").read_text())
    assert report["btag"]["network_beats_baseline"] and report["qg"]["network_beats_baseline"]
    assert load(JetCNN, plugin.QG_MODEL).pixels == qg.PIXELS


def test_tag_command_scores_track_jets(reco_dir, tmp_path, capsys):
    from trackcore.cli.main import build_parser

    pm = _pm()
    args = build_parser(pm).parse_args(["tag", str(reco_dir), "-o", str(tmp_path)])
    args.plugin_manager = pm
    assert args.func(args) == 0
    from trackcore.output import read_table

    (path,) = tmp_path.glob("*-jets.csv")
    jets = read_table(path)
    assert len(jets) >= 3 and {"score_b", "score_ip3d"} <= set(jets.columns)
    assert np.all((jets["score_b"] >= 0) & (jets["score_b"] <= 1))
    assert "b-tagged" in capsys.readouterr().out


def test_train_command_quick(btag_data, tmp_path):
    from trackcore.cli.main import build_parser

    config, _, _ = btag_data
    pm = _pm()
    args = build_parser(pm).parse_args(["train", "jet_tagger", "--quick", "--quiet", "--seed", "3", "--btag-events", "100",
                                        "--qg-jets", "150", "--cache-dir", config.cache_dir, "-o", str(tmp_path)])
    args.plugin_manager = pm
    assert args.func(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"roc_btag.png", "roc_qg.png", "loss.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert rejection_value(report["btag"]["ip3d_baseline"]) > 1 and 0.5 < report["qg"]["auc_baseline"] < 1


# -- bad input --------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors(tmp_path, reco_dir):
    from trackcore.output import read_outputs

    name = next(reco_dir.glob("*-tracks.csv")).name.split("-tracks")[0]
    tracks, _ = read_outputs(reco_dir, name)
    jets, index = track_jets(tracks)
    tracks["jet_id"] = index
    with pytest.raises(InputError, match="not found"):
        plugin.JetTagger(tmp_path / "missing.pt").scores(jets, tracks)
    no_errors = Table({c: tracks[c] for c in ("track_id", "d0", "z0", "phi", "theta", "qop", "jet_id")}, name="tracks")
    with pytest.raises(InputError, match="sigma_d0"):
        plugin.JetTagger().scores(jets, no_errors)
    with pytest.raises(InputError, match=r"\(B, T, 8\)"):
        DeepSets(btag.N_TRACK_FEATURES)(torch.zeros(2, 5, 3), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(InputError, match=r"shape \(N, 4\)"):
        antikt(np.zeros((3, 3)))
    empty = tracks.take(np.zeros(len(tracks), bool))
    jets0, idx0 = track_jets(empty)
    assert len(jets0) == 0 and len(idx0) == 0
    empty["jet_id"] = idx0
    assert {k: len(v) for k, v in plugin.JetTagger().scores(jets0, empty).items()} == {"b": 0, "ip3d": 0}
    bad = tracks.copy()
    bad["jet_id"] = np.where(index >= 0, index + 100, -1)
    with pytest.raises(InputError, match="not in the jets table"):
        plugin.JetTagger().scores(jets, bad)
