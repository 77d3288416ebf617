"""The CSV reader's pyarrow path (multi-threaded, for files whose every column is typed) gives what the
np.loadtxt path gives: the same columns, dtypes and values, and on text it refuses, the loadtxt
path's own answer (a value or an error naming the line and column)."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event.io import read_event, trackml_csv, write_event

HITS = {"hit_id": np.int64, "x": np.float64, "volume_id": np.int32}


def _without_arrow(monkeypatch, fn, *args):
    with monkeypatch.context() as mp:
        mp.setattr(trackml_csv, "_parse_arrow", lambda *a: None)
        return fn(*args)


def _outcome(fn, *args):
    try:
        t = fn(*args).table
        return {c: (t[c].dtype.str, list(map(repr, t[c].tolist()))) for c in t.columns}  # repr: nan == nan
    except InputError as exc:
        return f"InputError: {exc}"


@pytest.mark.parametrize("body", [
    "1,2.5,7\n2,-3e2,8\n",                 # plain
    "1,nan,7\n2,inf,8\n3,-inf,9\n",        # non-finite floats
    "1,1e400,7\n",                         # overflows to inf
    "+1,+.5,007\n",                        # signs, leading zeros
    "1,2.5,7\n\n2,3.5,8\n",                # an empty line
    "1,2.5,7",                             # no final newline
    "1, 2.5,7\n",                          # a space before a number
    "1,2.5,7.0\n",                         # a float in an int column
    "9223372036854775808,1,1\n",           # beyond int64
    "1,,7\n",                              # an empty value
    '"1",2.5,7\n',                         # a quoted value
    "1,2.5\n",                             # a short row
    "1,2.5,7,9\n",                         # a long row
    "1,NaN,7\n2,NA,8\n",                   # null markers are not numbers
    "1,0x10,7\n",                          # hexadecimal float
    "0x10,1,7\n",                          # hexadecimal integer: pyarrow reads it, np.loadtxt refuses it
    "1,1_000.5,7\n",                       # digit separators
])
def test_fast_path_agrees_with_loadtxt(monkeypatch, body):
    text = "hit_id,x,volume_id\n" + body
    fast = _outcome(trackml_csv.parse_csv, text, "f.csv", HITS)
    slow = _without_arrow(monkeypatch, _outcome, trackml_csv.parse_csv, text, "f.csv", HITS)
    assert fast == slow


def test_fast_path_is_taken_and_reads_an_event_as_loadtxt_does(monkeypatch, tmp_path):
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.sim.particles import minimum_bias
    from trackcore.sim.simulate import simulate_event

    det = trackml_like_detector()
    write_event(simulate_event(det, minimum_bias(np.random.default_rng(3), pileup=5), seed=3), tmp_path)
    calls = []
    real = trackml_csv._parse_arrow
    monkeypatch.setattr(trackml_csv, "_parse_arrow", lambda *a: calls.append(1) or real(*a))
    fast = read_event(tmp_path / "event000000000")
    assert len(calls) >= 3  # hits, cells and truth have no untyped column
    slow = _without_arrow(monkeypatch, read_event, tmp_path / "event000000000")
    for part in ("hits", "cells", "particles", "truth"):
        a, b = getattr(fast, part), getattr(slow, part)
        assert list(a.columns) == list(b.columns)
        for c in a.columns:
            assert a[c].dtype == b[c].dtype, (part, c)
            np.testing.assert_array_equal(a[c], b[c], err_msg=f"{part}.{c}")


#: Values a TrackML file should never hold but a damaged or hand-edited one may.
ODD_VALUES = ["1", "-2", "+3", "007", "2.5", "-3e2", "1e400", "nan", "NaN", "inf", "-inf", "Infinity", "", " ", " 5",
              "5 ", "\t5", "5.", ".5", "1_000", "0x10", "0X1F", "0b101", "1e", "e5", "--1", "9223372036854775808",
              "2147483648", '"5"', "NA", "null", "true", "5\x00", "\u00a05", "\uff15", "4.9e-324", "-.5", "+.e1", "1 2",
              "-", ".", "5.5.5", "1e-310", "123456789012345678901234567890", "0000000000000000000001"]


def test_fast_path_agrees_with_loadtxt_on_random_odd_text(monkeypatch):
    """A differential fuzz: 600 small files mixing odd values, row widths and empty lines. (A longer run,
    4 x 4000 files, found pyarrow reading hexadecimal integers, now sent to np.loadtxt; then no difference.)"""
    import random

    rng = random.Random(7)
    for trial in range(600):
        rows = [",".join(rng.choice(ODD_VALUES) if rng.random() < 0.5 else rng.choice(["1", "2", "3.5", "-7"])
                         for _ in range(rng.choice([3, 3, 3, 2, 4]))) for _ in range(rng.randint(1, 4))]
        text = "hit_id,x,volume_id\n" + rng.choice(["\n", "\n\n"]).join(rows) + rng.choice(["\n", ""])
        fast = _outcome(trackml_csv.parse_csv, text, "f.csv", HITS)
        slow = _without_arrow(monkeypatch, _outcome, trackml_csv.parse_csv, text, "f.csv", HITS)
        assert fast == slow, (trial, text)


# -- writing: the compiled formatting gives the bytes of the Python one ---------------------------
needs_core = pytest.mark.skipif(not __import__("trackcore._corelib", fromlist=["x"]).core_available(),
                                reason="compiled core not built")


@needs_core
def test_compiled_float_repr_is_pythons_repr():
    """Random bit patterns (every exponent, subnormals, both signs), physics-like values and the
    layout's edges (where repr switches to exponent notation, adds '.0', pads the exponent)."""
    from trackcore._corelib import core

    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63, 60_000, dtype=np.int64).view(np.uint64) | (
        rng.integers(0, 2, 60_000).astype(np.uint64) << np.uint64(63))
    values = np.concatenate([bits.view(np.float64), rng.normal(0, 1e3, 20_000),
                             rng.uniform(-1, 1, 20_000) * 10.0 ** rng.integers(-30, 30, 20_000)]).tolist()
    values += [0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e15, 9.999999999999999e15, 1e-4, 1e-5, 5e-324, 1e22,
               1.7976931348623157e308, 100.0, 123456789.0, 0.1, 1.5e-7, 1e-310, 0.30000000000000004, -2.5e-100]
    wrong = [v for v in values if core().float_repr(v) != repr(v)]
    assert not wrong, wrong[:5]


