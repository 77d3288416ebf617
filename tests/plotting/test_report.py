"""``trackcore report``: one Markdown and HTML page with the score table, the plots and the configuration."""
from __future__ import annotations

import html.parser
import json

import pytest

from trackcore.backends import available_backends
from trackcore.cli.main import main
from trackcore.errors import InputError
from trackcore.plugins import DISABLE_AUTOLOAD_ENV

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    events, reco = folder / "events", folder / "reco"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DISABLE_AUTOLOAD_ENV, "1")
        assert main(["simulate", "--events", "2", "--pileup", "3", "--seed", "5", "-o", str(events), "-q"]) == 0
        assert main(["reconstruct", str(events), "-o", str(reco), "--format", "parquet", "-q"]) == 0
    return events, reco


class _Collect(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.cells = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self.tags and self.tags[-1] == "td":
            self.cells.append(data)


def test_report_page(run, tmp_path, capsys):
    events, reco = run
    out = tmp_path / "page"
    assert main(["report", str(reco), "--events", str(events), "-o", str(out), "-q"]) == 0
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    scores = [json.loads(p.read_text())["result"]["score"] for p in sorted(reco.glob("*-result.json"))]
    for name, score in zip(["event000000000", "event000000001"], scores):
        assert f"| {name} |" in md and f"{score:.4f}" in md
    assert "| mean |" in md and "[run]" in md and 'formats = ["parquet"]' in md
    parser = _Collect()
    parser.feed(page)
    assert {"table", "img", "pre"} <= set(parser.tags)
    assert "event000000001" in parser.cells and "mean" in parser.cells
    assert sorted(parser.images) == sorted(f"plots/{k}.png" for k in
                                           ("timing", "efficiency", "residuals", "pulls", "display"))
    for src in parser.images:
        assert f"]({src})" in md
        data = (out / src).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 10_000


def test_report_without_events_has_the_timing_plot_only(run, tmp_path):
    from trackcore.report import write_report

    md, page = write_report(run[1], report_dir=tmp_path)
    assert "plots/timing.png" in md.read_text() and "plots/efficiency" not in md.read_text()
    assert page.is_file()


def test_report_errors(tmp_path, capsys):
    from trackcore.report import write_report

    with pytest.raises(InputError, match="no such output folder"):
        write_report(tmp_path / "none")
    with pytest.raises(InputError, match="no <event>-result.json"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path), "--max-events", "0"]) == 2
