"""The ``numpy`` kernel ``ckf``: a readable reference of the compiled combinatorial Kalman filter.

Step for step the algorithm of ``csrc/src/ckf.cpp`` (seed state, beam search layer by layer,
greedy ambiguity resolution, refinement, backward filter to the perigee) with the building blocks
of ``kalman.cpp``, ``navigator.cpp`` and ``geometry.cpp``, one track at a time in Python floats with
the C++ operation order and the same libm calls (``hypot`` too, through ctypes: Python's own
``math.hypot`` rounds differently), so tracks, hit lists and fitted parameters agree to rounding.

The candidate modules of a step come from a port of the compiled per-layer (phi, z|r) bin grid
(:mod:`trackcore.reco.kalman_numpy`), so the candidate sets match the C++ exactly. Where the C++
sorts with ``std::sort`` (not stable) this uses a stable sort: the two differ only for exactly
equal keys (chi2 of two hits, or two trajectories), which real events do not produce.

Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..geometry.detector import Detector
from ..sim.transport_numpy import KB, Field
from .kalman_numpy import (CONFIG_DEFAULTS, CONFIG_TYPES, PI, Bound, GridGeometry, Stepper, _asin, _local, _state,
                           apply_material, grid_geometry, hypot, kalman_update, to_perigee, transport_bound, wrap_phi)


# --- the combinatorial Kalman filter (ckf.cpp) ----------------------------------------------------
#: Steps the backward filter may fail to reach (left out of the fit) before the fit fails; as in csrc.
MAX_UNREACHABLE_STEPS = 2


class Trajectory:
    """Steps (module, hit or -1 for a hole, filtered state before material), the state after the last
    module's material, chi2 sum, measurements, consecutive holes, path (mm), its own path limit (mm,
    besides the config's max_path), eloss direction."""

    __slots__ = ("steps", "state", "chi2", "n_meas", "holes", "path", "path_limit", "eloss", "refined")

    def __init__(self) -> None:
        self.steps: list = []
        self.state = Bound([0.0] * 5, [0.0] * 25, -1)
        self.chi2, self.n_meas, self.holes, self.path, self.eloss = 0.0, 0, 0, 0.0, 1
        self.path_limit = math.inf
        self.refined = False  # refine() already ran on it

    def copy(self) -> "Trajectory":
        t = Trajectory()
        t.steps, t.state = self.steps[:], self.state  # states are never changed once stored
        t.chi2, t.n_meas, t.holes, t.path, t.eloss = self.chi2, self.n_meas, self.holes, self.path, self.eloss
        t.path_limit = self.path_limit
        t.refined = self.refined
        return t


