"""The one check of a count a user gives (batch size, epochs, threads): a positive integer."""

from __future__ import annotations

from typing import Any

from zoo.errors import UsageError

__all__ = ["positive_int"]


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
