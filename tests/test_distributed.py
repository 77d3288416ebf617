"""Dask runs of many events: a real LocalCluster of two worker processes against the serial run.

Events are tiny (``trackcore simulate --pileup 5`` scale, ~1.5-7k hits) so the whole file stays
well under 20 s; the cluster is started once per module.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.cli.main import main
from trackcore.config import RunConfig, load_config
from trackcore.distributed import RESULT_SUFFIX, run_dataset
from trackcore.errors import InputError
from trackcore.output import read_table
from trackcore.plugins import DISABLE_AUTOLOAD_ENV
from trackcore.reco.pipeline import ReconstructionConfig

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
distributed = pytest.importorskip("dask.distributed")
N_EVENTS = 3


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    assert main(["simulate", "--events", str(N_EVENTS), "--pileup", "5", "--seed", "3", "-o", str(folder), "-q"]) == 0
    return folder


@pytest.fixture(scope="module")
def client():
    # Workers are spawned processes: the variable must be set before they start.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DISABLE_AUTOLOAD_ENV, "1")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = distributed.Client(cluster)
        yield client
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def serial(events, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    run = run_dataset(events, "trackml", out, workers=0, plugins=False)
    assert [o.status for o in run.outcomes] == ["done"] * N_EVENTS
    return out, run


def _outputs(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(RESULT_SUFFIX) and p.is_file())


def test_two_workers_equal_the_serial_run(events, serial, client, tmp_path):
    serial_out, serial_run = serial
    run = run_dataset(events, "trackml", tmp_path, client=client, plugins=False)
    assert run.workers == 2 and not run.failed
    assert [o.event for o in run.outcomes] == [f"event00000000{i}" for i in range(N_EVENTS)]
    assert len({o.worker for o in run.outcomes}) == 2  # both processes did work
    assert _outputs(tmp_path) == _outputs(serial_out)
    for name in _outputs(serial_out):
        if name != "config.toml":
            assert (tmp_path / name).read_bytes() == (serial_out / name).read_bytes(), name
    for a, b in zip(run.results, serial_run.results):
        assert (a.name, a.n_tracks, a.score, a.rates) == (b.name, b.n_tracks, b.score, b.rates)
        assert a.n_tracks > 20 and 0.5 < a.score <= 1.0


def test_rerun_skips_done_events_and_redoes_changed_configuration(events, client, tmp_path):
    first = run_dataset(events, "trackml", tmp_path, client=client, plugins=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = run_dataset(events, "trackml", tmp_path, client=client, plugins=False)
    assert [o.status for o in again.outcomes] == ["skipped"] * N_EVENTS
    assert [r.score for r in again.results] == [r.score for r in first.results]
    assert all(stamps[p.name] == p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.name != "config.toml")
    # An event with a missing output is redone; so is everything after a configuration change.
    (tmp_path / "event000000001-tracks.csv").unlink()
    partial = run_dataset(events, "trackml", tmp_path, client=client, plugins=False)
    assert [o.status for o in partial.outcomes] == ["skipped", "done", "skipped"]
    changed = ReconstructionConfig(extra_passes=())
    redo = run_dataset(events, "trackml", tmp_path, client=client, config=changed, plugins=False)
    assert [o.status for o in redo.outcomes] == ["done"] * N_EVENTS
    assert load_config(tmp_path / "config.toml").reconstruction.extra_passes == ()


def test_a_failing_event_is_reported_and_the_others_finish(events, client, tmp_path):
    src = tmp_path / "events"
    shutil.copytree(events, src)
    hits = src / "event000000001-hits.csv"
    lines = hits.read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",not-a-number" + "".join("," + v for v in lines[5].split(",")[2:])
    hits.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    run = run_dataset(src, "trackml", out, client=client, plugins=False)
    assert [o.status for o in run.outcomes] == ["done", "failed", "done"]
    failed = run.failed[0]
    assert failed.event == "event000000001" and "InputError" in failed.error and "hits.csv" in failed.error
    assert not (out / f"event000000001{RESULT_SUFFIX}").exists()
    assert (out / f"event000000002{RESULT_SUFFIX}").exists()


def test_detector_object_is_shipped_to_the_workers(events, serial, client, tmp_path):
    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.reco.pipeline import reconstruct
    from trackcore.event.io import read_event

    det = trackml_like_detector()
    reconstruct(read_event(events / "event000000000"), det)  # caches unpicklable compiled geometry on det
    run = run_dataset(events / "event000000000-hits.csv", det, tmp_path, client=client, plugins=False)
    assert [o.status for o in run.outcomes] == ["done"]
    serial_out = serial[0]
    assert (tmp_path / "event000000000-submission.csv").read_bytes() == \
        (serial_out / "event000000000-submission.csv").read_bytes()


def test_cli_on_a_scheduler_with_config_and_root_output(events, serial, client, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nformats = ["csv", "root"]\n[reconstruction.ckf]\nchi2_max = 15.0\n')
    out = tmp_path / "out"
    assert main(["reconstruct", str(events), "-o", str(out), "--scheduler", client.scheduler.address,
                 "--config", str(cfg), "--no-plugins", "--json", "-q"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in results] == [f"event00000000{i}" for i in range(N_EVENTS)]
    saved = load_config(out / "config.toml")
    assert saved.formats == ("csv", "root") and saved.reconstruction.ckf.chi2_max == 15.0
    serial_out = serial[0]
    for i in range(N_EVENTS):
        name = f"event00000000{i}"
        sub = read_table(out / f"{name}-reco.root", "submission")
        ref = read_table(serial_out / f"{name}-submission.csv")
        assert np.array_equal(sub["hit_id"], ref["hit_id"]) and np.array_equal(sub["track_id"], ref["track_id"])
        assert (out / f"{name}-tracks.csv").read_bytes() == (serial_out / f"{name}-tracks.csv").read_bytes()


def test_cli_workers_starts_a_local_cluster(events, serial, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    out = tmp_path / "out"
    assert main(["reconstruct", str(events / "event000000002"), "-o", str(out), "--workers", "2", "-q"]) == 0
    assert "event000000002" in capsys.readouterr().out
    assert (out / "event000000002-submission.csv").read_bytes() == \
        (serial[0] / "event000000002-submission.csv").read_bytes()
    # the second time nothing is left to do: no cluster is started, the event is skipped
    assert main(["reconstruct", str(events / "event000000002"), "-o", str(out), "--workers", "2"]) == 0
    assert "1 skipped" in capsys.readouterr().err


def test_cli_reports_failed_events_with_exit_status_1(events, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    src = tmp_path / "events"
    src.mkdir()
    for p in events.glob("event000000000-*"):
        shutil.copy(p, src / p.name)
    (src / "event000000000-hits.csv").write_text("hit_id,x,y\n1,2,3\n")
    assert main(["reconstruct", str(src), "-o", str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "event000000000: FAILED: InputError" in err and "missing column" in err


def test_bad_arguments(events, tmp_path):
    with pytest.raises(InputError, match="workers must be >= 1"):
        run_dataset(events, "trackml", tmp_path / "a", workers=-1)
    with pytest.raises(InputError, match="run.formats"):
        run_dataset(events, "trackml", tmp_path / "b", config=RunConfig(formats=("hdf5",)))
    with pytest.raises(InputError, match="not a dataset folder"):
        run_dataset(tmp_path / "nothing.txt", "trackml", tmp_path / "c", workers=0)
    with pytest.raises(InputError, match="config must be"):
        run_dataset(events, "trackml", tmp_path / "d", config=42, workers=0)
    assert not os.path.exists(tmp_path / "c" / "config.toml")


def test_dask_events_get_one_worker_thread_each(events, client, tmp_path, monkeypatch):
    """The cluster's processes already share the cores: an event there runs its seeding and CKF on
    one thread unless the configuration names a count; the serial run keeps one per CPU."""
    import trackcore.distributed as dist

    seen = []
    real = dist._run_on_dask
    monkeypatch.setattr(dist, "_run_on_dask", lambda client, todo, det, run, *a: (seen.append(run.threads),
                                                                                   real(client, todo, det, run, *a)))
    run_dataset(events, "trackml", tmp_path / "auto", client=client, plugins=False)
    run_dataset(events, "trackml", tmp_path / "three", client=client, plugins=False, config=RunConfig(threads=3))
    assert seen == [1, 3]
