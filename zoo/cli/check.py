"""``zoo check NAME|PLUGIN...``: run :mod:`zoo.testing`'s conformance checks from the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from zoo.cli.output import echo_json, echo_table, split_csv
from zoo.errors import UsageError, ZooError

if TYPE_CHECKING:
    from zoo.testing import Report


__all__ = ["check_cmd"]


@click.command("check")
@click.argument("names", nargs=-1)
@click.option("--all", "check_all", is_flag=True, help="Check every plugin and entry.")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Check models on these datasets' shapes only (default: every compatible shape).",
)
@click.option(
    "--batch-size",
    default=4,
    show_default=True,
    type=click.IntRange(min=2),
    help="Samples per synthetic batch for models and losses.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Root passed to datasets that read local files (else $ZOO_DATA).",
)
@click.option("-v", "--verbose", is_flag=True, help="One row per check instead of per entry.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per entry).")
def check_cmd(
    names: tuple[str, ...],
    check_all: bool,
    datasets: tuple[str, ...],
    batch_size: int,
    data_dir: str | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """Check that entries honour zoo's contracts: NAME is a model, loss, dataset or plugin.

    A plugin name checks the plugin (it loads, light) and every entry it registered, its
    models' pretrained entries included. Exits 1 when any check fails; a dataset whose files
    are missing, or a pretrained file not cached while offline, is reported as skipped.
    Under ZOO_STRICT_PLUGINS=1 only the named plugins and entries are judged.
    """
    from zoo import testing

    if not names and not check_all:
        raise UsageError("give a NAME or PLUGIN to check (or --all); see `zoo list`")
    if names and check_all:
        raise UsageError("give NAMEs or --all, not both")
    options = {"batch_size": batch_size, "data_dir": data_dir}
    if datasets:
        options["datasets"] = split_csv(datasets)
    report = testing.check_all(**options) if check_all else testing.check(names, **options)
    if as_json:
        echo_json(report.to_dicts())
    elif verbose:
        echo_table(
            [
                (r.kind, r.name, r.check, r.where, r.status, r.detail)
                for e in report
                for r in e.results
            ],
            ["kind", "name", "check", "on", "result", "detail"],
        )
    else:
        _echo_summary(report)
    failed = [e.name for e in report if not e.ok]
    if failed:
        shown = ", ".join(failed[:5]) + ("..." if len(failed) > 5 else "")
        raise ZooError(f"{len(failed)} of {len(report)} checked entries failed: {shown}")


def _echo_summary(report: Report) -> None:
    """The pass/fail table, then each failure (and each skip reason) on its own line."""
    from zoo import testing

    echo_table(
        [
            (
                e.kind,
                e.name,
                e.plugin,
                e.count(testing.PASS),
                e.count(testing.FAIL),
                e.count(testing.SKIP),
                e.status,
            )
            for e in report
        ],
        ["kind", "name", "plugin", "passed", "failed", "skipped", "result"],
    )
    notes = [r for e in report for r in e.notes]
    if notes:  # passed, with something to say (labels zoo converts, output a plugin printed)
        click.echo("\nnotes:")
        for r in notes:
            click.echo(f"  {r.message}")
    failures = report.failures
    if failures:
        click.echo("\nfailures:")
        for r in failures:
            click.echo(f"  {r.message}")
    skipped = [e for e in report if e.status == testing.SKIP]
    if skipped:
        click.echo("\nskipped:")
        for e in skipped:
            reason = next((r.detail for r in e.results if r.status == testing.SKIP), "")
            click.echo(f"  {e.kind} {e.name!r}: {reason}")
