"""Registry entries and name lookup.

An :class:`Entry` is what a plugin's ``register(...)`` call recorded: a kind, a name, a lazy
target and its metadata. The :class:`Registry` holds every entry, keeps duplicate names from
different plugins side by side (reachable as ``plugin/name``), and resolves a user's name
with close-match suggestions. Nothing here imports torch or a plugin's target.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from zoo._util.jsonio import jsonable
from zoo._util.names import filter_names, normalize_name
from zoo._util.names import unknown_message as _unknown_message
from zoo.errors import AmbiguousNameError, PluginError, UnknownNameError

KINDS = ("model", "loss", "dataset")
PLURALS = {"model": "models", "loss": "losses", "dataset": "datasets"}
TASKS = ("regression", "binary", "multiclass")
INPUT_KINDS = ("features", "image", "any")
EXPECTS = ("logits", "probabilities", "log-probabilities")

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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

    @property
    def qualname(self) -> str:
        return f"{self.plugin}/{self.name}"

    @property
    def input_kind(self) -> str:
        """``features``/``image`` for a dataset (by shape); declared or ``any`` for a model."""
        if self.kind == "dataset":
            return "image" if len(self.meta["input_shape"]) == 3 else "features"
        return self.meta.get("input_kind", "any")

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
        """Import and return the target; a failure names the entry and its plugin."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # any import-time failure of third-party code
            raise PluginError(
                f"{self.kind} {self.name!r} (plugin {self.plugin!r}): cannot import target "
                f"{self.target!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(obj):
            raise PluginError(
                f"{self.kind} {self.name!r} (plugin {self.plugin!r}): target {self.target!r} "
                "is not callable"
            )
        return obj

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (the ``--json`` shape: name, kind, plugin, summary, ...)."""
        meta = {k: v for k, v in self.meta.items() if k != "pretrained"}
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "dist": self.dist,
            "version": self.version,
            "summary": self.summary,
            "tasks": list(self.tasks),
            "target": self.target_repr,
            **jsonable(meta),
        }


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
    if "pretrained" in meta and not isinstance(meta["pretrained"], list | tuple):
        raise ValueError(f"{kind} {name!r}: pretrained must be a list of entry dicts")
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


class Registry:
    """All entries by kind; duplicate bare names stay reachable as ``plugin/name``."""

    def __init__(self, entries: Iterable[Entry] = (), failed_plugins: Iterable[str] = ()):
        self._by_kind: dict[str, dict[str, list[Entry]]] = {k: {} for k in KINDS}
        self.failed_plugins = list(failed_plugins)
        for entry in entries:
            self._by_kind[entry.kind].setdefault(entry.name, []).append(entry)

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of one kind, sorted by name then plugin."""
        found = [e for group in self._by_kind[kind].values() for e in group]
        return sorted(found, key=lambda e: (e.name, e.plugin))

    def listing(self, kind: str, pattern: str | list[str] | None = None) -> list[tuple[str, Entry]]:
        """``(listed name, entry)`` pairs: the bare name, or ``plugin/name`` for a shared name."""
        pairs = {}
        for entry in self.entries(kind):
            shared = len(self._by_kind[kind][entry.name]) > 1
            pairs[entry.qualname if shared else entry.name] = entry
        return [(name, pairs[name]) for name in filter_names(list(pairs), pattern)]

    def names(self, kind: str, pattern: str | list[str] | None = None) -> list[str]:
        """Listed names of one kind matching ``pattern``."""
        return [name for name, _ in self.listing(kind, pattern)]

    def get(self, kind: str, name: str) -> Entry:
        """Resolve a user's name (bare or ``plugin/name``) to one entry, or raise clearly."""
        plugin, _, bare = normalize_name(name).rpartition("/")
        group = self._by_kind[kind].get(bare, [])
        if plugin:
            group = [e for e in group if e.plugin == plugin]
        if len(group) == 1:
            return group[0]
        if len(group) > 1:
            both = ", ".join(e.qualname for e in group)
            raise AmbiguousNameError(
                f"{kind} name {bare!r} is registered by several plugins; use one of: {both}"
            )
        raise UnknownNameError(self._unknown_message(kind, name))

    def find(self, name: str) -> list[Entry]:
        """Every entry of any kind that a name resolves to (for ``zoo info``)."""
        plugin, _, bare = normalize_name(name).rpartition("/")
        return [
            e
            for kind in KINDS
            for e in self._by_kind[kind].get(bare, [])
            if not plugin or e.plugin == plugin
        ]

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
