"""Pretrained entries and registry indexes: what an ``index.json`` says, validated.

An index is ``{"schema": 2, "name": ..., "entries": [...]}``; each entry names a ``model.tag``,
its model and kwargs, and its files (URL relative to the index, full sha256, size). Schema 2
adds what the weights are pinned to: the model's ``plugin`` (entry-point name), ``dist`` and
``dist_version``, so the entry means exactly that model whatever else is installed (its
qualified name is ``plugin/model.tag``). Schema 1 indexes (zoo 0.1) still read: their bare
model names resolve to first-party models only.

An index is read with limits: at most :data:`MAX_INDEX_BYTES` (``$ZOO_MAX_INDEX_BYTES``)
and nested no deeper than :data:`~zoo._util.jsonio.MAX_DEPTH`. Its file URLs are data: a
relative one must stay inside the registry, and an index fetched over ``http(s)`` may only
name files under its own origin (same scheme, host and port; no ``file://``). This module
parses and validates that description (and the same dicts declared by plugins); it never
downloads, writes or imports anything: :mod:`zoo.hub.cache` fetches files, :mod:`zoo.hub.index`
finds the registries, :mod:`zoo.hub.publish` writes one. It does not import torch.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from zoo._util.jsonio import loads
from zoo._util.values import positive_int
from zoo.errors import FetchError
from zoo.registry.entries import Entry, Pin, Registry
from zoo.registry.plugins import get_registry, missing_reason
from zoo.tasks.contracts import TASKS

__all__ = [
    "BUNDLED",
    "ENTRY_NAME",
    "MAX_INDEX_BYTES",
    "SCHEMA",
    "SCHEMAS",
    "FileRef",
    "PretrainedEntry",
    "bundled_index",
    "local_path",
    "make_entry",
    "max_index_bytes",
    "model_entry",
    "origin",
    "parse_index",
    "qualified_name",
    "read_document",
]

SCHEMA = 2  # what publish writes
SCHEMAS = (1, SCHEMA)  # what this zoo reads
BUNDLED = "zoo"
ENTRY_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
#: The largest index zoo reads (``$ZOO_MAX_INDEX_BYTES`` overrides): 10,000 entries take ~4 MB.
MAX_INDEX_BYTES = 32 << 20


@dataclass(frozen=True)
class FileRef:
    """One file of a pretrained entry: where it lives (absolute) and what it must hash to."""

    url: str
    sha256: str
    size: int
    #: ``True`` for torchvision's files (:mod:`zoo.hub.table`): ``sha256`` is only the prefix
    #: their name publishes and ``size`` a byte cap; the full hash is recorded at first fetch
    prefix_only: bool = False

    @property
    def suffix(self) -> str:
        """The file name's last suffix (``.safetensors``), or ``""`` when it is not a plain one."""
        name = urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]
        suffix = "".join(Path(name).suffixes[-1:])
        plain = re.fullmatch(r"\.[A-Za-z0-9]{1,16}", suffix) and suffix.lower() != ".json"
        return suffix if plain else ""  # ``.json`` names a blob's record in the cache

    @property
    def is_remote(self) -> bool:
        """Whether fetching it needs the network (``http(s)://``)."""
        return urllib.parse.urlsplit(self.url).scheme in ("http", "https")


