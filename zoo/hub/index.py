"""Pretrained registries: where ``model.tag`` entries come from, and fetching them by name.

Registries, searched in this order (like ``PATH``: the first one naming an entry wins):

1. ``registry=`` arguments / ``--registry`` options, in order;
2. ``$ZOO_REGISTRY`` (comma-separated), in order;
3. the bundled registry (package ``zoo_registry``: the repo's ``registry/``);
4. ``pretrained=[...]`` declarations in plugins' model metadata.

So a registry you add explicitly overrides the bundled one. When two sources provide the same
``model.tag`` with different contents, the later one is shadowed and one ``zoo: warning:`` line
on stderr names both (once per process). A ``$ZOO_REGISTRY`` registry that cannot be read
(missing or malformed index, unreachable URL) is skipped with one warning line, so it cannot
break unrelated commands; looking up a name no readable registry has then fails with that
registry's error. Registries passed explicitly (``registry=``, ``--registry``) and the bundled
one are never skipped: their errors are raised.

A registry is a directory, a ``file://`` URL or an ``http(s)://`` URL holding ``index.json``
(or the URL of the index itself), read and validated by :mod:`zoo.hub.entries`. :func:`fetch`
downloads an entry's files into the verified, content-addressed cache of :mod:`zoo.hub.cache`;
:mod:`zoo.hub.publish` adds entries to a local registry. This module does not import torch.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from zoo._util.log import get_logger, warn_once
from zoo._util.names import filter_names, unknown_message
from zoo.errors import FetchError, UnknownNameError
from zoo.hub.cache import fetch_entry, fetch_index
from zoo.hub.entries import (
    PretrainedEntry,
    bundled_index,
    local_path,
    make_entry,
    parse_index,
)
from zoo.registry.plugins import get_registry

__all__ = [
    "all_entries",
    "fetch",
    "get_pretrained",
    "list_pretrained",
    "load_index",
    "registry_locations",
]


def registry_locations(registry: str | list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Index locations in search order: explicit, ``$ZOO_REGISTRY``, then the bundled one."""
    return [loc for loc, _ in _sources(registry)]


def _sources(registry: str | list[str] | tuple[str, ...] | None) -> list[tuple[str, str]]:
    """``(index location, origin)`` in search order, without repeats.

    ``origin`` is ``"argument"``, ``"ZOO_REGISTRY"`` or ``"bundled"``. A ``$ZOO_REGISTRY``
    value that is not even a valid location keeps its raw text (reading it fails later).
    """
    explicit = [registry] if isinstance(registry, str) else list(registry or [])
    env = [p.strip() for p in os.environ.get("ZOO_REGISTRY", "").split(",") if p.strip()]
    raw = [(r, "argument") for r in explicit]
    raw += [(r, "ZOO_REGISTRY") for r in env]
    raw.append((bundled_index(), "bundled"))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for loc, origin in raw:
        try:
            loc = _index_location(loc)
        except FetchError:
            if origin != "ZOO_REGISTRY":
                raise
        if loc not in seen:
            seen.add(loc)
            out.append((loc, origin))
    return out


def _index_location(loc: str) -> str:
    """A registry given as dir/URL -> the location of its ``index.json``."""
    parts = urllib.parse.urlsplit(loc)
    if parts.scheme in ("http", "https"):
        return loc if parts.path.endswith(".json") else loc.rstrip("/") + "/index.json"
    path = local_path(loc)
    return str(path if path.suffix == ".json" else path / "index.json")


def load_index(location: str, offline: bool | None = None) -> list[PretrainedEntry]:
    """Read and validate one registry index (HTTP indexes are cached for offline use)."""
    if urllib.parse.urlsplit(location).scheme in ("http", "https"):
        data = fetch_index(location, offline)
    else:
        path = local_path(location)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FetchError(f"registry index not found: {path}") from None
        except OSError as exc:
            raise FetchError(f"cannot read registry index {path}: {exc.strerror or exc}") from None
    return parse_index(data, location)


