"""What the plots need from one event: hits, truth, reconstructed tracks, seeds, timings.

:class:`EventReco` is built from a pipeline run (:func:`from_reconstruction`) or read back from
an output folder written by ``trackcore reconstruct`` (:func:`load_event_recos`). Matching follows
:mod:`trackcore.metrics.rates`: a track is *matched* when its majority particle (noise never
votes) holds more than half its hits; a particle is *found* when it is the majority particle of a
matched track; *reconstructable* particles are not noise and have at least ``min_hits`` hits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..event import Event, Table

#: GeV / (T mm): pT = KB * B * R.
KB = 0.299792458e-3


@dataclass
class EventReco:
    """One event and its reconstruction. ``track_of_hit``: track index per row of ``event.hits`` (-1: none)."""

    event: Event
    track_of_hit: np.ndarray
    tracks: Table | None = None  # trackcore.output.tracks_table: perigee and covariance per track
    seeds: object | None = None  # trackcore.reco.seeding.Seeds of the first pass
    seed_hits: np.ndarray | None = None  # (N, 3) rows of event.hits of each seed
    timings: dict | None = None  # stage -> seconds


@dataclass
class Matching:
    """Per track (index = track id) and per particle (non-noise, sorted by id) matching flags."""

    track_nhits: np.ndarray
    track_particle: np.ndarray  # majority particle_id (0: none)
    track_matched: np.ndarray
    particle_id: np.ndarray
    particle_nhits: np.ndarray
    particle_found: np.ndarray
    particle_pt: np.ndarray  # GeV, NaN when the particle table lacks it
    particle_eta: np.ndarray


def from_reconstruction(reco) -> EventReco:
    """An :class:`EventReco` from a :class:`trackcore.reco.pipeline.Reconstruction`."""
    from ..output import tracks_table

    seeding = reco.outputs.get("seeding") or {}
    return EventReco(reco.event, reco.track_id_of_hits(), tracks_table(reco.tracks), seeding.get("seeds"),
                     seeding.get("hit_index"), dict(reco.timings))


def reconstruct_for_plots(event: Event, detector="trackml", config=None, backend=None) -> EventReco:
    """Run the pipeline (no plugins) on ``event`` and keep what the plots need."""
    from ..geometry.io import load_detector
    from ..reco.pipeline import reconstruct

    return from_reconstruction(reconstruct(event, load_detector(detector), config, backend=backend))


def track_of_hit_from_submission(event: Event, submission: Table, n_tracks: int) -> np.ndarray:
    """Track index per hit row from a submission; ids >= ``n_tracks`` (unassigned singletons) give -1."""
    hit_id = np.asarray(event.hits["hit_id"])
    order = np.argsort(submission["hit_id"])
    sub_hits = np.asarray(submission["hit_id"])[order]
    pos = np.minimum(np.searchsorted(sub_hits, hit_id), max(len(sub_hits) - 1, 0))
    out = np.full(len(hit_id), -1, np.int64)
    if len(sub_hits):
        known = sub_hits[pos] == hit_id
        tid = np.asarray(submission["track_id"])[order][pos]
        keep = known & (tid >= 0) & (tid < n_tracks)
        out[keep] = tid[keep]
    return out


def load_event_recos(source: str | os.PathLike, reco_dir: str | os.PathLike | None = None, *,
                     max_events: int | None = None, detector="trackml", config=None) -> list[EventReco]:
    """Events of ``source`` (event path, folder or zip) with their reconstruction.

    With ``reco_dir`` (an output folder of ``trackcore reconstruct``), tracks, submissions and
    timings are read from there; otherwise each event is reconstructed now (seeds included).
    """
    from ..distributed import list_event_sources, read_results
    from ..event.io import read_event
    from ..output import read_outputs

    out = []
    for path, ev_arg, name in list_event_sources(source)[:max_events]:
        event = read_event(path, event=ev_arg) if ev_arg is not None else read_event(path)
        if reco_dir is None:
            out.append(reconstruct_for_plots(event, detector, config))
            continue
        tracks, submission = read_outputs(reco_dir, name)
        records = read_results(reco_dir, name)
        timings = records[0]["result"]["timings"] if records else None
        out.append(EventReco(event, track_of_hit_from_submission(event, submission, len(tracks)), tracks,
                             timings=timings))
    if not out:
        raise InputError(f"{source}: no events")
    return out


def eta_of(px, py, pz) -> np.ndarray:
    return np.arcsinh(np.asarray(pz, float) / np.maximum(np.hypot(px, py), 1e-12))


def match(er: EventReco, *, min_hits: int = 4, min_track_hits: int = 3) -> Matching:
    """Matching of ``er``'s tracks to its truth particles (definitions in the module docstring)."""
    event = er.event
    if event.truth is None:
        raise InputError(f"{event.name}: no truth, nothing to match tracks against")
    pid = np.asarray(event.truth_aligned()["particle_id"], np.int64)
    tid = er.track_of_hit
    n_tracks = int(tid.max()) + 1 if len(tid) and tid.max() >= 0 else 0
    if er.tracks is not None:
        n_tracks = max(n_tracks, len(er.tracks))
    on_track = tid >= 0
    track_nhits = np.bincount(tid[on_track], minlength=n_tracks)
    # majority particle per track among non-noise hits (ties: smallest particle_id)
    vote = on_track & (pid != 0)
    pairs, counts = np.unique(np.c_[tid[vote], pid[vote]], axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0])) if len(pairs) else np.zeros(0, int)
    first = np.ones(len(order), bool)
    first[1:] = pairs[order, 0][1:] != pairs[order, 0][:-1]
    best = order[first]
    track_particle = np.zeros(n_tracks, np.int64)
    major = np.zeros(n_tracks, np.int64)
    track_particle[pairs[best, 0]] = pairs[best, 1]
    major[pairs[best, 0]] = counts[best]
    matched = (track_nhits >= min_track_hits) & (track_particle != 0) & (2 * major > track_nhits)
    ids, nhits = np.unique(pid[pid != 0], return_counts=True)
    found = np.isin(ids, track_particle[matched])
    pt, eta = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
    parts = event.particles
    if parts is not None and len(parts):
        order = np.argsort(parts["particle_id"])
        pos = np.minimum(np.searchsorted(np.asarray(parts["particle_id"])[order], ids), len(order) - 1)
        rows = order[pos]
        ok = np.asarray(parts["particle_id"])[rows] == ids
        pt[ok] = np.hypot(parts["px"], parts["py"])[rows[ok]]
        eta[ok] = eta_of(parts["px"], parts["py"], parts["pz"])[rows[ok]]
    keep = nhits >= min_hits
    return Matching(track_nhits, track_particle, matched, ids[keep], nhits[keep], found[keep], pt[keep], eta[keep])


