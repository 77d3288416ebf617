"""``trackcore plot``: event displays and performance plots as PNG or PDF."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "plot"
KINDS = ("display", "efficiency", "residuals", "pulls", "seeds", "timing")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="event display, efficiency/fake rate, residuals, pulls, seeding and timing plots",
        description="Draw one plot to OUTPUT (.png or .pdf by suffix). SOURCE is an event (prefix or file), "
                    "a dataset folder or a .zip; the events are reconstructed now unless --reco names the "
                    "output folder of 'trackcore reconstruct' holding their tracks and submissions. "
                    "'timing' also takes such an output folder alone as SOURCE (its <event>-result.json). "
                    "display: x-y and r-z views of hits coloured by track with truth overlaid; efficiency: "
                    "efficiency and fake rate vs pT and eta; residuals / pulls: fitted perigee parameters "
                    "against truth; seeds: seeding summary (needs a reconstruction run now); timing: per-stage "
                    "and per-event wall time.")
    p.add_argument("kind", choices=KINDS, help="the plot")
    p.add_argument("source", help="event, dataset folder or .zip (timing: also an output folder)")
    p.add_argument("--reco", type=Path, default=None, help="output folder of 'trackcore reconstruct' for SOURCE")
    p.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: KIND.png)")
    p.add_argument("--max-events", type=int, default=None, metavar="N", help="use at most N events")
    p.add_argument("--detector", default="trackml", help="detector for reconstructing now (default trackml)")
    p.add_argument("--config", type=Path, default=None, help="TOML configuration for reconstructing now")
    p.add_argument("--max-tracks", type=int, default=300, help="display: tracks coloured (default 300)")
    p.add_argument("--truth-min-pt", type=float, default=1.0,
                   help="display: overlay truth particles above this pT in GeV (default 1)")
    p.set_defaults(func=run)
    return p


def make_plot(kind: str, source: str, output: Path, *, reco: Path | None = None, max_events: int | None = None,
              detector: str = "trackml", config: Path | None = None, max_tracks: int = 300,
              truth_min_pt: float = 1.0) -> Path:
    """Draw plot ``kind`` of ``source`` to ``output`` (the command's work, callable from Python)."""
    from .. import plotting
    from ..distributed import RESULT_SUFFIX, read_results
    from ..errors import InputError

    if kind not in KINDS:
        raise InputError(f"unknown plot {kind!r}: choose from {', '.join(KINDS)}")
    if max_events is not None and max_events < 1:
        raise InputError(f"--max-events must be >= 1, got {max_events}")
    src = Path(source)
    if kind == "timing" and reco is None and src.is_dir() and any(src.glob(f"event*{RESULT_SUFFIX}")):
        records = read_results(src)[:max_events]
        return plotting.timing([r["result"]["timings"] for r in records], output,
                               n_hits=[r["result"]["n_hits"] for r in records])
    if kind == "seeds" and reco is not None:
        raise InputError("seeds are not saved in an output folder: leave out --reco to reconstruct now")
    recon_config = None
    if config is not None:
        from ..config import load_config

        recon_config = load_config(config).reconstruction
    recos = plotting.load_event_recos(source, reco, max_events=max_events if kind != "display" else 1,
                                      detector=detector, config=recon_config)
    if kind == "display":
        er = recos[0]
        return plotting.event_display(er.event, er.track_of_hit, output, max_tracks=max_tracks,
                                      truth_min_pt=truth_min_pt)
    if kind == "efficiency":
        return plotting.efficiency(recos, output)
    if kind in ("residuals", "pulls"):
        return getattr(plotting, kind)(plotting.fit_residuals(recos), output)
    if kind == "seeds":
        return plotting.seeds(recos, output)
    missing = [r.event.name for r in recos if not r.timings]
    if missing:
        raise InputError(f"no timings for {missing[:3]} in {reco} (no <event>-result.json there)")
    return plotting.timing([r.timings for r in recos], output, n_hits=[len(r.event.hits) for r in recos])


def run(args: argparse.Namespace) -> int:
    output = args.output or Path(f"{args.kind}.png")
    path = make_plot(args.kind, args.source, output, reco=args.reco, max_events=args.max_events,
                     detector=args.detector, config=args.config, max_tracks=args.max_tracks,
                     truth_min_pt=args.truth_min_pt)
    print(path)
    return 0
