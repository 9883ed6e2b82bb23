"""Entry-point plugin loading through pluggy: guarded, filtered by environment, lazy, once.

Loading happens on first use (never at import of ``zoo``), once per process or per
:func:`reset`, in this order:

1. Every entry point of the group ``zoo`` gets a :class:`PluginRecord` (sorted by
   distribution, then name).
2. ``ZOO_DISABLE_PLUGINS`` names are blocked with pluggy's ``set_blocked`` before anything is
   imported: a blocked entry point is recorded ``blocked`` and never imported.
   ``ZOO_PLUGINS`` then selects among the third-party ones (the rest are ``skipped``).
3. Each remaining entry point loads inside its own guard:

   a. it is imported (``EntryPoint.load``);
   b. ``PluginManager.register`` validates every implementation against the specs of
      :mod:`zoo.registry.hookspecs`: an argument the spec does not have (``reg`` instead of
      ``register``) or a wrapper that is not a generator is refused by pluggy;
   c. hooks no spec declares (a misspelt ``register_model``) are found as pluggy's
      ``check_pending`` finds them, with a close-match hint, and a ``hookwrapper=True`` or
      ``wrapper=True`` implementation of a register hook is refused (a register hook is a
      plain call);
   d. each register hook is called for this plugin alone (``subset_hook_caller``), each call
      in its own ``try``; every malformed ``register(...)`` call is recorded, not only the
      first. ``register_commands(cli)`` is called the same way, with a ``click.Group`` of the
      plugin's own: the commands it adds are the record's (:func:`plugin_commands`).

   A plugin that fails any step is unregistered, contributes nothing, and its record says
   ``failed`` with every error on one line (``zoo plugins`` shows it). Every other plugin keeps
   working.

4. Training events (``on_fit_start``, ``on_epoch_end``, ``on_fit_end``) are validated like
   every hook here and called later, by the trainer, through :func:`call_plugins`: each
   plugin alone, in its own guard (stdout captured; what raised is returned, never raised).

5. Names (see :mod:`zoo.registry.entries`): a third-party entry whose name a first-party one
   has stays reachable only as ``plugin/name``; its record gets a warning (``zoo plugins``
   shows it, ``zoo check`` fails the plugin). Two distributions may use one entry-point name:
   the second one's entries are qualified ``dist:plugin/name``.

:func:`pinned_entry` resolves what a file pins, failing with one line that names what to
install.

Environment:

- ``ZOO_PLUGINS=a,b``: load only those plugins (distribution or entry-point names) besides
  the first-party ones; set but empty loads first-party plugins only.
- ``ZOO_DISABLE_PLUGINS=x,y``: block those before they are imported.
- ``ZOO_STRICT_PLUGINS=1``: a plugin that failed, or whose loading was heavy (below), makes
  :func:`get_registry` raise :class:`~zoo.errors.PluginError` (every plugin is still loaded and
  recorded first, so ``zoo plugins`` can show the table before it fails). ``zoo check`` judges
  only the plugins it is asked about (:func:`judged_alone`).
- ``ZOO_TRACE_PLUGINS=1``: log every hook call and what it registered at ``DEBUG`` on the
  ``zoo.registry.plugins`` logger, which the variable enables while plugins load (lines
  ``zoo: plugin NAME HOOK -> ENTRIES`` on stderr; see :mod:`zoo._util.log`), and what each
  plugin printed while it loaded.
- ``ZOO_PLUGIN_TIMEOUT=SECONDS`` (CLI only, default :data:`LOAD_TIMEOUT_S`; ``0``: none): the
  deadline for loading one plugin (import and hooks), by ``SIGALRM`` in the main thread; a
  plugin that runs past it fails. The Python API sets no alarm.
- ``ZOO_PLUGIN_SLOW_S=SECONDS`` (default :data:`SLOW_LOAD_S`): loading one plugin for longer
  marks it slow.

Plugins cannot break the tool: each one loads with ``sys.stdout`` captured (what it printed is
its record's ``output``, never zoo's own output), and any exception it raises, ``SystemExit``
and the deadline's included (``KeyboardInterrupt`` aside), fails that plugin alone. A plugin
whose loading imported a heavy module (:data:`HEAVY_MODULES`, i.e. torch at the top of its
hook module) or took longer than ``ZOO_PLUGIN_SLOW_S`` is marked *heavy* (``zoo plugins``
shows why; ``zoo check`` fails it, with the fix): listing must stay light.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, redirect_stdout
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points
from importlib.metadata import version as installed_version
from types import MappingProxyType, ModuleType
from typing import Any

import pluggy

from zoo._util.log import get_logger
from zoo._util.names import close_matches, normalize_name
from zoo._util.values import env_seconds
from zoo.errors import PluginError, UnknownNameError, one_line
from zoo.registry import hookspecs
from zoo.registry.entries import (
    FIRST_PARTY_DIST,
    KINDS,
    PLURALS,
    Entry,
    Pin,
    Registry,
    dist_key,
    make_entry,
)

__all__ = [
    "FIRST_PARTY_DIST",
    "GROUP",
    "HEAVY_MODULES",
    "HOOKS",
    "LOAD_TIMEOUT_S",
    "MAX_OUTPUT_CHARS",
    "SLOW_LOAD_S",
    "PluginRecord",
    "call_plugins",
    "get_registry",
    "judged_alone",
    "missing_reason",
    "pinned_entry",
    "plugin_commands",
    "plugin_records",
    "reset",
    "use_load_deadline",
]

GROUP = "zoo"

#: The CLI's deadline for loading one plugin, in seconds (``ZOO_PLUGIN_TIMEOUT``; 0: none).
LOAD_TIMEOUT_S = 5.0
#: Loading one plugin for longer than this many seconds marks it slow (``ZOO_PLUGIN_SLOW_S``).
SLOW_LOAD_S = 1.0
#: Modules a plugin's loading must not import: listing never imports them.
HEAVY_MODULES = ("torch", "torchvision", "sklearn", "matplotlib", "numpy")
#: What a plugin printed while loading is kept up to this many characters.
MAX_OUTPUT_CHARS = 2_000

logger = get_logger(__name__)


#: Every hook specification by name.
_SPECS: dict[str, Callable[..., Any]] = {
    name: fn
    for name, fn in vars(hookspecs).items()
    if callable(fn) and getattr(fn, f"{hookspecs.PROJECT}_spec", None) is not None
}


def _entry_hooks() -> dict[str, str]:
    """``{hook name: entry kind}`` for every ``register_<kind plural>(register)`` spec.

    Derived from :mod:`zoo.registry.hookspecs`, so adding a kind's spec there is all it takes;
    ordered as :data:`~zoo.registry.entries.KINDS`.
    """
    by_plural = {plural: kind for kind, plural in PLURALS.items()}
    hooks: dict[str, str] = {}
    for name, fn in _SPECS.items():
        arguments = list(inspect.signature(fn).parameters)
        if not name.startswith("register_") or arguments != ["register"]:
            continue  # not an entry hook (e.g. a training event)
        plural = name.removeprefix("register_")
        if plural not in by_plural:
            raise TypeError(f"hookspec {name}(register): {plural!r} is not a kind of entry")
        hooks[name] = by_plural[plural]
    return dict(sorted(hooks.items(), key=lambda item: KINDS.index(item[1])))


#: Register hooks and the kind of entry each registers, from the hook specifications.
HOOKS: MappingProxyType[str, str] = MappingProxyType(_entry_hooks())


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
    warnings: list[str] = field(default_factory=list)  # names it could not take
    output: str = ""  # what it printed to stdout while loading (capped)
    load_s: float = 0.0  # seconds its import and hooks took
    imported: list[str] = field(default_factory=list)  # heavy modules its loading imported
    slow_s: float = SLOW_LOAD_S  # the threshold it was judged by
    commands: dict[str, Any] = field(default_factory=dict, repr=False)  # name -> click.Command

    @property
    def first_party(self) -> bool:
        """Whether the plugin ships with zoo itself."""
        return dist_key(self.dist) == FIRST_PARTY_DIST

    @property
    def heavy(self) -> list[str]:
        """Why loading this plugin is too heavy for listing, each with the fix; ``[]`` if light."""
        module = self.value.partition(":")[0]
        reasons = []
        if self.imported:
            reasons.append(
                f"loading it imported {', '.join(self.imported)} (at the top of {module}?): "
                "import them inside the targets' modules or functions, not at the top of the "
                "hook module"
            )
        if self.load_s > self.slow_s:
            reasons.append(
                f"loading it took {self.load_s:.2f} s (over ZOO_PLUGIN_SLOW_S={self.slow_s:g} s)"
            )
        return reasons

    @property
    def notes(self) -> str:
        """One line for ``zoo plugins``: heavy loading and printed output, else ``""``."""
        notes = [f"heavy: imported {', '.join(self.imported)}"] if self.imported else []
        if self.load_s > self.slow_s:
            notes.append(f"slow: {self.load_s:.2f} s")
        if self.output:
            notes.append(f"printed: {' '.join(self.output.split())[:60]}")
        return "; ".join(notes)

    def to_dict(self) -> dict[str, Any]:
        """The record as ``zoo plugins --json`` prints it."""
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
            "commands": sorted(self.commands),
            "warnings": self.warnings,
            "heavy": self.heavy,
            "output": self.output,
            "load_s": round(self.load_s, 4),
        }


@dataclass
class _State:
    registry: Registry
    records: list[PluginRecord]
    manager: pluggy.PluginManager
    strict_error: str | None = None  # what ZOO_STRICT_PLUGINS=1 fails with


_state: _State | None = None
_lock = threading.Lock()
_use_deadline = False  # set by the CLI (use_load_deadline)
_alone: ContextVar[bool] = ContextVar("zoo_plugins_judged_alone", default=False)


def get_registry() -> Registry:
    """The registry of every loaded plugin's entries (plugins load on first call).

    Raises:
        PluginError: under ``ZOO_STRICT_PLUGINS=1``, a plugin failed or loaded heavily (not
            inside :func:`judged_alone`).
    """
    state = _load()
    if state.strict_error and not _alone.get():
        raise PluginError(state.strict_error)
    return state.registry


@contextmanager
def judged_alone() -> Iterator[None]:
    """Within this block ``ZOO_STRICT_PLUGINS=1`` raises for no plugin: ``zoo check P`` judges P
    by its own checks, whatever other plugins did."""
    token = _alone.set(True)
    try:
        yield
    finally:
        _alone.reset(token)


@contextmanager
def use_load_deadline() -> Iterator[None]:
    """Inside this block, each plugin loads under the ``ZOO_PLUGIN_TIMEOUT`` deadline
    (``SIGALRM``): the CLI holds it for a command; plugins loading outside the main thread get
    no alarm, and the Python API outside the block none at all."""
    global _use_deadline
    before, _use_deadline = _use_deadline, True
    try:
        yield
    finally:
        _use_deadline = before


def plugin_records() -> list[PluginRecord]:
    """One record per ``zoo`` entry point seen, loaded or not."""
    return list(_load().records)


def plugin_commands() -> list[tuple[str, Any]]:
    """``(plugin, click.Command)`` for each command a loaded plugin's ``register_commands``
    added, in loading order (which of two with one name wins is the CLI's to say)."""
    return [(r.name, c) for r in _load().records if r.status == "ok" for c in r.commands.values()]


def call_plugins(
    hook_name: str, skip: Collection[str] = (), **kwargs: Any
) -> list[tuple[str, str]]:
    """Call ``hook_name`` (a training event) of each loaded plugin that implements it, each
    plugin alone and in its own guard, its stdout captured (``ZOO_TRACE_PLUGINS=1`` logs it).

    Args:
        hook_name: one of :data:`zoo.registry.hookspecs.EVENTS`.
        skip: plugins not to call (those that failed earlier in the same run).
        kwargs: the hook's arguments.

    Returns:
        ``(plugin, "Type: message")`` for each plugin whose hook raised (``SystemExit``
        included; ``KeyboardInterrupt`` is raised).
    """
    if hook_name not in hookspecs.EVENTS:
        raise ValueError(f"{hook_name!r} is not a training event: {', '.join(hookspecs.EVENTS)}")
    pm = _load().manager
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    failures: list[tuple[str, str]] = []
    with _tracing(_env_flag("ZOO_TRACE_PLUGINS")):
        for plugin in dict.fromkeys(i.plugin for i in impls):
            name = pm.get_name(plugin) or "?"
            if name in skip:
                continue
            others = [p for p in pm.get_plugins() if p is not plugin]
            output = _Output()
            logger.debug("plugin %s %s", name, hook_name)
            try:
                with redirect_stdout(output):
                    pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: B036 -- SystemExit too: a plugin never ends zoo
                failures.append((name, _one_line(exc)))
            if output.text:
                printed = " ".join(output.text.split())
                logger.debug("plugin %s printed in %s: %s", name, hook_name, printed)
    return failures


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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class _Failed(Exception):
    """A plugin failed; ``errors`` are its reasons, each one line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _discover() -> _State:
    only = _env_set("ZOO_PLUGINS")
    disabled = _env_set("ZOO_DISABLE_PLUGINS") or set()
    strict = _env_flag("ZOO_STRICT_PLUGINS")
    timeout = env_seconds("ZOO_PLUGIN_TIMEOUT", LOAD_TIMEOUT_S, zero=True) if _use_deadline else 0.0
    slow_s = env_seconds("ZOO_PLUGIN_SLOW_S", SLOW_LOAD_S, zero=True)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in sorted(disabled):
        pm.set_blocked(name)

    records: list[PluginRecord] = []
    entries: list[Entry] = []
    with _tracing(_env_flag("ZOO_TRACE_PLUGINS")):
        for ep in sorted(
            entry_points(group=GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)
        ):
            record = _record_for(ep)
            records.append(record)
            names = {record.name, record.dist.lower()}
            if any(pm.is_blocked(n) for n in names):
                record.status = "blocked"
                logger.debug("plugin %s blocked by ZOO_DISABLE_PLUGINS", record.name)
                continue
            if only is not None and not record.first_party and not names & only:
                record.status = "skipped"
                logger.debug("plugin %s skipped: not in ZOO_PLUGINS", record.name)
                continue
            record.slow_s = slow_s
            entries.extend(_load_guarded(pm, ep, record, timeout))
    known = {n for r in records for n in (r.name, r.dist.lower())}
    for var, names in (("ZOO_PLUGINS", only or set()), ("ZOO_DISABLE_PLUGINS", disabled)):
        if names - known:
            unknown = ", ".join(sorted(names - known))
            logger.warning("%s names no installed plugin: %s", var, unknown)
    failed = [r.name for r in records if r.status == "failed"]
    registry = Registry(entries, failed_plugins=failed)
    _note_collisions(registry, records)
    return _State(registry, records, pm, _strict_error(records) if strict else None)


def _strict_error(records: list[PluginRecord]) -> str | None:
    """``plugin 'x' (dist): <why>`` for the first plugin that failed or loaded heavily."""
    bad = [
        f"plugin {r.name!r} ({r.dist}): {r.error if r.status == 'failed' else '; '.join(r.heavy)}"
        for r in records
        if r.status == "failed" or (r.status == "ok" and r.heavy)
    ]
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more; see `zoo plugins`)" if len(bad) > 1 else ""
    return f"{bad[0]}{more} [ZOO_STRICT_PLUGINS]"


class _LoadTimeout(BaseException):  # not an Exception, so a plugin's `except Exception` lets it by
    """The load deadline passed (raised by the ``SIGALRM`` handler inside plugin code)."""


class _Output(io.TextIOBase):
    """A plugin's stdout while it loads: keeps the first ``MAX_OUTPUT_CHARS`` characters."""

    def __init__(self) -> None:
        self.text = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        room = MAX_OUTPUT_CHARS - len(self.text)
        if room > 0:
            self.text += str(s)[:room]
        return len(s)


def _load_guarded(
    pm: pluggy.PluginManager, ep: EntryPoint, record: PluginRecord, timeout: float
) -> list[Entry]:
    """:func:`_load_one` with stdout captured, every exception but ``KeyboardInterrupt`` made
    the plugin's failure, the deadline applied, and what it imported and how long it took
    recorded. A failed plugin contributes nothing."""
    heavy_before = {m for m in HEAVY_MODULES if m in sys.modules}
    output = _Output()
    start = time.perf_counter()
    try:
        with redirect_stdout(output), _deadline(timeout):
            return _load_one(pm, ep, record)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: B036 -- SystemExit too: a plugin never ends zoo
        record.status = "failed"
        record.error = _one_line(exc)
        logger.debug("plugin %s failed: %s", record.name, record.error)
        return []
    finally:
        record.load_s = time.perf_counter() - start
        record.output = output.text
        record.imported = _heavy_imports(ep, heavy_before)
        if record.output:
            logger.debug("plugin %s printed: %s", record.name, " ".join(record.output.split()))


def _heavy_imports(ep: EntryPoint, before: set[str]) -> list[str]:
    """The heavy modules a plugin's loading imported, or that its hook module holds at its top
    (seen even where another part of the process imported them first)."""
    module = sys.modules.get(ep.module)
    held = {
        value.__name__.partition(".")[0]
        for value in (vars(module).values() if module is not None else ())
        if isinstance(value, ModuleType)
    }
    return [m for m in HEAVY_MODULES if (m in sys.modules and m not in before) or m in held]


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_LoadTimeout` in the block after ``seconds`` (``SIGALRM``; main thread
    only, else no deadline). The previous handler and any pending timer are restored."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _LoadTimeout(
            f"loading took longer than the {seconds:g} s deadline (ZOO_PLUGIN_TIMEOUT); "
            "does it hang at import?"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    pending, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending:  # someone else's timer: give back what is left of it
            left = max(pending - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def _note_collisions(registry: Registry, records: list[PluginRecord]) -> None:
    """Warn on each third-party record whose entries cannot have the names they asked for."""
    first_party = [e for kind in KINDS for e in registry.entries(kind) if e.first_party]
    taken = {(e.kind, e.name) for e in first_party}
    first_plugins = {normalize_name(e.plugin) for e in first_party}
    by_plugin = {(r.name, dist_key(r.dist)): r for r in records}
    for kind in KINDS:
        for entry in registry.entries(kind):
            if entry.first_party:
                continue
            record = by_plugin[(entry.plugin, dist_key(entry.dist))]
            if (kind, entry.name) in taken:
                record.warnings.append(
                    f"{kind} {entry.name!r} is a first-party name: `{entry.name}` stays zoo's "
                    f"own; this one is reachable only as {entry.qualname}"
                )
            elif entry.dist_qualname and normalize_name(entry.plugin) in first_plugins:
                record.warnings.append(
                    f"{kind} {entry.name!r}: entry-point name {entry.plugin!r} is a first-party "
                    f"plugin's; this one is reachable only as {entry.qualname}"
                )


@contextmanager
def _tracing(enabled: bool) -> Iterator[None]:
    """``ZOO_TRACE_PLUGINS=1``: this module's debug records are shown while plugins load."""
    if not enabled:
        yield
        return
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(before)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (a plugin's failure as ``zoo plugins`` shows it)."""
    if isinstance(exc, _Failed | _LoadTimeout):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({exc.code!r})"
    return one_line(exc, typed=True, sep="; ")


def _record_for(ep: EntryPoint) -> PluginRecord:
    dist = ep.dist.name if ep.dist is not None else "unknown"
    version = ep.dist.version if ep.dist is not None else "0"
    return PluginRecord(name=ep.name.lower(), dist=dist, version=version, value=ep.value)


def _load_one(pm: pluggy.PluginManager, ep: EntryPoint, record: PluginRecord) -> list[Entry]:
    """Import one entry point, register it with pluggy and call its hooks; all or nothing."""
    plugin = ep.load()
    if pm.is_registered(plugin):
        raise PluginError(f"already registered by plugin {pm.get_name(plugin)!r}")
    # another distribution may use the same entry-point name: pluggy's name is then qualified
    name = record.name if not pm.has_plugin(record.name) else f"{record.dist}:{record.name}"
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:  # an argument the spec lacks, a bad wrapper
        raise _Failed([_one_line(exc) + _spec_of(str(exc))]) from exc
    try:
        _validate(pm, plugin)
        return _call_hooks(pm, plugin, record)
    except BaseException:
        pm.unregister(plugin, name=name)
        raise


def _validate(pm: pluggy.PluginManager, plugin: object) -> None:
    """What ``register`` leaves to ``check_pending``, for this plugin: hooks without a spec
    (optional ones aside). And register hooks must be plain calls, not wrappers."""
    errors: list[str] = []
    try:
        pm.check_pending()  # every plugin registered before this one passed it
    except pluggy.PluginValidationError as exc:
        unknown = re.search(r"unknown hook '(\w+)'", str(exc))
        errors.append(_one_line(exc) + _close_match(unknown.group(1) if unknown else ""))
        for hook in pm.get_hookcallers(plugin) or ():
            impls = [i for i in hook.get_hookimpls() if i.plugin is plugin]
            if (
                not hook.has_spec()
                and any(not i.optionalhook for i in impls)
                and f"hook {hook.name!r}" not in errors[0]
            ):
                errors.append(f"unknown hook {hook.name!r}{_close_match(hook.name)}")
    for hook_name, spec in _SPECS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper):
                option = "hookwrapper=True" if impl.hookwrapper else "wrapper=True"
                what = "a register hook" if hook_name in HOOKS else "a zoo hook"
                errors.append(
                    f"PluginValidationError: hook {hook_name!r}: implemented with {option}; "
                    f"{what} is a plain function: "
                    f"@{hookspecs.PROJECT}.hookimpl def {hook_name}{inspect.signature(spec)}"
                )
    if errors:
        raise _Failed(errors)


def _close_match(name: str) -> str:
    """`` (did you mean 'register_models'?)`` for a hook name close to a spec's, else ``""``."""
    close = close_matches(name, _SPECS, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _spec_of(message: str) -> str:
    """`` (the spec: register_models(register))`` for the hook a pluggy message names."""
    found = re.search(r"hook '(\w+)'", message)
    spec = _SPECS.get(found.group(1)) if found else None
    return f" (the spec: {found.group(1)}{inspect.signature(spec)})" if spec else ""


def _call_hooks(pm: pluggy.PluginManager, plugin: object, record: PluginRecord) -> list[Entry]:
    """Call each register hook of ``plugin`` alone, collecting every error before failing."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    found: list[Entry] = []
    errors: list[str] = []
    for hook_name, kind in HOOKS.items():
        caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
        if not any(i.plugin is plugin for i in caller.get_hookimpls()):
            continue
        record.hooks.append(hook_name)
        before = len(found)
        problems: list[str] = []
        raised = ""
        try:
            caller(register=_registrar(kind, record, found, problems))
        except (KeyboardInterrupt, _LoadTimeout):
            raise
        except BaseException as exc:  # noqa: B036 -- SystemExit too: a plugin never ends zoo
            raised = f"{hook_name} raised {_one_line(exc)}"
        errors += [f"{hook_name}: {p}" for p in problems] + ([raised] if raised else [])
        added = ", ".join(e.name for e in found[before:]) or "nothing"
        logger.debug("plugin %s %s -> %s", record.name, hook_name, added)
    for hook_name in (*hookspecs.EVENTS, "register_commands"):
        if any(i.plugin is plugin for i in getattr(pm.hook, hook_name).get_hookimpls()):
            record.hooks.append(hook_name)
    if "register_commands" in record.hooks:
        errors += _add_commands(pm, plugin, record, others)
    if errors:
        raise _Failed(errors)
    for entry in found:
        record.entries[entry.kind] = record.entries.get(entry.kind, 0) + 1
    return found


def _add_commands(
    pm: pluggy.PluginManager, plugin: object, record: PluginRecord, others: list[object]
) -> list[str]:
    """Call the plugin's ``register_commands(cli)`` with a group of its own; keep what it
    added in ``record.commands``. Returns the errors (what it raised)."""
    import click

    group = click.Group(f"zoo ({record.name})")
    try:
        pm.subset_hook_caller("register_commands", remove_plugins=others)(cli=group)
    except (KeyboardInterrupt, _LoadTimeout):
        raise
    except BaseException as exc:  # noqa: B036 -- SystemExit too: a plugin never ends zoo
        return [f"register_commands raised {_one_line(exc)}"]
    added = ", ".join(group.commands) or "nothing"
    logger.debug("plugin %s register_commands -> %s", record.name, added)
    record.commands = dict(group.commands)
    return []


def _registrar(
    kind: str, record: PluginRecord, found: list[Entry], problems: list[str]
) -> Callable[..., None]:
    """The ``register(name, target, **meta)`` callback handed to one plugin's hook.

    A malformed registration is recorded rather than raised, so a plugin cannot swallow it,
    and the hook goes on: every malformed call is reported.
    """
    seen = {e.name for e in found if e.kind == kind}

    def register(*args: Any, **meta: Any) -> None:
        for i, key in enumerate(("name", "target")):
            if len(args) <= i and key in meta:
                args = (*args, meta.pop(key))
        if len(args) != 2:
            problems.append(
                f"register(name, target, **meta) takes 2 positional arguments, got {len(args)}"
            )
            return
        name, target = args
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
            return
        if entry.name in seen:
            problems.append(f"{kind} {entry.name!r} registered twice")
            return
        seen.add(entry.name)
        found.append(entry)

    return register


# ---------------------------------------------------------------- what a file pins


def pinned_entry(pin: Pin, source: str | None = None) -> Entry:
    """Exactly the entry a file pins, never another of that name.

    Args:
        pin: what the file records (see :class:`~zoo.registry.entries.Pin`).
        source: the file or entry, named at the start of the error.

    Raises:
        UnknownNameError: one line saying what to install (see :func:`missing_reason`).
    """
    entry = get_registry().pinned(pin)
    if entry is not None:
        return entry
    raise UnknownNameError((f"{source}: " if source else "") + missing_reason(pin))


def missing_reason(pin: Pin) -> str:
    """Why the entry ``pin`` names is not here, and what to install: ``model 'dup/mlp'
    (zoo-dup 0.1.0) is not installed: pip install zoo-dup``."""
    what = pin.describe()
    if pin.plugin is None:
        return (
            f"{what} names no plugin or distribution (a file from zoo 0.1) and zoo has no "
            f"first-party {pin.kind} of that name; only first-party names load from such files"
        )
    records = [
        r
        for r in plugin_records()
        if normalize_name(r.name) == normalize_name(pin.plugin)
        and (not pin.dist or dist_key(r.dist) == dist_key(pin.dist))
    ]
    if not records:
        installed = _installed_version(pin.dist) if pin.dist else None
        if pin.dist and installed is None:
            return f"{what} is not installed: pip install {pin.dist}"
        if pin.dist:
            return (
                f"{what}: {pin.dist} {installed} is installed but has no zoo plugin "
                f"{pin.plugin!r}{_version_hint(pin, installed)}"
            )
        return f"{what}: no plugin {pin.plugin!r} is installed (see `zoo plugins`)"
    record = records[0]
    if record.status == "blocked":
        return f"{what}: its plugin {record.name!r} is disabled by ZOO_DISABLE_PLUGINS"
    if record.status == "skipped":
        return f"{what}: its plugin {record.name!r} is not selected by ZOO_PLUGINS"
    if record.status == "failed":
        return f"{what}: its plugin {record.name!r} failed to load (see `zoo plugins`)"
    return (
        f"{what}: {record.dist} {record.version} is installed but registers no {pin.kind} "
        f"{pin.qualname!r}{_version_hint(pin, record.version)}"
    )


def _version_hint(pin: Pin, installed: str | None) -> str:
    if pin.dist and pin.version and pin.version != installed:
        wanted = f"{pin.dist}=={pin.version}"
        return f"; the file was made with {pin.dist} {pin.version}: pip install '{wanted}'"
    return " (see `zoo plugins`)"


def _installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or ``None`` when it is not installed."""
    try:
        return installed_version(dist)
    except PackageNotFoundError:
        return None
