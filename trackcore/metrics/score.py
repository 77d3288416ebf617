"""The TrackML score (Kaggle 2018 definition), vectorised with numpy.

A reconstructed track is matched to its majority particle (the particle with most hits in it; ties
go to the smallest ``particle_id``) when more than half of the track's hits come from that particle
AND more than half of that particle's truth hits are in the track. The score is the summed truth
weight of the matched (track ∩ particle) hits over all matched tracks, divided by the total truth
weight. Truth hits missing from the submission are unassigned: each is a track of its own.

As in the reference trackml-library, noise (``particle_id == 0``) is treated as one more particle
here; its hits weigh 0, so a track matched to "noise" adds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..event.event import Event
from .weights import trackml_weights


def _int_array(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name}: must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"{name}: non-integer value {arr[row]} at row {row}")
        return arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64)
    raise InputError(f"{name}: must hold integers, got dtype {arr.dtype}")


def _duplicates(ids: np.ndarray) -> np.ndarray:
    s = np.sort(ids)
    return np.unique(s[1:][s[1:] == s[:-1]])


@dataclass(frozen=True)
class Assignment:
    """Truth and submission joined per truth hit (internal to the metrics, shared by score and rates).

    ``track`` is a dense track index per truth hit (unassigned hits get indices ``>= n_sub_tracks``,
    one each); ``particle`` a dense particle index into ``particle_ids`` (sorted).
    """

    particle_ids: np.ndarray
    particle: np.ndarray
    particle_nhits: np.ndarray
    track_ids: np.ndarray
    track: np.ndarray
    n_sub_tracks: int
    n_unassigned: int


def assign(truth_hit_id, truth_particle_id, sub_hit_id, sub_track_id, where: str = "submission") -> Assignment:
    """Validate the inputs and join the submission onto the truth hits.

    Raises :class:`InputError` for length mismatches, non-integer ids, duplicate hit ids (truth or
    submission) and submission hit ids that are not in the truth.
    """
    t_hit = _int_array(truth_hit_id, "truth hit_id")
    t_pid = _int_array(truth_particle_id, "truth particle_id")
    s_hit = _int_array(sub_hit_id, f"{where} hit_id")
    s_trk = _int_array(sub_track_id, f"{where} track_id")
    if len(t_hit) != len(t_pid):
        raise InputError(f"truth: hit_id has {len(t_hit)} rows but particle_id has {len(t_pid)}")
    if len(s_hit) != len(s_trk):
        raise InputError(f"{where}: hit_id has {len(s_hit)} rows but track_id has {len(s_trk)}")
    if len(t_hit) == 0:
        raise InputError("truth: no hits to score against")
    dup = _duplicates(t_hit)
    if len(dup):
        raise InputError(f"truth: duplicate hit_id {dup[:5].tolist()}")
    dup = _duplicates(s_hit)
    if len(dup):
        raise InputError(f"{where}: duplicate hit_id {dup[:5].tolist()} (a hit may be in one track only)")

    order = np.argsort(t_hit, kind="stable")
    sorted_hits = t_hit[order]
    pos = np.minimum(np.searchsorted(sorted_hits, s_hit), len(sorted_hits) - 1)
    known = sorted_hits[pos] == s_hit
    if not known.all():
        unknown = s_hit[~known]
        raise InputError(
            f"{where}: {len(unknown)} hit_id(s) not in the truth, e.g. {unknown[:5].tolist()}"
        )
    rows = order[pos]  # truth row of each submission row

    track_ids, sub_track = np.unique(s_trk, return_inverse=True)
    n_sub = len(track_ids)
    track = np.full(len(t_hit), -1, dtype=np.int64)
    track[rows] = sub_track
    missing = track < 0
    n_missing = int(missing.sum())
    track[missing] = n_sub + np.arange(n_missing)

    particle_ids, particle, nhits = np.unique(t_pid, return_inverse=True, return_counts=True)
    return Assignment(particle_ids, particle, nhits, track_ids, track, n_sub, n_missing)


@dataclass(frozen=True)
class TrackMajority:
    """Per track (dense index): its hit count, majority particle index, and hits/weight of that particle in it."""

    nhits: np.ndarray
    particle: np.ndarray
    major_nhits: np.ndarray
    major_weight: np.ndarray


def track_majority(a: Assignment, weight: np.ndarray | None = None, exclude: np.ndarray | None = None) -> TrackMajority:
    """Majority particle of every track (most hits; ties -> smallest particle_id).

    ``exclude`` (bool per truth hit) drops hits from the majority vote but keeps them in the track's
    hit count; a track with no voting hit gets particle index -1.
    """
    n_tracks = a.n_sub_tracks + a.n_unassigned
    n_part = len(a.particle_ids)
    nhits = np.bincount(a.track, minlength=n_tracks)
    keep = slice(None) if exclude is None else ~exclude
    # one int64 key per (track, particle) pair: at most ~2.4e5 x 1.2e5 for a full event, far from overflow
    key = a.track[keep] * n_part + a.particle[keep]
    ukey, inv, count = np.unique(key, return_inverse=True, return_counts=True)
    pair_w = np.bincount(inv, weights=weight[keep], minlength=len(ukey)) if weight is not None else np.zeros(len(ukey))
    pair_track = ukey // n_part
    pair_part = ukey % n_part
    # first row per track after sorting by (track, -count, particle) is the majority pair
    order = np.lexsort((pair_part, -count, pair_track))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair_track[order][1:] != pair_track[order][:-1]
    best = order[first]

    particle = np.full(n_tracks, -1, dtype=np.int64)
    major_nhits = np.zeros(n_tracks, dtype=np.int64)
    major_weight = np.zeros(n_tracks)
    particle[pair_track[best]] = pair_part[best]
    major_nhits[pair_track[best]] = count[best]
    major_weight[pair_track[best]] = pair_w[best]
    return TrackMajority(nhits, particle, major_nhits, major_weight)


def trackml_score(
    truth_hit_id,
    truth_particle_id,
    truth_weight,
    sub_hit_id,
    sub_track_id,
) -> float:
    """TrackML score of a submission (``sub_hit_id`` -> ``sub_track_id``) against truth arrays.

    All arguments are 1-D arrays; weights are finite and non-negative with a positive sum. Returns a
    float in [0, 1]. Raises :class:`InputError` on malformed input (see :func:`assign`).
    """
    a = assign(truth_hit_id, truth_particle_id, sub_hit_id, sub_track_id)
    w = np.asarray(truth_weight)
    if w.ndim != 1 or len(w) != len(a.track):
        raise InputError(f"truth weight: expected {len(a.track)} values (one per truth hit), got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.number):
        raise InputError(f"truth weight: must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64, copy=False)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"truth weight: invalid value {w[row]} at row {row} (weights must be finite and >= 0)")
    total = w.sum()
    if not total > 0:
        raise InputError("truth weight: all weights are 0, the score is undefined")

    m = track_majority(a, w)
    p_nhits = a.particle_nhits[m.particle]
    # integer comparisons: 2*n > N is exactly n/N > 0.5
    good = (2 * m.major_nhits > m.nhits) & (2 * m.major_nhits > p_nhits)
    return float(m.major_weight[good].sum() / total)


def score_event(event: Event, hit_id, track_id) -> float:
    """TrackML score of tracks ``(hit_id -> track_id)`` on an event with truth.

    Uses the truth ``weight`` column when present; otherwise the weights are recomputed with
    :func:`~trackcore.metrics.weights.trackml_weights` from the truth and particle tables.
    """
    if event.truth is None:
        raise InputError(f"{event.name}: no truth, cannot score")
    truth = event.truth
    for col in ("hit_id", "particle_id"):
        if col not in truth:
            raise InputError(f"{event.name} truth: missing column {col!r}")
    weight = truth["weight"] if "weight" in truth else trackml_weights(truth, event.particles)
    return trackml_score(truth["hit_id"], truth["particle_id"], weight, hit_id, track_id)