class _Ckf:
    """What the C++ Context holds: geometry, stepper, hits (as lists), material, settings."""

    def __init__(self, geo: GridGeometry, field: Field, meas, layer_x0: list, cfg: dict) -> None:
        self.geo, self.stepper, self.cfg = geo, Stepper(field), cfg
        self.fit_stepper = Stepper(field, scan_fallback=True)  # the fit's transport to hits already found
        self.module = np.asarray(meas.module_index, np.int64).tolist()
        self.u, self.v, self.var_u, self.var_v = (np.asarray(getattr(meas, k), np.float64).tolist()
                                                  for k in ("u", "v", "var_u", "var_v"))
        self.xyz = np.asarray(meas.xyz, np.float64).reshape(-1, 3).tolist()
        self.x0 = [layer_x0[lay] for lay in geo.layer]  # per module
        self.module_hits: dict[int, list[int]] = {}  # hits of each module in row order
        for i, m in enumerate(self.module):
            self.module_hits.setdefault(m, []).append(i)

    def update(self, b: Bound, h: int, dry_run: bool) -> float:
        return kalman_update(b, self.u[h], self.v[h], self.var_u[h], self.var_v[h], dry_run)

    def material(self, b: Bound, direction: int) -> None:
        apply_material(self.geo, b, self.x0[b.module], self.cfg["mass"], direction)

    def transport(self, b: Bound, target: int, direction: int, max_path: float, fit: bool = False):
        return transport_bound(self.geo, self.fit_stepper if fit else self.stepper, b, target, direction, max_path)

    def seed_state(self, b: int, m: int, t: int):
        """Bound state at hit b from the circle through b, m, t (signed Menger curvature), or None."""
        pb, pm, pt = self.xyz[b], self.xyz[m], self.xyz[t]
        ax, ay, bx, by = pm[0] - pb[0], pm[1] - pb[1], pt[0] - pb[0], pt[1] - pb[1]
        la, lb, lc = hypot(ax, ay), hypot(bx, by), hypot(bx - ax, by - ay)
        if la < 1e-6 or lb < 1e-6 or lc < 1e-6:
            return None
        kappa = 2.0 * (ax * by - ay * bx) / (la * lb * lc)  # > 0: turns counter-clockwise
        k_abs = max(abs(kappa), 1e-7)
        phi = math.atan2(ay, ax) - _asin(min(1.0, la * kappa / 2.0))
        arc = 2.0 * _asin(min(1.0, lb * k_abs / 2.0)) / k_abs
        theta = math.atan2(arc, pt[2] - pb[2])
        field = self.stepper.field
        bz = field.bz if field.constant else 2.0
        q = -1 if (kappa > 0) == (bz > 0) else 1  # Bz > 0 bends positive charges clockwise
        p = KB * abs(bz) / k_abs / math.sin(theta)
        out = Bound([self.u[b], self.v[b], phi, theta, q / p], [0.0] * 25, self.module[b])
        out.C[0], out.C[6] = self.var_u[b], self.var_v[b]
        sig_phi, sig_theta = self.cfg["sigma_phi"], self.cfg["sigma_theta"]
        out.C[12], out.C[18] = sig_phi * sig_phi, sig_theta * sig_theta
        # Sagitta error of the short lever arm: sigma(1/R) ~ 8 sigma / L^2, added to the relative q/p error.
        sig_hit = math.sqrt(max(self.var_u[m], 1e-6))
        sig_curv = 8.0 * sig_hit / (lb * lb) * math.sin(theta) / (KB * abs(bz))
        rel = self.cfg["sigma_qop_rel"] * out.p[4]
        out.C[24] = rel * rel + sig_curv * sig_curv  # std::pow(x, 2) compiles to x * x
        return out

    def add_measurement(self, tr: Trajectory, filtered: Bound, hit: int, chi2: float) -> None:
        tr.steps.append((filtered.module, hit, filtered))
        tr.chi2 += chi2
        tr.n_meas += 1
        tr.holes = 0
        tr.state = filtered.copy()
        self.material(tr.state, tr.eloss)

    def start_from_seed(self, s) -> Trajectory | None:
        st = self.seed_state(s[0], s[1], s[2])
        if st is None:
            return None
        tr = Trajectory()
        self.add_measurement(tr, st, s[0], 0.0)
        for k in (1, 2):
            m = self.module[s[k]]
            if m == tr.state.module:
                return None
            res = self.transport(tr.state, m, +1, 2000.0)
            if res is None:
                return None
            pred, path, _ = res
            chi2 = self.update(pred, s[k], False)
            tr.path += path
            self.add_measurement(tr, pred, s[k], chi2)
        return tr

    def _crossings(self, pos, d, qop, end, cand, seen: set, current: int, layer: int, s_max: float, walked: float,
                   h_abs: float, out: list) -> None:
        """Appends (walked + s, module) for the modules of cand (not yet seen) crossed within s_max."""
        geo, tol = self.geo, self.cfg["edge_tolerance"]
        margin = s_max * s_max * h_abs / 8.0 + 0.01  # the arc stays within its sagitta of the chord
        for m in cand:
            if m in seen or m == current or (layer >= 0 and geo.layer[m] != layer):
                continue
            seen.add(m)
            c, n = geo.centre[m], geo.normal[m]
            fa = (pos[0] - c[0]) * n[0] + (pos[1] - c[1]) * n[1] + (pos[2] - c[2]) * n[2]
            fb = (end[0] - c[0]) * n[0] + (end[1] - c[1]) * n[1] + (end[2] - c[2]) * n[2]
            if (fa > margin and fb > margin) or (fa < -margin and fb < -margin):
                continue  # both chord ends on one side of the plane: the arc cannot cross it
            hit = self.stepper.intersect(pos, d, qop, c, n, 1e-9, s_max)
            if hit is None:
                continue
            loc = _local(c, geo.rot[m], hit[1])
            if abs(loc[1]) > geo.hv[m] + tol or abs(loc[0]) > geo.half_width(m, loc[1]) + tol:
                continue
            out.append((walked + hit[0], m))

    def next_layer(self, tr: Trajectory):
        """Modules of the next layer crossed from tr.state as [(path estimate, module)], sorted; None: it leaves."""
        geo, cfg, stepper = self.geo, self.cfg, self.stepper
        cur = tr.state.module
        pos, d, qop = _state(geo, tr.state)
        world_r, world_z = geo.world_r + 5.0, geo.world_z + 5.0
        walked = 0.0
        max_path = min(cfg["max_path"], tr.path_limit)
        while tr.path + walked < max_path:
            ds = stepper.step_length(pos, qop, cfg["max_step"], cfg["max_turn"])
            nxt_p, nxt_d = stepper.advance(pos, d, qop, ds)
            seen: set = set()
            h_abs = abs(qop * KB * stepper.local_bz(pos))
            crossed: list = []
            self._crossings(pos, d, qop, nxt_p, geo.gather(pos, nxt_p), seen, cur, -1, ds, walked, h_abs, crossed)
            if crossed:
                crossed.sort()
                layer = geo.layer[crossed[0][1]]
                # Overlapping modules of the same layer may be crossed just after the step's end.
                reach = crossed[0][0] - walked + cfg["layer_depth"]
                if reach > ds:
                    ext_p, _ = stepper.advance(pos, d, qop, reach)
                    # Re-test modules the step looked at but found crossed only beyond its end.
                    found = {m for _, m in crossed}
                    self._crossings(pos, d, qop, ext_p, geo.gather(pos, ext_p), found, cur, layer, reach, walked, h_abs,
                                    crossed)
                    crossed.sort()
                return [c for c in crossed if geo.layer[c[1]] == layer]
            pos, d = nxt_p, nxt_d
            walked += ds
            if pos[0] * pos[0] + pos[1] * pos[1] > world_r * world_r or abs(pos[2]) > world_z:
                return None
        return None

    def extend(self, tr: Trajectory, children: list, finished: list, max_branches: int) -> None:
        """Extends tr by one layer: children branch on compatible hits, or one child takes a hole."""
        cfg = self.cfg
        crossed = self.next_layer(tr)
        if crossed is None:
            finished.append(tr)
            return
        options = []  # (chi2, hit, predicted state, path)
        hole = None
        for s_est, m in crossed:
            # A module without hits only matters as the hole's state, which the first reachable module gives.
            if hole is not None and not self.module_hits.get(m):
                continue
            res = self.transport(tr.state, m, +1, s_est + 100.0)
            if res is None:
                continue
            pred, s, _ = res
            if hole is None:
                hole = (pred, s)
            for h in self.module_hits.get(m, ()):
                chi2 = self.update(pred, h, True)  # dry run: pred unchanged
                if chi2 < cfg["chi2_max"]:
                    options.append((chi2, h, pred, s))
        if hole is None:
            finished.append(tr)
            return
        options.sort(key=lambda o: o[0])
        # Each branch takes one hit, then the best compatible hit on every other module of the layer
        # that the track crosses too (overlapping modules give a particle two hits in one layer).
        taken: list = []
        n_take = 0
        for o in options:
            if n_take >= max_branches:
                break
            if o[1] in taken:
                continue
            seq = [o]
            for _, m in crossed:
                if m == o[2].module:
                    continue
                best = next((x for x in options if x[2].module == m), None)  # sorted: the first is the best
                if best is not None:
                    seq.append(best)
            seq.sort(key=lambda x: x[3])
            child = tr.copy()
            first = True
            for x in seq:
                if first:
                    st, s = x[2].copy(), x[3]
                else:
                    res = self.transport(child.state, x[2].module, +1, 200.0)
                    if res is None:
                        continue
                    st, s, _ = res
                h = x[1]
                chi2 = self.update(st, h, first)
                if not first and chi2 >= cfg["chi2_max"]:
                    continue
                if first:
                    self.update(st, h, False)
                child.path += s
                self.add_measurement(child, st, h, chi2)
                taken.append(h)
                first = False
            children.append(child)
            n_take += 1
        if n_take == 0:
            pred, s = hole
            child = tr.copy()
            child.steps.append((pred.module, -1, pred))
            child.state = pred.copy()
            self.material(child.state, child.eloss)
            child.path += s
            child.holes += 1
            if child.holes > cfg["max_holes"]:
                finished.append(tr)
            else:
                children.append(child)

    def backward_filter(self, tr: Trajectory):
        """(state at the first hit carrying every hit's information, chi2, measurements), or None.

        Filters from the last measured step (covariance inflated) back to the first."""
        steps = list(tr.steps)
        while steps and steps[-1][1] < 0:
            steps.pop()
        if not steps:
            return None
        st = steps[-1][2].copy()
        st.C = [c * 100.0 for c in st.C]
        chi2, n_meas, unreachable = 0.0, 0, 0
        for k in range(len(steps) - 1, -1, -1):
            module, hit, _ = steps[k]
            if k != len(steps) - 1:
                res = self.transport(st, module, -1, 3000.0, fit=True)
                if res is None:
                    # Grazing incidence near a looper's turning radius: leave the step out of the fit.
                    unreachable += 1
                    if unreachable > MAX_UNREACHABLE_STEPS:
                        return None
                    continue
                st = res[0]
                # The material lumped at this module lies between its hit and the next one outward.
                self.material(st, -tr.eloss)
            if hit >= 0:
                chi2 += self.update(st, hit, False)
                n_meas += 1
        return st, chi2, n_meas

    def follow(self, tr: Trajectory) -> Trajectory:
        """Follows a trajectory greedily (one branch) until it stops; trailing holes dropped."""
        finished: list = []
        for _ in range(80):
            children: list = []
            self.extend(tr, children, finished, 1)
            if not children:
                break
            tr = children[0]
        if finished:
            tr = finished[-1]
        tr = tr.copy()
        while tr.steps and tr.steps[-1][1] < 0:
            tr.steps.pop()
        return tr

    def path_to_beam_line(self, b: Bound) -> float:
        """Helix path (mm) from b back to the beam line, plus slack for scattering and displacement:
        following a track inward further goes through the beam line onto the far side's hits."""
        pos, d, qop = _state(self.geo, b)
        r = math.sqrt(pos[0] * pos[0] + pos[1] * pos[1])
        sin_t = max(1e-3, math.sqrt(d[0] * d[0] + d[1] * d[1]))
        h = abs(qop * KB * self.stepper.local_bz(pos))
        # Transverse circle radius R = sin(theta) / h; arc to radius r: 2 R asin(r / 2R), over sin(theta).
        s = 2.0 * math.asin(min(1.0, r * h / (2.0 * sin_t))) / h if h > 1e-12 else r / sin_t
        return 1.1 * s + 10.0

    def refine(self, best: Trajectory) -> Trajectory:
        """Collects the hits inward of the seed, then re-follows the track outward from its innermost hit."""
        out = self._refined_or_same(best).copy()
        out.refined = True
        return out

    def _refined_or_same(self, best: Trajectory) -> Trajectory:
        res = self.backward_filter(best)
        if res is None:
            return best
        first = res[0]
        first_hit = next((h for _, h, _ in best.steps if h >= 0), -1)
        inward = Trajectory()
        inward.eloss = -1
        inward.state = reversed_state(first)
        inward.path_limit = self.path_to_beam_line(first)
        inward = self.follow(inward)
        start, start_hit = first.copy(), first_hit
        if inward.steps:
            start, start_hit = reversed_state(inward.steps[-1][2]), inward.steps[-1][1]
        start.C = [c * 10.0 for c in start.C]  # it already holds these hits' information
        fwd = Trajectory()
        self.add_measurement(fwd, start, start_hit, 0.0)
        fwd = self.follow(fwd)
        if fwd.n_meas < best.n_meas:
            return best
        # A wrong hit taken inward of the seed can lead the re-follow onto another particle: keep the
        # re-followed track only when it still holds all but one of the original track's hits.
        fwd_hits = {h for _, h, _ in fwd.steps if h >= 0}
        kept = sum(1 for _, h, _ in best.steps if h >= 0 and h in fwd_hits)
        return fwd if kept >= best.n_meas - 1 else best

    def smooth_to_perigee(self, tr: Trajectory) -> tuple:
        """(perigee, covariance, chi2, ndf, fitted) from the backward filter of tr."""
        res = self.backward_filter(tr)
        if res is None:
            return [0.0] * 5, [0.0] * 25, 0.0, 0, False
        first, chi2, n_meas = res
        per, cov, ok = to_perigee(self.geo, self.stepper, first)
        return per, cov, chi2, 2 * n_meas - 5, ok


