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
    cells = [[v if type(v) is str else _cell(v) for v in row] for row in rows]
    columns = list(zip(*cells, strict=True))
    widths = [len(h) for h in headers]
    if cells:
        widths = [max(w, *map(len, col)) for w, col in zip(widths, columns, strict=True)]
    if numeric is None:
        numeric = [
            bool(rows) and all(isinstance(r[i], int | float) or r[i] in (None, "") for r in rows)
            for i in range(len(headers))
        ]
    # one format string for every line: "{:<5}  {:>3}" pads as ljust/rjust would
    template = "  ".join(
        f"{{:{'>' if num else '<'}{w}}}" if w else "{}"
        for w, num in zip(widths, numeric, strict=True)
    )
    out = [template.format(*headers).rstrip(), template.format(*("-" * w for w in widths)).rstrip()]
    out.extend(template.format(*row).rstrip() for row in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)
