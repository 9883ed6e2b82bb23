"""Pretrained registries: where ``model.tag`` entries come from, and fetching them by name.

Registries, searched in this order (like ``PATH``: the first one naming an entry wins):

1. ``registry=`` arguments / ``--registry`` options, in order;
2. ``$ZOO_REGISTRY`` (comma-separated), in order;
3. the bundled registry (package ``zoo_registry``: the repo's ``registry/``);
4. torchvision's weights, from the generated table of :mod:`zoo.hub.table`;
5. ``pretrained=[...]`` declarations in plugins' model metadata.

So a registry you add explicitly overrides the bundled one. An entry is identified by its
qualified name, ``plugin/model.tag`` (:func:`~zoo.hub.entries.qualified_name`): when two sources
provide the same one with different contents, the later one is shadowed and one
``zoo: warning:`` line on stderr names both (once per process). Entries for different models
that share a bare ``model.tag`` (``mlp.circles`` for zoo's ``workflow/mlp`` and for a plugin's
``dup/mlp``) are both kept: the bare name means the entry of the model the bare model name
means (:meth:`~zoo.registry.entries.Registry.get`: first-party first), the other is reachable
by its qualified name (``dup/mlp.circles``), and a bare name that stays ambiguous is an error
listing them. A ``$ZOO_REGISTRY`` registry that cannot be read
(missing or malformed index, unreachable URL) is skipped with one warning line, so it cannot
break unrelated commands; looking up a name no readable registry has then fails with that
registry's error. Registries passed explicitly (``registry=``, ``--registry``) and the bundled
one are never skipped: their errors are raised.

A registry is a directory, a ``file://`` URL, an ``http(s)://`` URL or a Hugging Face
repository (``hf://owner/repo[@revision]``, :mod:`zoo.hub.hf`) holding ``index.json`` (or the
URL of the index itself), read within the index size cap and deadline (a FIFO or
device is refused) and validated by :mod:`zoo.hub.entries`; each registry is read once per
listing or lookup. Any other scheme given as an argument is a usage error. :func:`fetch`
downloads an entry's files into the verified, content-addressed cache of :mod:`zoo.hub.cache`;
:mod:`zoo.hub.publish` adds entries to a local registry. This module does not import torch.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from zoo._util.log import get_logger, warn_once
from zoo._util.names import filter_names, normalize_name, unknown_message
from zoo.errors import AmbiguousNameError, FetchError, UnknownNameError, UsageError, ZooError
from zoo.hub import hf, table
from zoo.hub.cache import fetch_entry, fetch_index, is_offline
from zoo.hub.entries import (
    PretrainedEntry,
    bundled_index,
    local_path,
    make_entry,
    max_index_bytes,
    model_entry,
    parse_index,
    qualified_name,
)
from zoo.hub.transfer import read_all
from zoo.registry.entries import Entry, dist_key
from zoo.registry.plugins import get_registry

__all__ = [
    "all_entries",
    "default_tag",
    "fetch",
    "get_pretrained",
    "list_pretrained",
    "load_index",
    "model_tags",
    "pretrained_for",
    "pretrained_listing",
    "registry_locations",
    "resolve",
]


def registry_locations(registry: str | list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Index locations in search order: explicit, ``$ZOO_REGISTRY``, then the bundled one."""
    return [loc for loc, _ in _sources(registry)]


def _sources(
    registry: str | list[str] | tuple[str, ...] | None, only: bool = False
) -> list[tuple[str, str]]:
    """``(index location, origin)`` in search order, without repeats (``only``: the explicit
    ones alone).

    ``origin`` is ``"argument"``, ``"ZOO_REGISTRY"`` or ``"bundled"``. A ``$ZOO_REGISTRY``
    value that is not even a valid location keeps its raw text (reading it fails later).
    """
    explicit = [registry] if isinstance(registry, str) else list(registry or [])
    env = [p.strip() for p in os.environ.get("ZOO_REGISTRY", "").split(",") if p.strip()]
    raw = [(r, "argument") for r in explicit]
    if not only:
        raw += [(r, "ZOO_REGISTRY") for r in env]
        raw.append((bundled_index(), "bundled"))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for loc, origin in raw:
        try:
            loc = _index_location(loc)
        except FetchError as exc:
            if origin == "argument":  # --registry gopher://x: bad usage
                raise UsageError(str(exc)) from None
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
    if hf.is_hf(loc):
        return hf.index_location(loc)
    path = local_path(loc)
    return str(path if path.suffix == ".json" else path / "index.json")


