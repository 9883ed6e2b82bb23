"""The registry: hook specifications, entries, name lookup and plugin discovery.

Nothing in this package imports torch or a plugin's target: listing stays light.
"""

from zoo.registry.entries import (
    KINDS,
    PLURALS,
    Entry,
    Registry,
    filter_names,
    make_entry,
    normalize_name,
)
from zoo.registry.hookspecs import hookimpl
from zoo.registry.plugins import PluginRecord, get_registry, plugin_records, reset

__all__ = [
    "KINDS",
    "PLURALS",
    "Entry",
    "PluginRecord",
    "Registry",
    "filter_names",
    "get_registry",
    "hookimpl",
    "make_entry",
    "normalize_name",
    "plugin_records",
    "reset",
]
