"""Shared CLI output: aligned tables for people, JSON for scripts (data goes to stdout)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

from zoo._util.table import format_table

__all__ = ["echo_json", "echo_table", "split_csv"]


def echo_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    click.echo(format_table(rows, headers))


def echo_json(data: Any) -> None:
    """``data`` as JSON: a list one element per line (quick to write, read and grep even at
    10,000 rows; ``json.dumps`` with ``indent`` is pure Python and 3x slower), else indented."""
    if isinstance(data, list) and data:
        click.echo("[\n  " + ",\n  ".join(json.dumps(item, default=str) for item in data) + "\n]")
    else:
        click.echo(json.dumps(data, indent=2, default=str))


def split_csv(values: Iterable[str] | str | None) -> list[str]:
    """``"a,b"`` or repeated options -> ``["a", "b"]`` (empty parts dropped)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for v in values for part in v.split(",") if part.strip()]
