"""Splitting merged pixel clusters with the ONNX network: candidates -> gate -> predictions -> new hits and cells.

The gate (:mod:`.baseline`, charge over the single-particle median at that incidence) lets only plausible
merged clusters (~1% of the pixel clusters of an ordinary event) reach the CNN: no false splits elsewhere,
and the CNN's cost scales with the merged clusters, not with all clusters.

No PyTorch here: this is what runs inside the reconstruction pipeline.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trackcore.errors import GeometryError, InputError
from trackcore.event import Event, Table
from trackcore.geometry.detector import PIXEL_VOLUMES, Detector

from .baseline import BASELINE_FILE, ChargeBaseline
from .features import ClusterInputs, cluster_inputs, model_scalars, neighbour_counts

#: Folder of the shipped model files.
MODEL_DIR = Path(__file__).resolve().parent
MODEL_PATH = MODEL_DIR / "model.onnx"
#: Version of the model format / inputs; bump when features.py changes.
MODEL_VERSION = "2"
#: A gated cluster is split when P(1 particle) is below this. ~11% of the single clusters of <mu>=200 events
#: (soft, secondary, looping particles) pass the charge gate; the neighbour gate below removes ~95% of
#: them, which lets this be loose (it was 0.05 without that gate). README.md has the scan.
DEFAULT_P_SINGLE_MAX = 0.9
#: ... and only when at least this many other hits of its module lie within NEIGHBOUR_RADIUS (1 mm):
#: chosen on training events (jet seeds 1-150, <mu>=200 seeds 300001-2), see README.md.
DEFAULT_MIN_NEIGHBOURS = 2
#: Clusters with fewer cells are never examined (two particles need at least two cells).
MIN_CELLS = 2
#: The event's hits must sit at their cluster centroids on the splitter's detector within this (mm).
POSITION_TOLERANCE = 0.005


@dataclass
class SplitResult:
    """The new hits and cells of an event, and how they came about.

    ``parent_row`` (n_new,): row of the original ``event.hits`` each new hit was split from;
    ``local`` (n_new, 2): its predicted local (u, v) in mm; ``new_rows`` (n_new,): its row in ``hits``;
    ``split_rows``: original hit rows that were split; ``prob``: (n_candidates, 3) of every cluster the
    CNN examined (those that passed the gate), whose original rows are ``candidate_rows``.
    """

    hits: Table
    cells: Table
    parent_row: np.ndarray
    local: np.ndarray
    new_rows: np.ndarray
    split_rows: np.ndarray
    candidate_rows: np.ndarray
    prob: np.ndarray


def split_counts(prob: np.ndarray, p_single_max: float, charge_ratio: np.ndarray | None = None,
                 cut3: float | None = None) -> np.ndarray:
    """(N,) predicted particle count 1, 2 or 3: 1 unless P(1) < ``p_single_max``; then 3 if ``charge_ratio``
    >= ``cut3`` (the baseline's 2-vs-3 cut, which separates them better than the CNN), else 2; without a
    ratio, the likelier of 2 and 3."""
    prob = np.asarray(prob)
    if len(prob) == 0:
        return np.zeros(0, np.int64)
    if charge_ratio is not None and cut3 is not None:
        multi = np.where(np.asarray(charge_ratio) >= cut3, 3, 2)
    else:
        multi = np.where(prob[:, 1] >= prob[:, 2], 2, 3)
    return np.where(prob[:, 0] < p_single_max, multi, 1).astype(np.int64)


class ClusterSplitter:
    """Splits merged pixel clusters of events on ``detector`` with an ONNX cluster splitter model.

    :param model_path: the ``.onnx`` file (default: the shipped :data:`MODEL_PATH`); its gate and charge
        calibration is ``baseline.json`` in the same folder (written with it by the train command).
    :param detector: the detector the events were recorded with (default: the TrackML-like detector of
        ``trackcore.geometry.builders``; the hook does not receive the pipeline's detector).
    :param p_single_max: split only when P(1) < this, in (0, 1].
    :param min_neighbours: examine only clusters with at least this many other hits of their module within
        1 mm (0: no neighbour gate; >= 0).
    """

    def __init__(self, model_path: str | Path | None = None, detector: Detector | None = None,
                 p_single_max: float = DEFAULT_P_SINGLE_MAX, min_neighbours: int = DEFAULT_MIN_NEIGHBOURS):
        if not 0.0 < float(p_single_max) <= 1.0:
            raise InputError(f"cluster splitter: p_single_max must be in (0, 1], got {p_single_max!r}")
        if int(min_neighbours) != min_neighbours or min_neighbours < 0:
            raise InputError(f"cluster splitter: min_neighbours must be an integer >= 0, got {min_neighbours!r}")
        self.min_neighbours = int(min_neighbours)
        self.model_path = Path(model_path) if model_path is not None else MODEL_PATH
        self.p_single_max = float(p_single_max)
        self._detector = detector
        self._session = None
        self._baseline: ChargeBaseline | None = None
        self._warned: set[str] = set()

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            from trackcore.geometry.builders import trackml_like_detector

            self._detector = trackml_like_detector()
        return self._detector

    @property
    def session(self):
        """The :class:`~.onnx_runtime.OnnxClusterSplitter` (:class:`InputError` if the file is missing)."""
        if self._session is None:
            from .onnx_runtime import OnnxClusterSplitter

            self._session = OnnxClusterSplitter(self.model_path)
        return self._session

    @property
    def baseline(self) -> ChargeBaseline:
        """The gate and charge calibration shipped beside the model (:class:`InputError` if missing)."""
        if self._baseline is None:
            self._baseline = ChargeBaseline.load(self.model_path.parent / BASELINE_FILE)
        return self._baseline

    def candidates(self, event: Event, clusters: Table) -> np.ndarray:
        """Rows of ``event.hits`` whose clusters (in ``clusters``) lie on pixels and have >= MIN_CELLS cells."""
        for col in ("hit_id", "ch0", "ch1", "value"):
            if col not in clusters:
                raise InputError(f"cluster splitter: {event.name} clusters: missing column {col!r}")
        hid = event.hits["hit_id"]
        ids, counts = np.unique(np.asarray(clusters["hit_id"], np.int64), return_counts=True)
        order = np.argsort(hid)
        pos = np.minimum(np.searchsorted(hid, ids, sorter=order), max(len(hid) - 1, 0))
        known = (hid[order[pos]] == ids) if len(hid) else np.zeros(len(ids), bool)
        if not known.all():
            raise InputError(f"cluster splitter: {event.name} clusters: hit_id {ids[~known][:5].tolist()} not in hits")
        rows = order[pos]
        keep = (counts >= MIN_CELLS) & np.isin(event.hits["volume_id"][rows], PIXEL_VOLUMES)
        return np.sort(rows[keep])

    def _on_detector(self, event: Event, rows: np.ndarray) -> tuple[bool, np.ndarray | None]:
        """Whether the event's modules and hit positions match :attr:`detector` (else warn once)."""
        h = event.hits
        try:
            module = self.detector.index(h["volume_id"][rows], h["layer_id"][rows], h["module_id"][rows])
        except GeometryError as exc:
            self._warn("modules", f"cluster splitter: {event.name} is not on the splitter's detector ({exc}); "
                                  f"clusters are left unsplit")
            return False, None
        return True, module

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            warnings.warn(message, stacklevel=3)
            self._warned.add(key)

    def split(self, event: Event, clusters: Table | None = None) -> SplitResult | None:
        """Split the merged clusters among ``clusters`` (default: all of ``event.cells``); ``None`` when the
        event is not on this detector. Raises :class:`InputError` for malformed input or a missing model."""
        session, _ = self.session, self.baseline  # first: a missing model is reported even for an empty event
        if event.cells is None:
            raise InputError(f"cluster splitter: {event.name} has no cells table")
        clusters = event.cells if clusters is None else clusters
        rows = self.candidates(event, clusters)
        empty = np.zeros(0, np.int64)
        if len(rows) == 0:
            return SplitResult(event.hits, event.cells, empty, np.zeros((0, 2)), empty, empty, rows,
                               np.zeros((0, 3), np.float32))
        ok, module = self._on_detector(event, rows)
        if not ok:
            return None
        summary = cluster_inputs(event, self.detector, rows, module, with_maps=False)  # scalars only: cheap
        xyz = self.detector.local_to_global(summary.module_index, np.c_[summary.centroid, np.zeros(len(rows))])
        h = event.hits
        off = np.hypot(np.hypot(xyz[:, 0] - h["x"][rows], xyz[:, 1] - h["y"][rows]), xyz[:, 2] - h["z"][rows])
        if np.median(off) > POSITION_TOLERANCE:
            self._warn("positions", f"cluster splitter: {event.name}'s hits are not at their cell centroids on the "
                                    f"splitter's detector (median {np.median(off):.3g} mm); clusters are left unsplit")
            return None
        gate = self.baseline.passes_gate(summary.scalars)
        if self.min_neighbours:  # only the charge-gated rows: the count is the costlier cut
            gate[gate] = neighbour_counts(event, rows[gate]) >= self.min_neighbours
        rows, module = rows[gate], module[gate]
        inputs = cluster_inputs(event, self.detector, rows, module)
        scalars = model_scalars(inputs.scalars, self.baseline)
        prob, pos, _ = session.predict(inputs.maps, scalars)
        n_pred = split_counts(prob, self.p_single_max, self.baseline.ratio(inputs.scalars), self.baseline.cut3)
        return apply_split(event, self.detector, inputs, n_pred, pos, prob)


def apply_split(event: Event, detector: Detector, inputs: ClusterInputs, n_pred: np.ndarray, positions: np.ndarray,
                prob: np.ndarray) -> SplitResult:
    """Replace each cluster with ``n_pred >= 2`` by one hit per predicted position (pitch-unit offsets
    ``positions`` (N, 6, 2), slots as in :data:`model.SLOTS`); each cell goes to the nearest position.
    A predicted hit that gets no cell is dropped; a cluster left with one hit is not split."""
    slot_start = {2: 1, 3: 3}
    hits, cells = event.hits, event.cells
    cell_hit = np.asarray(cells["hit_id"], np.int64).copy()
    next_id = int(hits["hit_id"].max()) + 1 if len(hits) else 1
    parents, locals_, split_rows = [], [], []
    new_ids = []
    for i in np.flatnonzero(n_pred >= 2):
        k = int(n_pred[i])
        pred = positions[i, slot_start[k]:slot_start[k] + k].astype(np.float64)  # (k, 2) pitch units
        crow = inputs.cell_rows[inputs.cell_offsets[i]:inputs.cell_offsets[i + 1]]
        cell_off = np.stack([cells["ch0"][crow] - inputs.centre_cell[i, 0],
                             cells["ch1"][crow] - inputs.centre_cell[i, 1]], axis=1).astype(np.float64)
        # Distance in mm (pitches differ along u and v).
        d = np.linalg.norm((cell_off[:, None, :] - pred[None, :, :]) * inputs.pitch[i], axis=2)
        owner = d.argmin(1)
        used = np.unique(owner)
        if len(used) < 2:
            continue
        split_rows.append(inputs.hit_row[i])
        for j in used:
            cell_hit[crow[owner == j]] = next_id
            new_ids.append(next_id)
            parents.append(inputs.hit_row[i])
            locals_.append(inputs.centre[i] + pred[j] * inputs.pitch[i])
            next_id += 1
    split_rows = np.asarray(split_rows, np.int64)
    parent = np.asarray(parents, np.int64)
    local = np.asarray(locals_, np.float64).reshape(-1, 2)
    keep = np.ones(len(hits), bool)
    keep[split_rows] = False
    module = detector.index(hits["volume_id"][parent], hits["layer_id"][parent], hits["module_id"][parent])
    xyz = detector.local_to_global(module, np.c_[local, np.zeros(len(local))]) if len(local) else np.zeros((0, 3))
    cols = {}
    for name in hits.columns:
        new = {"hit_id": np.asarray(new_ids, np.int64), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}.get(
            name, hits[name][parent])
        cols[name] = np.concatenate([hits[name][keep], np.asarray(new, hits[name].dtype)])
    new_hits = Table(cols, name=hits.name)
    new_cells = Table({name: (cell_hit if name == "hit_id" else cells[name]) for name in cells.columns}, name=cells.name)
    new_rows = np.arange(int(keep.sum()), len(new_hits), dtype=np.int64)
    return SplitResult(new_hits, new_cells, parent, local, new_rows, split_rows, inputs.hit_row, prob)
