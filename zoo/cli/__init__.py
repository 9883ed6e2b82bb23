"""The ``zoo`` command: a thin click group whose subcommands load lazily.

Each subcommand lives in its own module and is imported only when invoked, so ``zoo list``
never pays for the trainer, the benchmark harness or torch. A :class:`~zoo.errors.ZooError`
becomes one ``error: ...`` line on stderr (``ZOO_DEBUG=1`` shows the traceback) and its exit
code: 2 for bad usage, 1 for a failed piece of work.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

import click

from zoo import __version__
from zoo.errors import ZooError

COMMANDS = {
    "list": "zoo.cli.listing:list_cmd",
    "info": "zoo.cli.listing:info_cmd",
    "plugins": "zoo.cli.listing:plugins_cmd",
    "check": "zoo.cli.check:check_cmd",
    "train": "zoo.cli.train:train_cmd",
    "evaluate": "zoo.cli.train:evaluate_cmd",
    "predict": "zoo.cli.train:predict_cmd",
    "bench": "zoo.cli.bench:bench_cmd",
    "export": "zoo.cli.hub:export_cmd",
    "fetch": "zoo.cli.hub:fetch_cmd",
    "publish": "zoo.cli.hub:publish_cmd",
    "cache": "zoo.cli.hub:cache_cmd",
}


class ZooGroup(click.Group):
    """Lazy subcommands plus one-line error reporting."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        path = COMMANDS.get(name)
        if path is None:
            return None
        module, _, attr = path.partition(":")
        return getattr(import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooError as exc:
            if os.environ.get("ZOO_DEBUG", "") not in ("", "0"):
                raise
            message = " ".join(str(exc).split())
            click.echo(f"error: {message}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
def cli() -> None:
    """zoo: register, train, benchmark, export and fetch PyTorch models."""


def main() -> None:
    cli()
