"""Exceptions zoo raises for things a user can fix.

The CLI prints any :class:`ZooError` as one ``error: ...`` line (no traceback unless
``ZOO_DEBUG=1``). ``exit_code`` is 2 for bad usage and 1 for a failure of the work itself.
"""

from __future__ import annotations

__all__ = [
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
