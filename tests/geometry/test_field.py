"""Magnetic fields: constant field, (r, z) grid map with bilinear interpolation, solenoid model, CSV."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.geometry import (ConstantField, GridFieldMap, MagneticField, default_field, read_field_map,
                                solenoid_field_map, write_field_map)


def linear_map(outside="zero"):
    r = np.linspace(0.0, 100.0, 11)
    z = np.linspace(-200.0, 200.0, 21)
    rr, zz = np.meshgrid(r, z, indexing="ij")
    # Bilinear in (r, z): interpolation must reproduce it exactly.
    return GridFieldMap(r, z, 0.01 * rr + 0.001 * rr * zz, 2.0 + 1e-3 * zz - 1e-4 * rr, outside=outside)


def test_constant_field():
    f = default_field()
    assert isinstance(f, MagneticField) and f.is_constant and f.bz == 2.0
    np.testing.assert_array_equal(f.field_at(np.zeros((4, 3))), np.tile([0, 0, 2.0], (4, 1)))
    np.testing.assert_array_equal(ConstantField(-1.5).field_at([1.0, 2.0, 3.0]), [[0, 0, -1.5]])
    with pytest.raises(InputError, match="finite"):
        ConstantField(float("nan"))
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        f.field_at(np.zeros((4, 2)))


def test_bilinear_interpolation_is_exact_for_bilinear_fields():
    m = linear_map()
    assert isinstance(m, MagneticField) and not m.is_constant
    rng = np.random.default_rng(0)
    n = 500
    r = rng.uniform(0, 100, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    z = rng.uniform(-200, 200, n)
    b = m.field_at(np.stack([r * np.cos(phi), r * np.sin(phi), z], 1))
    br = 0.01 * r + 0.001 * r * z
    np.testing.assert_allclose(b[:, 0], br * np.cos(phi), atol=1e-12)
    np.testing.assert_allclose(b[:, 1], br * np.sin(phi), atol=1e-12)
    np.testing.assert_allclose(b[:, 2], 2.0 + 1e-3 * z - 1e-4 * r, atol=1e-12)
    # On the axis there is no direction for Br: finite, zero transverse field.
    np.testing.assert_allclose(m.field_at([[0, 0, 50.0]]), [[0, 0, 2.05]], atol=1e-12)
    # Grid nodes come back exactly.
    np.testing.assert_allclose(m.field_rz(m.r_grid[3], m.z_grid[7])[1], m.bz[3, 7], atol=1e-15)


def test_outside_policies():
    pts = np.array([[150.0, 0, 0], [0, 0, 250.0], [50.0, 0, 0]])
    np.testing.assert_array_equal(linear_map("zero").field_at(pts)[:2], 0.0)
    clamp = linear_map("clamp").field_at(pts)
    np.testing.assert_allclose(clamp[0], [1.0, 0, 2.0 - 1e-2], atol=1e-12)  # value at r = 100, z = 0
    np.testing.assert_allclose(clamp[1, 2], 2.2, atol=1e-12)  # value at r = 0, z = 200
    with pytest.raises(InputError, match=r"point 0 at r=150.0, z=0.0 mm is outside the map"):
        linear_map("error").field_at(pts)
    np.testing.assert_allclose(linear_map("error").field_at(pts[2:]), linear_map().field_at(pts[2:]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(r=[0, 1, 1, 2]), r"r_grid spacing must be > 0 \(step 1: 1.0 -> 1.0\)"),
    (dict(z=[0, -1, -2]), "z_grid spacing must be > 0"),
    (dict(r=[0, 1, 3, 4]), "regularly spaced"),
    (dict(r=[-1, 0, 1, 2]), "r >= 0"),
    (dict(r=[0, np.nan, 2, 3]), "non-finite"),
    (dict(br_nan=True), r"br is not finite at r=1.0, z=2.0"),
    (dict(shape=(3, 3)), r"bz has shape \(3, 3\), expected"),
    (dict(outside="wrap"), "outside must be one of"),
])
def test_grid_errors(kwargs, match):
    r = np.asarray(kwargs.get("r", [0.0, 1.0, 2.0, 3.0]), float)
    z = np.asarray(kwargs.get("z", [0.0, 1.0, 2.0]), float)
    br = np.zeros((len(r), len(z)))
    if kwargs.get("br_nan"):
        br[1, 2] = np.nan
    bz = np.ones(kwargs.get("shape", (len(r), len(z))))
    with pytest.raises(InputError, match=match):
        GridFieldMap(r, z, br, bz, outside=kwargs.get("outside", "zero"))


def test_solenoid_model():
    m = solenoid_field_map()
    assert m.r_grid.flags.c_contiguous and m.br.shape == m.bz.shape == (len(m.r_grid), len(m.z_grid))
    np.testing.assert_allclose(m.field_at([[0, 0, 0]]), [[0, 0, 2.0]], atol=1e-12)
    inside = m.field_at([[300.0, 400.0, 1000.0]])[0]
    assert abs(inside[2] - 2.0) < 0.02 and np.hypot(*inside[:2]) < 0.05
    assert m.field_at([[0, 0, 2700.0]])[0, 2] == pytest.approx(1.0, abs=0.02)  # half at the coil end
    assert m.field_at([[0, 0, 3990.0]])[0, 2] < 0.15 and m.field_at([[1490.0, 0, 0]])[0, 2] < 0.1
    # Field lines open up beyond the centre: Br > 0 at z > 0, odd in z.
    assert m.field_rz(800.0, 2500.0)[0] > 0.1
    np.testing.assert_allclose(m.field_rz(800.0, -2500.0)[0], -m.field_rz(800.0, 2500.0)[0], atol=1e-12)
    # div B = (1/r) d(r Br)/dr + dBz/dz = 0, by finite differences on the grid.
    r, z = m.r_grid, m.z_grid
    rbr = r[:, None] * m.br
    div = np.gradient(rbr, r, axis=0)[1:-1, 1:-1] / r[1:-1, None] + np.gradient(m.bz, z, axis=1)[1:-1, 1:-1]
    scale = np.abs(np.gradient(m.bz, z, axis=1)).max()
    assert np.abs(div).max() < 0.02 * scale


def test_solenoid_bad_parameters():
    with pytest.raises(InputError, match="radius must be finite and > 0"):
        solenoid_field_map(radius=-1.0)
    with pytest.raises(InputError, match="bz must be finite"):
        solenoid_field_map(bz=float("inf"))


def test_csv_round_trip(tmp_path):
    m = solenoid_field_map(r_max=200.0, z_max=300.0, dr=20.0, dz=25.0)
    path = write_field_map(m, tmp_path / "field.csv.gz")
    back = read_field_map(path, outside="clamp")
    for k in ("r_grid", "z_grid", "br", "bz"):
        np.testing.assert_array_equal(getattr(back, k), getattr(m, k))
    assert back.outside == "clamp"
    # Rows in any order are accepted.
    lines = write_field_map(m, tmp_path / "f.csv").read_text().splitlines()
    rng = np.random.default_rng(1)
    body = [lines[1 + i] for i in rng.permutation(len(lines) - 1)]
    (tmp_path / "shuffled.csv").write_text("\n".join([lines[0]] + body) + "\n")
    np.testing.assert_array_equal(read_field_map(tmp_path / "shuffled.csv").bz, m.bz)


def test_csv_errors(tmp_path):
    lines = write_field_map(linear_map(), tmp_path / "f.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match=r"bad.csv: 230 rows do not fill the 11 x 21 \(r, z\) grid"):
        read_field_map(bad)
    bad.write_text("\n".join(lines + [lines[4]]) + "\n")
    with pytest.raises(InputError, match=r"bad.csv: grid node r=0.0, z=-140.0 appears on lines 5 and 233"):
        read_field_map(bad)
    bad.write_text("\n".join([lines[0].replace("Bz", "B_z")] + lines[1:]) + "\n")
    with pytest.raises(InputError, match=r"bad.csv: wrong field map columns: missing \['Bz'\]"):
        read_field_map(bad)
    bad.write_text("\n".join(lines[:3] + ["0,nan,1,1"] + lines[4:]) + "\n")
    with pytest.raises(InputError, match=r"bad.csv: line 4, column 'z': value nan is not finite"):
        read_field_map(bad)
