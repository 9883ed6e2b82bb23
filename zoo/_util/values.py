"""The checks of numbers a user gives: counts (batch size, epochs, threads), seeds, seconds."""

from __future__ import annotations

import math
import os
from typing import Any

from zoo.errors import UsageError

__all__ = ["SEEDS", "env_seconds", "positive_int", "seed_int"]

#: The seeds ``torch.manual_seed`` takes.
SEEDS = (-(2**63), 2**64 - 1)


def positive_int(value: Any, what: str, *, text: bool = False) -> int:
    """``value`` as an int >= 1, else ``UsageError("<what> must be a positive integer, ...")``.

    Args:
        value: what the user gave (a bool is not a number here).
        what: how the error names it (``batch size``, ``$OMP_NUM_THREADS``).
        text: also accept a string of digits (``"32"`` from a comma-separated list or the
            environment).
    """
    number = value
    if text and isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    return number


def env_seconds(name: str, default: float, *, zero: bool = False) -> float:
    """``$name`` as a finite number of seconds > 0 (``>= 0`` with ``zero``, where 0 turns the
    limit off); ``default`` when unset or empty; else ``UsageError`` naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > 0 or (zero and value == 0))):
        kind = "0 or more" if zero else "more than 0"
        raise UsageError(f"${name} must be a number of seconds ({kind}), got {raw!r}")
    return value


def seed_int(value: Any) -> int:
    """``value`` as a seed torch takes (an int within :data:`SEEDS`), else ``UsageError``."""
    low, high = SEEDS
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"seed must be an integer from {low} to {high}, got {value!r}")
    return value
