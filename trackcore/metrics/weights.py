"""TrackML per-hit score weights, recomputed for events whose truth lacks them.

The published definition (TrackML challenge, trackml-library ``weights.py``):

* noise hits (``particle_id == 0``), hits of particles with fewer than 4 truth hits, and hits of
  particles absent from the particle table weigh 0;
* otherwise ``weight = w_pt(pT) * w_order(ihit, nhits)``, then all weights of the event are
  normalised to sum to 1.

``w_pt`` uses the particle's production momentum (particle table ``px``, ``py``, GeV): 0 below
0.05 GeV, 0.2 from 0.05 to 0.5 GeV, linear from 0.2 at 0.5 GeV to 1.0 at 3 GeV, 1.0 above.

``w_order`` stretches the profile ``[10, 8, 6, 5, 3, 3, 3, 5, 6]`` over the particle's ``nhits``
hits: profile entry ``k`` sits at hit position ``k * (nhits - 1) / 8`` and hit ``i`` takes the
linear interpolation at ``i``; each row is normalised so a particle's order weights sum to 1.
Hits are ordered by ``|tz - vz|`` (distance along the beam axis from the production vertex);
tied distances get their average rank, truncated. Particles with more than 20 hits use the
20-hit row, and their hits beyond the 20th weigh 0.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..event.table import Table

ORDER_PROFILE = np.array([10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0])
ORDER_MIN_HITS = 4
ORDER_MAX_HITS = 20
PT_INF = 0.5  # GeV: below this the pT factor is at its floor
PT_SUP = 3.0  # GeV: above this the pT factor is 1
PT_MIN_FLOOR = 0.05  # GeV: below this (not expected for real particles) the weight is 0
W_PT_MIN = 0.2
W_PT_MAX = 1.0
NOISE_PARTICLE_ID = 0
#: Low particle_id bits that are non-zero for simulation secondaries (see ``zero_secondaries``).
SECONDARY_ID_MASK = 0xFFFF


def order_weight_matrix(
    profile: np.ndarray = ORDER_PROFILE, min_hits: int = ORDER_MIN_HITS, max_hits: int = ORDER_MAX_HITS
) -> np.ndarray:
    """Order weights indexed ``[nhits, ihit]`` (rows below ``min_hits`` are 0; each other row sums to 1)."""
    profile = np.asarray(profile, dtype=np.float64)
    mat = np.zeros((max_hits + 1, max_hits))
    for nhits in range(min_hits, max_hits + 1):
        anchors = np.arange(len(profile)) * (nhits - 1) / (len(profile) - 1)
        row = np.interp(np.arange(nhits, dtype=np.float64), anchors, profile)
        mat[nhits, :nhits] = row / row.sum()
    return mat


ORDER_MATRIX = order_weight_matrix()


def pt_weight(pt: np.ndarray) -> np.ndarray:
    """pT factor of the weight for transverse momenta ``pt`` in GeV (NaN -> 0)."""
    pt = np.asarray(pt, dtype=np.float64)
    w = np.interp(pt, [PT_MIN_FLOOR, PT_INF, PT_SUP], [W_PT_MIN, W_PT_MIN, W_PT_MAX], left=0.0, right=W_PT_MAX)
    return np.where(np.isfinite(pt), w, 0.0)


def order_weight(ihit: np.ndarray, nhits: np.ndarray) -> np.ndarray:
    """Order factor for hit index ``ihit`` (0 = nearest the vertex) on a particle of ``nhits`` hits."""
    ihit = np.asarray(ihit, dtype=np.int64)
    nhits = np.asarray(nhits, dtype=np.int64)
    n = np.minimum(nhits, ORDER_MAX_HITS)
    ok = (nhits >= ORDER_MIN_HITS) & (ihit >= 0) & (ihit < n)
    out = np.zeros(np.broadcast(ihit, nhits).shape)
    out[ok] = ORDER_MATRIX[np.broadcast_to(n, out.shape)[ok], np.broadcast_to(ihit, out.shape)[ok]]
    return out


def _column(table: Table, name: str, where: str) -> np.ndarray:
    if name not in table:
        raise InputError(f"{where}: missing column {name!r} (needed for TrackML weights)")
    col = np.asarray(table[name])
    if not np.issubdtype(col.dtype, np.number):
        raise InputError(f"{where}: column {name!r} is not numeric ({col.dtype})")
    return col


def _group_average_rank(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """0-based rank of ``values`` within each group; ties get the truncated average rank."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((values, groups))
    g = groups[order]
    v = values[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    pos = np.arange(n) - group_start
    # a tie block starts at a group start or where the value changes (NaN never ties, as in pandas)
    new_block = new_group.copy()
    new_block[1:] |= ~(v[1:] == v[:-1])
    block = np.cumsum(new_block) - 1
    first = pos[new_block]
    last = first + np.bincount(block) - 1
    avg = (first[block] + last[block]) // 2  # floor of the average rank, as an int cast would do
    rank = np.empty(n, dtype=np.int64)
    rank[order] = avg
    return rank


def trackml_weights(
    truth: Table,
    particles: Table | None,
    *,
    normalize: bool = True,
    zero_secondaries: bool = False,
) -> np.ndarray:
    """TrackML score weight of every truth hit, in the order of ``truth``'s rows.

    ``truth`` needs ``particle_id`` and ``tz`` (mm); ``particles`` needs ``particle_id``,
    ``vz`` (mm), ``px`` and ``py`` (GeV). With ``normalize`` the weights sum to 1 (unless all are
    0, in which case zeros are returned).

    ``zero_secondaries`` also gives weight 0 to particles whose ``particle_id`` has non-zero low 16
    bits (particles made in the detector simulation, in the TrackML id encoding). The trackml-library
    rule does not do this, but the released TrackML truth files do: with it, the weights of the
    shared real event are reproduced to the files' 6 significant digits.

    ``particles=None`` is an approximation for events without a particle table: the pT is that of
    the truth momentum (``tpx``, ``tpy``) at the particle's hit nearest the beam axis, and hits are
    ordered by their 3-D distance from that hit instead of by ``|tz - vz|``.
    """
    where_t = getattr(truth, "name", "truth")
    pid = _column(truth, "particle_id", where_t)
    if not np.issubdtype(pid.dtype, np.integer):
        raise InputError(f"{where_t}: column 'particle_id' must be integer, got {pid.dtype}")
    pid = pid.astype(np.int64, copy=False)
    n = len(pid)
    if n == 0:
        return np.zeros(0)
    upid, pidx, counts = np.unique(pid, return_inverse=True, return_counts=True)
    nhits = counts[pidx]
    nhits[pid == NOISE_PARTICLE_ID] = 0

    if particles is not None:
        where_p = getattr(particles, "name", "particles")
        ppid = _column(particles, "particle_id", where_p)
        if not np.issubdtype(ppid.dtype, np.integer):
            raise InputError(f"{where_p}: column 'particle_id' must be integer, got {ppid.dtype}")
        vz = _column(particles, "vz", where_p).astype(np.float64)
        ppt = np.hypot(_column(particles, "px", where_p), _column(particles, "py", where_p))
        order = np.argsort(ppid, kind="stable")
        sorted_ids = ppid[order]
        if len(sorted_ids) > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
            dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
            raise InputError(f"{where_p}: duplicate particle_id {dup[:5].tolist()}")
        hit_pt = np.full(n, np.nan)
        hit_vz = np.full(n, np.nan)
        if len(sorted_ids):
            pos = np.minimum(np.searchsorted(sorted_ids, pid), len(sorted_ids) - 1)
            found = sorted_ids[pos] == pid
            row = order[pos[found]]
            hit_pt[found] = ppt[row]
            hit_vz[found] = vz[row]
        dist = np.abs(_column(truth, "tz", where_t).astype(np.float64) - hit_vz)
    else:
        tx = _column(truth, "tx", where_t).astype(np.float64)
        ty = _column(truth, "ty", where_t).astype(np.float64)
        tz = _column(truth, "tz", where_t).astype(np.float64)
        tpt = np.hypot(_column(truth, "tpx", where_t), _column(truth, "tpy", where_t))
        # innermost hit of each particle stands in for the unknown production vertex
        inner = np.lexsort((np.hypot(tx, ty), pidx))
        first = np.ones(n, dtype=bool)
        first[1:] = pidx[inner][1:] != pidx[inner][:-1]
        anchor = inner[first]  # one row per particle index, in particle-index order
        hit_pt = tpt[anchor][pidx]
        a = anchor[pidx]
        dist = np.sqrt((tx - tx[a]) ** 2 + (ty - ty[a]) ** 2 + (tz - tz[a]) ** 2)

    ihit = _group_average_rank(pidx, dist)
    # hits whose particle has no vertex rank at 0, like the library's fill of missing ranks
    ihit[~np.isfinite(dist)] = 0
    w = pt_weight(hit_pt) * order_weight(ihit, nhits)
    w[pid == NOISE_PARTICLE_ID] = 0.0
    if zero_secondaries:
        w[(pid & SECONDARY_ID_MASK) != 0] = 0.0
    if normalize:
        total = w.sum()
        if total > 0:
            w = w / total
    return w
