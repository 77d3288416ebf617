"""Digitisation and clustering: numpy reference vs compiled kernels, and the physics of the cells."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import available_backends, get_backend
from trackcore.errors import InputError
from trackcore.geometry.detector import Detector
from trackcore.sim.digitization import (
    ELECTRONS_PER_GEV, MIP_ELECTRONS_PER_MM, DigitizationConfig, DigitizedHits, ReadoutConfig, digitize, noise_hits,
)

needs_cpu = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
GEV_PER_MM = MIP_ELECTRONS_PER_MM / ELECTRONS_PER_GEV  # mean MIP energy loss, GeV per mm of silicon
NOISELESS = DigitizationConfig(pixel=ReadoutConfig(0.0, 0.0), strip=ReadoutConfig(0.0, 0.0, binary=True))


def _barrel_rotation(phi: float) -> np.ndarray:
    u = [-np.sin(phi), np.cos(phi), 0.0]
    v = [0.0, 0.0, 1.0]
    w = [np.cos(phi), np.sin(phi), 0.0]
    return np.stack([u, v, w], axis=1)


@pytest.fixture(scope="module")
def det() -> Detector:
    """Row 0: rectangular pixel module; row 1: trapezoidal pixel module; row 2: strip module."""
    return Detector(
        volume_id=np.array([8, 8, 13]), layer_id=np.array([2, 2, 2]), module_id=np.array([1, 2, 1]),
        centre=np.array([[32.0, 0.0, 0.0], [0.0, 32.0, 50.0], [0.0, -260.0, 0.0]]),
        rotation=np.stack([_barrel_rotation(0.0), _barrel_rotation(np.pi / 2), _barrel_rotation(-np.pi / 2)]),
        thickness=np.array([0.15, 0.15, 0.25]), min_hu=np.array([8.4, 6.0, 24.0]),
        max_hu=np.array([8.4, 8.4, 24.0]), hv=np.array([36.0, 36.0, 54.0]),
        pitch_u=np.array([0.05, 0.05, 0.08]), pitch_v=np.array([0.05625, 0.05625, 1.2]), name="test-detector")


def crossings(module, u_mid, v_mid, tan_u, tan_v, det: Detector, particle=None, edep=None) -> dict:
    """Straight crossings through (u_mid, v_mid) with slopes du/dw, dv/dw; MIP energy loss by default."""
    module = np.atleast_1d(np.asarray(module, np.int64))
    n = len(module)
    t = det.thickness[module]
    u_mid, v_mid, tan_u, tan_v = (np.broadcast_to(np.asarray(a, float), (n,)) for a in (u_mid, v_mid, tan_u, tan_v))
    path = 2 * t * np.sqrt(1 + tan_u ** 2 + tan_v ** 2)
    return {"module_index": module, "particle_index": np.arange(n) if particle is None else np.asarray(particle),
            "u0": u_mid - t * tan_u, "v0": v_mid - t * tan_v, "w0": -t,
            "u1": u_mid + t * tan_u, "v1": v_mid + t * tan_v, "w1": t + 0 * u_mid,
            "edep": path * GEV_PER_MM if edep is None else np.broadcast_to(np.asarray(edep, float), (n,))}


def random_crossings(det: Detector, rng: np.random.Generator, n: int, max_tan: float = 1.0, spread: float = 6.0):
    """Crossings packed into a (2 spread)^2 mm patch of each module, so that clusters often merge."""
    module = rng.integers(0, len(det), n)
    return crossings(module, rng.uniform(-spread, spread, n), rng.uniform(-spread, spread, n),
                     rng.uniform(-max_tan, max_tan, n), rng.uniform(-max_tan, max_tan, n), det,
                     particle=rng.integers(0, n // 2, n), edep=None)


# -- parity -------------------------------------------------------------------------------------------------
@needs_cpu
def test_kernels_numpy_vs_cpu(det):
    rng = np.random.default_rng(1)
    c = random_crossings(det, rng, 800, max_tan=3.0, spread=8.0)
    seg = np.stack([c["u0"], c["v0"], c["u1"], c["v1"]], axis=1)
    seg[:20] *= 3  # some pieces leave the module: clipped identically
    shapes = np.stack([det.min_hu, det.max_hu, det.hv, det.pitch_u, det.pitch_v], axis=1)
    q = c["edep"] * ELECTRONS_PER_GEV
    ref = get_backend("numpy").kernel("digitize_segments")(c["module_index"], seg, q, shapes)
    got = get_backend("cpu").kernel("digitize_segments")(c["module_index"], seg, q, shapes)
    for a, b in zip(ref[:3], got[:3]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got[3], ref[3], rtol=1e-12, atol=0)
    # Random sorted cells, dense enough to make large irregular clusters.
    cells = np.unique(np.stack([rng.integers(0, 3, 3000), rng.integers(0, 40, 3000), rng.integers(0, 40, 3000)]), axis=1)
    lab_ref = get_backend("numpy").kernel("cluster_cells")(*cells)
    lab_cpu = get_backend("cpu").kernel("cluster_cells")(*cells)
    np.testing.assert_array_equal(lab_ref, lab_cpu)
    assert 1 < lab_ref.max() + 1 < cells.shape[1]


@needs_cpu
def test_digitize_numpy_vs_cpu_with_merged_clusters(det):
    c = random_crossings(det, np.random.default_rng(2), 1500)
    ref = digitize(det, c, rng=np.random.default_rng(5), backend="numpy")
    got = digitize(det, c, rng=np.random.default_rng(5), backend="cpu")
    assert ref.cells.columns == got.cells.columns
    for k in ("hit_id", "ch0", "ch1"):
        np.testing.assert_array_equal(ref.cells[k], got.cells[k])
    np.testing.assert_allclose(got.cells["value"], ref.cells["value"], rtol=1e-9, atol=0)
    for k in ("x", "y", "z"):
        np.testing.assert_allclose(got.hits[k], ref.hits[k], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ref.hit_particle_index, got.hit_particle_index)
    np.testing.assert_array_equal(ref.hit_crossing_index, got.hit_crossing_index)
    # Packed crossings partly merge (about half the hits), and hit ids are 1..N.
    assert 0.2 * 1500 < len(got) < 0.8 * 1500
    np.testing.assert_array_equal(got.hits["hit_id"], np.arange(1, len(got) + 1))


# -- physics ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_perpendicular_pixel_crossing_gives_one_cell_at_its_centre(det, backend):
    pu, pv = det.pitch_u[0], det.pitch_v[0]
    cu, cv = -det.max_hu[0] + 100.5 * pu, -det.hv[0] + 700.5 * pv  # centre of cell (100, 700)
    out = digitize(det, crossings(0, cu + 0.3 * pu, cv - 0.2 * pv, 0.0, 0.0, det), backend=backend)
    assert len(out) == 1 and len(out.cells) == 1
    assert (out.cells["ch0"][0], out.cells["ch1"][0]) == (100, 700)
    np.testing.assert_allclose(out.hit_local[0], [cu, cv], atol=1e-12)
    xyz = det.local_to_global(np.array([0]), np.array([[cu, cv, 0.0]]))[0]
    np.testing.assert_allclose([out.hits[k][0] for k in "xyz"], xyz, atol=1e-9)
    # A perpendicular MIP through 0.3 mm: value ~0.3, the TrackML pixel scale.
    assert out.cells["value"][0] == pytest.approx(0.3, rel=1e-9)
    assert out.hit_particle_index[0] == 0 and out.hit_crossing_index[0] == 0


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_inclined_crossing_spreads_over_expected_cells_and_keeps_charge(det, backend):
    rng = np.random.default_rng(3)
    pu, t = det.pitch_u[0], det.thickness[0]
    for tan in (0.4, 1.0, 2.5, -1.7):
        u_mid = rng.uniform(-1, 1)
        c = crossings(0, u_mid, 0.01, tan, 0.0, det)
        out = digitize(det, c, NOISELESS, backend=backend)
        spread = 2 * t * abs(tan) / pu
        assert len(out) == 1
        assert int(np.floor(spread)) + 1 <= len(out.cells) <= int(np.floor(spread)) + 2
        assert np.unique(out.cells["ch1"]).size == 1
        assert out.hit_charge[0] == pytest.approx(c["edep"][0] * ELECTRONS_PER_GEV, rel=1e-12)
        # Inner cells get one full pitch of path: share = pitch / projected length.
        inner = np.sort(out.cells["value"])[-1]
        assert inner == pytest.approx(c["edep"][0] * ELECTRONS_PER_GEV / MIP_ELECTRONS_PER_MM * min(1, pu / (2 * t * abs(tan))),
                                      rel=1e-9)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_centroid_resolution_on_inclined_tracks(det, backend):
    rng = np.random.default_rng(4)
    n = 600
    module = np.arange(n) // 300  # pixel modules 0 and 1
    # On a 1 mm grid (with jitter) so that clusters stay apart.
    grid_u, grid_v = np.meshgrid(np.arange(-4.5, 5), np.arange(-14.5, 15))
    u_mid = grid_u.ravel()[np.arange(n) % grid_u.size] + rng.uniform(-0.2, 0.2, n)
    v_mid = grid_v.ravel()[np.arange(n) % grid_u.size] + rng.uniform(-0.2, 0.2, n)
    c = crossings(module, u_mid, v_mid, rng.uniform(-0.7, 0.7, n), rng.uniform(-0.7, 0.7, n), det)
    out = digitize(det, c, rng=np.random.default_rng(6), backend=backend)
    assert len(out) == n  # isolated crossings: one hit each, truth back to its crossing
    x = out.hit_crossing_index
    np.testing.assert_array_equal(out.hit_particle_index, c["particle_index"][x])
    res_u = out.hit_local[:, 0] - 0.5 * (c["u0"][x] + c["u1"][x])
    res_v = out.hit_local[:, 1] - 0.5 * (c["v0"][x] + c["v1"][x])
    assert np.sqrt(np.mean(res_u ** 2)) < det.pitch_u[0] / np.sqrt(12)
    assert np.sqrt(np.mean(res_v ** 2)) < det.pitch_v[0] / np.sqrt(12)
    assert abs(np.mean(res_u)) < 0.2 * det.pitch_u[0]


def test_two_particles_one_pitch_apart_merge(det):
    pu = det.pitch_u[0]
    base = -det.max_hu[0] + 200.5 * pu
    c = crossings([0, 0], [base, base + pu], [0.02, 0.02], 0.0, 0.0, det, particle=[7, 3],
                  edep=[1.2e-4, 0.8e-4])
    out = digitize(det, c, backend="numpy")
    assert len(out) == 1 and len(out.cells) == 2
    assert out.hit_particle_index[0] == 7 and out.hit_crossing_index[0] == 0
    assert out.hit_local[0, 0] == pytest.approx(base + 0.4 * pu, abs=1e-9)  # charge-weighted
    # Diagonal neighbours merge too (8-connectivity); a one-cell gap does not.
    diag = crossings([0, 0], [base, base + pu], [0.02, 0.02 + det.pitch_v[0]], 0.0, 0.0, det)
    assert len(digitize(det, diag, backend="numpy")) == 1
    gap = crossings([0, 0], [base, base + 2 * pu], [0.02, 0.02], 0.0, 0.0, det)
    assert len(digitize(det, gap, backend="numpy")) == 2
    # Two particles on the same cell add their charge.
    same = digitize(det, crossings([0, 0], [base, base], [0.02, 0.02], 0.0, 0.0, det), NOISELESS, backend="numpy")
    assert len(same.cells) == 1 and same.cells["value"][0] == pytest.approx(0.6, rel=1e-9)


def test_threshold_drops_low_charge_cells(det):
    pu = det.pitch_u[0]
    edge = -det.max_hu[0] + 300 * pu
    # 98% of the path in one cell, 2% (650 e- of a MIP's 32400) in the next: below a 1000 e- threshold.
    c = crossings(0, edge - 0.48 * 0.1 * pu, 0.0, 0.1 * pu / 0.3, 0.0, det)
    loose = digitize(det, c, NOISELESS, backend="numpy")
    tight = digitize(det, c, DigitizationConfig(pixel=ReadoutConfig(1000.0, 0.0)), backend="numpy")
    assert len(loose.cells) == 2 and len(tight.cells) == 1
    assert tight.cells["ch0"][0] == 299
    # A crossing far below threshold makes no hit at all.
    weak = crossings(0, 0.0, 0.0, 0.0, 0.0, det, edep=500 / ELECTRONS_PER_GEV)
    assert len(digitize(det, weak, backend="numpy")) == 0


def test_strips_are_binary_and_pieces_outside_the_module_are_lost(det):
    out = digitize(det, crossings(2, 0.0, 0.3, 1.0, 0.0, det))
    assert len(out) == 1 and np.all(out.cells["value"] == 1.0) and len(out.cells) >= 6
    analogue = DigitizationConfig(volume_overrides={13: ReadoutConfig(0.0, 0.0, binary=False)})
    out = digitize(det, crossings(2, 0.0, 0.3, 1.0, 0.0, det), analogue)
    assert out.cells["value"].sum() == pytest.approx(0.5 * np.sqrt(2), rel=1e-9)  # 0.5 mm thick, at 45 degrees
    # Half the path beyond the trapezoid's slanted edge (module 1, at v = 0 the half width is 7.2).
    out = digitize(det, crossings(1, 7.2, 0.0, 1.0, 0.0, det), NOISELESS)
    assert out.hit_charge[0] == pytest.approx(0.5 * 0.3 * np.sqrt(2) * MIP_ELECTRONS_PER_MM, rel=0.05)
    assert (np.abs(out.hit_local[:, 0]) < 7.2).all()


def test_noise_hits(det):
    rng = np.random.default_rng(8)
    noise = noise_hits(det, rng, 3000)
    assert len(noise) == 3000 and (noise.hit_particle_index == -1).all() and (noise.hit_crossing_index == -1).all()
    area = 2 * det.hv * (det.min_hu + det.max_hu)
    counts = np.bincount(noise.hit_module_index, minlength=3)
    np.testing.assert_allclose(counts / 3000, area / area.sum(), atol=0.03)
    sizes = np.bincount(noise.cells["hit_id"])[1:]
    assert sizes.min() == 1 and sizes.max() <= 3
    uvw = np.c_[noise.hit_local, np.zeros(len(noise))]
    assert det.contains_local(noise.hit_module_index, uvw).all()
    assert len(noise_hits(det, rng, 0.15, n_signal_hits=850)) == 150
    # Signal and noise together, renumbered 1..N.
    sig = digitize(det, crossings(0, 0.0, 0.0, 0.0, 0.0, det))
    both = DigitizedHits.concat([sig, noise])
    np.testing.assert_array_equal(both.hits["hit_id"], np.arange(1, len(both) + 1))
    assert both.cells["hit_id"][0] == 1 and set(both.cells["hit_id"]) == set(both.hits["hit_id"])
    with pytest.raises(InputError, match="fraction"):
        noise_hits(det, rng, 1.5)


# -- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=needs_cpu)])
def test_bad_input_is_rejected_with_a_clear_message(det, backend):
    good = crossings([0, 1], 0.0, 0.0, 0.5, 0.5, det)
    cases = [
        ({k: v for k, v in good.items() if k != "edep"}, "missing key"),
        ({**good, "u0": good["u0"][:1]}, r"crossings\['u0'\].*shape"),
        ({**good, "module_index": np.array([0, 3])}, r"module_index.*\[1\] = 3"),
        ({**good, "v1": np.array([0.0, np.nan])}, r"crossings\['v1'\].*non-finite.*row 1"),
        ({**good, "module_index": np.array([0.0, 1.0])}, "integers"),
        ({**good, "edep": np.array([-1.0, 1.0])}, "negative"),
    ]
    for bad, msg in cases:
        with pytest.raises(InputError, match=msg):
            digitize(det, bad, backend=backend)
    with pytest.raises(InputError, match="rng"):
        digitize(det, good, rng=42, backend=backend)
    with pytest.raises(InputError, match="threshold_e"):
        ReadoutConfig(-1.0, 0.0)
    with pytest.raises(InputError, match="volume_overrides"):
        DigitizationConfig(volume_overrides={8: 1000.0})
    # The kernels themselves check their arrays (ValueError, never a crash).
    be = get_backend(backend)
    shapes = np.stack([det.min_hu, det.max_hu, det.hv, det.pitch_u, det.pitch_v], axis=1)
    seg, q, mi = np.zeros((2, 4)), np.ones(2), np.array([0, 1])
    with pytest.raises(ValueError, match="segments"):
        be.kernel("digitize_segments")(mi, np.zeros((2, 3)), q, shapes)
    with pytest.raises(ValueError, match="module_index"):
        be.kernel("digitize_segments")(np.array([0, 5]), seg, q, shapes)
    with pytest.raises(ValueError, match="charge"):
        be.kernel("digitize_segments")(mi, seg, np.array([1.0, np.nan]), shapes)
    with pytest.raises(ValueError, match="not finite"):
        be.kernel("digitize_segments")(mi, np.full((2, 4), np.inf), q, shapes)
    with pytest.raises(ValueError, match="sorted"):
        be.kernel("cluster_cells")(np.array([0, 0]), np.array([3, 1]), np.array([0, 0]))
    with pytest.raises(ValueError, match="ch0"):
        be.kernel("cluster_cells")(np.array([0, 0]), np.array([1]), np.array([0, 0]))


def test_majority_takes_the_largest_summed_weight_and_the_smallest_item_on_ties():
    """The truth particle of a hit: per group, the item with the largest summed weight; a tie goes to
    the smallest item; a group without entries gets -1. Checked against a plain Python loop."""
    from trackcore.sim.digitization import _majority

    rng = np.random.default_rng(5)
    for trial in range(100):
        n, n_groups = int(rng.integers(0, 300)), int(rng.integers(1, 40))
        group, item = rng.integers(0, n_groups, n), rng.integers(0, 8, n)
        weight = rng.choice([0.5, 1.0, 1.5], n) if trial % 2 else rng.random(n)  # many exact ties, or none
        sums: dict = {}
        for g, i, w in zip(group.tolist(), item.tolist(), weight.tolist()):
            sums.setdefault(g, {}).setdefault(i, []).append(w)
        want = np.full(n_groups, -1)
        for g, by_item in sums.items():
            totals = {i: float(np.add.reduce(np.array(ws))) for i, ws in by_item.items()}
            best = max(totals.values())
            want[g] = min(i for i, t in totals.items() if t == best)
        np.testing.assert_array_equal(_majority(group, item, weight, n_groups), want, err_msg=f"trial {trial}")
