"""Conformance checks for plugin entries, for plugin authors' own pytest suites.

In the spirit of scikit-learn's ``check_estimator``: each registered model, loss and dataset
is exercised against the contracts zoo relies on, and every failure names the entry, the
check and what was expected versus what was found.

- A **model** (:mod:`zoo.checks.model`) is built with the standard kwargs for each shape of
  compatible registered dataset (synthetic inputs of that shape, no data is loaded); its output
  has the shape the task needs; two passes under ``eval()`` + ``inference_mode()`` agree; one
  training step reaches every parameter that requires grad; a safetensors export/load round
  trip gives identical outputs.
- A **loss** (:mod:`zoo.checks.loss`) accepts each of its tasks' output/target pairs (after the
  probabilities or log-probabilities its ``expects`` asks for) and returns a finite scalar with
  gradients.
- A **dataset** (:mod:`zoo.checks.dataset`) loads both splits with the declared shape, label
  types and class range, the same way twice. Missing files make it *skipped* (with the reason).
- A **plugin** loaded (its import and hooks raised nothing and registered something, or it
  implements training events or ``register_commands``: a logger, a command), takes no
  first-party name, and loads *light*: its loading imported no heavy module (torch at the top
  of its hook module) and took no longer than ``ZOO_PLUGIN_SLOW_S``.
- A **pretrained entry** a plugin's model declares (:mod:`zoo.checks.pretrained`): its files
  fetch with the declared hash and size, load into the model, and reproduce the declared
  metrics on the declared dataset. Not cached while offline, or a dataset not on disk: *skipped*.

Checks judge only what they are asked about: under ``ZOO_STRICT_PLUGINS=1`` another plugin's
failure does not fail them.

This module picks what to check (a name, a plugin, everything); results are
:mod:`zoo.checks.report`'s. Use from pytest::

    from zoo.testing import assert_plugin_ok, check_model

    def test_my_plugin():
        assert_plugin_ok("my-plugin")          # raises AssertionError listing every failure

    def test_my_model():
        report = check_model("my-mlp")
        assert report.ok, report.format()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from zoo._util.names import unknown_message
from zoo.checks.dataset import SPLITS, check_dataset
from zoo.checks.loss import check_loss
from zoo.checks.model import PROBE_PLUGIN, check_model, probe_datasets
from zoo.checks.pretrained import check_pretrained, declared_pretrained
from zoo.checks.report import (
    FAIL,
    PASS,
    SKIP,
    CheckResult,
    EntryReport,
    Note,
    Report,
    judged_alone,
)
from zoo.errors import IncompatibleError, UnknownNameError, UsageError
from zoo.registry.entries import KINDS, PLURALS, Entry, normalize_name
from zoo.registry.plugins import HOOKS, PluginRecord, get_registry, plugin_records

CHECKERS = {"model": check_model, "loss": check_loss, "dataset": check_dataset}
# which options each kind's checker takes; check()'s other options are ignored for that kind
OPTIONS = {
    "model": {"datasets", "batch_size", "seed"},
    "loss": {"batch_size", "seed"},
    "dataset": {"splits", "data_dir", "dataset_kwargs"},
}


@judged_alone
def check_entry(entry: str | Entry, kind: str | None = None, **options: Any) -> EntryReport:
    """Check one entry of any kind (``kind`` settles a name shared by a model and a dataset).

    ``options`` go to the checker of the entry's kind (see ``OPTIONS``); others are ignored.
    """
    if isinstance(entry, str):
        entry = _lookup(entry, kind)
    wanted = {k: v for k, v in options.items() if k in OPTIONS[entry.kind]}
    return CHECKERS[entry.kind](entry, **wanted)


@judged_alone
def check_plugin(plugin: str, **options: Any) -> Report:
    """Check a plugin (entry-point or distribution name): that it loaded, then every entry."""
    _check_datasets_option(options)
    records = _records_named(plugin)
    if not records:
        raise UnknownNameError(_unknown(plugin))
    return Report([rep for record in records for rep in _check_record(record, options)])


@judged_alone
def check_all(**options: Any) -> Report:
    """Every plugin zoo discovered and every entry it registered."""
    _check_datasets_option(options)
    return Report([rep for record in plugin_records() for rep in _check_record(record, options)])


@judged_alone
def check(names: str | Iterable[str], **options: Any) -> Report:
    """Check everything each name denotes: entries of that name (any kind) and, when it names
    a plugin, that plugin and all its entries, each once. Every name (and every dataset in
    ``datasets``) is resolved before any check runs; an unknown one raises with close matches.

    A ``datasets`` filter that fits none of a plugin's entry's shapes skips that entry; an
    entry named directly is refused (:class:`~zoo.errors.IncompatibleError`).
    """
    names = [names] if isinstance(names, str) else list(names)
    _check_datasets_option(options)
    plan: dict[tuple[str, str, str], tuple[Entry | PluginRecord, bool]] = {}
    for name in names:
        for target, direct in _targets(name):
            key = (
                (target.kind, target.plugin, target.name)
                if isinstance(target, Entry)
                else ("plugin", target.name, target.name)
            )
            plan[key] = (target, direct or plan.get(key, (None, False))[1])
    reports, pretrained = [], []
    for target, direct in plan.values():
        if not isinstance(target, Entry):
            reports.append(_plugin_report(target))
            pretrained += _check_pretrained_of(target, options)
        elif direct:
            reports.append(check_entry(target, **options))
        else:
            reports.append(_check_leniently(target, options))
    return Report(reports + pretrained)


def run_checks(*names: str, **options: Any) -> Report:
    """:func:`check` the names, then raise ``AssertionError`` listing every failure."""
    return check(list(names), **options).assert_ok()


def assert_model_ok(name: str | Entry, **options: Any) -> EntryReport:
    """:func:`check_model`, raising ``AssertionError`` with every failure."""
    return check_model(name, **options).assert_ok()


def assert_loss_ok(name: str | Entry, **options: Any) -> EntryReport:
    """:func:`check_loss`, raising ``AssertionError`` with every failure."""
    return check_loss(name, **options).assert_ok()


def assert_dataset_ok(name: str | Entry, **options: Any) -> EntryReport:
    """:func:`check_dataset`, raising ``AssertionError`` with every failure."""
    return check_dataset(name, **options).assert_ok()


def assert_plugin_ok(plugin: str, **options: Any) -> Report:
    """:func:`check_plugin`, raising ``AssertionError`` with every failure."""
    return check_plugin(plugin, **options).assert_ok()


# --------------------------------------------------------------------------- resolving names


def _lookup(name: str, kind: str | None) -> Entry:
    registry = get_registry()
    if kind is not None:
        return registry.get(kind, name)
    kinds = sorted({e.kind for e in registry.find(name)})
    if not kinds:
        raise UnknownNameError(_unknown(name))
    if len(kinds) > 1:
        raise UsageError(f"{name!r} names a {' and a '.join(kinds)}; pass kind= to choose")
    return registry.get(kinds[0], name)  # raises when several plugins share the name


def _records_named(name: str) -> list[PluginRecord]:
    key = normalize_name(name)
    return [r for r in plugin_records() if key in (normalize_name(r.name), normalize_name(r.dist))]


def _entries_of(record: PluginRecord) -> list[Entry]:
    registry = get_registry()
    return [
        e
        for kind in KINDS
        for e in registry.entries(kind)
        if e.plugin == record.name and e.dist == record.dist
    ]


def _targets(name: str) -> list[tuple[Entry | PluginRecord, bool]]:
    """``(target, named directly)``: entries called ``name`` (a bare name must be unambiguous
    per kind), then any plugin called ``name`` followed by all of its entries."""
    registry = get_registry()
    entries, records = registry.find(name), _records_named(name)
    if not entries and not records:
        raise UnknownNameError(_unknown(name))
    for kind in {e.kind for e in entries}:
        registry.get(kind, name)  # raises the ambiguity error listing plugin/name
    targets: list[tuple[Entry | PluginRecord, bool]] = [(e, True) for e in entries]
    for record in records:
        targets += [(record, True), *((e, False) for e in _entries_of(record))]
    return targets


def _check_datasets_option(options: dict[str, Any]) -> None:
    """Resolve every name in ``datasets`` up front: an unknown one raises before any work."""
    if isinstance(options.get("datasets"), str):
        options["datasets"] = [options["datasets"]]
    for dataset in options.get("datasets") or ():
        get_registry().get("dataset", dataset)


def _unknown(name: str) -> str:
    registry = get_registry()
    known = {e.name for kind in KINDS for e in registry.entries(kind)}
    known |= {r.name for r in plugin_records()} | {r.dist for r in plugin_records()}
    return unknown_message(
        "entry or plugin", name, sorted(known),
        otherwise="see `zoo list` and `zoo plugins`", key=normalize_name(name),
    )  # fmt: skip


# --------------------------------------------------------------------------- plugins


def _check_record(record: PluginRecord, options: dict[str, Any]) -> list[EntryReport]:
    reports = [_plugin_report(record)] + [_check_leniently(e, options) for e in _entries_of(record)]
    return reports + _check_pretrained_of(record, options)


def _check_pretrained_of(record: PluginRecord, options: dict[str, Any]) -> list[EntryReport]:
    """The pretrained entries the plugin's models declare, each checked."""
    models = [e for e in _entries_of(record) if e.kind == "model"]
    return [
        check_pretrained(model, name, entry, data_dir=options.get("data_dir"))
        for model in models
        for name, entry in declared_pretrained(model)
    ]


