"""Pretrained-entry conformance checks (:func:`check_pretrained`), for the entries a plugin's
models declare (``pretrained=[...]``), through the hub's public API only:

``fetch``   every declared file downloads (or is already cached) with its declared sha256 and
            size; offline (``ZOO_OFFLINE=1``), a remote file not in the cache is *skipped*
``load``    ``zoo.create_model(model, pretrained=tag)`` builds the model with the entry's kwargs
            and loads the weights into it
``metric``  every declared metric zoo computes is reproduced on the declared dataset's test
            split within :data:`METRIC_TOLERANCE`; a dataset that is not installed or whose
            files are not on disk is *skipped*, with the reason
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo import api
from zoo.checks.report import SKIP, EntryReport, Failed, Skipped
from zoo.errors import FetchError, UnknownNameError, ZooError
from zoo.hub import PretrainedEntry, all_entries
from zoo.hub.cache import fetch_entry, is_cached, is_offline
from zoo.registry.entries import Entry
from zoo.registry.plugins import get_registry

if TYPE_CHECKING:
    import torch

__all__ = ["METRIC_TOLERANCE", "check_pretrained", "declared_pretrained"]

#: How far a reproduced metric may be from the declared one: this much absolute, plus this
#: fraction of the declared value (numerics differ across machines and versions).
METRIC_TOLERANCE = 0.01


def declared_pretrained(model: Entry) -> list[tuple[str, PretrainedEntry | None]]:
    """``(model.tag, entry)`` for each item of the model's ``pretrained=[...]``; the entry is
    ``None`` where a registry's entry of the same qualified name shadows the declaration."""
    declared = [f"{model.name}.{item['tag']}" for item in model.meta.get("pretrained", ())]
    if not declared:
        return []
    mine = {
        e.name: e
        for e in all_entries().values()
        if e.source == f"plugin:{model.plugin}" and e.dist == model.dist
    }
    return [(name, mine.get(name)) for name in declared]


def check_pretrained(
    model: Entry, name: str, entry: PretrainedEntry | None, *, data_dir: str | None = None
) -> EntryReport:
    """Fetch, load and reproduce the metrics of one pretrained entry ``model.tag``."""
    report = EntryReport("pretrained", name, model.plugin, entry.summary if entry else "")
    if entry is None:
        report.add("fetch", "", SKIP, "a registry's entry of the same name shadows it")
        return report
    fetched, _ = report.run("fetch", _files(entry), _fetch, entry)
    if not fetched:
        report.skip("", "its files were not fetched", "load", "metric")
        return report
    loaded, net = report.run("load", "", _load, model, entry)
    where = entry.dataset or ""
    if not loaded:
        report.skip(where, "the weights did not load", "metric")
    elif not entry.metrics or not entry.dataset:
        report.add("metric", where, SKIP, "it declares no dataset and metrics to reproduce")
    else:
        report.run("metric", where, _metrics, net, entry, data_dir)
    return report


def _files(entry: PretrainedEntry) -> str:
    return ", ".join(f.url.rsplit("/", 1)[-1] for f in entry.files)


def _fetch(entry: PretrainedEntry) -> None:
    if is_offline() and any(f.is_remote for f in entry.files) and not is_cached(entry):
        raise Skipped("offline (ZOO_OFFLINE) and its files are not in the cache")
    try:
        fetch_entry(entry)
    except FetchError as exc:
        raise Failed(
            f"expected the declared files (sha256 and size) to fetch, found: {exc}"
        ) from None


def _load(model: Entry, entry: PretrainedEntry) -> torch.nn.Module:
    try:
        return api.create_model(get_registry().name_of(model), pretrained=entry.tag)
    except ZooError as exc:
        raise Failed(f"expected the weights to load into {model.qualname}, found: {exc}") from None


def _metrics(net: torch.nn.Module, entry: PretrainedEntry, data_dir: str | None) -> None:
    """Each declared metric the evaluation computes, within the tolerance."""
    dataset = entry.dataset
    try:
        get_registry().get("dataset", dataset)
        got = api.evaluate(net, dataset=dataset, data_dir=data_dir)
    except UnknownNameError as exc:
        raise Skipped(f"dataset {dataset!r} is not installed ({exc})") from None
    except ZooError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise Skipped(f"dataset {dataset!r} is not on disk: {exc}") from None
        raise Failed(f"expected {dataset!r} to evaluate, found: {exc}") from None
    compared = {k: v for k, v in entry.metrics.items() if k in got}
    if not compared:
        raise Skipped(
            f"it declares no metric zoo computes ({', '.join(entry.metrics)}; zoo computes "
            f"{', '.join(got)})"
        )
    off = [
        f"{k} {got[k]:.4g} (declared {want:.4g})"
        for k, want in compared.items()
        if not _close(got[k], want)
    ]
    if off:
        raise Failed(
            f"expected the declared metrics on {dataset!r} (test split) within "
            f"{METRIC_TOLERANCE:g} + {METRIC_TOLERANCE:g}*|declared|, found {', '.join(off)}"
        )


def _close(got: Any, want: float) -> bool:
    return abs(float(got) - want) <= METRIC_TOLERANCE * (1 + abs(want))
