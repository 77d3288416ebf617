"""``trackcore info`` on the real TrackML event, on small hand-made events, and on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trackcore.cli.info import format_event_summary, summarize_event
from trackcore.cli.main import main
from trackcore.event import Event, Table
from trackcore.plugins import DISABLE_AUTOLOAD_ENV

# Counted from the files independently with plain numpy: 2923 hits, 394 noise,
# 288 particles of which 247 have hits, 9949 cells.
REAL_HITS_PER_VOLUME = {7: 435, 8: 718, 9: 370, 12: 216, 13: 627, 14: 208, 16: 61, 17: 218, 18: 70}
REAL_MODULES_PER_VOLUME = {7: 756, 8: 2492, 9: 756, 12: 1020, 13: 5796, 14: 1020, 16: 588, 17: 5712, 18: 588}


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")


def _hits(volumes) -> Table:
    n = len(volumes)
    return Table({"hit_id": np.arange(1, n + 1), "x": np.ones(n), "y": np.zeros(n), "z": np.zeros(n),
                  "volume_id": np.asarray(volumes, np.int32), "layer_id": np.full(n, 2, np.int32),
                  "module_id": np.ones(n, np.int32)}, name="hits")


def _truth(hit_ids, particle_ids) -> Table:
    n = len(hit_ids)
    zeros = np.zeros(n)
    return Table({"hit_id": np.asarray(hit_ids, np.int64), "particle_id": np.asarray(particle_ids, np.int64),
                  "tx": zeros, "ty": zeros, "tz": zeros, "tpx": zeros, "tpy": zeros, "tpz": zeros,
                  "weight": zeros}, name="truth")


def test_real_event_counts(shared_trackml, capsys):
    assert main(["info", str(shared_trackml / "event000000001"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["event"]
    assert (s["n_hits"], s["n_noise"], s["n_cells"]) == (2923, 394, 9949)
    assert (s["n_particles"], s["n_particles_with_hits"]) == (288, 247)
    assert s["noise_fraction"] == pytest.approx(394 / 2923)
    assert s["hits_per_particle"] == pytest.approx((2923 - 394) / 247)
    assert {v["volume_id"]: v["hits"] for v in s["volumes"]} == REAL_HITS_PER_VOLUME
    assert sum(v["noise"] for v in s["volumes"]) == 394


def test_real_event_text(shared_trackml, capsys):
    assert main(["info", str(shared_trackml / "event000000001-hits.csv.gz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "hits:              2923" in lines
    assert "particles:         288 (247 with at least one hit)" in lines
    assert "noise hits:        394 (13.48% of hits)" in lines
    assert "hits per particle: 10.24 (mean over particles with hits)" in lines
    row = next(line for line in lines if line.split()[:1] == ["13"])
    assert row.split() == ["13", "short", "strip", "627", "21.5%", "119"]


def test_real_detector(shared_trackml, capsys):
    assert main(["info", "--detector", str(shared_trackml / "detectors.csv.gz"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["detector"]
    assert s["n_modules"] == 18728
    assert {v["volume_id"]: v["modules"] for v in s["volumes"]} == REAL_MODULES_PER_VOLUME
    assert sum(lay["modules"] for lay in s["layers"]) == 18728


def test_summary_of_a_small_event_with_truth():
    hits = _hits([8, 8, 8, 13, 13, 17])
    # Truth listed out of hit order on purpose: the summary must align it by hit_id.
    truth = _truth([6, 5, 4, 3, 2, 1], [0, 7, 7, 0, 9, 9])
    s = summarize_event(Event(hits, truth=truth))
    assert (s["n_hits"], s["n_noise"], s["n_particles_with_hits"]) == (6, 2, 2)
    assert s["hits_per_particle"] == 2.0
    assert s["n_particles"] is None and s["n_cells"] is None
    assert [(v["volume_id"], v["hits"], v["noise"]) for v in s["volumes"]] == [(8, 3, 1), (13, 2, 0), (17, 1, 1)]
    text = format_event_summary(s)
    assert "noise hits:        2 (33.33% of hits)" in text
    assert "particles:         n/a (no particles table) (2 with at least one hit)" in text


def test_summary_without_truth_says_so():
    s = summarize_event(Event(_hits([7, 9])))
    assert s["n_noise"] is None and s["hits_per_particle"] is None
    text = format_event_summary(s)
    assert "noise hits:        n/a (no truth)" in text
    assert "cells:             n/a (no cells)" in text


def test_missing_event_exits_2_with_message(tmp_path, capsys):
    missing = tmp_path / "event000000042"
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"trackcore: error: {missing}: no files event000000042-")
    assert "Traceback" not in err
    assert main(["info", str(missing), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("trackcore: error: ")


def test_missing_detector_and_no_arguments_exit_2(tmp_path, capsys):
    assert main(["info", "--detector", str(tmp_path / "nope.csv")]) == 2
    assert f"trackcore: error: {tmp_path / 'nope.csv'}: no such detector file" in capsys.readouterr().err
    assert main(["info"]) == 2
    assert "trackcore info needs an EVENT" in capsys.readouterr().err
