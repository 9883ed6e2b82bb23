"""Registry entries and name lookup.

An :class:`Entry` is what a plugin's ``register(...)`` call recorded: a kind, a name, a lazy
target and its metadata. The :class:`Registry` holds every entry and resolves a user's name
with close-match suggestions. Nothing here imports torch or a plugin's target.

Names (DESIGN.md's rule; installing a plugin never changes what an existing name means):

- A bare name (``mlp``) is the first-party entry of that name (distribution ``zoo``) whatever
  else is installed; else the one entry of that name; two third-party entries sharing it make
  it an ambiguity error listing both.
- A qualified name is ``plugin/name``, the plugin being the entry-point name (``dup/mlp``).
  Where two distributions use one entry-point name, the distribution comes first:
  ``dist:plugin/name`` (``zoo-dup:dup/mlp``); the first-party one keeps ``plugin/name``.
  :attr:`Entry.qualname` is always the unique spelling.
- A :class:`Pin` is what a file records of an entry (name, plugin, distribution, version):
  :meth:`Registry.pinned` finds exactly that entry or nothing, never another of that name.
  A pin without a plugin (a file from zoo 0.1) resolves to a first-party entry only.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from zoo._util.jsonio import MAX_DEPTH, jsonable
from zoo._util.names import filter_names, normalize_name
from zoo._util.names import unknown_message as _unknown_message
from zoo.errors import AmbiguousNameError, PluginError, UnknownNameError

KINDS = ("model", "loss", "dataset")
PLURALS = {"model": "models", "loss": "losses", "dataset": "datasets"}
TASKS = ("regression", "binary", "multiclass")
INPUT_KINDS = ("features", "image", "any")
EXPECTS = ("logits", "probabilities", "log-probabilities")

FIRST_PARTY_DIST = "zoo"  # the distribution whose entries keep their bare names

#: Keys :meth:`Entry.to_dict` sets itself: a registration giving one as meta is refused.
RESERVED_META = ("name", "kind", "plugin", "qualname", "dist", "version", "target")
#: The most a registration's meta may hold, counted as characters of its strings plus one per
#: value (about its JSON size); deeper than ``MAX_DEPTH`` levels is refused too.
MAX_META_SIZE = 256 * 1024
#: What one item of a model's ``pretrained=[...]`` declaration may say (docs/plugins.md).
PRETRAINED_KEYS = (
    "tag", "files", "kwargs", "metrics", "dataset", "license", "summary", "recipe", "created",
)  # fmt: skip

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_PLUGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")  # an entry-point name, normalised
_DIST = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")  # a distribution name, normalised
_VERSION = re.compile(r"^[\w.!+-]{1,64}$")
_PLAIN = frozenset({int, float, bool, type(None)})  # JSON scalars other than str
_TAG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Entry:
    """One registered model, loss or dataset."""

    kind: str
    name: str
    target: str | Callable[..., Any]
    plugin: str
    dist: str
    version: str
    summary: str = ""
    tasks: tuple[str, ...] = TASKS
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: ``dist:plugin/name``, set by the :class:`Registry` where another distribution's
    #: plugin has this entry-point name and this kind and name; else ``""``.
    dist_qualname: str = field(default="", repr=False)

    @property
    def qualname(self) -> str:
        """The unique qualified name: ``plugin/name`` (``dist:plugin/name`` where needed)."""
        return self.dist_qualname or f"{self.plugin}/{self.name}"

    @property
    def first_party(self) -> bool:
        """Whether the entry ships with zoo itself (its bare name is never taken)."""
        return dist_key(self.dist) == FIRST_PARTY_DIST

    @property
    def pin(self) -> Pin:
        """What a file made with this entry records of it."""
        return Pin(self.kind, self.name, self.plugin, self.dist, self.version)

    @functools.cached_property
    def input_kind(self) -> str:
        """``features`` or ``image``: a dataset's by its shape; for a model the declared kind,
        else inferred from the target's signature (``in_channels`` or ``image_size`` ->
        ``image``; ``in_features`` without them -> ``features``; else ``any``).

        Inferring imports the target, so it happens when the entry is used (compatibility,
        building, ``zoo info``), never when it is listed; a target that cannot be imported
        counts as ``any`` here and fails with its own error when it is built.
        """
        if self.kind == "dataset":
            return "image" if len(self.meta["input_shape"]) == 3 else "features"
        declared = self.meta.get("input_kind")
        if declared is not None or self.kind != "model":
            return declared or "any"
        import inspect

        try:
            params = inspect.signature(self.load()).parameters.values()
        except (PluginError, TypeError, ValueError):
            return "any"
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if named & {"in_channels", "image_size"}:
            return "image"
        return "features" if "in_features" in named else "any"

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.meta.get("defaults", {}))

    @property
    def target_repr(self) -> str:
        """``module:attr`` for a string target; ``module:func(args)`` for a partial."""
        target = self.target
        if isinstance(target, str):
            return target
        args = ""
        if isinstance(target, functools.partial):
            args = "(" + ", ".join(map(repr, target.args)) + ")"
            target = target.func
        name = getattr(target, "__qualname__", None)
        if name is None:
            return repr(self.target)
        return f"{getattr(target, '__module__', '?')}:{name}{args}"

    def load(self) -> Callable[..., Any]:
        """Import and return the target; a failure names the entry and its plugin.

        The target must be a class, a Python function (or method) or a ``functools.partial``
        of one - a model's class an ``nn.Module`` - so a file naming the entry can only
        reach code written to be an entry: builtins and C callables (``os:system``) and
        other callable objects are refused with a :class:`~zoo.errors.PluginError`.
        """
        obj: Any = self.target
        if isinstance(obj, str):
            module_name, _, attr = obj.partition(":")
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except Exception as exc:  # any import-time failure of third-party code
                raise PluginError(
                    f"{self.kind} {self.name!r} (plugin {self.plugin!r}): cannot import target "
                    f"{self.target!r}: {type(exc).__name__}: {exc}"
                ) from exc
        why = _target_problem(self.kind, obj)
        if why:
            raise PluginError(
                f"{self.kind} {self.name!r} (plugin {self.plugin!r}): target "
                f"{self.target_repr!r} {why}"
            )
        return obj

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (the ``--json`` shape: name, kind, plugin, summary, ...)."""
        meta = {k: v for k, v in self.meta.items() if k != "pretrained"}
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "qualname": self.qualname,
            "dist": self.dist,
            "version": self.version,
            "summary": self.summary,
            "tasks": list(self.tasks),
            "target": self.target_repr,
            **jsonable(meta),
        }


