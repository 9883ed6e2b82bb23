"""Aligned text tables: the one formatter for listings, check reports and bench results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_table"]


def format_table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    numeric: Sequence[bool] | None = None,
) -> str:
    """Left-aligned columns separated by two spaces; numbers right-aligned.

    Args:
        numeric: which columns to right-align (default: those holding only numbers), for
            rows whose numbers are already formatted as text.
    """
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    if numeric is None:
        numeric = [
            bool(rows) and all(isinstance(r[i], int | float) or r[i] in (None, "") for r in rows)
            for i in range(len(headers))
        ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)
