"""The one JSON helper: plain JSON values out (``jsonable``) and bounded JSON in (``loads``).

Every file zoo reads (an index, a weights header, ``run.json``, a checkpoint's ``state.json``)
goes through :func:`loads` or :func:`read_json`, so a hostile file is refused by size and depth
with one line instead of exhausting memory or the stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "JSONLimitError", "jsonable", "loads", "read_json"]

#: Deepest nesting any zoo file needs (an index entry's metrics sit at depth 5).
MAX_DEPTH = 64


class JSONLimitError(ValueError):
    """A JSON document too large, too deep or not JSON: the message is one line."""


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


def loads(data: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as JSON no larger than ``max_bytes`` and no deeper than ``max_depth``.

    Raises :class:`JSONLimitError` (a ``ValueError``) with a one-line reason otherwise.
    """
    if len(data) > max_bytes:
        raise JSONLimitError(f"larger than the {max_bytes:,}-byte limit")
    try:
        value = json.loads(data)
    except RecursionError:
        raise JSONLimitError(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise JSONLimitError(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise JSONLimitError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    _check_depth(value, max_depth)
    return value


def read_json(path: str | Path, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """:func:`loads` of a file, reading at most ``max_bytes + 1`` bytes of it.

    Raises ``OSError`` when the file cannot be read and :class:`JSONLimitError` for its content.
    """
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    return loads(data, max_bytes=max_bytes, max_depth=max_depth)


def _check_depth(value: Any, max_depth: int) -> None:
    """Walk ``value`` level by level (no recursion); refuse nesting deeper than ``max_depth``."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise JSONLimitError(f"nested deeper than {max_depth} levels")
        values = chain.from_iterable([x.values() if type(x) is dict else x for x in level])
        level = [v for v in values if type(v) in _CONTAINERS]


_CONTAINERS = (dict, list)  # what json.loads builds; exact types, checked fast
