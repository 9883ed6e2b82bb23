"""The pretrained hub: registry indexes, the verified download cache, and publishing."""

from zoo.hub.index import (
    FileRef,
    PretrainedEntry,
    all_entries,
    bundled_index,
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
