"""Tracking efficiency, fake rate and duplicate rate of a reconstruction against truth.

Definitions (all counts are integers; a rate with an empty denominator is NaN):

* **track**: a submitted track with at least ``min_track_hits`` hits (default 3); shorter ones are
  counted in ``n_short_tracks`` and otherwise ignored. Truth hits absent from the submission are
  unassigned, never tracks.
* **majority particle** of a track: the particle with most hits in it (ties -> smallest
  ``particle_id``). Noise (``particle_id == 0``) never counts as a particle: noise hits do not vote
  but still count in the track's hit total, so noise lowers purity.
* **matched track**: its majority particle holds more than 50% of the track's hits.
  **Technically matched** ("double majority", TrackML/ACTS): in addition, the track holds more than
  50% of that particle's truth hits.
* **reconstructable particle**: not noise, with at least ``min_hits`` truth hits.
* **efficiency**: fraction of reconstructable particles that are the majority particle of at least
  one matched track; ``technical_efficiency`` the same with technically matched tracks. The ``_pt``
  variants restrict the particles to pT > ``min_pt`` (GeV).
* **fake rate**: fraction of tracks that are not matched.
* **duplicate rate**: fraction of matched tracks whose particle has another matched track that
  came first, i.e. ``(n_matched - n_distinct_matched_particles) / n_matched``: every particle
  with ``k`` matched tracks adds ``k - 1`` duplicates.

Particle pT (GeV) comes from the particle table (``px``, ``py``) when the event has one, else from
the truth momentum (``tpx``, ``tpy``) at the particle's innermost hit (smallest ``hypot(tx, ty)``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from ..errors import InputError
from ..event.event import Event
from ..event.table import Table
from .score import assign, track_majority

NOISE_PARTICLE_ID = 0


@dataclass(frozen=True)
class TrackingRates:
    """Efficiencies, fake and duplicate rates with the counts behind them (see the module docstring)."""

    efficiency: float
    efficiency_pt: float
    technical_efficiency: float
    technical_efficiency_pt: float
    fake_rate: float
    duplicate_rate: float
    n_particles: int
    n_reconstructable: int
    n_reconstructable_pt: int
    n_found: int
    n_found_pt: int
    n_found_technical: int
    n_found_technical_pt: int
    n_tracks: int
    n_short_tracks: int
    n_matched: int
    n_technical: int
    n_fake: int
    n_duplicate: int
    n_hits: int
    n_noise_hits: int
    n_unassigned_hits: int
    min_pt: float
    min_hits: int
    min_track_hits: int

    def as_dict(self) -> dict:
        """All fields as a plain ``dict`` (JSON-friendly: Python ints and floats)."""
        return asdict(self)

    def format_table(self) -> str:
        """A plain-text table for the command line."""
        def rate(value: float, num: int, den: int) -> str:
            text = "n/a" if np.isnan(value) else f"{100.0 * value:7.2f} %"
            return f"{text:>10}  ({num}/{den})"

        pt = f"pT > {self.min_pt:g} GeV"
        rows = [
            ("efficiency", rate(self.efficiency, self.n_found, self.n_reconstructable)),
            (f"efficiency, {pt}", rate(self.efficiency_pt, self.n_found_pt, self.n_reconstructable_pt)),
            ("technical efficiency", rate(self.technical_efficiency, self.n_found_technical, self.n_reconstructable)),
            (f"technical efficiency, {pt}",
             rate(self.technical_efficiency_pt, self.n_found_technical_pt, self.n_reconstructable_pt)),
            ("fake rate", rate(self.fake_rate, self.n_fake, self.n_tracks)),
            ("duplicate rate", rate(self.duplicate_rate, self.n_duplicate, self.n_matched)),
        ]
        counts = [
            ("particles (with hits)", self.n_particles),
            (f"reconstructable (>= {self.min_hits} hits)", self.n_reconstructable),
            (f"tracks (>= {self.min_track_hits} hits)", self.n_tracks),
            ("short tracks (ignored)", self.n_short_tracks),
            ("matched tracks", self.n_matched),
            ("hits / noise / unassigned", f"{self.n_hits} / {self.n_noise_hits} / {self.n_unassigned_hits}"),
        ]
        width = max(len(k) for k, _ in rows + counts)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines.append("-" * (width + 26))
        lines += [f"{k:<{width}}  {v:>10}" for k, v in counts]
        return "\n".join(lines)


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def _particle_pt(source: Table | Mapping, particles: Table | None, particle_ids: np.ndarray,
                 hit_particle: np.ndarray) -> np.ndarray:
    """pT (GeV) per particle index; NaN where unknown."""
    pt = np.full(len(particle_ids), np.nan)
    if particles is not None and all(c in particles for c in ("particle_id", "px", "py")):
        ppid = np.asarray(particles["particle_id"]).astype(np.int64)
        ppt = np.hypot(np.asarray(particles["px"], dtype=np.float64), np.asarray(particles["py"], dtype=np.float64))
        order = np.argsort(ppid, kind="stable")
        if len(order):
            pos = np.minimum(np.searchsorted(ppid[order], particle_ids), len(order) - 1)
            found = ppid[order][pos] == particle_ids
            pt[found] = ppt[order][pos][found]
        return pt
    if "pt" in source:
        hit_pt = np.asarray(source["pt"], dtype=np.float64)
    elif "tpx" in source and "tpy" in source:
        hit_pt = np.hypot(np.asarray(source["tpx"], dtype=np.float64), np.asarray(source["tpy"], dtype=np.float64))
    else:
        return pt
    if len(hit_pt) != len(hit_particle):
        raise InputError(f"truth pT: {len(hit_pt)} values for {len(hit_particle)} hits")
    radius = (np.hypot(np.asarray(source["tx"], dtype=np.float64), np.asarray(source["ty"], dtype=np.float64))
              if "tx" in source and "ty" in source else np.zeros(len(hit_pt)))
    order = np.lexsort((radius, hit_particle))
    first = np.ones(len(order), dtype=bool)
    first[1:] = hit_particle[order][1:] != hit_particle[order][:-1]
    pt[hit_particle[order][first]] = hit_pt[order][first]
    return pt


def tracking_rates(
    event_or_arrays: Event | Table | Mapping[str, np.ndarray],
    hit_id,
    track_id,
    *,
    min_pt: float = 1.0,
    min_hits: int = 4,
    min_track_hits: int = 3,
) -> TrackingRates:
    """Efficiency, fake and duplicate rates of tracks ``(hit_id -> track_id)``.

    ``event_or_arrays`` is an :class:`Event` with truth (pT from its particle table when present),
    or a truth table / mapping with ``hit_id`` and ``particle_id`` and, for the pT-restricted
    efficiencies, either ``pt`` (GeV, per hit: its particle's pT) or ``tpx``/``tpy`` (and
    optionally ``tx``/``ty``). ``min_pt`` is in GeV. Raises :class:`InputError` on malformed input.
    """
    if isinstance(event_or_arrays, Event):
        if event_or_arrays.truth is None:
            raise InputError(f"{event_or_arrays.name}: no truth, cannot compute tracking rates")
        truth = event_or_arrays.truth
        particles = event_or_arrays.particles
    else:
        truth = event_or_arrays
        particles = None
    for col in ("hit_id", "particle_id"):
        if col not in truth:
            raise InputError(f"truth: missing column {col!r}")
    if min_hits < 1 or min_track_hits < 1:
        raise InputError(f"min_hits ({min_hits}) and min_track_hits ({min_track_hits}) must be >= 1")
    if not np.isfinite(min_pt):
        raise InputError(f"min_pt must be finite, got {min_pt}")

    a = assign(truth["hit_id"], truth["particle_id"], hit_id, track_id)
    is_noise_particle = a.particle_ids == NOISE_PARTICLE_ID
    noise_hit = is_noise_particle[a.particle]
    m = track_majority(a, exclude=noise_hit)

    submitted = np.arange(len(m.nhits)) < a.n_sub_tracks
    counted = submitted & (m.nhits >= min_track_hits)
    has_major = m.particle >= 0
    p_nhits = np.where(has_major, a.particle_nhits[np.maximum(m.particle, 0)], 0)
    matched = counted & has_major & (2 * m.major_nhits > m.nhits)
    technical = matched & (2 * m.major_nhits > p_nhits)

    n_part = len(a.particle_ids)
    found = np.bincount(m.particle[matched], minlength=n_part) > 0
    found_tech = np.bincount(m.particle[technical], minlength=n_part) > 0
    reco = ~is_noise_particle & (a.particle_nhits >= min_hits)
    pt = _particle_pt(truth, particles, a.particle_ids, a.particle)
    with np.errstate(invalid="ignore"):
        reco_pt = reco & (pt > min_pt)

    n_matched = int(matched.sum())
    n_tracks = int(counted.sum())
    n_reco, n_reco_pt = int(reco.sum()), int(reco_pt.sum())
    n_found, n_found_pt = int((found & reco).sum()), int((found & reco_pt).sum())
    n_ft, n_ft_pt = int((found_tech & reco).sum()), int((found_tech & reco_pt).sum())
    n_duplicate = n_matched - int(found.sum())
    n_fake = n_tracks - n_matched
    return TrackingRates(
        efficiency=_ratio(n_found, n_reco),
        efficiency_pt=_ratio(n_found_pt, n_reco_pt),
        technical_efficiency=_ratio(n_ft, n_reco),
        technical_efficiency_pt=_ratio(n_ft_pt, n_reco_pt),
        fake_rate=_ratio(n_fake, n_tracks),
        duplicate_rate=_ratio(n_duplicate, n_matched),
        n_particles=int((~is_noise_particle).sum()),
        n_reconstructable=n_reco,
        n_reconstructable_pt=n_reco_pt,
        n_found=n_found,
        n_found_pt=n_found_pt,
        n_found_technical=n_ft,
        n_found_technical_pt=n_ft_pt,
        n_tracks=n_tracks,
        n_short_tracks=int((submitted & ~counted).sum()),
        n_matched=n_matched,
        n_technical=int(technical.sum()),
        n_fake=n_fake,
        n_duplicate=n_duplicate,
        n_hits=len(a.track),
        n_noise_hits=int(noise_hit.sum()),
        n_unassigned_hits=a.n_unassigned,
        min_pt=float(min_pt),
        min_hits=int(min_hits),
        min_track_hits=int(min_track_hits),
    )
