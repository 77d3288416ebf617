"""Built-in detectors: the TrackML layout compared layer by layer with the real detectors.csv."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.geometry import Detector, generic_detector, read_detector, trackml_like_detector, write_detector

# Module counts per (volume, layer) of the real detectors.csv (also checked against the file below).
REAL_COUNTS = {(8, 2): 224, (8, 4): 448, (8, 6): 728, (8, 8): 1092,
               (13, 2): 840, (13, 4): 1176, (13, 6): 1638, (13, 8): 2142, (17, 2): 2520, (17, 4): 3192}
REAL_COUNTS.update({(v, l): 108 for v in (7, 9) for l in range(2, 15, 2)})
REAL_COUNTS.update({(v, l): 170 for v in (12, 14) for l in range(2, 13, 2)})
REAL_COUNTS.update({(v, l): 98 for v in (16, 18) for l in range(2, 13, 2)})


def first_hits(det: Detector, layer, dirs: np.ndarray) -> np.ndarray:
    """Whether each straight line from the origin along ``dirs`` crosses a module of ``layer``."""
    s = layer.module_slice
    c, rot = det.centre[s], det.rotation[s]
    u, v, w = rot[:, :, 0], rot[:, :, 1], rot[:, :, 2]
    hit = np.zeros(len(dirs), bool)
    for k in range(0, len(dirs), 250):
        d = dirs[k:k + 250]
        wd = d @ w.T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.einsum("mi,mi->m", w, c) / wd  # path length to each module plane
        lu = t * (d @ u.T) - np.einsum("mi,mi->m", u, c)
        lv = t * (d @ v.T) - np.einsum("mi,mi->m", v, c)
        half = det.min_hu[s] + (det.max_hu[s] - det.min_hu[s]) * (lv + det.hv[s]) / (2 * det.hv[s])
        inside = (t > 0) & (np.abs(lv) <= det.hv[s]) & (np.abs(lu) <= half)
        hit[k:k + 250] = inside.any(axis=1)
    return hit


def random_dirs(rng, n: int, eta_max: float) -> np.ndarray:
    phi = rng.uniform(-np.pi, np.pi, n)
    theta = 2 * np.arctan(np.exp(-rng.uniform(-eta_max, eta_max, n)))
    return np.stack([np.cos(phi) * np.sin(theta), np.sin(phi) * np.sin(theta), np.cos(theta)], axis=1)


def crossing_barrel(det: Detector, layer, dirs: np.ndarray, margin: float = 5.0) -> np.ndarray:
    """Lines that cross the barrel layer's cylinder well inside its z extent."""
    z_edge = max(abs(layer.z_min), abs(layer.z_max)) + det.hv[layer.module_slice].max()
    cot = dirs[:, 2] / np.hypot(dirs[:, 0], dirs[:, 1])
    return np.abs(cot) * (layer.r_max + 10.0) < z_edge - margin


def orientation_features(det: Detector, layer) -> np.ndarray:
    """Per module: u, v, w dotted with the radial, azimuthal and z unit vectors at its centre."""
    s = layer.module_slice
    c = det.centre[s]
    phi = np.arctan2(c[:, 1], c[:, 0])
    basis = np.stack([np.stack([np.cos(phi), np.sin(phi), 0 * phi], 1),
                      np.stack([-np.sin(phi), np.cos(phi), 0 * phi], 1),
                      np.tile([0.0, 0.0, 1.0], (len(phi), 1))], axis=1)  # (M, 3 frames, 3)
    return np.einsum("mai,mib->mab", basis, det.rotation[s])  # (M, r/phi/z, u/v/w)


def test_counts_and_layers(trackml_like):
    assert len(trackml_like) == 18728
    got = {(l.volume_id, l.layer_id): l.n_modules for l in trackml_like.layers}
    assert got == REAL_COUNTS
    kinds = {(l.volume_id, l.kind) for l in trackml_like.layers}
    assert kinds == {(v, "barrel") for v in (8, 13, 17)} | {(v, "endcap") for v in (7, 9, 12, 14, 16, 18)}


def test_layer_by_layer_against_real_file(real_detector, trackml_like):
    assert {(l.volume_id, l.layer_id): l.n_modules for l in real_detector.layers} == REAL_COUNTS
    for lr, lb in zip(real_detector.layers, trackml_like.layers):
        where = f"volume {lr.volume_id} layer {lr.layer_id}"
        assert (lb.volume_id, lb.layer_id, lb.kind, lb.n_modules) == (lr.volume_id, lr.layer_id, lr.kind, lr.n_modules)
        for a in ("r_min", "r_max", "z_min", "z_max"):
            assert getattr(lb, a) == pytest.approx(getattr(lr, a), rel=0.01, abs=0.5), f"{where} {a}"
        sr, sb = lr.module_slice, lb.module_slice
        shapes = lambda d, s: {tuple(x) for x in np.stack(  # noqa: E731
            [d.thickness[s], d.min_hu[s], d.max_hu[s], d.hv[s], d.pitch_u[s], d.pitch_v[s]], 1)}
        assert shapes(trackml_like, sb) == shapes(real_detector, sr), where
        # Same orientation pattern: u/v/w against the local r/phi/z directions, module for module.
        fr, fb = orientation_features(real_detector, lr), orientation_features(trackml_like, lb)
        assert {tuple(x) for x in np.round(fb.reshape(len(fb), -1), 3)} == \
            {tuple(x) for x in np.round(fr.reshape(len(fr), -1), 3)}, where


