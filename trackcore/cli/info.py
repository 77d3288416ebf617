"""``trackcore info``: what an event holds (hits per volume, particles, noise, cells) or a detector's layout."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ._common import format_table, to_json

if TYPE_CHECKING:
    from ..event import Event
    from ..geometry import Detector

NAME = "info"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="summarise an event or a detector",
        description="Summarise an event (hits per volume, particles, noise hits, cells) and/or a "
                    "detector (modules per volume and layer).")
    p.add_argument("event", nargs="?", metavar="EVENT",
                   help="an event: prefix (dir/event000000001), one of its files, a folder or a zip")
    p.add_argument("--detector", metavar="PATH_OR_NAME",
                   help="a detectors.csv(.gz) file or a built-in detector name (trackml, generic)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    return p


def _volume_kind(volume_id: int) -> str:
    from ..geometry.detector import LONG_STRIP_VOLUMES, PIXEL_VOLUMES, SHORT_STRIP_VOLUMES

    for kind, volumes in (("pixel", PIXEL_VOLUMES), ("short strip", SHORT_STRIP_VOLUMES),
                          ("long strip", LONG_STRIP_VOLUMES)):
        if volume_id in volumes:
            return kind
    return "-"


def summarize_event(event: Event) -> dict[str, Any]:
    """Counts of an event. Entries that need a missing table (cells, particles, truth) are ``None``.

    ``hits_per_particle`` is the mean number of hits of the particles with at least one hit.
    """
    volume = np.asarray(event.hits["volume_id"])
    volumes, counts = np.unique(volume, return_counts=True)
    out: dict[str, Any] = {
        "event": event.name, "n_hits": event.n_hits,
        "n_cells": None if event.cells is None else len(event.cells),
        "n_particles": None if event.particles is None else len(event.particles),
        "n_particles_with_hits": None, "n_noise": None, "noise_fraction": None, "hits_per_particle": None,
    }
    noise_per_volume = None
    if event.truth is not None:
        pid = event.truth_aligned()["particle_id"]
        noise = pid == 0
        n_noise = int(noise.sum())
        n_with_hits = len(np.unique(pid[~noise]))
        out.update(n_noise=n_noise, noise_fraction=n_noise / event.n_hits if event.n_hits else 0.0,
                   n_particles_with_hits=n_with_hits,
                   hits_per_particle=(event.n_hits - n_noise) / n_with_hits if n_with_hits else None)
        noise_per_volume = {int(v): int(np.count_nonzero(noise & (volume == v))) for v in volumes}
    out["volumes"] = [
        {"volume_id": int(v), "kind": _volume_kind(int(v)), "hits": int(c),
         "noise": None if noise_per_volume is None else noise_per_volume[int(v)]}
        for v, c in zip(volumes, counts)
    ]
    return out


def format_event_summary(s: dict[str, Any]) -> str:
    def na(value: Any, why: str) -> str:
        return f"n/a ({why})" if value is None else str(value)

    lines = [f"{s['event']}", f"hits:              {s['n_hits']}",
             f"cells:             {na(s['n_cells'], 'no cells')}"]
    particles = na(s["n_particles"], "no particles table")
    if s["n_particles_with_hits"] is not None:
        particles += f" ({s['n_particles_with_hits']} with at least one hit)"
    lines.append(f"particles:         {particles}")
    if s["n_noise"] is None:
        lines.append("noise hits:        n/a (no truth)")
        lines.append("hits per particle: n/a (no truth)")
    else:
        lines.append(f"noise hits:        {s['n_noise']} ({100 * s['noise_fraction']:.2f}% of hits)")
        hpp = s["hits_per_particle"]
        lines.append("hits per particle: " + ("n/a (no particle has hits)" if hpp is None
                                              else f"{hpp:.2f} (mean over particles with hits)"))
    n = max(s["n_hits"], 1)
    rows = [[v["volume_id"], v["kind"], v["hits"], f"{100 * v['hits'] / n:.1f}%"]
            + ([] if v["noise"] is None else [v["noise"]]) for v in s["volumes"]]
    headers = ["volume", "detector", "hits", "share"] + ([] if s["n_noise"] is None else ["noise"])
    lines += ["", format_table(headers, rows, align="><>>>"[: len(headers)])]
    return "\n".join(lines)


def summarize_detector(detector: Detector) -> dict[str, Any]:
    """Module counts of a detector per volume and per layer (with the layers' r/z extents, mm)."""
    layers = [{"volume_id": lay.volume_id, "layer_id": lay.layer_id, "kind": lay.kind, "modules": lay.n_modules,
               "r_min": lay.r_min, "r_max": lay.r_max, "z_min": lay.z_min, "z_max": lay.z_max}
              for lay in detector.layers]
    volumes: dict[int, dict[str, Any]] = {}
    for lay in layers:
        v = volumes.setdefault(lay["volume_id"], {"volume_id": lay["volume_id"], "layers": 0, "modules": 0})
        v["layers"] += 1
        v["modules"] += lay["modules"]
    return {"detector": detector.name, "n_modules": len(detector), "volumes": list(volumes.values()),
            "layers": layers}


def format_detector_summary(detector: Detector, s: dict[str, Any]) -> str:
    rows = [[v["volume_id"], _volume_kind(v["volume_id"]), v["layers"], v["modules"]] for v in s["volumes"]]
    return "\n".join([detector.summary(), "", format_table(["volume", "detector", "layers", "modules"], rows,
                                                            align="><>>")])


def run(args: argparse.Namespace) -> int:
    if args.event is None and args.detector is None:
        raise InputError("trackcore info needs an EVENT, --detector PATH_OR_NAME, or both "
                         "(see 'trackcore info --help')")
    result: dict[str, Any] = {}
    text = []
    if args.event is not None:
        from ..event.io import read_event

        summary = summarize_event(read_event(args.event))
        summary["source"] = str(args.event)
        result["event"] = summary
        text.append(format_event_summary(summary))
    if args.detector is not None:
        from ..geometry.io import load_detector

        detector = load_detector(args.detector)
        summary = summarize_detector(detector)
        result["detector"] = summary
        text.append(format_detector_summary(detector, summary))
    print(to_json(result) if args.json else "\n\n".join(text))
    return 0
