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
_NUMBERS = (int, float)
_STRINGS = ("dataset", "license", "recipe", "created", "summary", "plugin", "dist", "dist_version")
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


@dataclass
class PretrainedEntry:
    """A published set of weights for one model (``model.tag``).

    Read-only by convention (``dataclasses.replace`` makes a changed copy), not ``frozen``: a
    listing builds one per index entry, and a frozen dataclass's ``__init__`` costs 3x.
    """

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
    card: FileRef | None = None  # the model card (README-style markdown), hashed like the files

    @property
    def tag(self) -> str:
        """The part after the model name: ``digits`` in ``tinyvgg.digits``."""
        return self.name.split(".", 1)[1]

    @property
    def pin(self) -> Pin:
        """The model the weights are for (no plugin: a schema-1 bare name)."""
        return Pin("model", self.model, self.plugin, self.dist, self.dist_version)

    def to_dict(self, brief: bool = False) -> dict[str, Any]:
        """The ``--json`` shape: name, kind, plugin, summary, tasks, model, dataset, metrics...

        Also ``qualname`` (``plugin/model.tag``), the model's ``model_entry`` (``plugin/name``),
        ``dist`` and ``dist_version``, and ``installed``: whether that exact model is here
        (else ``missing`` says what to install). ``brief``: only what a listing's table shows
        (name, kind, plugin, summary, tasks, installed, missing).
        """
        facts = _facts(self)
        model = facts.model
        row = {
            "name": self.name,
            "kind": "pretrained",
            "plugin": self.registry,
            "summary": _summary(self, facts.primary),
            "tasks": list(facts.tasks),
        }
        if brief:
            return {**row, "installed": model is not None, "missing": facts.missing}
        return {
            **row,
            "model": self.model,
            "qualname": f"{facts.model_entry}.{self.tag}",
            "model_entry": facts.model_entry,
            "dist": self.dist or (model.dist if model is not None else None),
            "dist_version": self.dist_version or (model.version if model is not None else None),
            "installed": model is not None,
            "missing": facts.missing,
            "tag": self.tag,
            "dataset": self.dataset,
            "metrics": dict(self.metrics),
            "kwargs": dict(self.kwargs),
            "license": self.license,
            "recipe": self.recipe,
            "created": self.created,
            "source": self.source,
            "files": [_file_dict(f) for f in self.files],
            **({"card": _file_dict(self.card)} if self.card is not None else {}),
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


def _summary(entry: PretrainedEntry, primary: str | None) -> str:
    """The entry's summary (or model + dataset) followed by its headline metrics: the task's
    ``primary`` metric first, then the others as recorded (never the loss)."""
    text = entry.summary or (
        f"{entry.model} trained on {entry.dataset}" if entry.dataset else entry.model
    )
    metrics = entry.metrics
    keys = [k for k in metrics if k != "loss"]
    if primary in keys:
        keys.remove(primary)
        keys.insert(0, primary)
    shown = ", ".join([f"{k}={metrics[k]:.4g}" for k in keys[:2]])
    return f"{text} ({shown})" if shown else text


@dataclass(frozen=True)
class _Facts:
    """What an entry's row takes from the loaded plugins: the same for every entry with its
    pin and dataset, so a listing works it out once for all of them."""

    model: Entry | None  # the model the entry is pinned to, if installed
    tasks: tuple[str, ...]  # the dataset's tasks, else the model's
    primary: str | None  # the headline metric of the entry's only task
    model_entry: str  # the model's qualified name (the pin's when it is not installed)
    missing: str | None  # what to install when it is not


def _facts(entry: PretrainedEntry) -> _Facts:
    key = ("facts", entry.model, entry.plugin, entry.dist, entry.dist_version, entry.dataset)
    return _LOOKUPS.get(key, lambda registry: _work_out_facts(entry, registry))


def _work_out_facts(entry: PretrainedEntry, registry: Registry) -> _Facts:
    model = registry.pinned(entry.pin)
    tasks = _tasks(entry, model)
    only = TASKS.get(tasks[0]) if len(tasks) == 1 else None
    return _Facts(
        model=model,
        tasks=tasks,
        primary=only.primary_metric if only is not None else None,
        model_entry=model.qualname if model is not None else entry.pin.qualname,
        missing=None if model is not None else missing_reason(entry.pin),
    )


def _tasks(entry: PretrainedEntry, model: Entry | None) -> tuple[str, ...]:
    if entry.dataset:
        found = _LOOKUPS.get(("dataset", entry.dataset), lambda r: _dataset_tasks(r, entry.dataset))
        if found is not None:
            return tuple(found)
    return tuple(model.tasks) if model is not None else ()


def _dataset_tasks(registry: Registry, name: str) -> tuple[str, ...] | None:
    found = [e for e in registry.find(name) if e.kind == "dataset"]
    return tuple(found[0].tasks) if found else None


class _PerRegistry:
    """Lookups that depend on the loaded plugins only, remembered until they are reloaded (a
    listing of 10,000 entries asks about the same few models and datasets)."""

    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.values: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], compute: Callable[[Registry], Any]) -> Any:
        registry = get_registry()
        if registry is not self.registry:
            self.registry, self.values = registry, {}
        try:
            return self.values[key]
        except KeyError:
            value = self.values[key] = compute(registry)
            return value


_LOOKUPS = _PerRegistry()


def model_entry(entry: PretrainedEntry) -> Entry | None:
    """The registered model ``entry``'s weights are for: exactly its pin, else ``None``."""
    return _facts(entry).model


