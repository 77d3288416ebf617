"""Fixtures for the metrics tests: the real TrackML event read with the csv module.

The project's event reader is used when it exists (``trackcore.event.io.read_event``); otherwise a
small csv reader keeps these tests independent of it.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from trackcore.event import Event, Table


def _read_csv_gz(path: Path) -> Table:
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    cols = {}
    for i, name in enumerate(header):
        values = [r[i] for r in body]
        try:
            cols[name] = np.array([int(v) for v in values], dtype=np.int64)
        except ValueError:
            cols[name] = np.array([float(v) for v in values], dtype=np.float64)
    return Table(cols, name=path.name)


@pytest.fixture(scope="session")
def real_event(shared_trackml: Path) -> Event:
    """Truth and particles of event000000001 (hits are not needed by the metrics)."""
    try:
        from trackcore.event.io import read_event  # type: ignore[attr-defined]
    except ImportError:
        read_event = None
    if read_event is not None:
        return read_event(shared_trackml / "event000000001")
    tables = {kind: _read_csv_gz(shared_trackml / f"event000000001-{kind}.csv.gz")
              for kind in ("hits", "particles", "truth")}
    return Event(hits=tables["hits"], particles=tables["particles"], truth=tables["truth"], event_id=1)