def reversed_state(b: Bound) -> Bound:
    """The same track seen by a particle of opposite charge flying the other way."""
    p = [b.p[0], b.p[1], wrap_phi(b.p[2] + PI), PI - b.p[3], -b.p[4]]
    # Jacobian diag(1, 1, 1, -1, -1): flip the covariance terms between {theta, q/p} and the rest.
    C = [-b.C[5 * i + j] if (i >= 3) != (j >= 3) else b.C[5 * i + j] for i in range(5) for j in range(5)]
    return Bound(p, C, b.module)


def _better(a: Trajectory, b: Trajectory) -> bool:
    return a.n_meas > b.n_meas if a.n_meas != b.n_meas else a.chi2 < b.chi2


def _better_key(t: Trajectory) -> tuple:
    return (-t.n_meas, t.chi2)


def _ambiguity_key(t: Trajectory, k: int) -> tuple:
    """Best first, as the ambiguity order in csrc: measurements less two per unit of chi2/ndf above 1,
    then chi2/ndf, then seed order."""
    c = t.chi2 / max(1, 2 * t.n_meas - 5)
    return (-(t.n_meas - 2.0 * max(0.0, c - 1.0)), c, k)


def _run_ckf(ctx: _Ckf, seeds: list, stats: dict) -> list:
    """Tracks as (seed, hits, perigee, covariance, chi2, ndf, fitted), as ``run_ckf``."""
    cfg = ctx.cfg
    used = [0] * len(ctx.module)
    found, found_seed = [], []
    for i, s in enumerate(seeds):
        if cfg["skip_used_seeds"] and used[s[0]] + used[s[1]] + used[s[2]] >= cfg["skip_used_hits"]:
            stats["seeds_skipped"] += 1
            continue
        stats["seeds_used"] += 1
        tr = ctx.start_from_seed(s)
        if tr is None:
            continue
        active, finished = [tr], []
        for _ in range(80):
            if not active:
                break
            children: list = []
            for a in active:
                ctx.extend(a, children, finished, cfg["max_branches"])
            children.sort(key=_better_key)  # beam: the best max_candidates trajectories go on
            active = children[:cfg["max_candidates"]]
            stats["candidates"] += len(active)
        finished += active
        if not finished:
            continue
        best = finished[0]
        for t in finished[1:]:
            if _better(t, best):
                best = t
        best = best.copy()
        while best.steps and best.steps[-1][1] < 0:
            best.steps.pop()
        # A seed near the outer end of its track finds few hits outward; try the refinement first.
        if (best.n_meas < cfg["min_measurements"] and cfg["refine"] and cfg["rescue_min_measurements"] > 0
                and best.n_meas >= cfg["rescue_min_measurements"]):
            best = ctx.refine(best)
            stats["rescued"] += 1
        if best.n_meas < cfg["min_measurements"]:
            continue
        for _, h, _ in best.steps:
            if h >= 0:
                used[h] = 1
        found.append(best)
        found_seed.append(i)
    stats["tracks_before_ambiguity"] = len(found)

    # Greedy ambiguity resolution: best tracks first; a track sharing too many hits is dropped, shared
    # hits stay with the better track.
    order = sorted(range(len(found)), key=lambda k: _ambiguity_key(found[k], k))
    owner = [-1] * len(ctx.module)
    accepted = []
    for idx in order:
        hits = [h for _, h, _ in found[idx].steps if h >= 0]
        shared = sum(1 for h in hits if owner[h] >= 0)
        if shared > cfg["max_shared"] or found[idx].n_meas - shared < cfg["min_measurements"]:
            continue
        for h in hits:
            if owner[h] < 0:
                owner[h] = idx
        accepted.append(idx)
    # Refinement of the accepted tracks only; a hit stays with the track that owned it first.
    out = []
    final_owner = [False] * len(ctx.module)
    for idx in accepted:
        tr = ctx.refine(found[idx]) if cfg["refine"] and not found[idx].refined else found[idx]
        hits = []
        for _, h, _ in tr.steps:
            if h < 0 or final_owner[h] or (owner[h] >= 0 and owner[h] != idx):
                continue
            final_owner[h] = True
            hits.append(h)
        if len(hits) < min(cfg["min_measurements"], 3):  # its hits went to better tracks
            for h in hits:
                final_owner[h] = False
            continue
        out.append((found_seed[idx], hits) + ctx.smooth_to_perigee(tr))
    return out


