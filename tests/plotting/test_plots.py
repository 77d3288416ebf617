"""Every plot kind renders to a valid, non-empty PNG or PDF; the plotted numbers agree with the metrics."""
from __future__ import annotations

import numpy as np
import pytest

from trackcore.backends import available_backends
from trackcore.cli.main import main
from trackcore.errors import InputError
from trackcore.plugins import DISABLE_AUTOLOAD_ENV

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")
from trackcore import plotting  # noqa: E402
from trackcore.plotting.data import match  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DISABLE_AUTOLOAD_ENV, "1")
        assert main(["simulate", "--events", "2", "--pileup", "5", "--seed", "11", "-o", str(folder), "-q"]) == 0
        reco = folder / "reco"
        assert main(["reconstruct", str(folder), "-o", str(reco), "-q"]) == 0
    return folder, reco


@pytest.fixture(scope="module")
def recos(events):
    return plotting.load_event_recos(events[0])  # reconstructed now: seeds and timings included


def check_png(path, min_size=(300, 200)) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        pixels = np.asarray(im.convert("L"), float)
    assert pixels.std() > 5, f"{path} looks blank"
    assert (pixels < 128).mean() > 0.005, f"{path} has almost nothing drawn"


def check_pdf(path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:] and len(data) > 5000


def test_event_display(recos, tmp_path):
    er = recos[0]
    check_png(plotting.event_display(er.event, er.track_of_hit, tmp_path / "d.png"))
    check_pdf(plotting.event_display(er.event, er.track_of_hit, tmp_path / "d.pdf"))
    with pytest.raises(InputError, match="track_of_hit has 3 entries"):
        plotting.event_display(er.event, np.zeros(3, int), tmp_path / "x.png")
    with pytest.raises(InputError, match="plots are written as .png or .pdf"):
        plotting.event_display(er.event, er.track_of_hit, tmp_path / "d.jpg")


def test_efficiency_matches_the_metrics(recos, tmp_path):
    from trackcore.metrics import tracking_rates

    for er in recos:
        m = match(er)
        tid = er.track_of_hit.copy()
        free = tid < 0
        tid[free] = len(er.tracks) + np.arange(free.sum())
        rates = tracking_rates(er.event, er.event.hits["hit_id"], tid)
        assert (int(m.particle_found.sum()), len(m.particle_found)) == (rates.n_found, rates.n_reconstructable)
        counted = m.track_nhits >= 3
        assert int((counted & ~m.track_matched).sum()) == rates.n_fake
    check_png(plotting.efficiency(recos, tmp_path / "e.png"))


def test_residuals_and_pulls(recos, tmp_path):
    data = plotting.fit_residuals(recos)
    assert len(data["pull"]) > 100
    widths = [plotting.performance.robust_width(data["pull"][:, i]) for i in range(5)]
    assert all(0.6 < w < 1.6 for w in widths), widths  # the fit's errors describe its residuals
    check_png(plotting.residuals(data, tmp_path / "r.png"))
    check_png(plotting.pulls(data, tmp_path / "p.png"))
    with pytest.raises(InputError, match="nothing to histogram"):
        plotting.pulls({"pull": np.zeros((0, 5))}, tmp_path / "none.png")


def test_seeds_and_timing(recos, tmp_path):
    check_png(plotting.seeds(recos, tmp_path / "s.png"))
    check_png(plotting.timing([r.timings for r in recos], tmp_path / "t.png", n_hits=[len(r.event.hits) for r in recos]))
    with pytest.raises(InputError, match="no timings"):
        plotting.timing([], tmp_path / "t2.png")


@pytest.mark.parametrize("kind, extra", [
    ("display", ["--reco"]), ("efficiency", ["--reco"]), ("residuals", ["--reco"]), ("pulls", ["--reco"]),
    ("seeds", []), ("timing", ["--reco"]),
])
def test_plot_command(events, tmp_path, kind, extra, capsys, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    folder, reco = events
    out = tmp_path / f"{kind}.png"
    args = ["plot", kind, str(folder), "-o", str(out)] + ([extra[0], str(reco)] if extra else [])
    assert main(args) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(out)
    check_png(out)


def test_plot_command_timing_of_an_output_folder_as_pdf(events, tmp_path, capsys):
    out = tmp_path / "timing.pdf"
    assert main(["plot", "timing", str(events[1]), "-o", str(out)]) == 0
    check_pdf(out)


def test_plot_command_errors(events, tmp_path, capsys):
    folder, reco = events
    assert main(["plot", "seeds", str(folder), "--reco", str(reco), "-o", str(tmp_path / "s.png")]) == 2
    assert "seeds are not saved" in capsys.readouterr().err
    assert main(["plot", "display", str(folder / "event000000000"), "--reco", str(tmp_path),
                 "-o", str(tmp_path / "d.png")]) == 2
    assert "no outputs of event000000000" in capsys.readouterr().err
    assert main(["plot", "display", str(folder), "--reco", str(reco), "-o", str(tmp_path / "d.svg")]) == 2
    assert ".png or .pdf" in capsys.readouterr().err
