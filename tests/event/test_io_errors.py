"""Bad input: every error names the file, the line (or row) and the column at fault."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from event_io_helpers import make_event

from trackcore.errors import InputError
from trackcore.event.io import read_event, write_event, write_parquet

HITS_HEADER = "hit_id,x,y,z,volume_id,layer_id,module_id"
HITS_ROWS = ["6,-76.566,-11.3673,-1502.5,7,2,1", "9,-30.1556,-0.067776,-1502.5,7,2,1",
             "17,-94.9298,-8.34303,-1502.5,7,2,1", "30,-100.31,-21.9606,-1502.5,7,2,1"]
TRUTH_HEADER = "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight"


def _truth_rows(ids=(6, 9, 17, 30)):
    return [f"{h},0,1.0,2.0,3.0,0.1,0.2,0.3,0.0" for h in ids]


def _write(tmp_path, part, header, rows, name="event000000001", suffix=".csv"):
    text = "\n".join([header, *rows]) + "\n" if header is not None else ""
    path = tmp_path / f"{name}-{part}{suffix}"
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    return path


def _read_error(tmp_path, **kw) -> str:
    with pytest.raises(InputError) as err:
        read_event(tmp_path / "event000000001", **kw)
    return str(err.value)


def test_missing_column(tmp_path):
    _write(tmp_path, "hits", HITS_HEADER.replace(",z", ""), [r.replace(",-1502.5", "") for r in HITS_ROWS])
    msg = _read_error(tmp_path)
    assert "event000000001-hits.csv" in msg and "missing column 'z'" in msg


@pytest.mark.parametrize("col,bad,problem", [
    (1, "abc", "'abc' is not a number"), (4, "7.5", "'7.5' is not an integer"),
    (5, "", "empty value"), (6, "3000000000", "does not fit in int32"), (2, "1_0", "is not a number")])
def test_non_numeric_value_names_line_and_column(tmp_path, col, bad, problem):
    rows = list(HITS_ROWS)
    fields = rows[2].split(",")
    fields[col] = bad
    rows[2] = ",".join(fields)
    _write(tmp_path, "hits", HITS_HEADER, rows, suffix=".csv.gz")
    msg = _read_error(tmp_path)
    column = HITS_HEADER.split(",")[col]
    assert f"event000000001-hits.csv.gz, line 4, column '{column}'" in msg and problem in msg


def test_line_numbers_count_blank_lines(tmp_path):
    _write(tmp_path, "hits", HITS_HEADER, [HITS_ROWS[0], "", "", HITS_ROWS[1], "6,nan,1,1,7,2,1"])
    msg = _read_error(tmp_path)
    assert "line 6" in msg and "'x'" in msg


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_value(tmp_path, value):
    _write(tmp_path, "hits", HITS_HEADER, HITS_ROWS)
    rows = _truth_rows()
    rows[1] = rows[1].replace("0.2,", f"{value},", 1)
    _write(tmp_path, "truth", TRUTH_HEADER, rows)
    msg = _read_error(tmp_path)
    assert "event000000001-truth.csv, line 3, column 'tpy': non-finite" in msg
    assert read_event(tmp_path / "event000000001", validate=False).truth is not None


def test_duplicate_hit_id(tmp_path):
    _write(tmp_path, "hits", HITS_HEADER, [*HITS_ROWS, HITS_ROWS[1]])
    msg = _read_error(tmp_path)
    assert "event000000001-hits.csv: duplicate hit_id 9 at line 3 and line 6" in msg


def test_truth_hits_mismatch(tmp_path):
    _write(tmp_path, "hits", HITS_HEADER, HITS_ROWS)
    _write(tmp_path, "truth", TRUTH_HEADER, _truth_rows((6, 9, 17)))
    msg = _read_error(tmp_path)
    assert "event000000001-hits.csv, line 5: hit_id 30 has no row in event000000001-truth.csv" in msg
    _write(tmp_path, "truth", TRUTH_HEADER, _truth_rows((6, 9, 17, 30, 31)))
    msg = _read_error(tmp_path)
    assert "event000000001-truth.csv, line 6: hit_id 31 is not in event000000001-hits.csv" in msg


def test_cells_pointing_to_unknown_hits(tmp_path):
    _write(tmp_path, "hits", HITS_HEADER, HITS_ROWS)
    _write(tmp_path, "cells", "hit_id,ch0,ch1,value", ["6,1,2,0.5", "9,1,2,0.5", "12,3,4,0.1"])
    msg = _read_error(tmp_path)
    assert "event000000001-cells.csv, line 4: hit_id 12 is not in event000000001-hits.csv" in msg


def test_truth_particle_not_in_particles(tmp_path):
    _write(tmp_path, "hits", HITS_HEADER, HITS_ROWS)
    rows = _truth_rows()
    rows[3] = rows[3].replace(",0,", ",77,", 1)
    _write(tmp_path, "truth", TRUTH_HEADER, rows)
    _write(tmp_path, "particles", "particle_id,vx,vy,vz,px,py,pz,q,nhits", ["5,0,0,0,1,1,1,1,0"])
    msg = _read_error(tmp_path)
    assert "event000000001-truth.csv, line 5: particle_id 77 is not in event000000001-particles.csv" in msg


@pytest.mark.parametrize("content", ["", "\n", "  \n6,1,2,3,7,2,1\n"])
def test_empty_header(tmp_path, content):
    (tmp_path / "event000000001-hits.csv").write_text(content)
    msg = _read_error(tmp_path)
    assert "event000000001-hits.csv: empty header" in msg


@pytest.mark.parametrize("header,problem", [("hit_id,x,,z", "column 3 has no name"),
                                            ("hit_id,x,x,y,z,volume_id,layer_id,module_id", "'x' twice")])
def test_bad_header(tmp_path, header, problem):
    _write(tmp_path, "hits", header, [])
    assert problem in _read_error(tmp_path)


@pytest.mark.parametrize("extra_col", [False, True])
def test_truncated_and_overlong_rows(tmp_path, extra_col):
    header = HITS_HEADER + (",note" if extra_col else "")
    rows = [r + (",a" if extra_col else "") for r in HITS_ROWS]
    _write(tmp_path, "hits", header, [*rows[:3], rows[3][: rows[3].rfind(",")]])
    msg = _read_error(tmp_path)
    assert "event000000001-hits.csv, line 5: truncated row" in msg
    _write(tmp_path, "hits", header, [rows[0], rows[1] + ",5", *rows[2:]])
    assert "line 3: too many values" in _read_error(tmp_path)


def test_missing_hits_file(tmp_path):
    _write(tmp_path, "truth", TRUTH_HEADER, _truth_rows())
    assert "no hits file" in _read_error(tmp_path)
    with pytest.raises(InputError, match="no files event000000002"):
        read_event(tmp_path / "event000000002")
    with pytest.raises(InputError, match="no such file"):
        read_event(tmp_path / "event000000001-hits.csv")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "event000000001-hits.csv.gz").write_bytes(gzip.compress(b"hit_id,x\n1,2\n")[:-12])
    assert "event000000001-hits.csv.gz: not a valid gzip file" in _read_error(tmp_path)


def test_ambiguous_files(tmp_path):
    ev = make_event(event_id=1)
    write_event(ev, tmp_path)
    write_event(ev, tmp_path / "gz", gzip=True)
    (tmp_path / "gz" / "event000000001-hits.csv.gz").rename(tmp_path / "event000000001-hits.csv.gz")
    assert "both event000000001-hits.csv and event000000001-hits.csv.gz" in _read_error(tmp_path)
    (tmp_path / "event000000001-hits.csv.gz").unlink()
    write_parquet(ev, tmp_path)
    assert "both CSV and Parquet" in _read_error(tmp_path)
    assert read_event(tmp_path / "event000000001", format="parquet").meta["format"] == "parquet"
    assert read_event(tmp_path / "event000000001-hits.csv").meta["format"] == "csv"
    with pytest.raises(InputError, match="contradicts"):
        read_event(tmp_path / "event000000001-hits.csv", format="parquet")


def test_bad_paths(tmp_path):
    with pytest.raises(InputError, match="not an event prefix"):
        read_event(tmp_path / "hits.csv")
    with pytest.raises(InputError, match="does not exist"):
        read_event(tmp_path / "nowhere" / "event000000001")
    write_event(make_event(event_id=1), tmp_path)
    with pytest.raises(InputError, match="only for a dataset folder"):
        read_event(tmp_path / "event000000001", event=1)
    with pytest.raises(InputError, match="expected a name like"):
        read_event(tmp_path, event="evt1")
    with pytest.raises(InputError, match="format="):
        read_event(tmp_path, format="hdf5")


# -- Parquet files get the same checks ---------------------------------------------------------
def _parquet_hits(tmp_path, columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), tmp_path / "event000000001-hits.parquet")


def _good_hits():
    return {"hit_id": np.array([1, 2, 3], np.int64), "x": [1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0],
            "z": [5.0, 6.0, 7.0], "volume_id": np.array([7, 7, 8], np.int32),
            "layer_id": np.array([2, 2, 2], np.int32), "module_id": np.array([1, 2, 3], np.int32)}


@pytest.mark.parametrize("change,problem", [
    (lambda c: c.pop("y"), "missing column 'y'"),
    (lambda c: c.update(volume_id=[7.0, 7.0, 8.0]), "column 'volume_id' must be integer"),
    (lambda c: c.update(module_id=np.array([1, 2, 2**40])), "row 2, column 'module_id'"),
    (lambda c: c.update(x=[1.0, None, 3.0]), "row 1, column 'x': null value"),
    (lambda c: c.update(z=[5.0, 6.0, np.nan]), "row 2, column 'z': non-finite"),
    (lambda c: c.update(hit_id=np.array([1, 2, 1])), "duplicate hit_id 1 at row 0 and row 2"),
    (lambda c: c.update(x=["a", "b", "c"]), "column 'x' must be numeric"),
])
def test_parquet_bad_input(tmp_path, change, problem):
    cols = _good_hits()
    change(cols)
    _parquet_hits(tmp_path, cols)
    msg = _read_error(tmp_path)
    assert "event000000001-hits.parquet" in msg and problem in msg


def test_parquet_not_parquet(tmp_path):
    (tmp_path / "event000000001-hits.parquet").write_bytes(b"hit_id,x\n")
    assert "not a readable Parquet file" in _read_error(tmp_path)


def test_write_rejects_unwritable_strings(tmp_path):
    ev = make_event(event_id=1)
    ev.hits["note"] = np.array(["a,b"] * ev.n_hits)
    with pytest.raises(InputError, match="column 'note' row 0"):
        write_event(ev, tmp_path)
    assert list(tmp_path.iterdir()) == []

