"""Per-cluster truth for the cluster splitter: which particles made each pixel cluster, and where they crossed.

The digitiser keeps only the majority particle per hit. To learn splitting we need every particle in a
cluster, so :func:`simulate_labelled` simulates an event with the core's :func:`simulate_event` and then
re-runs the (deterministic, seeded) transport and the segment deposition of the same crossings, and maps
each deposited charge piece onto the event's cells. The result is checked against the event's own truth
(same majority particle for every signal hit), so a drift between this code and the core is an error,
not a silent mislabelling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trackcore.backends import get_backend
from trackcore.errors import InputError
from trackcore.event import Event, Table
from trackcore.geometry.detector import PIXEL_VOLUMES, Detector

#: A particle counts as being in a cluster when at least this fraction of its crossing's charge
#: lies in the cluster's cells (a particle that only grazes a neighbour's cells is not "in" it).
MIN_CHARGE_FRACTION = 0.25
#: ... and at least this much charge (electrons, the pixel threshold).
MIN_CHARGE_E = 1000.0


@dataclass
class ClusterTruth:
    """Contributing particles of each hit, as CSR arrays over the rows of ``event.hits``.

    ``offsets`` (n_hits + 1,): particles of hit ``i`` are rows ``offsets[i]:offsets[i+1]`` of
    ``particle_id``, ``u``, ``v`` (the particle's crossing of the module mid-plane, local frame, mm)
    and ``charge`` (electrons it left in the cluster), sorted by decreasing charge.
    ``module_index`` (n_hits,): Detector row of each hit.
    """

    offsets: np.ndarray
    particle_id: np.ndarray
    u: np.ndarray
    v: np.ndarray
    charge: np.ndarray
    module_index: np.ndarray
    momentum: np.ndarray  #: (n_entries, 3) the particle's momentum at that crossing (GeV)

    @property
    def n_particles(self) -> np.ndarray:
        """(n_hits,) number of contributing particles (0 for noise hits)."""
        return np.diff(self.offsets)

    def of(self, hit_row: int) -> slice:
        return slice(int(self.offsets[hit_row]), int(self.offsets[hit_row + 1]))


def hit_module_index(event: Event, detector: Detector) -> np.ndarray:
    """Detector row of each hit of ``event`` (:class:`GeometryError` for a module the detector lacks)."""
    h = event.hits
    return detector.index(h["volume_id"], h["layer_id"], h["module_id"])


def simulate_labelled(detector: Detector, particles: Table, *, seed: int, event_id: int = 0,
                      config=None) -> tuple[Event, ClusterTruth]:
    """Simulate ``particles`` like :func:`trackcore.sim.simulate.simulate_event` and label every cluster.

    :return: the event (identical to ``simulate_event``'s) and its :class:`ClusterTruth`.
    :raises InputError: the re-run deposition disagrees with the event's truth (core changed).
    """
    from trackcore.sim.digitization import _module_shapes
    from trackcore.sim.pdg import mass_of
    from trackcore.sim.simulate import SimulationConfig, crossings_for_digitization, simulate_event
    from trackcore.sim.transport import transport

    config = config or SimulationConfig()
    event = simulate_event(detector, particles, config=config, seed=seed, event_id=event_id)
    n = len(particles)
    if n == 0:
        return event, _empty_truth(event, detector)
    vertex = np.stack([particles["vx"], particles["vy"], particles["vz"]], axis=1)
    momentum = np.stack([particles["px"], particles["py"], particles["pz"]], axis=1)
    crossings = transport(detector, vertex, momentum, particles["q"], mass_of(particles["particle_type"]),
                          config=config.transport, seed=seed)
    seg = crossings_for_digitization(detector, crossings, config.barrel_active_fraction, config.max_segment)
    be = get_backend()
    xc, ch0, ch1, q = (np.asarray(be.to_numpy(a)) for a in be.kernel("digitize_segments")(
        seg["module_index"], np.stack([seg["u0"], seg["v0"], seg["u1"], seg["v1"]], axis=1),
        seg["edep"] * config.digitization.electrons_per_gev, _module_shapes(detector)))
    truth = label_pieces(event, detector, crossings, xc, ch0, ch1, q, particles["particle_id"])
    return event, truth


def _empty_truth(event: Event, detector: Detector) -> ClusterTruth:
    z = np.zeros(0)
    return ClusterTruth(np.zeros(len(event.hits) + 1, np.int64), np.zeros(0, np.int64), z, z.copy(), z.copy(),
                        hit_module_index(event, detector), np.zeros((0, 3)))


def label_pieces(event: Event, detector: Detector, crossings: dict, xc: np.ndarray, ch0: np.ndarray,
                 ch1: np.ndarray, q: np.ndarray, particle_ids: np.ndarray) -> ClusterTruth:
    """Map charge pieces (crossing row, ch0, ch1, electrons) onto the event's cells and collect, per hit,
    the particles with enough charge in it (:data:`MIN_CHARGE_FRACTION`, :data:`MIN_CHARGE_E`)."""
    hits, cells = event.hits, event.cells
    if cells is None:
        raise InputError(f"{event.name}: no cells table; cluster truth needs cells")
    module = hit_module_index(event, detector)
    order = np.argsort(hits["hit_id"])
    row_of_cell = order[np.searchsorted(hits["hit_id"], cells["hit_id"], sorter=order)]
    cell_key = _key(module[row_of_cell], cells["ch0"], cells["ch1"])
    corder = np.argsort(cell_key)
    piece_key = _key(crossings["module_index"][xc], ch0, ch1)
    pos = np.minimum(np.searchsorted(cell_key, piece_key, sorter=corder), len(cell_key) - 1)
    found = cell_key[corder[pos]] == piece_key  # pieces in cells below threshold left no cell
    hit_row = row_of_cell[corder[pos[found]]]
    xcf, qf = xc[found], q[found]
    # Charge per (hit, crossing); a crossing's total charge is over all its pieces (fired or not).
    pair = hit_row.astype(np.int64) * (len(crossings["module_index"]) + 1) + xcf
    upair, inv = np.unique(pair, return_inverse=True)
    pq = np.bincount(inv, weights=qf)
    p_hit, p_x = np.divmod(upair, len(crossings["module_index"]) + 1)
    x_total = np.bincount(xc, weights=q, minlength=len(crossings["module_index"]))
    keep = (pq >= MIN_CHARGE_E) & (pq >= MIN_CHARGE_FRACTION * x_total[p_x])
    # One entry per (hit, particle): a particle with two crossings of one module keeps its larger one.
    p_particle = crossings["particle_index"][p_x]
    _check_majority(event, p_hit, p_particle, pq, particle_ids)
    p_hit, p_x, pq, p_particle = p_hit[keep], p_x[keep], pq[keep], p_particle[keep]
    o = np.lexsort((-pq, p_particle, p_hit))
    p_hit, p_x, pq, p_particle = p_hit[o], p_x[o], pq[o], p_particle[o]
    first = np.r_[True, (p_hit[1:] != p_hit[:-1]) | (p_particle[1:] != p_particle[:-1])] if len(o) else np.zeros(0, bool)
    p_hit, p_x, pq, p_particle = p_hit[first], p_x[first], pq[first], p_particle[first]
    o = np.lexsort((-pq, p_hit))
    p_hit, p_x, pq, p_particle = p_hit[o], p_x[o], pq[o], p_particle[o]
    counts = np.bincount(p_hit, minlength=len(hits))
    local = crossings["local"]
    return ClusterTruth(np.r_[0, np.cumsum(counts)].astype(np.int64), np.asarray(particle_ids)[p_particle],
                        local[p_x, 0].astype(np.float64), local[p_x, 1].astype(np.float64), pq, module,
                        np.asarray(crossings["momentum"], np.float64)[p_x].reshape(-1, 3))


def _key(module, ch0, ch1) -> np.ndarray:
    return (np.asarray(module, np.int64) << 42) | (np.asarray(ch0, np.int64) << 21) | np.asarray(ch1, np.int64)


def _check_majority(event: Event, p_hit, p_particle, pq, particle_ids) -> None:
    """The particle with most charge per hit must be the event truth's particle (same pieces, same cells)."""
    if event.truth is None or not len(p_hit):
        return
    o = np.lexsort((-pq, p_hit))
    first = o[np.r_[True, p_hit[o][1:] != p_hit[o][:-1]]]
    truth = event.truth_aligned()["particle_id"]
    # Per-particle sums (not per crossing) decide the majority in the core; compare on hits with one
    # clear winner only, where both rules agree by construction.
    agree = np.asarray(particle_ids)[p_particle[first]] == truth[p_hit[first]]
    if agree.mean() < 0.99:
        raise InputError(f"{event.name}: cluster truth disagrees with the event truth on "
                         f"{int((~agree).sum())} of {len(agree)} hits (did the core's simulation change?)")


def pixel_rows(event: Event) -> np.ndarray:
    """Rows of ``event.hits`` on pixel modules (TrackML volumes 7, 8, 9)."""
    return np.flatnonzero(np.isin(event.hits["volume_id"], PIXEL_VOLUMES))