def _check_leniently(entry: Entry, options: dict[str, Any]) -> EntryReport:
    """A plugin's entry: a ``datasets`` filter that fits none of its shapes skips it."""
    try:
        return check_entry(entry, **options)
    except IncompatibleError as exc:
        report = EntryReport(entry.kind, entry.name, entry.plugin, entry.summary)
        report.add("build", ",".join(options.get("datasets") or ()), SKIP, str(exc))
        return report


def _plugin_report(record: PluginRecord) -> EntryReport:
    """The ``load`` check of one plugin (it imported, ran its hooks and registered something)
    and its ``names`` check (it takes no first-party name)."""
    report = EntryReport("plugin", record.name, record.name, record.value)
    if record.status == "failed":
        report.add("load", record.dist, FAIL, f"expected the plugin to load, found {record.error}")
    elif record.status in ("blocked", "skipped"):
        why = "ZOO_DISABLE_PLUGINS" if record.status == "blocked" else "ZOO_PLUGINS"
        report.add("load", record.dist, SKIP, f"{record.status} by {why}")
    elif not record.entries and not set(record.hooks) - set(HOOKS):
        report.add("load", record.dist, FAIL, "expected at least one registered entry, found none")
    elif not record.entries:  # a logger or commands plugin: training events, register_commands
        hooks = ", ".join(h for h in record.hooks if h not in HOOKS)
        report.add("load", record.dist, PASS, f"implements {hooks}")
    else:
        counts = ", ".join(
            f"{n} {PLURALS[kind] if n != 1 else kind}" for kind, n in sorted(record.entries.items())
        )
        report.add("load", record.dist, PASS, f"registered {counts}")
    if record.warnings:
        found = "; ".join(record.warnings)
        report.add("names", record.dist, FAIL, f"expected no first-party name taken, found {found}")
    if record.status == "ok" and record.heavy:
        found = "; ".join(record.heavy)
        report.add("light", record.dist, FAIL, f"expected a light plugin load, found {found}")
    elif record.status == "ok":
        report.add("light", record.dist, PASS)
    if record.output:
        printed = " ".join(record.output.split())[:200]
        report.add("output", record.dist, PASS, Note(f"it printed while loading: {printed}"))
    return report


__all__ = [
    "FAIL",
    "PASS",
    "PROBE_PLUGIN",
    "SKIP",
    "SPLITS",
    "CheckResult",
    "EntryReport",
    "Report",
    "assert_dataset_ok",
    "assert_loss_ok",
    "assert_model_ok",
    "assert_plugin_ok",
    "check",
    "check_all",
    "check_dataset",
    "check_entry",
    "check_loss",
    "check_model",
    "check_plugin",
    "probe_datasets",
    "run_checks",
]
