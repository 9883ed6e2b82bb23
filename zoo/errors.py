"""Exceptions zoo raises for things a user can fix.

The CLI prints any :class:`ZooError` as one ``error: ...`` line (no traceback unless
``ZOO_DEBUG=1``). ``exit_code`` is 2 for bad usage and 1 for a failure of the work itself.
"""

from __future__ import annotations

__all__ = [
    "one_line",
    "short_repr",
    "AmbiguousNameError",
    "FetchError",
    "IncompatibleError",
    "PluginError",
    "UnknownNameError",
    "UsageError",
    "WeightsError",
    "ZooError",
]


class ZooError(Exception):
    """Base class: a clear, one-line problem report."""

    exit_code = 1


class UsageError(ZooError):
    """The request itself is wrong: unknown name, bad option, incompatible combination."""

    exit_code = 2


class UnknownNameError(UsageError, LookupError):
    """No entry has that name."""


class AmbiguousNameError(UsageError, LookupError):
    """More than one plugin registered that name."""


class IncompatibleError(UsageError):
    """A (model, dataset, loss) combination that cannot work together."""


class PluginError(ZooError):
    """A plugin failed to load, raised in a hook, or registered something invalid."""


class WeightsError(ZooError):
    """A weights file is malformed, truncated, or for another model."""


class FetchError(ZooError):
    """A pretrained file could not be fetched or verified."""


def one_line(exc: BaseException, *, typed: bool = False, sep: str = " ") -> str:
    """How an error reads on one line: its message with whitespace collapsed.

    Args:
        exc: the error.
        typed: prefix the exception's type name (``ValueError: ...``): for errors raised by
            someone else's code (a plugin, a model), where the type is part of the story.
        sep: what joins the lines of a multi-line message (``" "``, or ``"; "`` where each
            line is a separate problem).

    An ``OSError`` reads ``<reason>: <path>`` (``No space left on device: /runs/x``).
    """
    if isinstance(exc, OSError) and not isinstance(exc, ZooError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        lines = [" ".join(line.split()) for line in str(exc).splitlines()]
        text = sep.join(line for line in lines if line)
    if typed:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters: how a message quotes a value
    read from a file or given by a user (a hostile one can be long)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