def _fit(ctx: _Ckf, track_hits: list) -> list:
    """Forward filter, backward filter and perigee of given hit sequences, as ``fit_tracks``."""
    out = []
    for h in track_hits:
        res = ([0.0] * 5, [0.0] * 25, 0.0, 0, False)
        tr = ctx.start_from_seed(h) if len(h) >= 3 else None
        ok = tr is not None
        for k in range(3, len(h)) if ok else ():
            m = ctx.module[h[k]]
            if m == tr.state.module:
                continue  # a split cluster: one hit per module crossing
            step = ctx.transport(tr.state, m, +1, 3000.0, fit=True)
            if step is None:
                ok = False
                break
            chi2 = ctx.update(step[0], h[k], False)
            ctx.add_measurement(tr, step[0], h[k], chi2)
        if ok:
            res = ctx.smooth_to_perigee(tr)
        out.append((-1, list(h)) + res)
    return out


def _tracks_dict(tracks: list) -> dict:
    n = len(tracks)
    lengths = np.array([len(t[1]) for t in tracks], np.int64)
    return {
        "offsets": np.r_[0, np.cumsum(lengths)].astype(np.int64),
        "hits": np.array([h for t in tracks for h in t[1]], np.int64),
        "perigee": np.array([t[2] for t in tracks], np.float64).reshape(n, 5),
        "covariance": np.array([t[3] for t in tracks], np.float64).reshape(n, 5, 5),
        "chi2": np.array([t[4] for t in tracks], np.float64),
        "ndf": np.array([t[5] for t in tracks], np.int64),
        "seed": np.array([t[0] for t in tracks], np.int64),
        "fitted": np.array([t[6] for t in tracks], bool),
    }


