"""GAN fast-simulation plugin: conditions/observables, the renderer, a tiny GAN that learns, numpy = torch
inference, the hook and the ``simulate --fastsim`` command, the shipped generator and bad input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from plugins.fastsim_gan import evaluate, plugin  # noqa: E402
from plugins.fastsim_gan.clusters import N_CONDITIONS, N_OBSERVABLES, baseline_observables, render  # noqa: E402
from plugins.fastsim_gan.clusters import conditions, geometry, segments  # noqa: E402
from plugins.fastsim_gan.fastsim import fast_digitize, fast_simulate_event, module_tables  # noqa: E402
from plugins.fastsim_gan.kernels import conditions_numpy, fused_kernel, render_numpy  # noqa: E402
from plugins.fastsim_gan.model import LEAK, NOISE_DIM, NumpyGenerator, class_of, export_numpy  # noqa: E402
from plugins.fastsim_gan.model import hash_uniforms, sample_classes  # noqa: E402
from plugins.fastsim_gan.train import QUICK, simulate_full, train_gan  # noqa: E402
from trackcore.backends import available_backends, get_backend  # noqa: E402
from trackcore.cli.main import build_parser  # noqa: E402
from trackcore.errors import InputError, PluginError  # noqa: E402
from trackcore.event import Event  # noqa: E402
from trackcore.geometry.builders import trackml_like_detector  # noqa: E402
from trackcore.plugins import get_plugin_manager, list_plugins  # noqa: E402
from trackcore.sim.digitization import cluster_cells_numpy  # noqa: E402
from trackcore.sim.simulate import SimulationConfig  # noqa: E402

CONFIG = replace(QUICK, steps=400, seed=3)


@pytest.fixture(scope="module")
def events():
    """One training and one held-out fully digitised event, <mu> = 10."""
    return simulate_full(1, 3, 10.0, progress=False)[0], simulate_full(1, 9003, 10.0, progress=False)[0]


@pytest.fixture(scope="module")
def trained(events, tmp_path_factory):
    torch.set_num_threads(1)
    train, _ = events
    classifier, gen, _, classes, norm, history = train_gan(train["x"], train["y"], CONFIG, progress=False)
    out = tmp_path_factory.mktemp("fastsim")
    export_numpy(classifier, gen, classes, norm, out / "generator.npz")
    return (classifier, gen, classes), norm, history, out / "generator.npz"


@pytest.fixture(scope="module")
def tables():
    return module_tables(trackml_like_detector(), SimulationConfig())


# -- renderer -----------------------------------------------------------------------------------
def test_baseline_render_gives_one_connected_cluster_per_crossing_on_the_path(events, tables):
    ev = events[1]
    dc = ev["crossings"]
    r = render(tables, dc, baseline_observables(len(dc["module_index"])))
    assert 0.98 * len(dc["module_index"]) <= len(r["cluster"]) <= len(dc["module_index"])
    # Each cluster is 8-connected (the core's clustering finds exactly one cluster in its cells).
    key = np.repeat(np.arange(len(r["size"])), r["size"])
    order = np.lexsort((r["ch1"], r["ch0"], key))
    labels = cluster_cells_numpy(key[order], r["ch0"][order].astype(np.int64), r["ch1"][order].astype(np.int64))
    assert labels.max() + 1 == len(r["cluster"])
    # Centroids lie within a cell of the true crossing; pixel charge is the deposited charge.
    m = dc["module_index"][r["cluster"]]
    res = r["local"] - ev["transport"]["local"][r["cluster"], :2]
    assert (np.abs(res[:, 0]) <= tables.pitch_u[m] * 0.75).mean() > 0.99
    pix = ~tables.binary[m]
    value_sum = np.add.reduceat(r["value"], np.r_[0, np.cumsum(r["size"])[:-1]])
    expected = dc["edep"][r["cluster"]] * tables.config.electrons_per_gev * tables.config.value_per_electron
    # ... except where cells fell off the module's edge (lost, as in the full digitisation).
    same = np.isclose(value_sum[pix], expected[pix], rtol=1e-9)
    assert same.mean() > 0.99 and (value_sum[pix] <= expected[pix] * (1 + 1e-9)).all()
    assert (r["value"][np.repeat(~pix, r["size"])] == 1.0).all()


def test_render_honours_generated_widths_sizes_and_residuals(events, tables):
    dc = events[1]["crossings"]
    n = len(dc["module_index"])
    obs = np.zeros((n, N_OBSERVABLES))
    obs[:, 0] = 2  # two cells wider in u
    obs[:, 2] = 1  # one corner dropped where there is one
    r = render(tables, dc, obs)
    base = render(tables, dc, baseline_observables(n))
    assert r["size"].sum() > base["size"].sum() + 1.5 * len(base["size"])
    with pytest.raises(InputError, match="observables must have shape"):
        render(tables, dc, obs[:, :3])


# -- compiled kernels = numpy reference ------------------------------------------------------------
needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


def _wild_observables(n: int, dtype) -> np.ndarray:
    """Observables that reach every branch: wider/narrower clusters, corner drops, charge scales,
    residuals large enough to push cells off the module edge, half-integers (rounding ties)."""
    rng = np.random.default_rng(5)
    obs = np.zeros((n, N_OBSERVABLES))
    obs[:, 0] = rng.integers(-2, 4, n) + rng.choice([0.0, 0.5, 0.3], n)
    obs[:, 1] = rng.integers(-2, 6, n) - rng.choice([0.0, 0.5], n)
    obs[:, 2] = rng.integers(-1, 4, n)
    obs[:, 3] = rng.normal(0, 0.3, n)
    obs[:, 4:] = rng.normal(0, 1.0, (n, 2)) * rng.choice([1.0, 400.0], (n, 2), p=[0.97, 0.03])
    return obs.astype(dtype)


@needs_cpu
def test_compiled_conditions_equal_numpy_reference(events, tables):
    dc, mom = events[1]["crossings"], events[1]["transport"]["momentum"]
    a = conditions(tables, dc, mom, backend="cpu")
    b = conditions_numpy(dc["module_index"], segments(dc), dc["edep"], mom, tables.packed,
                         tables.config.electrons_per_gev)
    assert a.dtype == b.dtype == np.float32 and a.shape == (len(dc["module_index"]), N_CONDITIONS)
    np.testing.assert_array_equal(a, b)


@needs_cpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_render_gives_identical_cells(events, tables, dtype):
    dc = events[1]["crossings"]
    n = len(dc["module_index"])
    obs = _wild_observables(n, dtype)
    a = render(tables, dc, obs, backend="cpu")
    b = render(tables, dc, obs, backend="numpy")
    # The wild observables do reach the masked branches (corners dropped, cells off the module).
    geo = geometry(tables, dc)
    staircase = (np.maximum(geo["width_u"] + np.rint(obs[:, 0].astype(np.float64)), 1)
                 + np.maximum(geo["width_v"] + np.rint(obs[:, 1].astype(np.float64)), 1) - 1)
    assert (a["size"] < staircase[a["cluster"]]).sum() > 0.05 * n and len(a["cluster"]) < n
    assert np.diff(a["cluster"]).min() > 0  # crossing order
    for key in ("cluster", "size", "ch0", "ch1", "value", "charge"):
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # Centroids are sums over the cells: only the order of the additions differs.
    np.testing.assert_allclose(a["local"], b["local"], rtol=0, atol=1e-12)


@needs_cpu
def test_compiled_kernels_reject_bad_input(events, tables):
    from trackcore.backends import get_backend

    dc = events[1]["crossings"]
    m, seg = np.asarray(dc["module_index"], np.int64), segments(dc)
    q = np.asarray(dc["edep"]) * 1e8
    obs = np.zeros((len(m), N_OBSERVABLES), np.float32)
    k = get_backend("cpu").kernel("fastsim_render")
    bad = m.copy()
    bad[3] = len(tables.packed)
    with pytest.raises(ValueError, match=r"module_index\[3\]"):
        k(bad, seg, q, obs, tables.packed, 1.0)
    obs[7, 4] = np.nan
    with pytest.raises(ValueError, match=r"obs\[7, 4\]"):
        k(m, seg, q, obs, tables.packed, 1.0)
    # Finite but absurd: a centroid residual of 1e30 cells (this once sent the renderer's rounding
    # into an endless loop) and a log charge of 60 (e^60 times the deposit).
    for column, value in ((4, 1e30), (5, -3e6), (3, 60.0)):
        far = np.zeros_like(obs)
        far[9, column] = value
        with pytest.raises(ValueError, match=rf"obs\[9, {column}\] = .* out of range"):
            k(m, seg, q, far, tables.packed, 1.0)
    with pytest.raises(ValueError, match="obs"):
        k(m, seg, q, obs[:, :5], tables.packed, 1.0)
    with pytest.raises(ValueError, match="modules"):
        k(m, seg, q, np.zeros((len(m), N_OBSERVABLES)), tables.packed[:, :4], 1.0)
    # Module rows that are not modules: huge half width, fractional cell count, binary flag 2.5,
    # class 4, threshold 1e30.
    for column, value in ((0, 1e30), (4, 10.5), (6, 2.5), (7, 4.0), (8, 1e30)):
        odd = tables.packed.copy()
        odd[5, column] = value
        with pytest.raises(ValueError, match=rf"modules\[5, {column}\] = .* is invalid"):
            k(m, seg, q, np.zeros((len(m), N_OBSERVABLES)), odd, 1.0)
    with pytest.raises(ValueError, match=r"electrons\[0\]"):
        k(m, seg, -q, np.zeros((len(m), N_OBSERVABLES)), tables.packed, 1.0)
    with pytest.raises(ValueError, match="momentum"):
        get_backend("cpu").kernel("fastsim_conditions")(m, seg, q, np.zeros((2, 3)), tables.packed, 3e8)
    # The numpy reference: empty input, wrong shape.
    assert len(render_numpy(m[:0], seg[:0], q[:0], obs[:0], tables.packed, 1.0)[0]) == 0
    with pytest.raises(InputError, match="observables must have shape"):
        render_numpy(m, seg, q, obs[:, :3], tables.packed, 1.0)


# -- learning -------------------------------------------------------------------------------------
def test_tiny_gan_learns_and_numpy_matches_torch(events, trained):
    (classifier, gen, classes), norm, history, path = trained
    assert history["loss_critic"] and np.isfinite(history["loss_generator"]).all()
    held = events[1]
    g = NumpyGenerator(path)
    z, u = hash_uniforms(len(held["x"]), 11)
    with torch.no_grad():
        xt = torch.as_tensor((held["x"] - norm.x_mean) / norm.x_std)
        logits = classifier(xt).numpy()
        k = sample_classes(logits, u)
        cont = gen(torch.cat([xt, torch.eye(len(classes))[k], torch.as_tensor(z)], 1)).numpy() * norm.y_std + norm.y_mean
    y = g.forward(held["x"], z, u)
    same = (y[:, :3] == classes[k]).all(axis=1)  # float32 folding may flip a sample at a CDF edge, rarely
    assert same.mean() > 0.999
    np.testing.assert_allclose(y[same, 3:], cont[same], atol=1e-4)
    # The classifier learned: held-out cross-entropy of the integer class is below that of the class
    # frequencies alone (a classifier that learned nothing does no better than them).
    label = class_of(held["y"], classes)
    top = logits.max(1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    freq = np.bincount(class_of(events[0]["y"], classes), minlength=len(classes)) / len(events[0]["y"])
    assert -logp[np.arange(len(label)), label].mean() < 0.9 * -np.log(np.maximum(freq[label], 1e-9)).mean()
    # The GAN learned the charge scale: generated pixel log-charge is near the full digitisation's
    # (a generator that has learned nothing is off by the spread of its random initial weights).
    y = g.generate(held["x"], np.random.default_rng(1))
    pix = held["x"][:, 0] + held["x"][:, 1] > 0
    assert abs(np.median(y[pix, 3]) - np.median(held["y"][pix, 3])) < 0.1
    assert abs(y[:, 4].std() - held["y"][:, 4].std()) < 0.2


@needs_cpu
def test_fused_kernel_equals_numpy_reference(events, tables, trained):
    """conditions -> generator -> cells in one compiled pass = the numpy reference within float32 tolerance."""
    ev = events[1]
    dc, mom = ev["crossings"], ev["transport"]["momentum"]
    g = NumpyGenerator(trained[3])
    m, seg, edep = np.asarray(dc["module_index"], np.int64), segments(dc), np.asarray(dc["edep"])
    cfg = tables.config
    args = (m, seg, edep, mom, tables.packed, cfg.electrons_per_gev, cfg.value_per_electron)
    kern = fused_kernel("cpu")
    out = kern(*args, *g.compiled_arguments(), 12345, LEAK)
    obs = out[7]
    ref = g.generate_seeded(conditions_numpy(m, seg, edep, mom, tables.packed, cfg.electrons_per_gev), 12345)
    # Same counter-based noise; matrix products and exp differ in the last float bits only.
    same = (obs[:, :3] == ref[:, :3]).all(axis=1)
    assert same.mean() > 0.999
    np.testing.assert_allclose(obs[same, 3:], ref[same, 3:], rtol=0, atol=2e-5)
    # Its cells are what the renderer makes of its observables: the same cells, values equal but for
    # the last bits of exp(log_charge) (the C library's against numpy's).
    electrons = edep * cfg.electrons_per_gev * np.exp(obs[:, 3].astype(np.float64))
    want = render_numpy(m, seg, electrons, obs, tables.packed, cfg.value_per_electron)
    for a, b, key in zip(out[:4], want[:4], ("cluster", "size", "ch0", "ch1")):
        np.testing.assert_array_equal(a, b, err_msg=key)
    for a, b, key in zip(out[4:6], want[4:6], ("value", "charge")):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0, err_msg=key)
    np.testing.assert_allclose(out[6], want[6], rtol=0, atol=1e-12)
    # With the module frames, the same pass places each cluster (to_global of its centroid, as the
    # local_to_global kernel does) and numbers each cell's hit.
    det = tables.detector
    framed = kern(*args, *g.compiled_arguments(), 12345, LEAK, centres=det.centre, rotations=det.rotation,
                  first_hit_id=11)
    for a, b in zip(framed[:8], out[:8]):
        np.testing.assert_array_equal(a, b)
    assert out[8] is None and out[9] is None
    lean = kern(*args, *g.compiled_arguments(), 12345, LEAK, centres=det.centre, rotations=det.rotation,
                first_hit_id=11, observables=False)
    assert lean[7] is None
    for a, b in zip(lean[:7] + lean[8:], framed[:7] + framed[8:]):
        np.testing.assert_array_equal(a, b)
    local = np.zeros((len(out[0]), 3))
    local[:, :2] = out[6]
    xyz = get_backend("cpu").kernel("local_to_global")(det.centre, det.rotation, m[out[0]], local)
    np.testing.assert_array_equal(framed[8], xyz)
    np.testing.assert_array_equal(framed[9], np.repeat(np.arange(11, 11 + len(out[0])), out[1]))
    with pytest.raises(ValueError, match="centres and rotations"):
        kern(*args, *g.compiled_arguments(), 1, LEAK, centres=det.centre)
    with pytest.raises(ValueError, match="rotations"):
        kern(*args, *g.compiled_arguments(), 1, LEAK, centres=det.centre, rotations=det.rotation[:5])
    # fast_digitize takes the fused path on cpu and the numpy one elsewhere: same hits within float tolerance.
    a = fast_digitize(tables, dc, mom, g, np.random.default_rng(4), backend="cpu")
    b = fast_digitize(tables, dc, mom, g, np.random.default_rng(4), backend="numpy")
    assert abs(len(a.hits) - len(b.hits)) <= 0.001 * len(b.hits)
    if len(a.hits) == len(b.hits):
        assert (np.abs(a.hit_local - b.hit_local) < 1e-5).mean() > 0.999
    # Bad model arrays: clear errors naming the part.
    cw, cb, embed, gw, gb, classes = g.compiled_arguments()
    short = list(cw)
    short[1] = cw[1][:-1]
    with pytest.raises(ValueError, match="classifier layer 1 weights"):
        kern(*args, short, cb, embed, gw, gb, classes, 1, LEAK)
    bad = [w.copy() for w in gw]
    bad[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="generator layer 0: weights not finite"):
        kern(*args, cw, cb, embed, bad, gb, classes, 1, LEAK)
    with pytest.raises(ValueError, match="classes"):
        kern(*args, cw, cb, embed, gw, gb, classes + 0.5, 1, LEAK)
    # A generator gone wrong (finite but huge weights) overflows to inf: the row is named, nothing rendered.
    huge = [w.copy() for w in gw]
    huge[-1] *= np.float32(1e38)
    with pytest.raises(ValueError, match=r"obs\[\d+, [345]\] = .* is not finite"):
        kern(*args, cw, cb, embed, huge, gb, classes, 1, LEAK)
    with pytest.raises(ValueError, match="momentum"):
        kern(m, seg, edep, mom[:3], *args[4:], cw, cb, embed, gw, gb, classes, 1, LEAK)


def test_counter_based_noise():
    z, u = hash_uniforms(200_000, 7)
    assert z.shape == (200_000, NOISE_DIM) and z.dtype == np.float32
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and np.abs(z).max() < np.sqrt(3)
    assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.01
    z2, _ = hash_uniforms(10, 7)
    np.testing.assert_array_equal(z2, z[:10])  # row i's numbers depend on (seed, i) only
    assert not np.array_equal(hash_uniforms(10, 8)[0], z2)


def test_training_is_reproducible(events):
    train, _ = events
    cfg = replace(CONFIG, steps=20, class_steps=20)
    a = train_gan(train["x"][:5000], train["y"][:5000], cfg, progress=False)
    b = train_gan(train["x"][:5000], train["y"][:5000], cfg, progress=False)
    for net_a, net_b in zip(a[:3], b[:3]):
        for (name, pa), pb in zip(net_a.state_dict().items(), net_b.state_dict().values()):
            assert torch.equal(pa, pb), name
    np.testing.assert_array_equal(a[3], b[3])


def test_fidelity_report_has_baseline_beside_gan(events, trained, tmp_path):
    report = evaluate.fidelity_report([events[1]], NumpyGenerator(trained[3]), tmp_path, trained[2], seed=1,
                                     c2st_rows=4000)
    for group in ("pixel", "strip"):
        for q in evaluate.QUANTITIES:
            row = report[group]["quantities"][q]
            assert row["gan"]["ks"] >= 0 and row["baseline"]["wasserstein"] >= 0
        assert 0.3 < report[group]["c2st_auc"]["baseline"] < 1.0
    assert {"fidelity_pixel.png", "fidelity_strip.png", "loss.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert evaluate.auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True])) == 1.0


# -- hook, command line ---------------------------------------------------------------------------
def test_hook_returns_event_in_trackml_schema(events, trained):
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin.FastSimGAN(trained[3]), name="fastsim_gan")
    ev = events[1]
    event = pm.hook.trackcore_fast_simulate(particles=ev["particles"], detector=trackml_like_detector(),
                                            config={"seed": ev["seed"], "event_id": 7, "noise_fraction": 0.1})
    assert isinstance(event, Event) and event.event_id == 7
    event.validate()
    noise = (event.truth["particle_id"] == 0).mean()
    assert 0.07 < noise < 0.13
    assert set(event.cells["hit_id"]) == set(event.hits["hit_id"])
    # Same transport as the full simulation: as many signal hits as crossings, within merges/off-module losses.
    n_signal = int((event.truth["particle_id"] != 0).sum())
    assert abs(n_signal - len(ev["digi"].hits)) <= 0.02 * len(ev["digi"].hits)
    again = pm.hook.trackcore_fast_simulate(particles=ev["particles"], detector=trackml_like_detector(),
                                            config={"seed": ev["seed"], "event_id": 7, "noise_fraction": 0.1})
    np.testing.assert_array_equal(again.hits["x"], event.hits["x"])


def test_simulate_fastsim_command(tmp_path, trained, monkeypatch):
    pm = get_plugin_manager(load_entrypoints=False)
    parser = build_parser(pm)
    args = parser.parse_args(["simulate", "--fastsim", "--pileup", "2", "--output", str(tmp_path / "none"), "-q"])
    args.plugin_manager = pm
    with pytest.raises(PluginError, match="no installed plugin implements trackcore_fast_simulate"):
        args.func(args)
    pm.register(plugin.FastSimGAN(trained[3]), name="fastsim_gan")
    args = build_parser(pm).parse_args(["simulate", "--fastsim", "--pileup", "2", "--events", "2", "--output",
                                        str(tmp_path / "out"), "-q"])
    args.plugin_manager = pm
    assert args.func(args) == 0
    assert len(list((tmp_path / "out").glob("event*-hits.csv"))) == 2
    args.misalign = True
    with pytest.raises(InputError, match="misalign"):
        list(__import__("trackcore.cli.simulate", fromlist=["x"]).fast_simulate_events(args))


def test_train_command_quick_is_registered():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="fastsim_gan")
    args = build_parser(pm).parse_args(["train", "fastsim_gan", "--quick", "--steps", "5"])
    from plugins.fastsim_gan.train import config_from_args

    cfg = config_from_args(args)
    assert cfg.steps == 5 and cfg.pileup == QUICK.pileup
    (info,) = [p for p in list_plugins(pm) if p.name == "fastsim_gan"]
    assert "trackcore_fast_simulate" in info.hooks and info.models[0].present == plugin.MODEL_PATH.is_file()


# -- bad input -------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors(events, trained, tmp_path):
    with pytest.raises(InputError, match="not found"):
        NumpyGenerator(tmp_path / "missing.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="not a fastsim_gan generator"):
        NumpyGenerator(tmp_path / "foreign.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        NumpyGenerator(tmp_path / "broken.npz")
    g = NumpyGenerator(trained[3])
    with pytest.raises(InputError, match=f"shape \\(N, {N_CONDITIONS}\\)"):
        g.forward(np.zeros((3, 2)), np.zeros((3, NOISE_DIM)), np.zeros(3))
    with pytest.raises(InputError, match="noise must have shape"):
        g.forward(np.zeros((3, N_CONDITIONS)), np.zeros((3, 2)), np.zeros(3))
    hook = plugin.FastSimGAN(tmp_path / "missing.npz")
    ev = events[1]
    with pytest.raises(InputError, match="not found"):
        hook.trackcore_fast_simulate(ev["particles"], trackml_like_detector(), {"seed": 1})
    with pytest.raises(InputError, match="unknown setting"):
        plugin.FastSimGAN(trained[3]).trackcore_fast_simulate(ev["particles"], trackml_like_detector(), {"sed": 1})
    with pytest.raises(InputError, match="noise_fraction"):
        plugin.FastSimGAN(trained[3]).trackcore_fast_simulate(ev["particles"], trackml_like_detector(),
                                                              {"noise_fraction": 1.5})
    with pytest.raises(InputError, match="missing column 'pz'"):
        fast_simulate_event(trackml_like_detector(), ev["particles"].take(np.arange(0)).__class__(
            {k: ev["particles"][k] for k in ev["particles"].columns if k != "pz"}), None)
    # An empty event: no particles, only noise-free empty tables.
    empty = ev["particles"].take(np.arange(0))
    event = fast_simulate_event(trackml_like_detector(), empty, g, config=SimulationConfig(noise_fraction=0.0))
    assert len(event.hits) == 0 and len(event.cells) == 0
    tables = module_tables(trackml_like_detector(), SimulationConfig())
    with pytest.raises(InputError, match="momentum has"):
        fast_digitize(tables, ev["crossings"], np.zeros((1, 3)), g, np.random.default_rng(0))


# -- diagnostics: the renderer fed the full digitisation's own observables ---------------------------
def test_oracle_observables_reproduce_full_cluster_widths(events, tables):
    from plugins.fastsim_gan.diagnose import OracleGenerator, oracle_observables

    ev = events[1]
    true_local = ev["transport"]["local"][:, :2]
    xc, q_full = evaluate.cluster_quantities(tables, ev["digi"], ev["crossings"], true_local)
    digi = fast_digitize(tables, ev["crossings"], ev["transport"]["momentum"], OracleGenerator(oracle_observables(ev)),
                         np.random.default_rng(0))
    xo, q_oracle = evaluate.cluster_quantities(tables, digi, ev["crossings"], true_local)
    # Crossings with exactly one full hit: the rendered cluster has that hit's widths (cells off the
    # module edge aside) and, mostly, its pixel charge.
    one = np.flatnonzero(np.bincount(xc, minlength=len(ev["x_all"])) == 1)
    a, b = np.isin(xc, one), np.isin(xo, one)
    ia, ib = np.argsort(xc[a]), np.argsort(xo[b])
    assert np.array_equal(xc[a][ia], xo[b][ib])
    qa, qb = q_full[a][ia], q_oracle[b][ib]
    assert (qa[:, 2:4] == qb[:, 2:4]).all(axis=1).mean() > 0.99
    pix = np.isin(np.argmax(ev["x_all"][xc[a][ia], :4], 1), (0, 1))
    # (The kept cells carry the whole charge, also where the size deficit drops corners.)
    assert pix.any() and np.isclose(qa[pix, 1], qb[pix, 1], rtol=1e-6).mean() > 0.99
    # The charge plane (two slopes) and the staircase's phase put the centroid on the full one in u
    # and v alike (within 1 um) for nearly every cluster; one ramp along the path managed ~88 %.
    for sel in (pix, ~pix):
        assert (np.abs(qa[sel, 4:6] - qb[sel, 4:6]) < 1e-3).all(axis=1).mean() > 0.98
    with pytest.raises(InputError, match="oracle observables must have shape"):
        OracleGenerator(np.zeros((3, 2)))