def _target_problem(kind: str, obj: Any) -> str:
    """Why ``obj`` cannot be an entry's target (``""`` when it can): see :meth:`Entry.load`."""
    inner = obj
    while isinstance(inner, functools.partial):
        inner = inner.func
    if inspect.ismethod(inner):
        inner = inner.__func__
    if inspect.isclass(inner):
        nn = sys.modules.get("torch.nn")  # a Module subclass was defined with torch imported
        if kind == "model" and (nn is None or not issubclass(inner, nn.Module)):
            return "is a class that is not a torch.nn.Module"
        return ""
    if inspect.isfunction(inner):
        return ""
    if not callable(obj):
        return "is not callable"
    return (
        f"is a {type(inner).__name__}, not a class, a Python function or a functools.partial "
        "of one (builtins and C functions are refused)"
    )


def dist_key(dist: str) -> str:
    """A distribution name as compared (PEP 503): ``Zoo_Dup`` -> ``zoo-dup``."""
    return re.sub(r"[-_.]+", "-", dist.strip()).lower()


def split_name(name: str) -> tuple[str | None, str | None, str]:
    """``dist:plugin/name`` -> ``(dist, plugin, name)``, normalised; absent parts are ``None``."""
    qualifier, _, bare = normalize_name(name).rpartition("/")
    dist, _, plugin = qualifier.rpartition(":")
    return (dist_key(dist) or None, plugin or None, bare)


