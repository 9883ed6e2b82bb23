"""Entry-point plugin loading: guarded, filtered by environment, lazy and done once.

Each distribution's ``zoo`` entry points are loaded inside their own guard. A plugin that
fails to import, raises in a hook, or registers something malformed contributes nothing and
is recorded with its error (``zoo plugins`` shows it); every other plugin keeps working.

Environment:

- ``ZOO_PLUGINS=a,b``: load only those plugins (distribution or entry-point names) besides
  the first-party ones; set but empty loads first-party plugins only.
- ``ZOO_DISABLE_PLUGINS=x,y``: block those before they are imported.
- ``ZOO_STRICT_PLUGINS=1``: any plugin failure raises :class:`~zoo.errors.PluginError`.
- ``ZOO_TRACE_PLUGINS=1``: print every hook call and what it registered to stderr.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from zoo.errors import PluginError
from zoo.registry import hookspecs
from zoo.registry.entries import Entry, Registry, make_entry

GROUP = "zoo"
FIRST_PARTY_DIST = "zoo"
HOOKS = {"register_models": "model", "register_losses": "loss", "register_datasets": "dataset"}


@dataclass
class PluginRecord:
    """What ``zoo plugins`` reports about one entry point."""

    name: str
    dist: str
    version: str
    value: str
    status: str = "ok"  # ok | failed | blocked | skipped
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)

    @property
    def first_party(self) -> bool:
        return self.dist == FIRST_PARTY_DIST

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "plugin",
            "plugin": self.name,
            "summary": self.value,
            "dist": self.dist,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
            "entries": self.entries,
        }


@dataclass
class _State:
    registry: Registry
    records: list[PluginRecord]


_state: _State | None = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The registry of every loaded plugin's entries (plugins load on first call)."""
    return _load().registry


def plugin_records() -> list[PluginRecord]:
    """One record per ``zoo`` entry point seen, loaded or not."""
    return list(_load().records)


def reset() -> None:
    """Forget loaded plugins so the next use discovers them again (tests, notebooks)."""
    global _state
    with _lock:
        _state = None


def _load() -> _State:
    global _state
    with _lock:
        if _state is None:
            _state = _discover()
        return _state


def _env_set(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


def _discover() -> _State:
    only = _env_set("ZOO_PLUGINS")
    disabled = _env_set("ZOO_DISABLE_PLUGINS") or set()
    strict = os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")
    trace = os.environ.get("ZOO_TRACE_PLUGINS", "") not in ("", "0")
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)

    records: list[PluginRecord] = []
    entries: list[Entry] = []
    for ep in sorted(
        entry_points(group=GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)
    ):
        record = _record_for(ep)
        records.append(record)
        names = {record.name.lower(), record.dist.lower()}
        if names & disabled:
            record.status = "blocked"
            continue
        if only is not None and not record.first_party and not names & only:
            record.status = "skipped"
            continue
        try:
            entries.extend(_load_one(pm, ep, record, trace))
        except Exception as exc:  # a plugin's failure is recorded, never fatal
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if strict:
                raise PluginError(
                    f"plugin {record.name!r} ({record.dist}): {record.error}"
                ) from exc
    known = {n for r in records for n in (r.name.lower(), r.dist.lower())}
    for var, names in (("ZOO_PLUGINS", only or set()), ("ZOO_DISABLE_PLUGINS", disabled)):
        if names - known:
            unknown = ", ".join(sorted(names - known))
            print(f"zoo: warning: {var} names no installed plugin: {unknown}", file=sys.stderr)
    failed = [r.name for r in records if r.status == "failed"]
    return _State(Registry(entries, failed_plugins=failed), records)


def _record_for(ep: EntryPoint) -> PluginRecord:
    dist = ep.dist.name if ep.dist is not None else "unknown"
    version = ep.dist.version if ep.dist is not None else "0"
    return PluginRecord(name=ep.name.lower(), dist=dist, version=version, value=ep.value)


def _load_one(
    pm: pluggy.PluginManager, ep: EntryPoint, record: PluginRecord, trace: bool
) -> list[Entry]:
    """Import one entry point, register it with pluggy and call its hooks; all or nothing."""
    plugin = ep.load()
    if pm.is_registered(plugin):
        raise PluginError(f"already registered by plugin {pm.get_name(plugin)!r}")
    pm.register(plugin, name=record.name)
    try:
        return _call_hooks(pm, plugin, record, trace)
    except Exception:
        pm.unregister(plugin)
        raise


def _call_hooks(
    pm: pluggy.PluginManager, plugin: object, record: PluginRecord, trace: bool
) -> list[Entry]:
    found: list[Entry] = []
    problems: list[str] = []
    for hook_name, kind in HOOKS.items():
        impls = [i for i in getattr(pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
        for impl in impls:
            record.hooks.append(hook_name)
            before = len(found)
            args = {"register": _registrar(kind, record, found, problems)}
            impl.function(*[args[a] for a in impl.argnames])
            if trace:
                added = ", ".join(e.name for e in found[before:]) or "nothing"
                print(f"zoo: plugin {record.name} {hook_name} -> {added}", file=sys.stderr)
            if problems:
                raise PluginError(f"{hook_name}: {problems[0]}")
    for entry in found:
        record.entries[entry.kind] = record.entries.get(entry.kind, 0) + 1
    return found


def _registrar(
    kind: str, record: PluginRecord, found: list[Entry], problems: list[str]
) -> Callable[..., None]:
    """The ``register(name, target, **meta)`` callback handed to one plugin's hook.

    A malformed registration is recorded rather than raised, so a plugin cannot swallow it.
    """

    def register(name: Any, target: Any, **meta: Any) -> None:
        try:
            entry = make_entry(
                kind,
                name,
                target,
                meta,
                plugin=record.name,
                dist=record.dist,
                version=record.version,
            )
        except ValueError as exc:
            problems.append(str(exc))
        else:
            found.append(entry)

    return register