@dataclass(frozen=True)
class PretrainedEntry:
    """A published set of weights for one model (``model.tag``)."""

    name: str
    model: str
    files: tuple[FileRef, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    dataset: str | None = None
    license: str | None = None
    recipe: str | None = None
    created: str | None = None
    summary: str = ""
    registry: str = BUNDLED  # the registry's name, or the declaring plugin
    source: str = ""  # where the entry came from (index location or "plugin:<name>")
    plugin: str | None = None  # the model's plugin, distribution and version (schema 2)
    dist: str | None = None
    dist_version: str | None = None
    default: bool = False  # the model's default entry (``pretrained=True``)
    about: dict[str, Any] = field(default_factory=dict)  # params, categories, transforms...

    @property
    def tag(self) -> str:
        """The part after the model name: ``digits`` in ``tinyvgg.digits``."""
        return self.name.split(".", 1)[1]

    @property
    def pin(self) -> Pin:
        """The model the weights are for (no plugin: a schema-1 bare name)."""
        return Pin("model", self.model, self.plugin, self.dist, self.dist_version)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: name, kind, plugin, summary, tasks, model, dataset, metrics...

        Also ``qualname`` (``plugin/model.tag``), the model's ``model_entry`` (``plugin/name``),
        ``dist`` and ``dist_version``, and ``installed``: whether that exact model is here
        (else ``missing`` says what to install).
        """
        model = model_entry(self)
        tasks = _tasks(self, model)
        return {
            "name": self.name,
            "kind": "pretrained",
            "plugin": self.registry,
            "summary": _summary(self, tasks),
            "tasks": tasks,
            "model": self.model,
            "qualname": _qualified(self, model),
            "model_entry": model.qualname if model is not None else self.pin.qualname,
            "dist": self.dist or (model.dist if model is not None else None),
            "dist_version": self.dist_version or (model.version if model is not None else None),
            "installed": model is not None,
            "missing": None if model is not None else missing_reason(self.pin),
            "tag": self.tag,
            "dataset": self.dataset,
            "metrics": dict(self.metrics),
            "kwargs": dict(self.kwargs),
            "license": self.license,
            "recipe": self.recipe,
            "created": self.created,
            "source": self.source,
            "files": [_file_dict(f) for f in self.files],
            **({"default": True} if self.default else {}),
            **self.about,
        }


def _file_dict(ref: FileRef) -> dict[str, Any]:
    if not ref.prefix_only:
        return {"url": ref.url, "sha256": ref.sha256, "size": ref.size}
    return {
        "url": ref.url, "sha256_prefix": ref.sha256, "max_bytes": ref.size,
        "integrity": (
            f"trust on first use: the first download must match the sha256 prefix "
            f"{ref.sha256} its name publishes; its full sha256 and size are recorded then and "
            "every later use is checked against them"
        ),
    }  # fmt: skip


def _summary(entry: PretrainedEntry, tasks: list[str]) -> str:
    """The entry's summary (or model + dataset) followed by its headline metrics."""
    text = entry.summary or (
        f"{entry.model} trained on {entry.dataset}" if entry.dataset else entry.model
    )
    primary = TASKS[tasks[0]].primary_metric if len(tasks) == 1 and tasks[0] in TASKS else None
    keys = sorted((k for k in entry.metrics if k != "loss"), key=lambda k: k != primary)
    shown = [f"{k}={entry.metrics[k]:.4g}" for k in keys[:2]]
    return f"{text} ({', '.join(shown)})" if shown else text


def _tasks(entry: PretrainedEntry, model: Entry | None) -> list[str]:
    if entry.dataset:
        found = _LOOKUPS.get(("dataset", entry.dataset), lambda r: _dataset_tasks(r, entry.dataset))
        if found is not None:
            return list(found)
    return list(model.tasks) if model is not None else []


def _dataset_tasks(registry: Registry, name: str) -> tuple[str, ...] | None:
    found = [e for e in registry.find(name) if e.kind == "dataset"]
    return tuple(found[0].tasks) if found else None


class _PerRegistry:
    """Lookups that depend on the loaded plugins only, remembered until they are reloaded (a
    listing of 10,000 entries asks about the same few models and datasets)."""

    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.values: dict[tuple[str, Any], Any] = {}

    def get(self, key: tuple[str, Any], compute: Callable[[Registry], Any]) -> Any:
        registry = get_registry()
        if registry is not self.registry:
            self.registry, self.values = registry, {}
        if key not in self.values:
            self.values[key] = compute(registry)
        return self.values[key]


_LOOKUPS = _PerRegistry()


def model_entry(entry: PretrainedEntry) -> Entry | None:
    """The registered model ``entry``'s weights are for: exactly its pin, else ``None``."""
    key = ("pin", (entry.model, entry.plugin, entry.dist, entry.dist_version))
    return _LOOKUPS.get(key, lambda registry: registry.pinned(entry.pin))


def qualified_name(entry: PretrainedEntry) -> str:
    """``plugin/model.tag`` (the model's qualified name, then the tag): unique whatever is
    installed. A schema-1 entry whose bare model no first-party model has keeps its bare name."""
    return _qualified(entry, model_entry(entry))


def _qualified(entry: PretrainedEntry, model: Entry | None) -> str:
    return f"{model.qualname if model is not None else entry.pin.qualname}.{entry.tag}"


# ---------------------------------------------------------------- locations


def local_path(loc: str) -> Path:
    """A local path or ``file://`` URL as a :class:`~pathlib.Path` (other schemes are errors)."""
    parts = urllib.parse.urlsplit(loc)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise FetchError(
            f"unsupported registry or file location {loc!r} (use a path, file:// or http(s)://)"
        )
    return Path(loc).expanduser()


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the port made explicit for http(s)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: an origin of its own, matching nothing
        return parts.scheme.lower(), parts.netloc.lower(), -1
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or default


def max_index_bytes() -> int:
    """The size cap of a registry index: ``$ZOO_MAX_INDEX_BYTES``, else :data:`MAX_INDEX_BYTES`."""
    raw = os.environ.get("ZOO_MAX_INDEX_BYTES", "").strip()
    return positive_int(raw, "$ZOO_MAX_INDEX_BYTES", text=True) if raw else MAX_INDEX_BYTES


def bundled_index() -> str:
    """Location of the bundled registry's ``index.json`` (works from any kind of install)."""
    return str(Path(str(package_files("zoo_registry"))) / "index.json")


# ---------------------------------------------------------------- validation


def read_document(data: bytes | str, location: str) -> dict[str, Any]:
    """An index document after its JSON, shape and schema checks (entries not yet validated).

    Raises:
        FetchError: one line naming ``location`` when the document is not an index of a schema
            this zoo reads (:data:`SCHEMAS`).
    """
    limit = max_index_bytes()
    try:
        doc = loads(data, max_bytes=limit)
    except ValueError as exc:  # JSONLimitError: not JSON, too large or too deep
        hint = " (ZOO_MAX_INDEX_BYTES)" if len(data) > limit else ""
        raise FetchError(f"malformed registry index {location}: not JSON ({exc}){hint}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FetchError(
            f"malformed registry index {location}: expected {{'schema', 'entries': [...]}}"
        )
    schema = doc.get("schema")
    if schema not in SCHEMAS or isinstance(schema, bool):
        readable = " or ".join(map(str, SCHEMAS))
        raise FetchError(
            f"registry index {location} has schema {schema!r}; this zoo reads schema {readable}"
        )
    return doc


def parse_index(data: bytes | str, location: str) -> list[PretrainedEntry]:
    """Validate an index's schema and entries; relative file URLs resolve against it."""
    doc = read_document(data, location)
    name = doc.get("name") or _default_registry_name(location)
    return [
        make_entry(raw, base=location, registry=str(name), where=f"{location} entry {i}")
        for i, raw in enumerate(doc["entries"])
    ]


def _default_registry_name(location: str) -> str:
    if location == bundled_index():
        return BUNDLED
    parts = urllib.parse.urlsplit(location)
    tail = [p for p in parts.path.split("/") if p][:-1]
    return (tail[-1] if tail else parts.netloc) or "registry"


def make_entry(raw: Any, *, base: str | None, registry: str, where: str) -> PretrainedEntry:
    """Validate one entry dict (index or plugin declaration); one-line errors naming ``where``.

    Args:
        raw: the entry as the index (or a plugin's ``pretrained=[...]``) gives it.
        base: the index location relative file URLs resolve against (``None`` for a plugin's
            declaration, whose URLs must be absolute).
        registry: the registry's (or declaring plugin's) name, recorded in the entry.
        where: how an error names the entry.
    """

    def bad(msg: str) -> FetchError:
        return FetchError(f"malformed registry index {where}: {msg}")

    if not isinstance(raw, dict):
        raise bad("entry is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not ENTRY_NAME.match(name):
        raise bad(f"name {name!r} must be 'model.tag' in lower case")
    model = raw.get("model", name.split(".", 1)[0])
    if model != name.split(".", 1)[0]:
        raise bad(f"{name}: model {model!r} does not match the name")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise bad(f"{name}: files must be a non-empty list")
    refs = []
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("url"), str):
            raise bad(f"{name}: each file needs a url")
        sha, size = f.get("sha256"), f.get("size")
        if not isinstance(sha, str) or not _SHA.match(sha.lower()):
            raise bad(f"{name}: file {f['url']!r} needs a full 64-hex sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"{name}: file {f['url']!r} needs an integer size")
        refs.append(FileRef(_resolve(f["url"], base, where), sha.lower(), size))
    for key, kind in (("kwargs", dict), ("metrics", dict)):
        if not isinstance(raw.get(key, {}), kind):
            raise bad(f"{name}: {key} must be an object")
    metrics = raw.get("metrics", {})
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()):
        raise bad(f"{name}: metrics must be numbers")
    for key in ("dataset", "license", "recipe", "created", "summary", "plugin", "dist"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise bad(f"{name}: {key} must be a string")
    if raw.get("dist_version") is not None and not isinstance(raw["dist_version"], str):
        raise bad(f"{name}: dist_version must be a string")
    problem = _pin_problem(model, raw.get("plugin"), raw.get("dist"), raw.get("dist_version"))
    if problem:
        raise bad(f"{name}: {problem}")
    return PretrainedEntry(
        name=name,
        model=model,
        files=tuple(refs),
        kwargs=dict(raw.get("kwargs", {})),
        metrics={k: float(v) for k, v in metrics.items()},
        dataset=raw.get("dataset"),
        license=raw.get("license"),
        recipe=raw.get("recipe"),
        created=raw.get("created"),
        summary=raw.get("summary") or "",
        registry=registry,
        source=str(base or f"plugin:{registry}"),
        plugin=raw.get("plugin"),
        dist=raw.get("dist"),
        dist_version=raw.get("dist_version"),
    )


@lru_cache(maxsize=256)
def _pin_problem(model: str, plugin: str | None, dist: str | None, version: str | None) -> str:
    """Why a model pin is malformed ("" when it is not); the entries of an index share a few."""
    try:
        Pin("model", model, plugin, dist, version).check()
    except ValueError as exc:
        return str(exc)
    return ""


def _resolve(url: str, base: str | None, where: str) -> str:
    """Absolute URLs pass, but a remote index may only name files under its own origin (same
    scheme, host and port); relative ones must stay inside the registry (no ``..``, no ``/x``)."""
    parts = urllib.parse.urlsplit(url)
    home = _split(base or "")
    if home.scheme in ("http", "https") and parts.scheme and origin(url) != origin(str(base)):
        raise FetchError(
            f"registry index {where}: file url {url!r} is not under the registry's origin "
            f"{home.scheme}://{home.netloc}/"
        )
    if parts.scheme in ("http", "https", "file"):
        return url
    if parts.scheme and len(parts.scheme) > 1:
        raise FetchError(f"malformed registry index {where}: unsupported url scheme in {url!r}")
    if base is None:
        if Path(url).is_absolute():
            return url
        raise FetchError(f"malformed registry index {where}: {url!r} must be an absolute URL")
    segments = urllib.parse.unquote(url).replace("\\", "/").split("/")
    if url.startswith(("/", "\\")) or ".." in segments or parts.netloc:
        raise FetchError(f"registry index {where}: file url {url!r} escapes the registry")
    if home.scheme in ("http", "https"):
        return urllib.parse.urljoin(base, url)
    return os.path.join(_folder(base), *[s for s in segments if s not in ("", ".")])


@lru_cache(maxsize=64)
def _split(index: str) -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(index)


@lru_cache(maxsize=64)
def _folder(index: str) -> str:
    """The folder of a local index (every relative file URL of it resolves against this)."""
    return str(local_path(index).parent)