def _plugin_entries() -> list[PretrainedEntry]:
    """Pretrained entries declared as ``pretrained=[{...}]`` in plugins' model metadata."""
    out = []
    for model in get_registry().entries("model"):
        for i, raw in enumerate(model.meta.get("pretrained", ())):
            raw = dict(raw) if isinstance(raw, dict) else raw
            if isinstance(raw, dict):
                tag = raw.pop("tag", None)
                if tag and "name" not in raw:
                    raw["name"] = f"{model.name}.{tag}"
                raw.setdefault("model", model.name)
            try:
                entry = make_entry(
                    raw, base=None, registry=model.plugin,
                    where=f"plugin {model.plugin!r} model {model.name!r} pretrained[{i}]",
                )  # fmt: skip
            except FetchError as exc:
                _warn(str(exc))
                continue
            out.append(entry)
    return out


_WARNED: set[str] = set()


def _warn(message: str) -> None:
    """One ``zoo: warning: ...`` line (the ``zoo.hub.index`` logger), once per process."""
    warn_once(get_logger(__name__), message, _WARNED)


@dataclass
class _Found:
    """Every readable entry by name, and the ``$ZOO_REGISTRY`` registries that were skipped."""

    entries: dict[str, PretrainedEntry]
    skipped: list[tuple[str, FetchError]]


def _collect(registry: str | list[str] | tuple[str, ...] | None, offline: bool | None) -> _Found:
    found: dict[str, PretrainedEntry] = {}
    skipped: list[tuple[str, FetchError]] = []
    for loc, origin in _sources(registry):
        try:
            entries = load_index(loc, offline)
        except FetchError as exc:
            if origin != "ZOO_REGISTRY":
                raise
            _warn(f"skipping registry {loc} (from ZOO_REGISTRY): {exc}")
            skipped.append((loc, exc))
            continue
        for entry in entries:
            _keep_first(found, entry)
    for entry in _plugin_entries():
        _keep_first(found, entry)
    return _Found(found, skipped)


def _keep_first(found: dict[str, PretrainedEntry], entry: PretrainedEntry) -> None:
    """Add ``entry`` unless an earlier source has its name; warn when that hides a different one."""
    first = found.setdefault(entry.name, entry)
    if first is not entry and _contents(first) != _contents(entry):
        _warn(
            f"pretrained entry {entry.name} from {_where(first)} shadows the one from "
            f"{_where(entry)} (the first registry in search order wins)"
        )


def _contents(entry: PretrainedEntry) -> tuple:
    return entry.model, entry.kwargs, tuple((f.sha256, f.size) for f in entry.files)


def _where(entry: PretrainedEntry) -> str:
    kind, _, name = entry.source.partition(":")
    return f"plugin {name}" if kind == "plugin" else f"registry {entry.source}"


def all_entries(
    registry: str | list[str] | tuple[str, ...] | None = None, offline: bool | None = None
) -> dict[str, PretrainedEntry]:
    """Every pretrained entry by name; earlier registries win over later ones.

    Unreadable ``$ZOO_REGISTRY`` registries are skipped with a warning (see the module doc).
    """
    return _collect(registry, offline).entries


def list_pretrained(
    pattern: str | list[str] | None = None, registry: str | list[str] | None = None
) -> list[str]:
    """Pretrained entry names (``model.tag``) matching an fnmatch ``pattern``, sorted."""
    return filter_names(sorted(all_entries(registry)), pattern, normalize=_key)


def get_pretrained(
    name: str, registry: str | list[str] | None = None, offline: bool | None = None
) -> PretrainedEntry:
    """The entry called ``name`` (``model.tag``); unknown names get close matches."""
    found = _collect(registry, offline)
    entries = found.entries
    key = _key(name)
    if key in entries:
        return entries[key]
    if found.skipped:  # the skipped registry may be the one that has it: say why it was not read
        loc, exc = found.skipped[0]
        raise FetchError(f"cannot look up pretrained entry {name!r}: {exc} (from ZOO_REGISTRY)")
    raise UnknownNameError(
        unknown_message(
            "pretrained entry", name, entries, otherwise="see `zoo list pretrained`", key=key
        )
    )


def _key(name: str) -> str:
    """How a pretrained entry name or pattern is compared: lower case (tags may hold ``_``)."""
    return name.strip().lower()


# ---------------------------------------------------------------- fetch


def fetch(name: str, registry: str | list[str] | None = None, offline: bool | None = None) -> Path:
    """Fetch every file of pretrained entry ``name`` into the cache; return the first (weights)."""
    return fetch_entry(get_pretrained(name, registry, offline), offline)
