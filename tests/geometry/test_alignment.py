"""Alignment: x-z'-x'' Euler angles, applying/undoing misalignments, CSV I/O."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.errors import GeometryError, InputError
from trackcore.geometry import (AlignmentParameters, apply_alignment, euler_xzx, euler_xzx_angles, generic_detector,
                                random_misalignment, read_alignment, write_alignment)


def rot_about(axis, angle):
    """Rodrigues: rotation by ``angle`` about unit ``axis``."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def test_elementary_rotations_and_intrinsic_order():
    np.testing.assert_allclose(euler_xzx(0.3, 0, 0)[0], rot_about([1, 0, 0], 0.3), atol=1e-15)
    np.testing.assert_allclose(euler_xzx(0, 0.3, 0)[0], rot_about([0, 0, 1], 0.3), atol=1e-15)
    # Intrinsic: the second rotation is about the new z (z' = Rx(a) z), the third about x'' = Rx(a) Rz(b) x.
    a, b, g = 0.4, -0.7, 1.1
    r1 = rot_about([1, 0, 0], a)
    z1 = r1 @ [0, 0, 1]
    r2 = rot_about(z1, b) @ r1
    x2 = r2 @ [1, 0, 0]
    np.testing.assert_allclose(euler_xzx(a, b, g)[0], rot_about(x2, g) @ r2, atol=1e-14)


