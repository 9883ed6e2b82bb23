"""The pretrained hub: registry indexes, the verified download cache, and publishing.

``entries`` validates what an index says, ``cache`` downloads and verifies files (through
``transfer``: every read of a URL or file has a byte cap and a deadline), ``index`` searches the
registries (listing, lookup, fetch by name), ``publish`` writes a local registry.
"""

from zoo.hub.entries import FileRef, PretrainedEntry, bundled_index
from zoo.hub.index import (
    all_entries,
    fetch,
    get_pretrained,
    list_pretrained,
    registry_locations,
)

__all__ = [
    "FileRef",
    "PretrainedEntry",
    "all_entries",
    "bundled_index",
    "fetch",
    "get_pretrained",
    "list_pretrained",
    "registry_locations",
]
