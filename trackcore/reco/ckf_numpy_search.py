"""Track following of the ``numpy`` CKF reference (:mod:`trackcore.reco.ckf_numpy`): one trajectory
at a time, as ``csrc/src/ckf.cpp`` does it: seed state, layer search, branching on compatible hits,
holes, the backward filter, the inward search and re-follow (refinement). Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import math

import numpy as np

from ..sim.transport_numpy import KB, Field
from .kalman_numpy import (
    PI,
    Bound,
    GridGeometry,
    Stepper,
    _asin,
    _local,
    _state,
    apply_material,
    hypot,
    kalman_update,
    to_perigee,
    transport_bound,
    wrap_phi,
)

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