def test_modules_match_real_positions(real_detector, trackml_like):
    """Every built module sits where a real one does (< 0.01 mm), with the same rotation."""
    for lr, lb in zip(real_detector.layers, trackml_like.layers):
        cr, cb = real_detector.centre[lr.module_slice], trackml_like.centre[lb.module_slice]
        rr, rb = real_detector.rotation[lr.module_slice], trackml_like.rotation[lb.module_slice]
        if lr.kind == "barrel":  # same id order: phi fastest, then z
            match = np.arange(len(cr))
        else:
            match = np.linalg.norm(cb[:, None] - cr[None], axis=2).argmin(axis=1)
            assert len(np.unique(match)) == len(match)
        assert np.abs(cb - cr[match]).max() < 0.01
        assert np.abs(rb - rr[match]).max() < 1e-4


def test_conventions(trackml_like):
    d = trackml_like
    u, v, w = d.rotation[:, :, 0], d.rotation[:, :, 1], d.rotation[:, :, 2]
    np.testing.assert_allclose(np.cross(u, v), w, atol=1e-12)
    barrel = np.isin(d.volume_id, (8, 13, 17))
    np.testing.assert_array_equal(v[barrel], np.tile([0, 0, 1.0], (barrel.sum(), 1)))
    radial = d.centre[:, :2] / np.hypot(d.centre[:, 0], d.centre[:, 1])[:, None]
    cos_tilt = np.einsum("ni,ni->n", w[barrel, :2], radial[barrel])
    assert np.all(cos_tilt > 0.98)  # w points outwards, tilted by ~8 degrees
    np.testing.assert_allclose(w[~barrel, 2], np.sign(d.centre[~barrel, 2]))
    np.testing.assert_allclose(v[~barrel, :2], radial[~barrel], atol=1e-12)  # long side outwards


@pytest.mark.parametrize("build", [trackml_like_detector, generic_detector])
def test_barrel_layers_hermetic(build):
    """Straight lines from the origin hit every barrel layer they cross: always for |eta| < 1.2;
    up to |eta| 2.5 all but a few per mille, in z gaps that the real TrackML layout has too
    (radius stagger x cot(theta) exceeds the z overlap; see test_barrel_holes_same_as_real)."""
    det = build()
    rng = np.random.default_rng(7)
    for eta_max, max_missed in ((1.2, 0.0), (2.5, 0.005)):
        dirs = random_dirs(rng, 3000, eta_max)
        for layer in det.layers:
            if layer.kind != "barrel":
                continue
            cross = crossing_barrel(det, layer, dirs)
            assert cross.sum() > 100
            missed = cross & ~first_hits(det, layer, dirs)
            assert missed.sum() <= max_missed * cross.sum(), \
                f"{det.name} v{layer.volume_id} l{layer.layer_id} |eta|<{eta_max}: {missed.sum()} holes"


def test_barrel_holes_same_as_real(real_detector, trackml_like):
    dirs = random_dirs(np.random.default_rng(5), 2000, 2.5)
    for lr, lb in zip(real_detector.layers, trackml_like.layers):
        if lr.kind == "barrel":
            np.testing.assert_array_equal(first_hits(trackml_like, lb, dirs), first_hits(real_detector, lr, dirs))


def test_endcap_coverage_like_real(real_detector, trackml_like):
    """Disks: the built detector covers at least the same share of lines as the real one."""
    dirs = random_dirs(np.random.default_rng(3), 2000, 4.0)
    for lr, lb in zip(real_detector.layers, trackml_like.layers):
        if lr.kind != "endcap":
            continue
        r_in = lr.r_min - 20.0
        r_out = lr.r_max + 20.0
        rho = np.abs(lr.z_mean) * np.hypot(dirs[:, 0], dirs[:, 1]) / np.abs(dirs[:, 2])
        cross = (rho > r_in) & (rho < r_out) & (np.sign(dirs[:, 2]) == np.sign(lr.z_mean))
        real = first_hits(real_detector, lr, dirs[cross]).mean()
        built = first_hits(trackml_like, lb, dirs[cross]).mean()
        assert real > 0.9 and built >= real - 0.005, (lr.volume_id, lr.layer_id, real, built)


def test_trackml_like_round_trip(tmp_path, trackml_like):
    back = read_detector(write_detector(trackml_like, tmp_path / "t.csv.gz"))
    for k, a in trackml_like.to_columns().items():
        np.testing.assert_array_equal(back.to_columns()[k], a, err_msg=k)


def test_generic_detector(generic):
    assert 300 <= len(generic) <= 2500
    assert {l.volume_id for l in generic.layers} == {7, 8, 9}
    assert sum(l.kind == "barrel" for l in generic.layers) == 4
    assert sum(l.kind == "endcap" for l in generic.layers) == 6
    assert generic.summary().startswith("generic: 2072 modules")
