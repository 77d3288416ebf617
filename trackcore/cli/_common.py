"""Helpers shared by the subcommands: plain-text tables and JSON output."""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A plain-text table; ``align`` has one ``<`` or ``>`` per column (default: text left, numbers right)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    if align is None:
        align = "".join(">" if rows and all(isinstance(r[i], (int, float, np.number)) for r in rows) else "<"
                        for i in range(len(headers)))
    def line(values: Sequence[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, align, widths)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def to_json(data: Any) -> str:
    """``data`` as indented JSON (numpy scalars and arrays converted)."""
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
    return json.dumps(data, indent=2, default=default)
