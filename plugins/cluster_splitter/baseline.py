"""The charge-ratio baseline (no ML), which is also the splitter's pre-selection and two of the CNN's inputs.

*Charge ratio*: cluster charge over the median charge of single-particle clusters at the same incidence
(bins of the path factor sqrt(1 + tan_u^2 + tan_v^2), barrel and endcap apart); *size ratio*: the same for
the cell count. One particle gives ratios near 1; n merged particles near n. The baseline classifies 1 / 2 /
>= 3 particles by two cuts on the charge ratio; the *gate* is a lower cut: only clusters above it are plausible
merged clusters and go through the CNN (cheap, and single clusters of ordinary events are never split).

Everything is fitted on the training set and shipped as ``baseline.json`` beside the model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trackcore.errors import InputError

#: Columns of the base scalars (see :data:`features.BASE_SCALAR_NAMES`) used here.
TAN_U, TAN_V, BARREL, N_CELLS, CHARGE = 0, 1, 2, 5, 6
#: Fraction of merged training clusters the gate must keep.
GATE_KEEP = 0.995
BASELINE_FILE = "baseline.json"


def path_factor(scalars: np.ndarray) -> np.ndarray:
    """sqrt(1 + tan_u^2 + tan_v^2): path length in the sensor over its thickness, for a prompt track."""
    return np.sqrt(1.0 + scalars[:, TAN_U] ** 2 + scalars[:, TAN_V] ** 2)


def _confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    cm = np.zeros((3, 3), np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


class ChargeBaseline:
    """Median single-particle charge and size per incidence bin, the 1/2/>=3 cuts and the gate.

    Attributes after :meth:`fit` (or :meth:`load`): ``edges`` (path-factor bin edges), ``median`` and
    ``median_cells`` (2 x (len(edges) + 1), endcap row 0, barrel row 1; charge in the scalars' units),
    ``cut2``, ``cut3`` (charge-ratio cuts) and ``gate`` (charge-ratio pre-selection cut).
    """

    def fit(self, scalars: np.ndarray, y: np.ndarray, gate_keep: float = GATE_KEEP) -> "ChargeBaseline":
        """Fit on base scalars (N, 7) and classes ``y`` (0, 1, 2 = 1, 2, >= 3 particles)."""
        scalars, y = np.asarray(scalars, np.float64), np.asarray(y)
        single = y == 0
        if not single.any() or not (y > 0).any():
            raise InputError("cluster splitter baseline: need single and merged clusters to fit")
        f = path_factor(scalars)
        self.edges = np.unique(np.quantile(f[single], np.linspace(0, 1, 11)))
        self.median = np.ones((2, len(self.edges) + 1))
        self.median_cells = np.ones((2, len(self.edges) + 1))
        k_all = np.digitize(f, self.edges)
        for b in (0, 1):
            for k in range(len(self.edges) + 1):
                sel = single & (scalars[:, BARREL] == b) & (k_all == k)
                if sel.sum() < 5:  # sparse bin: the overall single-particle median
                    sel = single
                self.median[b, k] = np.median(scalars[sel, CHARGE])
                self.median_cells[b, k] = np.median(scalars[sel, N_CELLS])
        r = self.ratio(scalars)
        best = (-1.0, 1.5, 2.5)
        for c2 in np.arange(1.1, 2.6, 0.05):
            for c3 in np.arange(c2 + 0.1, 4.0, 0.1):
                cm = _confusion(y, np.where(r >= c3, 2, np.where(r >= c2, 1, 0)))
                bacc = float(np.mean(np.diag(cm) / np.maximum(cm.sum(1), 1)))
                if bacc > best[0]:
                    best = (bacc, float(c2), float(c3))
        _, self.cut2, self.cut3 = best
        # Gate: keep gate_keep of the merged clusters, never above the baseline's own 2-particle cut.
        self.gate = float(min(np.quantile(r[y > 0], 1.0 - gate_keep), self.cut2))
        return self

    def _bin(self, scalars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(scalars[:, BARREL]).astype(np.int64).clip(0, 1), np.digitize(path_factor(scalars), self.edges))

    def ratio(self, scalars: np.ndarray) -> np.ndarray:
        """Cluster charge over the median single-particle charge at its incidence (~ number of particles)."""
        b, k = self._bin(scalars)
        return scalars[:, CHARGE] / self.median[b, k]

    def size_ratio(self, scalars: np.ndarray) -> np.ndarray:
        """Cell count over the median single-particle cell count at its incidence."""
        b, k = self._bin(scalars)
        return scalars[:, N_CELLS] / self.median_cells[b, k]

    def predict(self, scalars: np.ndarray) -> np.ndarray:
        """Class 0, 1, 2 (1, 2, >= 3 particles) by the two charge-ratio cuts."""
        r = self.ratio(scalars)
        return np.where(r >= self.cut3, 2, np.where(r >= self.cut2, 1, 0))

    def passes_gate(self, scalars: np.ndarray) -> np.ndarray:
        """(N,) bool: plausible merged clusters (charge ratio >= :attr:`gate`)."""
        return self.ratio(scalars) >= self.gate

    # -- files ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"edges": self.edges.tolist(), "median": self.median.tolist(), "median_cells": self.median_cells.tolist(),
                "cut2": self.cut2, "cut3": self.cut3, "gate": self.gate}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ChargeBaseline":
        """Read :meth:`save`'s JSON (:class:`InputError` naming the file and the problem)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"cluster splitter: baseline file {path} not found (written by 'trackcore train "
                             f"cluster_splitter' beside the model)")
        try:
            blob = json.loads(path.read_text())
            self = cls()
            self.edges = np.asarray(blob["edges"], np.float64)
            self.median = np.asarray(blob["median"], np.float64)
            self.median_cells = np.asarray(blob["median_cells"], np.float64)
            self.cut2, self.cut3, self.gate = float(blob["cut2"]), float(blob["cut3"]), float(blob["gate"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cluster splitter: {path} is not a baseline file ({type(exc).__name__}: {exc})") from exc
        shape = (2, len(self.edges) + 1)
        if self.edges.ndim != 1 or self.median.shape != shape or self.median_cells.shape != shape:
            raise InputError(f"cluster splitter: {path}: median tables must have shape {shape}, got "
                             f"{self.median.shape} and {self.median_cells.shape}")
        if not (np.all(self.median > 0) and np.all(self.median_cells > 0) and 0 < self.gate <= self.cut2 < self.cut3):
            raise InputError(f"cluster splitter: {path}: medians must be > 0 and 0 < gate <= cut2 < cut3")
        return self