# --- input checks and the kernels -----------------------------------------------------------------
def _settings(config: dict | None) -> dict:
    """The CKF settings with defaults filled in; unknown keys, wrong types or bad ranges are InputErrors."""
    cfg = dict(CONFIG_DEFAULTS)
    for key, val in (config or {}).items():
        if key not in CONFIG_TYPES:
            raise InputError(f"unknown CKF setting {key!r}")
        kind = CONFIG_TYPES[key]
        ok = isinstance(val, (bool, np.bool_)) if kind is bool else (
            isinstance(val, (int, np.integer)) and not isinstance(val, (bool, np.bool_)) if kind is int else
            isinstance(val, (int, float, np.integer, np.floating)) and not isinstance(val, (bool, np.bool_)))
        if not ok:
            raise InputError(f"CKF setting {key!r} must be {kind.__name__}, got {val!r}")
        cfg[key] = kind(val)
    if (cfg["max_branches"] < 1 or cfg["max_candidates"] < 1 or cfg["min_measurements"] < 3 or not cfg["chi2_max"] > 0
            or not cfg["mass"] > 0):
        raise InputError("CKF settings out of range (max_branches, max_candidates >= 1, min_measurements >= 3, "
                         "chi2_max > 0, mass > 0)")
    return cfg


def _context(detector: Detector, measurements, layer_x0, bz: float, field_map, config: dict | None) -> _Ckf:
    geo = grid_geometry(detector)
    n = len(measurements.module_index)
    module = np.asarray(measurements.module_index)
    xyz = np.asarray(measurements.xyz, np.float64)
    if xyz.shape != (n, 3):
        raise InputError(f"hit positions must have shape ({n}, 3), got {xyz.shape}")
    for name in ("u", "v", "var_u", "var_v"):
        if np.shape(getattr(measurements, name)) != (n,):
            raise InputError(f"hit {name} must have shape ({n},), got {np.shape(getattr(measurements, name))}")
    bad = (module < 0) | (module >= len(detector))
    if bad.any():
        raise InputError(f"hit {int(np.flatnonzero(bad)[0])} has module index outside the geometry")
    bad = ~((np.asarray(measurements.var_u) > 0) & (np.asarray(measurements.var_v) > 0))
    if bad.any():
        raise InputError(f"hit {int(np.flatnonzero(bad)[0])} has a non-positive variance")
    layer_x0 = np.asarray(layer_x0, np.float64)
    if layer_x0.shape != (geo.n_layers,):
        raise InputError(f"layer_x0 must have shape ({geo.n_layers},), got {layer_x0.shape}")
    if not math.isfinite(float(bz)):
        raise InputError(f"bz = {bz} T must be finite")
    return _Ckf(geo, Field(float(bz), field_map), measurements, layer_x0.tolist(), _settings(config))


