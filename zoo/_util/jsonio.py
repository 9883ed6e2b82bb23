"""The one JSON helper: plain JSON values from anything zoo records (settings, meta, rows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: mappings get string keys, tuples become lists, and anything
    else that JSON cannot hold becomes its ``str``, so a value compares equal after a save."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
