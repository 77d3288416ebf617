"""The event: what every stage reads and writes. Columnar numpy data with TrackML names."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from . import schema
from .table import Table


@dataclass
class Event:
    """One collision event.

    ``hits`` is always present; ``cells``, ``particles`` and ``truth`` may be ``None`` (a real
    detector gives hits and cells only; truth is for scoring and training).
    """

    hits: Table
    cells: Table | None = None
    particles: Table | None = None
    truth: Table | None = None
    event_id: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"event{self.event_id:09d}"

    @property
    def n_hits(self) -> int:
        return len(self.hits)

    @property
    def has_truth(self) -> bool:
        return self.truth is not None

    def validate(self, source: str | None = None) -> "Event":
        """Check ids and cross-table consistency; raise :class:`InputError` naming the problem."""
        where = source or self.name
        _check_table(self.hits, schema.HITS, f"{where} hits")
        hit_ids = self.hits["hit_id"]
        _check_unique(hit_ids, f"{where} hits", "hit_id")
        if self.truth is not None:
            _check_table(self.truth, schema.TRUTH, f"{where} truth")
            _check_unique(self.truth["hit_id"], f"{where} truth", "hit_id")
            if len(self.truth) != len(self.hits) or not np.array_equal(
                _sorted(self.truth["hit_id"]), _sorted(hit_ids)
            ):
                missing = np.setdiff1d(hit_ids, self.truth["hit_id"])[:5]
                extra = np.setdiff1d(self.truth["hit_id"], hit_ids)[:5]
                raise InputError(
                    f"{where}: truth and hits do not hold the same hit_ids "
                    f"(hits without truth: {missing.tolist()}, truth without hits: {extra.tolist()})"
                )
        if self.cells is not None:
            _check_table(self.cells, schema.CELLS, f"{where} cells")
            unknown = _not_in(self.cells["hit_id"], _sorted(hit_ids))
            if len(unknown):
                raise InputError(f"{where} cells: hit_id {unknown[:5].tolist()} not in hits")
        if self.particles is not None:
            req = {k: v for k, v in schema.PARTICLES.items() if k not in schema.PARTICLES_OPTIONAL}
            _check_table(self.particles, req, f"{where} particles")
            _check_unique(self.particles["particle_id"], f"{where} particles", "particle_id")
        return self

    def truth_aligned(self) -> Table:
        """Truth rows in the order of ``hits`` (raises if there is no truth)."""
        if self.truth is None:
            raise InputError(f"{self.name} has no truth")
        order = np.argsort(self.truth["hit_id"], kind="stable")
        pos = np.searchsorted(self.truth["hit_id"], self.hits["hit_id"], sorter=order)
        return self.truth.take(order[pos])


def _check_table(table: Table, columns: dict, where: str) -> None:
    for name in columns:
        if name not in table:
            raise InputError(f"{where}: missing column {name!r}")
    for name, dtype in columns.items():
        col = table[name]
        if np.issubdtype(np.dtype(dtype), np.floating):
            if not np.issubdtype(col.dtype, np.number):
                raise InputError(f"{where}: column {name!r} is not numeric")
            bad = ~np.isfinite(col)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(f"{where}: column {name!r} has a non-finite value ({col[row]}) at row {row}")
        elif not np.issubdtype(col.dtype, np.integer):
            raise InputError(f"{where}: column {name!r} must be integer, got {col.dtype}")


def _sorted(ids: np.ndarray) -> np.ndarray:
    """``ids`` sorted; files usually list them in increasing order already, which costs one pass."""
    return ids if len(ids) < 2 or bool(np.all(ids[1:] >= ids[:-1])) else np.sort(ids)


def _not_in(values: np.ndarray, sorted_reference: np.ndarray) -> np.ndarray:
    """The sorted distinct ``values`` missing from ``sorted_reference`` (what np.setdiff1d gives), by
    binary search instead of two hashing passes over both arrays."""
    if len(sorted_reference) == 0:
        return np.unique(values)
    pos = np.minimum(np.searchsorted(sorted_reference, values), len(sorted_reference) - 1)
    return np.unique(values[sorted_reference[pos] != values])


def _check_unique(ids: np.ndarray, where: str, column: str) -> None:
    if len(ids) == 0:
        return
    s = _sorted(ids)
    dup = s[1:][s[1:] == s[:-1]]
    if len(dup):
        raise InputError(f"{where}: duplicate {column} {dup[:5].tolist()}")