def qualified_name(entry: PretrainedEntry) -> str:
    """``plugin/model.tag`` (the model's qualified name, then the tag): unique whatever is
    installed. A schema-1 entry whose bare model no first-party model has keeps its bare name."""
    return f"{_facts(entry).model_entry}.{entry.tag}"


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
    get = raw.get
    name = get("name")
    if not isinstance(name, str) or not ENTRY_NAME.match(name):
        raise bad(f"name {name!r} must be 'model.tag' in lower case")
    model = name.partition(".")[0]
    if get("model", model) != model:
        raise bad(f"{name}: model {raw['model']!r} does not match the name")
    files = get("files")
    if not isinstance(files, list) or not files:
        raise bad(f"{name}: files must be a non-empty list")
    card = get("card")
    resolve = _resolver(base)
    refs = []
    for f in files if card is None else [*files, card]:
        url = f.get("url") if isinstance(f, dict) else None
        if not isinstance(url, str):
            raise bad(f"{name}: each file (and the card) needs a url")
        sha, size = f.get("sha256"), f.get("size")
        if not isinstance(sha, str) or not _SHA.match(sha := sha.lower()):
            raise bad(f"{name}: file {url!r} needs a full 64-hex sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"{name}: file {url!r} needs an integer size")
        refs.append(FileRef(resolve(url, where), sha, size))
    card_ref = refs.pop() if card is not None else None
    kwargs, metrics = get("kwargs", {}), get("metrics", {})
    if not isinstance(kwargs, dict):
        raise bad(f"{name}: kwargs must be an object")
    if not isinstance(metrics, dict):
        raise bad(f"{name}: metrics must be an object")
    scores = {}
    for key, value in metrics.items():
        if not isinstance(value, _NUMBERS) or isinstance(value, bool):
            raise bad(f"{name}: metrics must be numbers")
        try:
            scores[key] = float(value)
        except OverflowError:  # an int beyond any float
            raise bad(f"{name}: metric {key!r} is out of range") from None
    for key in _STRINGS:
        if get(key) is not None and not isinstance(raw[key], str):
            raise bad(f"{name}: {key} must be a string")
    problem = _pin_problem(model, raw.get("plugin"), raw.get("dist"), raw.get("dist_version"))
    if problem:
        raise bad(f"{name}: {problem}")
    return PretrainedEntry(
        name=name,
        model=model,
        files=tuple(refs),
        card=card_ref,
        kwargs=dict(kwargs),
        metrics=scores,
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


#: A relative file URL of plain characters: no scheme, no host, nothing to unquote (the usual).
_PLAIN_URL = re.compile(r"[\w.-][\w.~/+=-]*", re.ASCII)


class _Resolver:
    """Resolves the file URLs of one index: absolute URLs pass, but a remote index may only
    name files under its own origin (same scheme, host and port); relative ones must stay
    inside the registry (no ``..``, no ``/x``). What depends on the index is worked out once."""

    def __init__(self, base: str | None) -> None:
        self.base = base
        home = urllib.parse.urlsplit(base or "")
        self.remote = home.scheme in ("http", "https")
        self.hf = home.scheme == "hf"  # an hf:// registry: files inside its repository only
        self.home = f"{home.scheme}://{home.netloc}/"
        self.origin = origin(str(base)) if self.remote else None
        self.local = base is not None and not (self.remote or self.hf)
        self._folder: str | None = None

    def __call__(self, url: str, where: str) -> str:
        if self.local and "/" not in url and url not in (".", "..") and _PLAIN_URL.fullmatch(url):
            return self.folder + url  # a file beside a local index (what publish writes)
        plain = _PLAIN_URL.fullmatch(url) is not None
        if self.hf and not plain:
            raise FetchError(
                f"registry index {where}: file url {url!r} must be a plain relative path "
                "inside the hf:// repository"
            )
        parts = None if plain else urllib.parse.urlsplit(url)
        if parts is not None:
            if self.remote and parts.scheme and origin(url) != self.origin:
                raise FetchError(
                    f"registry index {where}: file url {url!r} is not under the registry's "
                    f"origin {self.home}"
                )
            if parts.scheme in ("http", "https", "file"):
                return url
            if parts.scheme and len(parts.scheme) > 1:
                raise FetchError(
                    f"malformed registry index {where}: unsupported url scheme in {url!r}"
                )
        if self.base is None:
            if Path(url).is_absolute():
                return url
            raise FetchError(f"malformed registry index {where}: {url!r} must be an absolute URL")
        segments = (url if plain else urllib.parse.unquote(url).replace("\\", "/")).split("/")
        rooted = parts is not None and (url.startswith(("/", "\\")) or bool(parts.netloc))
        if ".." in segments or rooted:
            raise FetchError(f"registry index {where}: file url {url!r} escapes the registry")
        if self.hf:
            kept = "/".join(s for s in segments if s not in ("", "."))
            return f"{str(self.base).rsplit('/', 1)[0]}/{kept}"
        if self.remote:
            return urllib.parse.urljoin(self.base, url)
        kept = [s for s in segments if s not in ("", ".")]
        return os.path.join(self.folder, *kept) if kept else os.path.dirname(self.folder)

    @property
    def folder(self) -> str:
        """The folder of a local index, ending in a separator: every relative file URL of the
        index resolves against it."""
        if self._folder is None:
            self._folder = os.path.join(local_path(str(self.base)).parent, "")
        return self._folder


@lru_cache(maxsize=64)
def _resolver(base: str | None) -> _Resolver:
    return _Resolver(base)