def load_index(location: str, offline: bool | None = None) -> list[PretrainedEntry]:
    """Read and validate one registry index (HTTP indexes are cached for offline use), within
    the index size cap (``$ZOO_MAX_INDEX_BYTES``) and deadline."""
    if urllib.parse.urlsplit(location).scheme in ("http", "https"):
        return fetch_index(location, offline, lambda data: parse_index(data, location))
    if hf.is_hf(location):  # from huggingface_hub's cache (ZOO_OFFLINE: only from there)
        path = str(hf.download(location, offline=is_offline(offline)))
        data = read_all(path, max_index_bytes(), "registry index", "ZOO_MAX_INDEX_BYTES")
        return parse_index(data, location)
    path = str(local_path(location))
    data = read_all(path, max_index_bytes(), "registry index", "ZOO_MAX_INDEX_BYTES")
    return parse_index(data, location)


def _plugin_entries() -> list[PretrainedEntry]:
    """Pretrained entries declared as ``pretrained=[...]`` in plugins' model metadata (pinned
    to the declaring model entry)."""
    out = []
    for model in get_registry().entries("model"):
        for i, raw in enumerate(model.meta.get("pretrained", ())):
            raw = dict(raw) if isinstance(raw, dict) else raw
            if isinstance(raw, dict):
                tag = raw.pop("tag", None)
                if tag and "name" not in raw:
                    raw["name"] = f"{model.name}.{tag}"
                raw.setdefault("model", model.name)
                raw.update(plugin=model.plugin, dist=model.dist, dist_version=model.version)
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
    """Every readable entry by qualified name, and the ``$ZOO_REGISTRY`` registries skipped."""

    entries: dict[str, PretrainedEntry]
    skipped: list[tuple[str, FetchError]]
    by_name: dict[str, list[PretrainedEntry]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {}
        for entry in self.entries.values():
            self.by_name.setdefault(entry.name, []).append(entry)

    def named(self, name: str) -> list[PretrainedEntry]:
        """The entries ``name`` (bare or qualified, normalised by :func:`_key`) could mean."""
        key = _key(name)
        if "/" in key:
            return [self.entries[key]] if key in self.entries else []
        return list(self.by_name.get(key, ()))

    def listing(self) -> dict[str, PretrainedEntry]:
        """Every entry by its listed name: bare where the bare name means it, else qualified."""
        out: dict[str, PretrainedEntry] = {}
        for key, entry in self.entries.items():
            group = self.by_name[entry.name]
            out[entry.name if _pick(entry.name, group) is entry else key] = entry
        return out


def _collect(
    registry: str | list[str] | tuple[str, ...] | None, offline: bool | None, only: bool = False
) -> _Found:
    found: dict[str, PretrainedEntry] = {}
    skipped: list[tuple[str, FetchError]] = []
    for loc, origin in _sources(registry, only):
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
    for entry in [] if only else [*table.entries(), *_plugin_entries()]:
        _keep_first(found, entry)
    return _Found(found, skipped)


def _keep_first(found: dict[str, PretrainedEntry], entry: PretrainedEntry) -> None:
    """Add ``entry`` unless an earlier source has its qualified name; warn when that hides a
    different one."""
    first = found.setdefault(_key(qualified_name(entry)), entry)
    if first is not entry and _contents(first) != _contents(entry):
        _warn(
            f"pretrained entry {entry.name} from {_where(first)} shadows the one from "
            f"{_where(entry)} (the first registry in search order wins)"
        )


def _contents(entry: PretrainedEntry) -> tuple:
    return entry.pin, entry.kwargs, tuple((f.sha256, f.size) for f in entry.files)


def _where(entry: PretrainedEntry) -> str:
    kind, _, name = entry.source.partition(":")
    return {"plugin": f"plugin {name}", "table": f"zoo's table {name}"}.get(
        kind, f"registry {entry.source}"
    )


def all_entries(
    registry: str | list[str] | tuple[str, ...] | None = None,
    offline: bool | None = None,
    *,
    only: bool = False,
) -> dict[str, PretrainedEntry]:
    """Every pretrained entry by its listed name (see :func:`list_pretrained`); earlier
    registries win over later ones. ``only``: the entries of the ``registry`` argument alone
    (not ``$ZOO_REGISTRY``'s, the bundled registry's, torchvision's or plugins').

    Unreadable ``$ZOO_REGISTRY`` registries are skipped with a warning (see the module doc).
    """
    return _collect(registry, offline, only).listing()


def pretrained_listing(
    pattern: str | list[str] | None = None,
    registry: str | list[str] | tuple[str, ...] | None = None,
    *,
    only: bool = False,
) -> list[tuple[str, PretrainedEntry]]:
    """``(listed name, entry)`` pairs matching an fnmatch ``pattern``, sorted by name
    (``only``: of the ``registry`` argument alone, as :func:`all_entries`)."""
    listed = all_entries(registry, only=only)
    return [(n, listed[n]) for n in filter_names(sorted(listed), pattern, normalize=_key)]


def list_pretrained(
    pattern: str | list[str] | None = None, registry: str | list[str] | None = None
) -> list[str]:
    """Pretrained entry names matching an fnmatch ``pattern``, sorted: ``model.tag``, or
    ``plugin/model.tag`` for an entry its bare name does not mean (another model's)."""
    return [name for name, _ in pretrained_listing(pattern, registry)]


def pretrained_for(model: Entry, registry: str | list[str] | None = None) -> list[str]:
    """Listed names of the pretrained entries whose weights are for exactly ``model``."""
    return [
        name for name, entry in pretrained_listing(None, registry) if model_entry(entry) is model
    ]


def model_tags(model: Entry, registry: str | list[str] | None = None) -> list[PretrainedEntry]:
    """The pretrained entries whose weights are for exactly ``model``, by listed name."""
    return [e for _, e in pretrained_listing(None, registry) if model_entry(e) is model]


def default_tag(model: Entry, registry: str | list[str] | None = None) -> str:
    """The tag ``pretrained=True`` means for ``model``: its entry declared default
    (torchvision's ``DEFAULT``), else its only entry; several and no default is a
    one-line :class:`UsageError` listing them."""
    mine = model_tags(model, registry)
    declared = [e for e in mine if e.default]
    if len(declared) == 1 or len(mine) == 1:
        return (declared or mine)[0].tag
    if not mine:
        raise UsageError(
            f"model {model.qualname} has no pretrained entries (see `zoo list pretrained`)"
        )
    tags = ", ".join(sorted(e.tag for e in mine))
    raise UsageError(
        f"model {model.qualname} has several pretrained entries and none is declared its "
        f"default; pass pretrained= one of: {tags}"
    )


def get_pretrained(
    name: str, registry: str | list[str] | None = None, offline: bool | None = None
) -> PretrainedEntry:
    """The entry called ``name``: ``model.tag``, ``plugin/model.tag`` or
    ``dist:plugin/model.tag``. Unknown names get close matches; a bare name two models'
    entries share, neither of them the model the bare model name means, is ambiguous."""
    return _lookup(_collect(registry, offline), name)


def resolve(
    names: Iterable[str], registry: str | list[str] | None = None, offline: bool | None = None
) -> list[PretrainedEntry]:
    """The entries called ``names`` (each as :func:`get_pretrained` finds it), reading each
    registry once for all of them."""
    found = _collect(registry, offline)
    return [_lookup(found, name) for name in names]


def _lookup(found: _Found, name: str) -> PretrainedEntry:
    group = found.named(name)
    entry = _pick(_key(name), group)
    if entry is not None:
        return entry
    if group:
        both = ", ".join(sorted(_key(qualified_name(e)) for e in group))
        raise AmbiguousNameError(
            f"pretrained entry {name!r} is published for several models; use one of: {both}"
        )
    if found.skipped:  # the skipped registry may be the one that has it: say why it was not read
        loc, exc = found.skipped[0]
        raise FetchError(f"cannot look up pretrained entry {name!r}: {exc} (from ZOO_REGISTRY)")
    listed = found.listing()
    raise UnknownNameError(
        unknown_message(
            "pretrained entry", name, listed, otherwise="see `zoo list pretrained`", key=_key(name)
        )
    )


def _pick(name: str, group: list[PretrainedEntry]) -> PretrainedEntry | None:
    """The entry a (bare) name means: the only one, else the one for the model that the bare
    model name means (first-party first, see :meth:`~zoo.registry.entries.Registry.get`)."""
    if len(group) <= 1:
        return group[0] if group else None
    try:
        wanted = get_registry().get("model", name.split(".", 1)[0])
    except ZooError:
        return None
    mine = [e for e in group if model_entry(e) is wanted]
    return mine[0] if len(mine) == 1 else None


def _key(name: str) -> str:
    """How a pretrained entry name or pattern is compared: lower case (tags may hold ``_``);
    a ``dist:plugin/`` qualifier normalised as registry names are."""
    qualifier, slash, rest = name.strip().lower().rpartition("/")
    return f"{_qualifier_key(qualifier)}/{rest}" if slash else rest


@lru_cache(maxsize=256)
def _qualifier_key(qualifier: str) -> str:
    """A ``dist:plugin`` qualifier normalised (a listing's entries share a few)."""
    dist, colon, plugin = qualifier.rpartition(":")
    return f"{dist_key(dist) + ':' if colon else ''}{normalize_name(plugin)}"


# ---------------------------------------------------------------- fetch


def fetch(name: str, registry: str | list[str] | None = None, offline: bool | None = None) -> Path:
    """Fetch every file of pretrained entry ``name`` into the cache; return the first (weights).

    Fetching does not need the entry's model to be installed (``zoo fetch`` says when it is not).
    """
    return fetch_entry(get_pretrained(name, registry, offline), offline)