@dataclass(frozen=True)
class Pin:
    """What a weights file, run or index entry records of the entry it was made with.

    ``plugin`` is the entry-point name, ``dist`` and ``version`` the distribution that provided
    it. ``plugin=None`` is a bare name as zoo 0.1 wrote it: only a first-party entry matches.
    """

    kind: str
    name: str
    plugin: str | None = None
    dist: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, kind: str, ref: str, dist: str | None = None, version: str | None = None) -> Pin:
        """A pin from a recorded name: bare, ``plugin/name`` or ``dist:plugin/name``."""
        in_name, plugin, bare = split_name(ref)
        return cls(kind, bare, plugin, in_name or dist, version)

    @classmethod
    def from_dict(cls, kind: str, raw: Any) -> Pin:
        """A pin as :meth:`to_dict` wrote it; ``ValueError`` says what is malformed."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("entry"), str):
            raise ValueError(f"{kind} pin must be an object with an 'entry' string")
        for key in ("dist", "version"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise ValueError(f"{kind} pin: {key} must be a string")
        pin = cls.parse(kind, raw["entry"], raw.get("dist"), raw.get("version"))
        pin.check()
        return pin

    def check(self) -> None:
        """Raise ``ValueError`` unless every part is a well-formed name (data never acts)."""
        parts = (
            (_NAME, self.name, "name"), (_PLUGIN, self.plugin, "plugin"),
            (_DIST, self.dist and dist_key(self.dist), "distribution"),
            (_VERSION, self.version, "version"),
        )  # fmt: skip
        for pattern, value, what in parts:
            if value is not None and not pattern.match(value):
                raise ValueError(f"{self.kind} pin: malformed {what} {value!r}")

    @property
    def qualname(self) -> str:
        """``plugin/name``, or the bare name when no plugin is recorded."""
        return f"{self.plugin}/{self.name}" if self.plugin else self.name

    def describe(self) -> str:
        """``model 'dup/mlp' (zoo-dup 0.1.0)``: how messages name it."""
        made = " ".join(p for p in (self.dist, self.version) if p)
        return f"{self.kind} {self.qualname!r}" + (f" ({made})" if made else "")

    def to_dict(self) -> dict[str, str]:
        """``{"entry": "plugin/name", "dist": ..., "version": ...}`` (absent parts left out)."""
        out = {"entry": self.qualname, "dist": self.dist, "version": self.version}
        return {k: v for k, v in out.items() if v}


def make_entry(
    kind: str, name: Any, target: Any, meta: dict[str, Any], *, plugin: str, dist: str, version: str
) -> Entry:
    """Validate one ``register(...)`` call and build its :class:`Entry`.

    Raises ``ValueError`` with the reason when the registration is malformed.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} must be lower-case words joined by '-'")
    if not (callable(target) or (isinstance(target, str) and _TARGET.match(target))):
        raise ValueError(
            f"{kind} {name!r}: target {target!r} is neither 'module:attr' nor callable"
        )
    meta = dict(meta)
    reserved = sorted(set(meta) & set(RESERVED_META))
    if reserved:
        raise ValueError(
            f"{kind} {name!r}: meta key {reserved[0]!r} is reserved (zoo sets "
            f"{', '.join(RESERVED_META)} itself)"
        )
    _check_json(kind, name, meta)
    summary = meta.pop("summary", "")
    if not isinstance(summary, str):
        raise ValueError(f"{kind} {name!r}: summary must be a string")
    tasks = _tasks_from(kind, name, meta)
    _check_meta(kind, name, tasks, meta)
    return Entry(
        kind=kind,
        name=name,
        target=target,
        plugin=plugin,
        dist=dist,
        version=version,
        summary=summary,
        tasks=tasks,
        meta=MappingProxyType(meta),
    )


def _tasks_from(kind: str, name: str, meta: dict[str, Any]) -> tuple[str, ...]:
    task = meta.pop("task", None)
    tasks = meta.pop("tasks", None)
    if task is not None and tasks is not None:
        raise ValueError(f"{kind} {name!r}: give task or tasks, not both")
    if task is not None:
        tasks = [task]
    if tasks is None:
        if kind == "dataset":
            raise ValueError(f"dataset {name!r}: task is required")
        return TASKS
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"{kind} {name!r}: tasks must be a non-empty list")
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"{kind} {name!r}: unknown task {t!r} (tasks: {', '.join(TASKS)})")
    if kind == "dataset" and len(tasks) != 1:
        raise ValueError(f"dataset {name!r}: a dataset has exactly one task")
    return tuple(tasks)


