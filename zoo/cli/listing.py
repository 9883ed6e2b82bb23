"""``zoo list``, ``zoo info`` and ``zoo plugins``: read-only views of the registry."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from zoo import api
from zoo._util.log import get_logger
from zoo._util.names import close_matches
from zoo.cli.output import echo_json, echo_table, split_csv
from zoo.errors import UsageError
from zoo.registry.entries import PLURALS
from zoo.registry.plugins import get_registry, plugin_records

__all__ = ["LIST_KINDS", "info_cmd", "list_cmd", "plugins_cmd"]

logger = get_logger(__name__)

LIST_KINDS = {
    "models": "model",
    "losses": "loss",
    "datasets": "dataset",
    "pretrained": "pretrained",
}


@click.command("list")
@click.argument("args", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.option(
    "--registry",
    multiple=True,
    help="List this registry's pretrained entries only (dir, file:// or http(s):// URL).",
)
def list_cmd(args: tuple[str, ...], as_json: bool, registry: tuple[str, ...]) -> None:
    """List entries: zoo list [models|losses|datasets|pretrained|all] [PATTERN]."""
    kinds = list(LIST_KINDS)
    rest = list(args)
    registries = split_csv(registry)
    if rest and _kind_word(rest[0]):
        first = _kind_word(rest.pop(0))
        kinds = kinds if first == "all" else [first]
        if registries and kinds != ["pretrained"]:
            raise UsageError("--registry lists pretrained entries: use `zoo list pretrained`")
    elif registries:
        kinds = ["pretrained"]
    if len(rest) > 1:
        raise UsageError(f"expected at most one PATTERN, got {' '.join(rest)}")
    pattern = rest[0] if rest else None
    with _collector_paused():
        _list(kinds, pattern, as_json, registries)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A listing builds ~10 objects per entry and no reference cycles: without the cyclic
    collector's passes over the growing heap, 10,000 entries list ~10% faster."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _list(kinds: list[str], pattern: str | None, as_json: bool, registries: list[str]) -> None:
    rows = [
        row
        for kind in kinds
        for row in _rows(LIST_KINDS[kind], pattern, brief=not as_json, registries=registries)
    ]
    _warn_failed_plugins()
    if not rows and pattern is not None:
        close = close_matches(pattern.lower(), [*LIST_KINDS, "all"], n=1, cutoff=0.7)
        if close:
            raise UsageError(f"nothing matches {pattern!r}; did you mean `zoo list {close[0]}`?")
        click.echo(f"nothing matches {pattern!r} (see `zoo list`)", err=True)
    elif not rows and registries:
        click.echo(f"no pretrained entries in {', '.join(registries)}", err=True)
    if as_json:
        echo_json(rows)
        return
    if rows:
        echo_table(
            [
                (r["kind"], r["name"], r["plugin"], ",".join(r.get("tasks", [])), r["summary"])
                for r in rows
            ],
            ["kind", "name", "plugin", "tasks", "summary"],
        )


def _kind_word(word: str) -> str | None:
    """``models``/``model`` -> ``models``; ``all``; ``None`` for anything else."""
    word = word.lower()
    if word in LIST_KINDS or word == "all":
        return word
    plural = {v: k for k, v in LIST_KINDS.items()}
    return plural.get(word)


def _warn_failed_plugins() -> None:
    failed = get_registry().failed_plugins
    if failed:
        logger.warning("plugins failed to load: %s (see `zoo plugins`)", ", ".join(failed))


def _rows(
    kind: str, pattern: str | None, brief: bool, registries: list[str]
) -> list[dict[str, Any]]:
    """The listing's rows of ``kind``: everything ``--json`` prints, or (``brief``) what the
    table shows of pretrained entries (a listing of 10,000 of them builds no more). Given
    ``registries``, the pretrained entries are theirs alone."""
    if kind == "pretrained":
        from zoo.hub import index as hub

        patterns = None if pattern is None else [pattern, f"{pattern}.*"]  # a model's entries
        listing = hub.pretrained_listing(patterns, registries or None, only=bool(registries))
        rows = []
        for name, entry in listing:
            row = entry.to_dict(brief=brief)
            row["name"] = name
            if not row["installed"]:  # the weights are for a model that is not here
                row["summary"] = f"[not installed: {row['missing']}] {row['summary']}"
            rows.append(row)
        return rows
    return [
        {**entry.to_dict(), "name": name} for name, entry in get_registry().listing(kind, pattern)
    ]


@click.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_cmd(name: str, as_json: bool) -> None:
    """Describe a model, loss, dataset or pretrained entry (model.tag)."""
    data = api.info(name)
    if as_json:
        echo_json(data)
        return
    for i, item in enumerate(data.get("entries", [data])):
        if i:
            click.echo("")
        width = max(len(k) for k in item)
        for key, value in item.items():
            click.echo(f"{key.ljust(width)}  {_show(value)}")


def _show(value: Any) -> str:
    """One field of `zoo info`: lists comma-joined, dict values as JSON (``hidden=[64, 64]``)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(_show, value)) or "-"
    return "-" if value is None or value == "" else str(value)


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Also show blocked and skipped plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_cmd(show_all: bool, as_json: bool) -> None:
    """Show loaded plugins, their entries, and any that failed (with the error)."""
    records = [r for r in plugin_records() if show_all or r.status in ("ok", "failed")]
    for record in records:
        for warning in record.warnings:  # a name it asked for belongs to zoo itself
            logger.warning("plugin %s (%s): %s", record.name, record.dist, warning)
    if as_json:
        echo_json([r.to_dict() for r in records])
    else:
        echo_table(
            [
                (
                    r.name,
                    r.dist,
                    r.version,
                    r.status,
                    ", ".join(
                        f"{n} {k if n == 1 else PLURALS[k]}" for k, n in sorted(r.entries.items())
                    ),
                    r.notes,
                    r.error or "",
                )
                for r in records
            ],
            ["plugin", "dist", "version", "status", "entries", "notes", "error"],
        )
    get_registry()  # ZOO_STRICT_PLUGINS=1: fail after the table, with the first plugin's reason