@needs_core
def test_compiled_csv_rows_are_the_python_ones(monkeypatch):
    from trackcore.event.table import Table

    rng = np.random.default_rng(12)
    n = 500
    table = Table({"f64": rng.normal(size=n) * 10.0 ** rng.integers(-20, 20, n), "f32": rng.normal(size=n).astype(np.float32),
                   "i32": rng.integers(-2**31, 2**31, n).astype(np.int32), "i64": rng.integers(-2**62, 2**62, n),
                   "u64": rng.integers(0, 2**62, n).astype(np.uint64), "flag": rng.random(n) < 0.5,
                   "nan": np.where(rng.random(n) < 0.3, np.nan, 1.0)}, name="t")
    fast = trackml_csv.format_csv(table)
    assert trackml_csv._format_rows_compiled(table) is not None  # every column kind above is compiled
    slow = _without_compiled(monkeypatch, trackml_csv.format_csv, table)
    assert fast == slow
    # Kinds left to the Python formatting: text, and unsigned integers beyond int64.
    for odd in ({"s": np.array(["a", "b"]), "x": np.array([1.0, 2.0])}, {"u": np.array([2**64 - 1, 1], np.uint64)}):
        t = Table(odd, name="t")
        assert trackml_csv._format_rows_compiled(t) is None
        assert trackml_csv.format_csv(t) == _without_compiled(monkeypatch, trackml_csv.format_csv, t)
    empty = Table({"a": np.zeros(0), "b": np.zeros(0, np.int64)}, name="t")
    assert trackml_csv.format_csv(empty) == b"a,b\n"


def _without_compiled(monkeypatch, fn, *args):
    with monkeypatch.context() as mp:
        mp.setattr(trackml_csv, "_format_rows_compiled", lambda table: None)
        return fn(*args)


@needs_core
@pytest.mark.parametrize("bad, match", [([[1.0, 2.0]], "numpy arrays"), ([np.zeros((2, 2))], "1-D"),
                                        ([np.zeros(3), np.zeros(2)], "differ in length"),
                                        ([np.zeros(3, np.float32)], "float64 or int64"),
                                        ([np.zeros(6)[::2]], "C-contiguous"), ([None], "numpy arrays")])
def test_compiled_csv_rows_refuse_bad_columns(bad, match):
    """Direct ``_core`` callers get an error, not a read of memory that is not an array."""
    from trackcore._corelib import core

    with pytest.raises(ValueError, match=match):
        core().format_csv_rows(bad)


def test_event_validation_helpers_match_numpy_set_operations():
    """Event.validate's sorted fast paths give np.sort's and np.setdiff1d's answers (so the messages
    naming unknown or duplicate ids are unchanged), sorted input or not."""
    from trackcore.event.event import _not_in, _sorted

    rng = np.random.default_rng(13)
    for _ in range(300):
        ref = np.unique(rng.integers(0, 200, rng.integers(0, 50)))
        values = rng.integers(-5, 210, rng.integers(0, 80))
        np.testing.assert_array_equal(_not_in(values, ref), np.setdiff1d(values, ref))
        ids = rng.integers(0, 100, rng.integers(0, 30))
        for arr in (ids, np.sort(ids)):
            np.testing.assert_array_equal(_sorted(arr), np.sort(arr))