def ckf_numpy(detector: Detector, measurements, seeds, layer_x0, bz: float, config: dict | None,
              field_map: tuple | None = None) -> dict:
    """Reference of the compiled ``ckf``: track finding from triplet seeds, ambiguity resolution, perigee fit.

    ``measurements``: a :class:`~trackcore.reco.measurements.Measurements` (module row, local u, v mm,
    variances mm^2, global xyz mm); ``seeds`` (N, 3) rows of it, best first; ``layer_x0`` x/X0 per layer
    of ``detector``; ``bz`` Tesla (used without ``field_map``, the ``(r0, dr, nr, z0, dz, nz, Br, Bz)``
    tuple of ``transport.field_arguments``); ``config`` a ``CkfConfig.as_dict()`` (missing keys take the
    defaults). Returns ``offsets``, ``hits`` (rows, path order), ``perigee`` (d0, z0 mm, phi, theta rad,
    q/p 1/GeV), ``covariance`` (N, 5, 5), ``chi2``, ``ndf``, ``seed`` (row of ``seeds``), ``fitted`` and
    ``stats`` (seeds_used, seeds_skipped, candidates, tracks_before_ambiguity).
    """
    ctx = _context(detector, measurements, layer_x0, bz, field_map, config)
    seeds = np.asarray(seeds)
    if seeds.size and not np.issubdtype(seeds.dtype, np.integer):
        raise InputError(f"seeds must be integer hit rows, got dtype {seeds.dtype}")
    if seeds.ndim != 2 or seeds.shape[1] != 3:
        raise InputError(f"seeds must have shape (N, 3), got {seeds.shape}")
    if seeds.size and (seeds.min() < 0 or seeds.max() >= len(ctx.module)):
        raise InputError("seed hit index outside the hits")
    stats = {"seeds_used": 0, "seeds_skipped": 0, "candidates": 0, "tracks_before_ambiguity": 0, "rescued": 0}
    out = _tracks_dict(_run_ckf(ctx, seeds.astype(np.int64).tolist(), stats))
    out["stats"] = stats
    return out