def _check_meta(kind: str, name: str, tasks: tuple[str, ...], meta: dict[str, Any]) -> None:
    if "defaults" in meta and not isinstance(meta["defaults"], Mapping):
        raise ValueError(f"{kind} {name!r}: defaults must be a dict")
    if meta.get("input_kind", "any") not in INPUT_KINDS:
        raise ValueError(f"{kind} {name!r}: input_kind must be one of {', '.join(INPUT_KINDS)}")
    if meta.get("expects", "logits") not in EXPECTS:
        raise ValueError(f"{kind} {name!r}: expects must be one of {', '.join(EXPECTS)}")
    if "pretrained" in meta:
        _check_pretrained(kind, name, meta["pretrained"])
    if kind != "dataset":
        return
    shape = meta.get("input_shape")
    if (
        not isinstance(shape, list | tuple)
        or len(shape) not in (1, 3)
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise ValueError(f"dataset {name!r}: input_shape must be (F,) or (C, H, W) positive ints")
    meta["input_shape"] = tuple(shape)
    if tasks[0] != "regression":
        k = meta.get("num_classes")
        if not isinstance(k, int) or k < 2 or (tasks[0] == "binary" and k != 2):
            raise ValueError(f"dataset {name!r}: num_classes must be an int >= 2 (2 for binary)")


def _check_json(kind: str, name: str, meta: Mapping[str, Any]) -> None:
    """Refuse meta that is not plain JSON (str keys; str, number, bool, None, list, dict values),
    nested deeper than ``MAX_DEPTH`` (a dict that holds itself) or larger than ``MAX_META_SIZE``;
    walked without recursion. Where a value sits is kept as a ``(parent, key)`` chain and
    spelt out only for the error."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(v, 1, ((), k)) for k, v in meta.items()]
    size = 0
    while stack:
        value, depth, where = stack.pop()
        size += 1
        kind_of = type(value)
        if kind_of is str or (kind_of not in _PLAIN and isinstance(value, str)):
            size += len(value)
        elif kind_of in _PLAIN or isinstance(value, int | float):
            pass
        elif isinstance(value, list | tuple):
            size += len(value)  # checked before its items are walked
            if size <= MAX_META_SIZE:
                stack.extend((item, depth + 1, (where, i)) for i, item in enumerate(value))
        elif isinstance(value, Mapping):
            size += len(value)
            for key, item in value.items() if size <= MAX_META_SIZE else ():
                if not isinstance(key, str):
                    problem = f"has a non-string key {key!r}"
                    raise ValueError(f"{kind} {name!r}: meta {_path(where)!r} {problem}")
                size += len(key)
                stack.append((item, depth + 1, (where, key)))
        else:
            problem = f"is a {type(value).__name__}, not a JSON value"
            raise ValueError(f"{kind} {name!r}: meta {_path(where)!r} {problem}")
        if depth > MAX_DEPTH or size > MAX_META_SIZE:
            problem = f"is nested deeper than {MAX_DEPTH} levels (does it hold itself?)"
            if size > MAX_META_SIZE:
                problem = f"is larger than the {MAX_META_SIZE:,}-character limit"
            raise ValueError(f"{kind} {name!r}: meta {_path(where)!r} {problem}")


def _path(where: tuple[Any, ...], width: int = 60) -> str:
    """``info.self[0]`` from a ``(parent, key)`` chain, at most ``width`` characters."""
    parts: list[str] = []
    while where:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    path = "".join(reversed(parts)).lstrip(".")
    return path if len(path) <= width else path[: width - 3] + "..."


def _check_pretrained(kind: str, name: str, items: Any) -> None:
    """A model's ``pretrained=[...]`` declaration: a list of entry dicts (docs/plugins.md)."""
    if kind != "model":
        raise ValueError(f"{kind} {name!r}: only models declare pretrained entries")
    if not isinstance(items, list | tuple):
        raise ValueError(f"model {name!r}: pretrained must be a list of entry dicts")
    tags: set[str] = set()
    for i, item in enumerate(items):
        problem = _pretrained_problem(item, tags)
        if problem:
            raise ValueError(
                f"model {name!r}: its pretrained declaration, item {i}: {problem} "
                "(see docs/plugins.md)"
            )


def _pretrained_problem(item: Any, tags: set[str]) -> str | None:
    """Why one declared pretrained entry is malformed, or ``None``."""
    if not isinstance(item, Mapping):
        return f"expected a dict, found {type(item).__name__}"
    unknown = sorted(set(item) - set(PRETRAINED_KEYS))
    if unknown:
        return f"unknown key {unknown[0]!r} (keys: {', '.join(PRETRAINED_KEYS)})"
    tag = item.get("tag")
    if not isinstance(tag, str) or not _TAG.match(tag):
        return f"tag {tag!r} must be lower-case letters and digits joined by '-' or '_'"
    if tag in tags:
        return f"tag {tag!r} declared twice"
    tags.add(tag)
    files = item.get("files")
    if not isinstance(files, list | tuple) or not files:
        return f"{tag}: files must be a non-empty list of {{url, sha256, size}}"
    for f in files:
        problem = _file_problem(f)
        if problem:
            return f"{tag}: {problem}"
    for key in ("kwargs", "metrics"):
        if not isinstance(item.get(key, {}), Mapping):
            return f"{tag}: {key} must be a dict"
    metrics = item.get("metrics", {}).values()
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics):
        return f"{tag}: metrics must map names to numbers"
    for key in ("dataset", "license", "summary", "recipe", "created"):
        if item.get(key) is not None and not isinstance(item[key], str):
            return f"{tag}: {key} must be a string"
    return None


