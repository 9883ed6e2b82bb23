"""The registry: hook specifications, entries, name lookup and plugin discovery.

Nothing in this package imports torch or a plugin's target: listing stays light. The names
below load on first use, so ``import zoo`` (which needs only ``hookimpl``) does not pay for
entry-point discovery.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "KINDS": "zoo.registry.entries",
    "PLURALS": "zoo.registry.entries",
    "Entry": "zoo.registry.entries",
    "Pin": "zoo.registry.entries",
    "Registry": "zoo.registry.entries",
    "make_entry": "zoo.registry.entries",
    "hookimpl": "zoo.registry.hookspecs",
    "PluginRecord": "zoo.registry.plugins",
    "get_registry": "zoo.registry.plugins",
    "plugin_records": "zoo.registry.plugins",
    "reset": "zoo.registry.plugins",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo.registry' has no attribute {name!r}")
    return getattr(import_module(module), name)
