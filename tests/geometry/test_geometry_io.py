"""read_detector / write_detector / load_detector: real file, exact round trips, clear errors."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from trackcore.errors import GeometryError
from trackcore.geometry import Detector, load_detector, read_detector, write_detector
from trackcore.geometry.detector import MODULE_COLUMNS


def assert_same(a: Detector, b: Detector) -> None:
    ca, cb = a.to_columns(), b.to_columns()
    assert list(ca) == list(cb)
    for k in ca:
        np.testing.assert_array_equal(ca[k], cb[k], err_msg=k)


@pytest.fixture
def small_csv(tmp_path, generic):
    """The generic detector as a plain CSV: returns (path, lines)."""
    path = write_detector(generic, tmp_path / "det.csv")
    return path, path.read_text().splitlines()


def rewrite(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_real_file_with_index_column(real_detector_path, real_detector):
    with gzip.open(real_detector_path, "rt") as fh:
        assert fh.readline().startswith(",volume_id,")  # the leading unnamed index column is there
    d = real_detector
    assert len(d) == 18728 and len(d.layers) == 48 and d.name == "detectors"
    i = int(d.index(7, 2, 1))
    np.testing.assert_allclose(d.centre[i], [-65.7965, -5.1783, -1502.5])
    assert d.thickness[i] == 0.15 and d.pitch_v[i] == 0.05625


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_real_round_trip_exact(tmp_path, real_detector, suffix):
    path = write_detector(real_detector, tmp_path / f"detectors{suffix}")
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    text = gzip.decompress(raw).decode() if suffix.endswith(".gz") else raw.decode()
    assert text.splitlines()[0] == ",".join(MODULE_COLUMNS)  # standard header, no index column
    assert_same(read_detector(path), real_detector)


def test_generic_round_trip_and_column_order(tmp_path, small_csv, generic):
    path, lines = small_csv
    assert_same(read_detector(path), generic)
    # Same table with an index column in front and the columns in another order.
    header = lines[0].split(",")
    perm = list(reversed(range(len(header))))
    out = [",".join([""] + [header[j] for j in perm])]
    out += [",".join([str(i)] + [line.split(",")[j] for j in perm]) for i, line in enumerate(lines[1:])]
    assert_same(read_detector(rewrite(tmp_path / "perm.csv", out)), generic)


def test_write_is_atomic(tmp_path, generic, monkeypatch):
    target = tmp_path / "det.csv.gz"
    write_detector(generic, target)
    before = target.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_detector(generic, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.csv.gz"]  # no temporary left behind


@pytest.mark.parametrize("edit, match", [
    (lambda h, r: (h.replace("cx,", "cxx,"), r), r"missing \['cx'\], unknown \['cxx'\]"),
    (lambda h, r: (h + ",extra", [x + ",1" for x in r]), r"unknown \['extra'\]"),
    (lambda h, r: (h, [r[0].replace(r[0].split(",")[4], "abc", 1)] + r[1:]), r"line 2, column 'cy': 'abc' is not a number"),
    (lambda h, r: (h, r[:3] + [r[3].replace(r[3].split(",")[5], "nan", 1)] + r[4:]), r"line 5, column 'cz': value nan"),
    (lambda h, r: (h, r[:1] + [r[1].rsplit(",", 1)[0]] + r[2:]), r"line 3 has 20 fields, the header has 21"),
    (lambda h, r: (h, r[:1] + [r[1].replace(",", ",,", 1)] + r[2:]), r"line 3 has 22 fields"),
    (lambda h, r: (h, ["8.5" + r[0][r[0].index(","):]] + r[1:]), r"line 2, column 'volume_id': 8.5 is not a whole number"),
    (lambda h, r: (h, r[:1] + ["-1" + r[1][r[1].index(","):]] + r[2:]), r"line 3, column 'volume_id': -1 is outside"),
    (lambda h, r: (h, r + [r[5]]), r"duplicate module \(volume \d+, layer \d+, module \d+\) on lines 7 and \d+"),
    (lambda h, r: (h, []), r"has a header but no rows"),
    (lambda h, r: ("", []), r"empty file"),
])
def test_errors_name_file_line_and_column(tmp_path, small_csv, edit, match):
    path, lines = small_csv
    header, rows = edit(lines[0], lines[1:])
    bad = rewrite(tmp_path / "bad.csv", [header] + rows if header else [])
    with pytest.raises(GeometryError, match=match) as info:
        read_detector(bad)
    assert str(bad) in str(info.value)


def test_bad_rotation_names_file(tmp_path, small_csv):
    path, lines = small_csv
    header = lines[0].split(",")
    cells = lines[10].split(",")
    cells[header.index("rot_xu")] = "2.0"  # no longer orthonormal
    bad = rewrite(tmp_path / "rot.csv", lines[:10] + [",".join(cells)] + lines[11:])
    with pytest.raises(GeometryError, match="not a proper rotation") as info:
        read_detector(bad)
    assert str(bad) in str(info.value)


def test_missing_file_and_bad_gzip(tmp_path):
    with pytest.raises(GeometryError, match="nope.csv: file not found"):
        read_detector(tmp_path / "nope.csv")
    junk = tmp_path / "junk.csv.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(GeometryError, match="junk.csv.gz: cannot read"):
        read_detector(junk)


def test_load_detector(tmp_path, generic):
    assert len(load_detector("trackml")) == 18728
    g = load_detector("generic")
    assert_same(g, generic)
    assert load_detector(g) is g
    path = write_detector(generic, tmp_path / "g.csv.gz")
    assert_same(load_detector(path), generic)
    assert_same(load_detector(str(path)), generic)
    with pytest.raises(GeometryError, match="not a built-in detector.*trackml, generic"):
        load_detector("atlas")
