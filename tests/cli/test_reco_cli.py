"""The reconstruction commands end to end: simulate -> reconstruct -> score, and the demo."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.cli.main import main
from trackcore.event.io import read_event, read_submission, write_submission
from trackcore.plugins import DISABLE_AUTOLOAD_ENV

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
EVENT_FILES = ("hits", "cells", "particles", "truth")


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")


def test_simulate_reconstruct_score(tmp_path, capsys):
    sim, reco = tmp_path / "sim", tmp_path / "reco"
    assert main(["simulate", "--events", "1", "--pileup", "5", "--output", str(sim), "--quiet"]) == 0
    for kind in EVENT_FILES:
        assert (sim / f"event000000000-{kind}.csv").stat().st_size > 0
    event = read_event(sim / "event000000000")
    assert len(event.hits) > 500 and event.truth is not None
    capsys.readouterr()

    assert main(["reconstruct", str(sim), "--output", str(reco), "--quiet", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 1 and results[0]["n_hits"] == len(event.hits) and results[0]["n_tracks"] > 10
    assert set(results[0]["timings"]) >= {"measurements", "spacepoints", "seeding", "track_finding", "total"}
    from trackcore.threads import default_threads

    assert results[0]["threads"] == default_threads()
    assert main(["reconstruct", str(sim), "--output", str(tmp_path / "one"), "--quiet", "--threads", "1"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(", 1 thread]")
    sub = read_submission(reco / "event000000000-submission.csv")
    assert np.array_equal(np.sort(sub["hit_id"]), np.sort(event.hits["hit_id"]))
    tracks_csv = (reco / "event000000000-tracks.csv").read_text().splitlines()
    assert tracks_csv[0].startswith("track_id,d0,z0,phi,theta,qop") and len(tracks_csv) == results[0]["n_tracks"] + 1

    assert main(["score", str(sim / "event000000000"), "--output", str(reco), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["score"] == pytest.approx(results[0]["score"])
    assert 0.2 < scored["score"] < 1.0  # measured 0.45: soft particles are not seeded

    # The truth itself as a submission scores exactly 1.
    perfect = tmp_path / "perfect.csv"
    write_submission(perfect, event.truth["hit_id"], event.truth["particle_id"])
    assert main(["score", str(sim / "event000000000"), str(perfect), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(1.0, abs=1e-12)


def test_score_without_truth_is_a_clean_error(tmp_path, capsys):
    sim = tmp_path / "sim"
    assert main(["simulate", "--events", "1", "--pileup", "1", "--output", str(sim), "--quiet"]) == 0
    (sim / "event000000000-truth.csv").unlink()
    capsys.readouterr()
    assert main(["score", str(sim / "event000000000"), str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "no truth file" in err and "Traceback" not in err


def test_demo_writes_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    assert main(["demo", "--pileup", "5", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "score=" in text and "plots skipped" not in text
    for name in ("display", "efficiency"):
        png = out / f"event000000000-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "reco" / "event000000000-submission.csv").exists()
    assert (out / "events" / "event000000000-hits.csv").exists()
