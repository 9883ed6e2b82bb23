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
(or the URL of the index itself). :func:`fetch` downloads an entry's files into the verified,
content-addressed cache of :mod:`zoo.cache`; :mod:`zoo.publish` adds entries to a local
registry. This module does not import torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import sys
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import FetchError, UnknownNameError
from zoo.hub.cache import fetch_entry, fetch_index, local_path

SCHEMA = 1
BUNDLED = "zoo"
ENTRY_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------- entries


@dataclass(frozen=True)
class FileRef:
    """One file of a pretrained entry: where it lives (absolute) and what it must hash to."""

    url: str
    sha256: str
    size: int

    @property
    def suffix(self) -> str:
        name = urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]
        suffix = "".join(Path(name).suffixes[-1:])
        return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", suffix) else ""

    @property
    def is_remote(self) -> bool:
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

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: name, kind, plugin, summary, tasks, model, dataset, metrics..."""
        tasks = _tasks(self)
        return {
            "name": self.name,
            "kind": "pretrained",
            "plugin": self.registry,
            "summary": _summary(self, tasks),
            "tasks": tasks,
            "model": self.model,
            "tag": self.tag,
            "dataset": self.dataset,
            "metrics": dict(self.metrics),
            "kwargs": dict(self.kwargs),
            "license": self.license,
            "recipe": self.recipe,
            "created": self.created,
            "source": self.source,
            "files": [{"url": f.url, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


def _summary(entry: PretrainedEntry, tasks: list[str]) -> str:
    """The entry's summary (or model + dataset) followed by its headline metrics."""
    from zoo.tasks.contracts import TASKS

    text = entry.summary or (
        f"{entry.model} trained on {entry.dataset}" if entry.dataset else entry.model
    )
    primary = TASKS[tasks[0]].primary_metric if len(tasks) == 1 and tasks[0] in TASKS else None
    keys = sorted((k for k in entry.metrics if k != "loss"), key=lambda k: k != primary)
    shown = [f"{k}={entry.metrics[k]:.4g}" for k in keys[:2]]
    return f"{text} ({', '.join(shown)})" if shown else text


def _tasks(entry: PretrainedEntry) -> list[str]:
    from zoo.registry.plugins import get_registry

    registry = get_registry()
    for kind, name in (("dataset", entry.dataset), ("model", entry.model)):
        if name and registry.find(name):
            found = [e for e in registry.find(name) if e.kind == kind]
            if found:
                return list(found[0].tasks)
    return []


# ---------------------------------------------------------------- registries


def bundled_index() -> str:
    """Location of the bundled registry's ``index.json`` (works from any kind of install)."""
    from importlib.resources import files

    root = files("zoo_registry")
    return str(Path(str(root)) / "index.json")


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


def parse_index(data: bytes | str, location: str) -> list[PretrainedEntry]:
    """Validate an index's schema and entries; relative file URLs resolve against it."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FetchError(f"malformed registry index {location}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FetchError(
            f"malformed registry index {location}: expected {{'schema', 'entries': [...]}}"
        )
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise FetchError(
            f"registry index {location} has schema {schema!r}; this zoo reads schema {SCHEMA}"
        )
    name = doc.get("name") or _default_registry_name(location)
    entries = []
    for i, raw in enumerate(doc["entries"]):
        entries.append(
            make_entry(raw, base=location, registry=str(name), where=f"{location} entry {i}")
        )
    return entries


def _default_registry_name(location: str) -> str:
    if location == bundled_index():
        return BUNDLED
    parts = urllib.parse.urlsplit(location)
    tail = [p for p in parts.path.split("/") if p][:-1]
    return (tail[-1] if tail else parts.netloc) or "registry"


def make_entry(raw: Any, *, base: str | None, registry: str, where: str) -> PretrainedEntry:
    """Validate one entry dict (index or plugin declaration); one-line errors naming ``where``."""

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
    for key in ("dataset", "license", "recipe", "created", "summary"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise bad(f"{name}: {key} must be a string")
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
    )


def _resolve(url: str, base: str | None, where: str) -> str:
    """Absolute URLs pass; relative ones must stay inside the registry (no ``..``, no ``/x``)."""
    parts = urllib.parse.urlsplit(url)
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
    if urllib.parse.urlsplit(base).scheme in ("http", "https"):
        return urllib.parse.urljoin(base, url)
    return str(local_path(base).parent / Path(*[s for s in segments if s not in ("", ".")]))


def _plugin_entries() -> list[PretrainedEntry]:
    """Pretrained entries declared as ``pretrained=[{...}]`` in plugins' model metadata."""
    from zoo.registry.plugins import get_registry

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
                warnings.warn(str(exc), stacklevel=2)
                continue
            out.append(entry)
    return out


_WARNED: set[str] = set()


def _warn(message: str) -> None:
    """One ``zoo: warning: ...`` line on stderr, at most once per process per message."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    print(f"zoo: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


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
    names = sorted(all_entries(registry))
    if pattern is None:
        return names
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p.lower()) for p in patterns)]


def get_pretrained(
    name: str, registry: str | list[str] | None = None, offline: bool | None = None
) -> PretrainedEntry:
    """The entry called ``name`` (``model.tag``); unknown names get close matches."""
    found = _collect(registry, offline)
    entries = found.entries
    key = name.strip().lower()
    if key in entries:
        return entries[key]
    if found.skipped:  # the skipped registry may be the one that has it: say why it was not read
        loc, exc = found.skipped[0]
        raise FetchError(f"cannot look up pretrained entry {name!r}: {exc} (from ZOO_REGISTRY)")
    close = difflib.get_close_matches(key, list(entries), n=3, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else "; see `zoo list pretrained`"
    raise UnknownNameError(f"unknown pretrained entry {name!r}{hint}")


# ---------------------------------------------------------------- fetch


def fetch(name: str, registry: str | list[str] | None = None, offline: bool | None = None) -> Path:
    """Fetch every file of pretrained entry ``name`` into the cache; return the first (weights)."""
    return fetch_entry(get_pretrained(name, registry, offline), offline)