def track_eta_from_hits(er: EventReco, n_tracks: int) -> np.ndarray:
    """Mean pseudorapidity of each track's hits (seen from the origin); NaN for empty tracks."""
    x, y, z = (np.asarray(er.event.hits[c], float) for c in ("x", "y", "z"))
    eta = eta_of(x, y, z)
    tid = er.track_of_hit
    on = tid >= 0
    n = np.bincount(tid[on], minlength=n_tracks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(tid[on], weights=eta[on], minlength=n_tracks) / n


def truth_perigee(vertex: np.ndarray, momentum: np.ndarray, q: np.ndarray, bz: float = 2.0) -> np.ndarray:
    """(N, 5) perigee (d0, z0 mm; phi, theta rad; q/p e/GeV) of helices from ``vertex`` with ``momentum``.

    ACTS convention: the point of closest approach to the z axis is (-d0 sin phi, d0 cos phi, z0),
    phi the momentum direction there; q > 0 turns clockwise seen from +z in Bz > 0 (T).
    """
    pt = np.hypot(momentum[:, 0], momentum[:, 1])
    phi0 = np.arctan2(momentum[:, 1], momentum[:, 0])
    rho = q * pt / (KB * bz)  # signed radius; the circle's centre is vertex + rho (sin phi0, -cos phi0)
    centre = vertex[:, :2] + rho[:, None] * np.c_[np.sin(phi0), -np.cos(phi0)]
    dist = np.linalg.norm(centre, axis=1)
    pca = centre * (1.0 - np.abs(rho) / dist)[:, None]
    rel = pca - centre
    phi = np.arctan2(-rel[:, 0] / rho, rel[:, 1] / rho)
    d0 = pca[:, 1] * np.cos(phi) - pca[:, 0] * np.sin(phi)
    turned = (phi - phi0 + np.pi) % (2 * np.pi) - np.pi
    z0 = vertex[:, 2] - rho * turned * momentum[:, 2] / pt
    return np.c_[d0, z0, phi, np.arctan2(pt, momentum[:, 2]), q / np.linalg.norm(momentum, axis=1)]


def fit_residuals(recos: list[EventReco], *, max_vertex_r: float = 1.0, bz: float = 2.0) -> dict[str, np.ndarray]:
    """Residuals (fit - truth) and pulls of matched, fitted tracks of primary particles.

    Only particles produced within ``max_vertex_r`` mm of the z axis are used: the truth perigee is
    their helix from the production vertex. Returns ``residual`` and ``pull`` (N, 5) in perigee
    order (d0, z0, phi, theta, qop) and ``pt`` (GeV, truth) of each track.
    """
    from ..output import perigee_and_covariance

    res, pulls, pts = [], [], []
    for er in recos:
        if er.tracks is None or er.event.particles is None:
            raise InputError(f"{er.event.name}: residuals need fitted tracks and the particle table")
        m = match(er, min_hits=1)
        perigee, cov = perigee_and_covariance(er.tracks)
        n = len(perigee)
        fitted = np.asarray(er.tracks["fitted"]).astype(bool) if "fitted" in er.tracks else np.ones(n, bool)
        sel = np.flatnonzero(m.track_matched[:n] & fitted)
        parts = er.event.particles
        order = np.argsort(parts["particle_id"])
        rows = order[np.searchsorted(parts["particle_id"], m.track_particle[sel], sorter=order)]
        vertex = np.c_[parts["vx"], parts["vy"], parts["vz"]][rows]
        primary = np.hypot(vertex[:, 0], vertex[:, 1]) < max_vertex_r
        sel, rows, vertex = sel[primary], rows[primary], vertex[primary]
        mom = np.c_[parts["px"], parts["py"], parts["pz"]][rows]
        true = truth_perigee(vertex, mom, np.asarray(parts["q"], float)[rows], bz)
        diff = perigee[sel] - true
        diff[:, 2] = (diff[:, 2] + np.pi) % (2 * np.pi) - np.pi
        sigma = np.sqrt(np.maximum(np.einsum("nii->ni", cov[sel]), 1e-300))
        res.append(diff)
        pulls.append(diff / sigma)
        pts.append(np.hypot(mom[:, 0], mom[:, 1]))
    return {"residual": np.concatenate(res) if res else np.zeros((0, 5)),
            "pull": np.concatenate(pulls) if pulls else np.zeros((0, 5)),
            "pt": np.concatenate(pts) if pts else np.zeros(0)}
