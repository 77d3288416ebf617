"""Aligner plugin: exact track model and derivatives, the global fit and the ML aligner recover a
misalignment of a few modules, the hook and the command line, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomllib

pytest.importorskip("scipy")

from aligner_testdata import BZ, muon_events

from plugins.aligner import global_fit as G
from plugins.aligner import plugin
from plugins.aligner import residuals as R
from plugins.aligner.evaluate import parameter_errors, residual_widths
from trackcore.errors import InputError
from trackcore.geometry.alignment import (
    AlignmentParameters,
    apply_alignment,
    write_alignment,
)
from trackcore.geometry.builders import generic_detector

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup():
    """The generic detector, a misalignment of the modules the wedge lights up, training and held-out events."""
    det = generic_detector()
    probe = R.collect_tracks(det, muon_events(det, det, 1, 400, 99))
    hits = np.bincount(probe.module, minlength=len(det))
    lit = hits >= 6
    rng = np.random.default_rng(3)
    local = np.zeros((len(det), 6))
    local[lit] = rng.normal(size=(lit.sum(), 6)) * [0.1, 0.1, 0.05, 0.02, 0.02, 0.02]
    truth_det = apply_alignment(det, R.to_alignment(det, local))
    train = muon_events(det, truth_det, 4, 1000, 1000)
    held = muon_events(det, truth_det, 1, 600, 5000)
    return det, local, lit, truth_det, train, held


# -- track model -------------------------------------------------------------------------------
def test_derivatives_match_finite_differences(setup):
    det, _, _, _truth_det, train, _ = setup
    sample = R.collect_tracks(det, train[:1])
    frames = R.Frames.from_detector(det)
    fit = R.fit_tracks(sample, frames, BZ)
    pr = R.predict(fit.params, frames, sample.module, sample.track, BZ)
    ja = R.alignment_jacobian(pr.uv, pr.direction)
    for k in range(6):
        d = np.zeros((len(det), 6))
        d[:, k] = 1e-7
        moved = R.predict(fit.params, frames.corrected(d), sample.module, sample.track, BZ, derivatives=False)
        np.testing.assert_allclose((moved.uv - pr.uv) / 1e-7, ja[:, :, k], atol=2e-4 * max(1, np.abs(ja[:, :, k]).max()))
    for k in range(5):
        q = fit.params.copy()
        q[:, k] += 1e-7
        moved = R.predict(q, frames, sample.module, sample.track, BZ, derivatives=False)
        np.testing.assert_allclose((moved.uv - pr.uv) / 1e-7, pr.track_jacobian[:, :, k],
                                   atol=1e-3 * max(1, np.abs(pr.track_jacobian[:, :, k]).max()))


def test_helix_fit_is_exact_on_the_true_geometry(setup):
    det, _, _, truth_det, train, _ = setup
    sample = R.collect_tracks(det, train[:1])
    fit_true = R.fit_tracks(sample, R.Frames.from_detector(truth_det), BZ)
    fit_nominal = R.fit_tracks(sample, R.Frames.from_detector(det), BZ)
    # No material: the helix is the exact model, chi2/ndf ~ 1 (the cluster error table is approximate).
    assert 0.4 < np.median(fit_true.chi2 / fit_true.ndf) < 1.5
    assert np.median(fit_nominal.chi2 / fit_nominal.ndf) > 50


def test_local_parameters_round_trip_through_the_alignment_format(setup):
    det, local, *_ = setup
    params = R.to_alignment(det, local)
    assert isinstance(params, AlignmentParameters)
    np.testing.assert_allclose(R.from_alignment(det, params), local, atol=1e-12)
    moved = apply_alignment(det, params)
    frames = R.Frames.from_detector(det).corrected(local)
    np.testing.assert_allclose(moved.centre, frames.centre, atol=1e-9)
    np.testing.assert_allclose(moved.rotation, frames.rotation, atol=1e-12)
    np.testing.assert_allclose(frames.relative_to(R.Frames.from_detector(det)), local, atol=1e-12)


def test_torch_model_matches_numpy_and_its_gradient_the_analytic_jacobian(setup):
    torch = pytest.importorskip("torch")
    from plugins.aligner.ml_aligner import predict_torch

    det, *_, train, _ = setup
    sample = R.collect_tracks(det, train[:1]).select_tracks(np.arange(50))
    frames = R.Frames.from_detector(det)
    fit = R.fit_tracks(sample, frames, BZ)
    corr = torch.zeros((len(det), 6), dtype=torch.float64, requires_grad=True)
    uv = predict_torch(torch.tensor(fit.params), torch.tensor(frames.centre), torch.tensor(frames.rotation), corr,
                       torch.tensor(sample.module), torch.tensor(sample.track), BZ)
    pr = R.predict(fit.params, frames, sample.module, sample.track, BZ)
    np.testing.assert_allclose(uv.detach().numpy(), pr.uv, atol=1e-9)
    (g,) = torch.autograd.grad(uv[0, 0], corr)
    ja = R.alignment_jacobian(pr.uv, pr.direction)[0, 0]
    ja[3:] /= G.ROTATION_SCALE
    np.testing.assert_allclose(g[sample.module[0]].numpy(), ja, atol=1e-8)


# -- global fit ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def global_result(setup):
    det, _local, _lit, _truth_det, train, _held = setup
    outcome = plugin.align(det, train, {"method": "global", "iterations": 6, "spectrum": 8, "min_hits": 5})
    return outcome


def test_global_fit_recovers_the_misalignment(setup, global_result):
    det, local, _lit, _truth_det, _train, _held = setup
    mask = np.bincount(global_result.sample.module, minlength=len(det)) >= 30
    err = parameter_errors(det, global_result.corrections, local, G.DEFAULT_MODES, mask=mask)
    before = parameter_errors(det, np.zeros_like(local), local, G.DEFAULT_MODES, mask=mask)
    assert err["modules"] >= 8
    # ~100 hits per module here: a few microns of statistical error (the study has more tracks).
    for k in ("du", "dv"):
        assert err["all"][k] < min(12.0, 0.2 * before["all"][k]), (k, err["all"], before["all"])
    assert err["all"]["ww"] < min(0.5, 0.1 * before["all"]["ww"])
    # The fit obeys its constraints, and reports the spectrum of C.
    basis = G.mode_vectors(det, G.DEFAULT_MODES)
    scaled = global_result.corrections.copy()
    scaled[:, 3:] *= G.ROTATION_SCALE
    assert np.abs(basis.T @ scaled.reshape(-1)).max() < 1e-6
    spec = global_result.details["spectrum"]
    assert len(spec["smallest"]) == 8 and spec["largest"] > spec["smallest"][-1] > 0
    assert global_result.details["history"][-1]["max_step_mm"] < 0.005


def test_residual_widths_after_alignment_match_the_true_geometry(setup, global_result):
    det, _local, _lit, truth_det, _train, held = setup
    sample = R.collect_tracks(det, held)
    before = residual_widths(det, sample, R.Frames.from_detector(det), scattering=None)
    after = residual_widths(det, sample, global_result.frames, scattering=None)
    perfect = residual_widths(det, sample, R.Frames.from_detector(truth_det), scattering=None)
    for axis in "uv":
        key = f"sigma_{axis}"
        # v is measured to ~3 um in the barrel, so the few-micron statistical errors of this small
        # sample still show; the study (many more tracks) measures how close it gets.
        assert after["8"][key] < 1.5 * perfect["8"][key], (axis, after["8"][key], perfect["8"][key])
        assert before["8"][key] > 3 * perfect["8"][key]


def test_minres_agrees_with_the_direct_solver(setup, global_result):
    det, *_ = setup
    sample = global_result.sample
    fit, ja = G._derivatives(sample, R.Frames.from_detector(det), BZ, None, 4, 0.015)
    group, m, _ = G.alignables(det, "module")
    c, b, _ = G.normal_equations(sample, fit, ja, group, m, len(det), np.ones(sample.n_tracks, bool), 0.015)
    free = np.flatnonzero(np.repeat(np.bincount(sample.module, minlength=len(det)) >= 30, 6))
    a = G.mode_vectors(det, G.DEFAULT_MODES).T[:, free]
    k = len(G.DEFAULT_MODES)
    x_direct = G._solve(c[free][:, free], b[free], a, np.zeros(k), "spsolve")
    x_minres = G._solve(c[free][:, free], b[free], a, np.zeros(k), "minres")
    # Both minimise the same chi2 under the constraints; MINRES stops early along the weakest
    # directions, where the chi2 hardly changes, so compare the chi2 they reach.
    cf = c[free][:, free]

    def chi2(x):
        return 0.5 * x @ (cf @ x) - b[free] @ x

    assert np.abs(a @ x_minres).max() < 1e-6
    assert chi2(x_minres) - chi2(x_direct) < 1e-6 * abs(chi2(x_direct))
    np.testing.assert_allclose(x_minres[::6], x_direct[::6], atol=0.003)  # du, to 3 um


def test_fixed_reference_layer_stays_put(setup):
    det, _local, _lit, _truth_det, train, _held = setup
    sample = R.collect_tracks(det, train[:2])
    res = G.global_fit(det, sample, G.GlobalFitConfig(iterations=2, fixed_layers=((8, 2),), modes=(), spectrum=0,
                                                      min_hits=30))
    layer = (det.volume_id == 8) & (det.layer_id == 2)
    assert np.abs(res.corrections[layer]).max() < 1e-12
    assert np.abs(res.corrections[~layer]).max() > 0.01


# -- ML aligner ------------------------------------------------------------------------------
def test_ml_aligner_learns_the_misalignment(setup):
    pytest.importorskip("torch")
    det, local, _lit, _truth_det, train, _held = setup
    outcome = plugin.align(det, train, {"method": "ml", "optimizer": "adam", "epochs": 12, "batch_events": 1, "learning_rate": 1e-2,
                                            "device": "cpu", "min_hits": 5})
    mask = np.bincount(outcome.sample.module, minlength=len(det)) >= 30
    err = parameter_errors(det, outcome.corrections, local, G.DEFAULT_MODES, mask=mask)
    before = parameter_errors(det, np.zeros_like(local), local, G.DEFAULT_MODES, mask=mask)
    # Adam removes the large misalignments fast but crawls along the poorly conditioned directions
    # of the profiled chi2 (see README: it does not reach the global fit's precision).
    for k in ("du", "dv", "ww"):
        assert err["all"][k] < 0.75 * before["all"][k], (k, err["all"], before["all"])
    assert outcome.details["epoch_loss"][-1] < 0.1 * outcome.details["epoch_loss"][0]


def test_block_newton_step_converges_further_than_adam_and_keeps_the_gauge(setup):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    det, local, _lit, _truth_det, train, _held = setup
    outcome = plugin.align(det, train, {"method": "ml", "optimizer": "block-newton", "epochs": 12, "batch_events": 1,
                                        "learning_rate": 0.5, "device": "cpu", "min_hits": 5})
    mask = np.bincount(outcome.sample.module, minlength=len(det)) >= 30
    err = parameter_errors(det, outcome.corrections, local, G.DEFAULT_MODES, mask=mask)
    before = parameter_errors(det, np.zeros_like(local), local, G.DEFAULT_MODES, mask=mask)
    loss = outcome.details["epoch_loss"]
    # The per-module Gauss-Newton step takes the loss near its minimum (~0.5 per hit here; Adam with
    # the same epochs stops at ~15), and the well-measured rotations come out.
    assert loss[-1] < 3.0 and loss[-1] < 0.01 * loss[0], loss
    for k in ("wu", "ww"):
        assert err["all"][k] < 0.5 * before["all"][k], (k, err["all"], before["all"])
    # The weak-mode constraints hold at every step, so the final projection has nothing to remove.
    basis = G.mode_vectors(det, G.DEFAULT_MODES)
    scaled = outcome.corrections * np.r_[np.ones(3), np.full(3, G.ROTATION_SCALE)]
    assert np.abs(basis.T @ scaled.reshape(-1)).max() < 1e-3 * np.abs(scaled).max()


def test_ml_refinement_of_a_global_fit_start_reaches_the_global_fit(setup, global_result):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    det, local, _lit, _truth_det, train, _held = setup
    outcome = plugin.align(det, train, {"method": "ml", "optimizer": "block-newton", "init": "global",
                                        "init_iterations": 2, "epochs": 3, "batch_events": 1, "learning_rate": 0.5,
                                        "device": "cpu", "min_hits": 5})
    mask = np.bincount(outcome.sample.module, minlength=len(det)) >= 30
    err = parameter_errors(det, outcome.corrections, local, G.DEFAULT_MODES, mask=mask)
    before = parameter_errors(det, np.zeros_like(local), local, G.DEFAULT_MODES, mask=mask)
    ref = parameter_errors(det, global_result.corrections, local, G.DEFAULT_MODES, mask=mask)
    for k in ("du", "dv", "wu", "ww"):
        assert err["all"][k] < 0.2 * before["all"][k], (k, err["all"], before["all"])
        assert err["all"][k] < 1.3 * ref["all"][k], (k, err["all"], ref["all"])
    with pytest.raises(InputError, match="optimizer"):
        plugin.align(det, train, {"method": "ml", "optimizer": "sgd"})


# -- hook, command line, bad input ------------------------------------------------------------
def test_hook_through_the_plugin_manager(setup):
    from trackcore.plugins import get_plugin_manager

    det, _local, _lit, _truth_det, train, _held = setup
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="aligner")
    out = pm.hook.trackcore_align(detector=det, events=train[:2],
                                  config={"method": "global", "iterations": 2, "spectrum": 0})
    assert out.shape == (len(det), 6) and np.isfinite(out).all()
    assert np.abs(out[:, :3]).max() > 0.01
    assert pm.hook.trackcore_model_status() == [[]]


def test_entry_point_is_declared():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["trackcore"]["aligner"] == "plugins.aligner.plugin"


def _command_line_inputs(setup, tmp_path, monkeypatch) -> Path:
    """Two training events and the held-out ones written as TrackML files, the true alignment as
    tmp_path/true.csv, and the CLI's plugin manager holding this plugin only; returns the events folder."""
    from trackcore.event.io import write_event
    from trackcore.plugins import get_plugin_manager

    det, local, _lit, _truth_det, train, held = setup
    data = tmp_path / "events"
    for i, ev in enumerate(train[:2] + held):
        ev.event_id = i
        write_event(ev, data)
    write_alignment(R.to_alignment(det, local), tmp_path / "true.csv")

    def manager(load_entrypoints=None):
        pm = get_plugin_manager(load_entrypoints=False)
        pm.register(plugin, name="aligner")
        return pm

    monkeypatch.setattr("trackcore.plugins.get_plugin_manager", manager)
    return data