def test_small_angles_compose_to_first_order():
    eps = 1e-3
    rng = np.random.default_rng(0)
    a, b, g = rng.uniform(-eps, eps, (3, 50))
    r = euler_xzx(a, b, g)
    # First order: an infinitesimal rotation by (a + g) about x and b about z.
    omega = np.stack([a + g, 0 * a, b], 1)
    k = np.zeros((50, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -omega[:, 2], omega[:, 1], -omega[:, 0]
    k -= k.transpose(0, 2, 1)
    assert np.abs(r - (np.eye(3) + k)).max() < 4 * eps**2
    # Rotations about x add up exactly.
    np.testing.assert_allclose(euler_xzx(a, 0, 0) @ euler_xzx(g, 0, 0), euler_xzx(a + g, 0, 0), atol=1e-15)


def test_angles_round_trip():
    rng = np.random.default_rng(1)
    n = 2000
    ang = np.stack([rng.uniform(-np.pi / 2, np.pi / 2, n), rng.uniform(-np.pi, np.pi, n),
                    rng.uniform(-np.pi, np.pi, n)], 1)
    ang[:500] *= 0.02  # small angles of both signs, as in misalignments
    r = euler_xzx(*ang.T)
    np.testing.assert_allclose(np.einsum("nji,njk->nik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-14)
    np.testing.assert_allclose(euler_xzx_angles(r), ang, atol=1e-9)
    # Any rotation (here alpha outside [-pi/2, pi/2]) gives angles that rebuild it.
    r2 = euler_xzx([2.5, -3.0], [0.5, -1.0], [0.1, 3.0])
    np.testing.assert_allclose(euler_xzx(*euler_xzx_angles(r2).T), r2, atol=1e-14)


@pytest.mark.parametrize("beta", [0.0, np.pi])
def test_gimbal_lock(beta):
    r = euler_xzx(0.3, beta, 0.2)
    ang = euler_xzx_angles(r)
    assert ang[0, 2] == 0.0 or ang[0, 0] == 0.0
    np.testing.assert_allclose(euler_xzx(*ang.T), r, atol=1e-14)


def test_apply_then_inverse_is_nominal(generic):
    params = random_misalignment(generic, 42)
    moved = apply_alignment(generic, params)
    assert moved.name == "generic-aligned"
    assert np.abs(moved.centre - generic.centre).max() > 0.1
    back = apply_alignment(moved, params.inverse())
    np.testing.assert_allclose(back.centre, generic.centre, atol=1e-12)
    np.testing.assert_allclose(back.rotation, generic.rotation, atol=1e-14)
    np.testing.assert_array_equal(generic.centre, generic_detector().centre)  # the input was not modified


def test_subset_of_modules(generic):
    sel = slice(100, 110)
    p = AlignmentParameters(generic.volume_id[sel], generic.layer_id[sel], generic.module_id[sel],
                            np.tile([0.1, -0.2, 0.05, 0.01, 0.02, -0.01], (10, 1)))
    moved = apply_alignment(generic, p)
    changed = np.flatnonzero(np.any(moved.centre != generic.centre, axis=1))
    np.testing.assert_array_equal(changed, np.arange(100, 110))
    np.testing.assert_allclose(moved.centre[100] - generic.centre[100], [0.1, -0.2, 0.05], atol=1e-12)


def test_point_on_misaligned_module(generic):
    i = int(generic.layer(8, 4).module_slice.start) + 5
    key = (generic.volume_id[[i]], generic.layer_id[[i]], generic.module_id[[i]])
    uvw = np.array([[3.0, -10.0, 0.0]])
    # A global shift: in the nominal frame the point moves by R^T d.
    d = np.array([0.1, 0.1, 0.05])
    shifted = apply_alignment(generic, AlignmentParameters(*key, [[*d, 0, 0, 0]]))
    x = shifted.local_to_global([i], uvw)
    np.testing.assert_allclose(generic.global_to_local([i], x), uvw + generic.rotation[i].T @ d, atol=1e-12)
    np.testing.assert_allclose(shifted.global_to_local([i], x), uvw, atol=1e-12)
    # A rotation alpha about local u: (u, v, 0) -> (u, v cos a, v sin a) in the nominal frame.
    a = 0.02
    turned = apply_alignment(generic, AlignmentParameters(*key, [[0, 0, 0, a, 0, 0]]))
    x = turned.local_to_global([i], uvw)
    np.testing.assert_allclose(generic.global_to_local([i], x), [[3.0, -10 * np.cos(a), -10 * np.sin(a)]], atol=1e-12)
    # beta about local w: (u, v) turn in the module plane.
    turned = apply_alignment(generic, AlignmentParameters(*key, [[0, 0, 0, 0, a, 0]]))
    x = turned.local_to_global([i], uvw)
    expect = [[3 * np.cos(a) + 10 * np.sin(a), 3 * np.sin(a) - 10 * np.cos(a), 0.0]]
    np.testing.assert_allclose(generic.global_to_local([i], x), expect, atol=1e-12)


def test_random_misalignment_statistics(trackml_like):
    p = random_misalignment(trackml_like, np.random.default_rng(3))
    assert p.values.shape == (18728, 6)
    np.testing.assert_allclose(p.values.std(axis=0), [0.1, 0.1, 0.05, 0.02, 0.02, 0.02], rtol=0.05)
    assert np.abs(p.values.mean(axis=0)).max() < 0.003
    np.testing.assert_array_equal(random_misalignment(trackml_like, 3).values, p.values)
    assert not random_misalignment(trackml_like, 4, sigma_translation=0.0, sigma_rotation=0.0).values.any()
    with pytest.raises(InputError, match="sigmas"):
        random_misalignment(trackml_like, 0, sigma_rotation=-1.0)


def test_csv_round_trip_and_errors(tmp_path, generic):
    p = random_misalignment(generic, 9)
    for name in ("a.csv", "a.csv.gz"):
        back = read_alignment(write_alignment(p, tmp_path / name))
        for k in ("volume_id", "layer_id", "module_id", "values"):
            np.testing.assert_array_equal(getattr(back, k), getattr(p, k))
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "volume_id,layer_id,module_id,dx,dy,dz,alpha,beta,gamma"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(GeometryError, match=r"bad.csv: module .* appears on lines 4 and"):
        read_alignment(bad)
    bad.write_text("\n".join([lines[0].replace(",gamma", "")] + [x.rsplit(",", 1)[0] for x in lines[1:]]))
    with pytest.raises(GeometryError, match=r"bad.csv: wrong alignment columns: missing \['gamma'\]"):
        read_alignment(bad)
    bad.write_text("\n".join(lines[:2] + [lines[2].replace(lines[2].split(",")[6], "x", 1)]))
    with pytest.raises(GeometryError, match=r"bad.csv: line 3, column 'alpha': 'x' is not a number"):
        read_alignment(bad)


def test_bad_parameters(generic):
    with pytest.raises(InputError, match=r"\(N, 6\)"):
        AlignmentParameters([8], [2], [1], np.zeros((1, 5)))
    with pytest.raises(InputError, match="non-finite values at row 0"):
        AlignmentParameters([8], [2], [1], [[0, 0, np.nan, 0, 0, 0]])
    with pytest.raises(GeometryError, match="unknown module"):
        apply_alignment(generic, AlignmentParameters([8], [2], [99999], np.zeros((1, 6))))
    with pytest.raises(GeometryError, match="more than once"):
        apply_alignment(generic, AlignmentParameters([8, 8], [2, 2], [1, 1], np.zeros((2, 6))))
