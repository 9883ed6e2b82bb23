"""``hf://owner/repo[@revision]`` registries: a zoo registry kept in a Hugging Face repository.

The repository holds what ``zoo publish`` writes into a registry folder (``index.json``, the
weights, cards and recipes; upload the folder with ``hf upload``). Files are resolved through
``huggingface_hub`` (:func:`download`: ``hf_hub_download``), so its cache, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and token apply; ``ZOO_OFFLINE=1`` asks it for cached files
only. zoo then verifies every file against the index's sha256 and size as for any registry.
An ``hf://`` index may only name files inside its own repository (relative URLs).

``huggingface_hub`` is an optional extra (``pip install "zoo[hf]"``); zoo's core never imports
it. This module does not import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import FetchError

__all__ = ["SCHEME", "HfLocation", "download", "index_location", "is_hf", "parse"]

SCHEME = "hf"
INSTALL = 'hf:// registries need the huggingface_hub package: pip install "zoo[hf]"'
_LOCATION = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})"
    r"(?:@(?P<revision>[\w.-]{1,200}))?(?:/(?P<path>.*))?$",
    re.ASCII,
)
_SEGMENT = re.compile(r"^[\w.~+=-]+$", re.ASCII)


@dataclass(frozen=True)
class HfLocation:
    """A file (or the root, ``path=""``) of a repository at a revision (``None``: ``main``)."""

    repo_id: str
    revision: str | None
    path: str

    @property
    def root(self) -> str:
        """``hf://owner/repo[@revision]``: what file paths in it are relative to."""
        return f"hf://{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def is_hf(location: str) -> bool:
    """Whether ``location`` is an ``hf://`` URL."""
    return location[:5].lower() == "hf://"


def parse(location: str) -> HfLocation:
    """Split ``hf://owner/repo[@revision][/path]``; a malformed one is a one-line error."""
    match = _LOCATION.match(location)
    path = (match.group("path") or "").strip("/") if match else ""
    segments = path.split("/") if path else []
    if (
        match is None
        or ".." in match.group("repo")
        or any(s in (".", "..") or not _SEGMENT.match(s) for s in segments)
    ):
        raise FetchError(f"malformed hf:// location {location!r} (use hf://owner/repo[@revision])")
    return HfLocation(match.group("repo"), match.group("revision"), path)


def index_location(location: str) -> str:
    """The ``index.json`` of an ``hf://`` registry (checking the extra is installed)."""
    _hub()
    found = parse(location)
    if found.path.endswith(".json"):
        return f"{found.root}/{found.path}"
    return f"{found.root}/{found.path + '/' if found.path else ''}index.json"


def download(location: str, offline: bool = False) -> Path:
    """The local path of an ``hf://`` file, from huggingface_hub's cache or downloaded into it
    (``offline``: from the cache only). Errors are one-line :class:`FetchError`\\ s."""
    hub = _hub()
    found = parse(location)
    if not found.path:
        raise FetchError(f"{location} names a repository, not a file")
    try:
        return Path(
            hub.hf_hub_download(
                found.repo_id, found.path, revision=found.revision, local_files_only=offline,
                library_name="zoo",
            )
        )  # fmt: skip
    except Exception as exc:  # huggingface_hub's own errors: offline misses, 404s, HTTP, auth
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise FetchError(
            f"cannot get {location} from the Hugging Face hub: {type(exc).__name__}"
            + (f": {first}" if first else "")
        ) from None


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise FetchError(INSTALL) from None
    return huggingface_hub
