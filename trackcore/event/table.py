"""A minimal columnar table: named 1-D numpy columns of equal length, no pandas needed."""
from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import numpy as np

from ..errors import InputError


class Table:
    """Named numpy columns of equal length, in a fixed order.

    ``table["x"]`` is a column, ``len(table)`` the row count, ``table.take(idx)`` a row subset.
    """

    __slots__ = ("_columns", "name")

    def __init__(self, columns: Mapping[str, Iterable] | None = None, name: str = "table"):
        self.name = name
        self._columns: dict[str, np.ndarray] = {}
        n = None
        for key, values in (columns or {}).items():
            arr = np.asarray(values)
            if arr.ndim != 1:
                raise InputError(f"{name}: column {key!r} must be 1-D, got shape {arr.shape}")
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise InputError(f"{name}: column {key!r} has {len(arr)} rows, expected {n}")
            self._columns[key] = arr

    # -- mapping-like access -------------------------------------------------
    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self._columns[key]
        except KeyError:
            raise KeyError(f"{self.name} has no column {key!r} (columns: {', '.join(self._columns)})") from None

    def __setitem__(self, key: str, values) -> None:
        arr = np.asarray(values)
        if self._columns and len(arr) != len(self):
            raise InputError(f"{self.name}: new column {key!r} has {len(arr)} rows, expected {len(self)}")
        self._columns[key] = arr

    def __contains__(self, key: object) -> bool:
        return key in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table) or self.columns != other.columns:
            return False
        return all(np.array_equal(self[c], other[c]) for c in self.columns)

    def __repr__(self) -> str:
        return f"Table({self.name!r}, rows={len(self)}, columns={self.columns})"

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def items(self):
        return self._columns.items()

    def to_dict(self) -> dict[str, np.ndarray]:
        return dict(self._columns)

    def take(self, index) -> "Table":
        """Rows selected by an integer index array or a boolean mask."""
        return Table({k: v[index] for k, v in self._columns.items()}, name=self.name)

    def copy(self) -> "Table":
        return Table({k: v.copy() for k, v in self._columns.items()}, name=self.name)

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self._columns)

    @classmethod
    def from_pandas(cls, frame, name: str = "table") -> "Table":
        return cls({c: frame[c].to_numpy() for c in frame.columns}, name=name)