def _file_problem(ref: Any) -> str | None:
    """Why one declared file is malformed, or ``None``: an absolute URL, a sha256, a size."""
    if not isinstance(ref, Mapping) or not isinstance(ref.get("url"), str):
        return "each file needs a url"
    url, sha, size = ref["url"], ref.get("sha256"), ref.get("size")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file") and (len(scheme) > 1 or not os.path.isabs(url)):
        return f"file url {url!r} must be absolute (https://, http://, file:// or /path)"
    if not isinstance(sha, str) or not _SHA256.match(sha):
        return f"file {url!r} needs a full 64-hex sha256"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"file {url!r} needs an integer size in bytes"
    return None


class Registry:
    """All entries by kind, resolved by the name rule of this module's doc."""

    def __init__(self, entries: Iterable[Entry] = (), failed_plugins: Iterable[str] = ()):
        self._by_kind: dict[str, dict[str, list[Entry]]] = {k: {} for k in KINDS}
        self.failed_plugins = list(failed_plugins)
        entries = list(entries)
        same: dict[tuple[str, str, str], list[Entry]] = {}
        for entry in entries:
            same.setdefault(_plugin_and_name(entry), []).append(entry)
        for entry in entries:
            group = same[_plugin_and_name(entry)]
            if len(group) > 1 and _pick(group) is not entry:  # another dist's plugin, same name
                qualified = f"{dist_key(entry.dist)}:{entry.plugin}/{entry.name}"
                entry = replace(entry, dist_qualname=qualified)
            self._by_kind[entry.kind].setdefault(entry.name, []).append(entry)

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of one kind, sorted by name then plugin."""
        found = [e for group in self._by_kind[kind].values() for e in group]
        return sorted(found, key=lambda e: (e.name, e.plugin, e.dist))

    def listing(self, kind: str, pattern: str | list[str] | None = None) -> list[tuple[str, Entry]]:
        """``(listed name, entry)`` pairs, each entry under its :meth:`name_of`."""
        pairs = {self.name_of(entry): entry for entry in self.entries(kind)}
        return [(name, pairs[name]) for name in filter_names(list(pairs), pattern)]

    def names(self, kind: str, pattern: str | list[str] | None = None) -> list[str]:
        """Listed names of one kind matching ``pattern``."""
        return [name for name, _ in self.listing(kind, pattern)]

    def name_of(self, entry: Entry) -> str:
        """The name ``entry`` is listed under: bare when the bare name resolves to it, else its
        :attr:`~Entry.qualname`."""
        bare = _pick(self._candidates(entry.kind, entry.name))
        return entry.name if bare is entry else entry.qualname

    def get(self, kind: str, name: str) -> Entry:
        """Resolve a user's name (bare, ``plugin/name``, ``dist:plugin/name``) to one entry.

        Raises:
            UnknownNameError: no entry has that name (with close matches).
            AmbiguousNameError: two third-party entries share the bare name (lists both).
        """
        group = self._candidates(kind, name)
        entry = _pick(group)
        if entry is not None:
            return entry
        if group:
            both = ", ".join(sorted(e.qualname for e in group))
            raise AmbiguousNameError(
                f"{kind} name {split_name(name)[2]!r} is registered by several plugins; "
                f"use one of: {both}"
            )
        raise UnknownNameError(self._unknown_message(kind, name))

    def find(self, name: str) -> list[Entry]:
        """The entries a name resolves to, one per kind that has it (for ``zoo info``).

        A kind where the name is ambiguous contributes every candidate (``get`` raises there).
        """
        found: list[Entry] = []
        for kind in KINDS:
            group = self._candidates(kind, name)
            entry = _pick(group)
            found += [entry] if entry is not None else group
        return found

    def pinned(self, pin: Pin) -> Entry | None:
        """Exactly the entry a file pinned (its plugin, and distribution when recorded), or
        ``None``: never another entry of the same name. A pin without a plugin (zoo 0.1's bare
        names) matches the first-party entry of that name only."""
        group = self._by_kind[pin.kind].get(pin.name, [])
        if pin.plugin is None:
            first = [e for e in group if e.first_party]
            return first[0] if len(first) == 1 else None
        group = [e for e in group if normalize_name(e.plugin) == normalize_name(pin.plugin)]
        if pin.dist:
            group = [e for e in group if dist_key(e.dist) == dist_key(pin.dist)]
        return _pick(group)

    def _candidates(self, kind: str, name: str) -> list[Entry]:
        """Entries of ``kind`` whose name, plugin and distribution fit ``name``'s parts."""
        dist, plugin, bare = split_name(name)
        group = self._by_kind[kind].get(bare, [])
        if plugin is not None:
            group = [e for e in group if normalize_name(e.plugin) == plugin]
        if dist is not None:
            group = [e for e in group if dist_key(e.dist) == dist]
        return group

    def _unknown_message(self, kind: str, name: str) -> str:
        return self.unknown_message(name, [kind])

    def unknown_message(self, name: str, kinds: Iterable[str] = KINDS) -> str:
        """``unknown <kind> 'x'; did you mean: ...`` with close matches among ``kinds``."""
        kinds = list(kinds)
        qualified = "/" in name
        candidates = [
            e.qualname if qualified else e.name for kind in kinds for e in self.entries(kind)
        ]
        what = kinds[0] if len(kinds) == 1 else "name"
        listing = f"zoo list{' ' + PLURALS[kinds[0]] if len(kinds) == 1 else ''}"
        msg = _unknown_message(
            what, name, candidates, otherwise=f"see `{listing}`", key=normalize_name(name)
        )
        if self.failed_plugins:
            msg += f" (plugins failed to load: {', '.join(self.failed_plugins)}; see `zoo plugins`)"
        return msg


def _pick(group: list[Entry]) -> Entry | None:
    """The one entry a name means among ``group``: the only one, else the only first-party one."""
    if len(group) == 1:
        return group[0]
    first = [e for e in group if e.first_party]
    return first[0] if len(first) == 1 else None


def _plugin_and_name(entry: Entry) -> tuple[str, str, str]:
    return entry.kind, entry.name, normalize_name(entry.plugin)
