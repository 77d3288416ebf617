"""One page (Markdown and HTML) about a reconstruction run: score table, plots, configuration.

:func:`write_report` reads an output folder of ``trackcore reconstruct`` / :func:`run_dataset`
(``<event>-result.json``, tracks, submissions, ``config.toml``) and, when given the events
(with truth), draws efficiency, residual, pull and event-display plots beside the timing plot.
"""
from __future__ import annotations

import datetime
import html
import logging
import math
import os
from pathlib import Path

from .errors import InputError

__all__ = ["write_report"]

log = logging.getLogger(__name__)

_COLUMNS = [("event", "event"), ("hits", "n_hits"), ("tracks", "n_tracks"), ("score", "score"),
            ("efficiency", "efficiency"), ("eff. pT>1 GeV", "efficiency_pt"), ("fake rate", "fake_rate"),
            ("duplicate rate", "duplicate_rate"), ("time [s]", "total")]


def _row(record: dict) -> list:
    r = record["result"]
    rates = r.get("rates") or {}
    # rates first: their n_tracks counts only tracks of >= 3 hits; the table shows all tracks
    values = {**rates, "event": r["name"], "n_hits": r["n_hits"], "n_tracks": r["n_tracks"], "score": r.get("score"),
              "total": (r.get("timings") or {}).get("total")}
    return [values.get(key) for _, key in _COLUMNS]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and abs(v) >= 100:  # means of hit and track counts
        return f"{v:.1f}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _mean_row(rows: list[list]) -> list:
    out = ["mean"]
    for i in range(1, len(_COLUMNS)):
        vals = [r[i] for r in rows if isinstance(r[i], (int, float)) and not math.isnan(r[i])]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


def _plots(output: Path, records: list[dict], events, plot_dir: Path, max_events: int) -> list[tuple[str, Path]]:
    from . import plotting

    plots = []
    timings = [r["result"]["timings"] for r in records]
    plots.append(("Timing per stage and per event",
                  plotting.timing(timings, plot_dir / "timing.png", n_hits=[r["result"]["n_hits"] for r in records])))
    if events is None:
        return plots
    recos = plotting.load_event_recos(events, output, max_events=max_events)
    if recos[0].event.truth is None:
        log.warning("%s: no truth, so no efficiency, residual or pull plots", events)
    else:
        plots.append(("Efficiency and fake rate vs pT and eta", plotting.efficiency(recos, plot_dir / "efficiency.png")))
        data = plotting.fit_residuals(recos)
        if len(data["residual"]):
            plots.append(("Residuals of the fitted perigee parameters", plotting.residuals(data, plot_dir / "residuals.png")))
            plots.append(("Pulls of the fitted perigee parameters", plotting.pulls(data, plot_dir / "pulls.png")))
    er = recos[0]
    plots.append((f"Event display of {er.event.name}",
                  plotting.event_display(er.event, er.track_of_hit, plot_dir / "display.png")))
    return plots


def write_report(output: str | os.PathLike, events: str | os.PathLike | None = None,
                 report_dir: str | os.PathLike | None = None, *, max_events: int = 5,
                 title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (plots in ``plots/``) for the run in ``output``.

    ``events`` is the run's source (folder, zip or event) for the truth-based plots (the first
    ``max_events`` events are used); ``report_dir`` defaults to ``output/report``. Returns the
    Markdown and HTML paths.
    """
    from . import __version__
    from .config import CONFIG_FILE
    from .distributed import read_results
    from .event.io.atomic import write_bytes

    output = Path(output)
    if not output.is_dir():
        raise InputError(f"{output}: no such output folder")
    records = read_results(output)
    if not records:
        raise InputError(f"{output}: no <event>-result.json; run 'trackcore reconstruct ... -o {output}' first")
    report_dir = Path(report_dir) if report_dir is not None else output / "report"
    plot_dir = report_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    config_path = output / CONFIG_FILE
    config_text = config_path.read_text() if config_path.is_file() else "# no config.toml in the output folder\n"
    rows = [_row(r) for r in records]
    mean = _mean_row(rows)
    plots = _plots(output, records, events, plot_dir, max_events)
    title = title or f"trackcore reconstruction report: {output.name}"
    when = datetime.datetime.now().isoformat(timespec="seconds")
    meta = (f"{len(records)} events from `{output}`; trackcore {__version__}; written {when}. "
            f"Mean TrackML score {_fmt(mean[3])}, mean reconstruction time {_fmt(mean[-1])} s per event.")
    md = [f"# {title}", "", meta, "", "## Scores", "",
          "| " + " | ".join(h for h, _ in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    md += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows + [mean]]
    md += ["", "## Plots", ""]
    for caption, path in plots:
        md += [f"### {caption}", "", f"![{caption}]({path.relative_to(report_dir).as_posix()})", ""]
    md += ["## Configuration", "", f"`{config_path.name}` saved beside the outputs:", "", "```toml",
           config_text.rstrip(), "```", ""]
    md_path, html_path = report_dir / "report.md", report_dir / "report.html"
    write_bytes(md_path, "\n".join(md).encode())
    write_bytes(html_path, _html(title, meta, rows + [mean], plots, report_dir, config_text).encode())
    log.info("report written: %s, %s", md_path, html_path)
    return md_path, html_path


def _html(title: str, meta: str, rows: list[list], plots, report_dir: Path, config_text: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h, _ in _COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    figs = "".join(f"<h3>{e(c)}</h3><img src=\"{e(p.relative_to(report_dir).as_posix())}\" alt=\"{e(c)}\">"
                   for c, p in plots)
    meta_html = e(meta).replace("`", "")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "tr:last-child{font-weight:bold}img{max-width:100%}pre{background:#f4f4f4;padding:1em;overflow:auto}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{style}</style></head><body>\n<h1>{e(title)}</h1><p>{meta_html}</p>\n<h2>Scores</h2>"
            f"<table><tr>{head}</tr>{body}</table>\n<h2>Plots</h2>{figs}\n<h2>Configuration</h2>"
            f"<pre>{e(config_text)}</pre>\n</body></html>\n")