def fit_tracks_numpy(detector: Detector, measurements, offsets, hit_index, layer_x0, bz: float, config: dict | None,
                     field_map: tuple | None = None) -> dict:
    """Reference of the compiled ``fit_tracks``: Kalman fit of given hit sequences (inner to outer).

    Track t holds rows ``hit_index[offsets[t]:offsets[t + 1]]`` of ``measurements``; the other arguments
    and the returned dict are those of :func:`ckf_numpy` (``seed`` is -1, no ``stats``). A track that
    cannot be fitted (fewer than 3 hits, a module not reached) keeps its hits with ``fitted`` False.
    """
    ctx = _context(detector, measurements, layer_x0, bz, field_map, config)
    offsets, hit_index = np.asarray(offsets), np.asarray(hit_index)
    for name, a in (("offsets", offsets), ("hit_index", hit_index)):
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise InputError(f"{name} must be a 1-D integer array, got shape {a.shape} dtype {a.dtype}")
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(hit_index):
        raise InputError("offsets must start at 0 and end at len(hit_index)")
    if np.any(np.diff(offsets) < 0):
        raise InputError("offsets must be non-decreasing")
    if hit_index.size and (hit_index.min() < 0 or hit_index.max() >= len(ctx.module)):
        raise InputError("hit index outside the hits")
    hits = hit_index.tolist()
    return _tracks_dict(_fit(ctx, [hits[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]))