def test_command_line_writes_alignment_report_and_plots(setup, tmp_path, monkeypatch):
    from trackcore.cli.main import main
    from trackcore.geometry.io import read_detector

    det = setup[0]
    data = _command_line_inputs(setup, tmp_path, monkeypatch)
    out = tmp_path / "out"
    code = main(["align", str(data), "--detector", "generic", "--method", "global", "--output", str(out),
                 "--held-out", "1", "--iterations", "3", "--refit-from-seed", "--true-alignment",
                 str(tmp_path / "true.csv"), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["refit_from_seed"] is True
    assert report["held_out_tracks"] > 100 and report["tracks"] > 500
    assert set(report["residual_widths_um"]) == {"before", "after", "perfect"}
    for name in ("aligned-detectors.csv", "alignment-delta.csv", "alignment-local.csv", "residuals.png",
                 "recovered_vs_true.png", "spectrum.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(read_detector(out / "aligned-detectors.csv")) == len(det)
    assert main(["align", str(data), "--detector", "generic", "--output", str(out), "--fix-layer", "8-2"]) == 2


def test_bad_input_is_reported(setup):
    det, _local, _lit, _truth_det, train, _held = setup
    with pytest.raises(InputError, match="method"):
        plugin.align(det, train[:1], {"method": "magic"})
    with pytest.raises(InputError, match="unknown setting"):
        plugin.align(det, train[:1], {"method": "global", "itterations": 3})
    with pytest.raises(InputError, match="no events"):
        plugin.align(det, [], {})
    with pytest.raises(InputError, match="weak mode"):
        plugin.align(det, train[:1], {"modes": ("tx", "wobble")})
    no_truth = train[0].copy() if hasattr(train[0], "copy") else None
    if no_truth is not None:
        no_truth.truth = None
        with pytest.raises(InputError, match="truth"):
            R.collect_tracks(det, [no_truth])
    with pytest.raises(InputError, match="min_hits"):
        R.collect_tracks(det, train[:1], min_hits=2)
    with pytest.raises(InputError, match="no track"):
        R.collect_tracks(det, train[:1], min_hits=40)


def test_cli_align_hessian_free(setup, tmp_path, monkeypatch):
    """`trackcore align --method ml --optimizer hessian-free`: the alignment and its CG history in report.json."""
    from trackcore.cli.main import main

    data = _command_line_inputs(setup, tmp_path, monkeypatch)
    out = tmp_path / "out"
    code = main(["align", str(data), "--detector", "generic", "--method", "ml", "--optimizer", "hessian-free",
                 "--epochs", "2", "--device", "cpu", "--output", str(out), "--held-out", "1", "--cg-tolerance", "1e-3",
                 "--cg-iterations", "400", "--cg-chi2", "10", "--preconditioner", "two-level", "--coarse-level",
                 "aggregate", "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert {k: report["config"][k] for k in ("cg_tolerance", "cg_iterations", "cg_chi2", "coarse_level")} == {
        "cg_tolerance": 1e-3, "cg_iterations": 400, "cg_chi2": 10.0, "coarse_level": "aggregate"}
    history = report["details"]["history"]
    assert 1 <= len(history) <= 2 and all(h["cg_iterations"] >= 1 for h in history), history
    widths = report["residual_widths_um"]
    assert widths["after"]["8"]["sigma_u"] < 0.5 * widths["before"]["8"]["sigma_u"], widths


def test_plugin_module_loads_without_scipy_or_torch():
    """Entry points load at every `trackcore` start, also in installs without scipy (the demo's extras):
    the plugin module itself must not import scipy or torch (a regression of this session's CLI options)."""
    import subprocess
    import sys

    code = ("import sys, plugins.aligner.plugin; "
            "print(','.join(m for m in ('scipy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout


def test_tracks_from_the_reconstruction(setup):
    """tracks='reco': alignment tracks from the reconstruction (no truth), run on the hits placed on
    the nominal modules with an alignment-error floor; on the misaligned events most are pure.
    The default pipeline is tuned for the TrackML-like detector, so on this generic one it finds only
    part of the muons even without misalignment: the test compares with that, not with truth."""
    det, _local, _lit, _truth_det, train, _held = setup
    event = train[0]
    module = det.index(event.hits["volume_id"], event.hits["layer_id"], event.hits["module_id"])
    meas = R.measured_local(event, det, module)
    nominal = det.local_to_global(module, np.c_[meas, np.zeros(len(meas))])
    rows, label = R._track_rows(event, "reco", det, nominal)
    pid = event.truth_aligned()["particle_id"][rows]
    tracks = np.unique(label)
    pure = [np.unique(pid[label == t], return_counts=True)[1].max() >= 0.8 * np.count_nonzero(label == t)
            for t in tracks]
    # Measured: 251-311 tracks, 59-71 % of them >= 80 % pure (aligned geometry: 80 %). Reco-track
    # alignment is not validated beyond this; the alignment targets use truth tracks.
    assert len(tracks) >= 100 and np.mean(pure) > 0.5, (len(tracks), np.mean(pure))
    sample = R.collect_tracks(det, [event], tracks="reco")
    assert sample.n_tracks >= 0.5 * len(tracks)
