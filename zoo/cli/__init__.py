"""The ``zoo`` command: a thin click group whose subcommands load lazily.

Each subcommand lives in its own module and is imported only when invoked, so ``zoo list``
never pays for the trainer, the benchmark harness or torch. A :class:`~zoo.errors.ZooError`
becomes one ``error: ...`` line on stderr (``ZOO_DEBUG=1`` shows the traceback) and its exit
code: 2 for bad usage, 1 for a failed piece of work. An ``OSError`` or a JSON file beyond
:mod:`zoo._util.jsonio`'s limits that no command turned into a ``ZooError`` reads the same
way (exit 1); Ctrl-C outside a command that reports it is ``error: interrupted``, exit 130.
Diagnostics logged anywhere in zoo (the ``zoo`` logger) reach stderr as one
``zoo: warning: ...`` line each, through the handler the group installs
(:func:`zoo._util.log.install_stderr_handler`), never as a Python warning that shows zoo's own
source line.

Plugins add commands through the ``register_commands(cli)`` hook (as ``llm``'s do): they are
looked up only when a name is not zoo's own or ``zoo --help`` lists them, so ``zoo list`` and
``zoo train`` never wait for them. A plugin command named like one of zoo's (or an earlier
plugin's) is refused with a warning; one that raises prints one ``error:`` line naming its
plugin (exit 1).
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import click

from zoo import __version__
from zoo._util.jsonio import JSONLimitError
from zoo._util.log import get_logger, install_stderr_handler
from zoo.errors import ZooError, one_line
from zoo.registry.plugins import plugin_commands, use_load_deadline

__all__ = ["COMMANDS", "ZooGroup", "cli", "main"]

# name -> ("module:attr", one-line summary shown by `zoo --help` without importing the module)
COMMANDS = {
    "list": ("zoo.cli.listing:list_cmd", "List models, losses, datasets, pretrained entries."),
    "info": ("zoo.cli.listing:info_cmd", "Describe one entry (or a pretrained model.tag)."),
    "plugins": ("zoo.cli.listing:plugins_cmd", "Show plugins, their entries and load errors."),
    "check": ("zoo.cli.check:check_cmd", "Check that entries honour zoo's contracts."),
    "train": ("zoo.cli.train:train_cmd", "Train a model on a dataset (writes a run dir)."),
    "evaluate": ("zoo.cli.predict:evaluate_cmd", "Evaluate a run or weights file on a dataset."),
    "predict": ("zoo.cli.predict:predict_cmd", "Predict with a run or weights file."),
    "bench": ("zoo.cli.bench:bench_cmd", "Benchmark models across datasets and devices."),
    "export": ("zoo.cli.hub:export_cmd", "Export weights as safetensors or ONNX."),
    "fetch": ("zoo.cli.hub:fetch_cmd", "Download and verify pretrained weights."),
    "publish": ("zoo.cli.hub:publish_cmd", "Add weights to a registry directory."),
    "cache": ("zoo.cli.hub:cache_cmd", "List, verify or clear the weights cache."),
}


log = get_logger(__name__)


class ZooGroup(click.Group):
    """Lazy subcommands, plugins' commands, and one-line error reporting."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *self.plugin_commands()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            found = self.plugin_commands().get(name)
            return found[1] if found else None
        module, _, attr = COMMANDS[name][0].partition(":")
        return getattr(import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        extra = self.plugin_commands()
        if extra:
            with formatter.section("Plugin commands"):
                formatter.write_dl(
                    [(n, f"{c.get_short_help_str(60)} [{p}]") for n, (p, c) in extra.items()]
                )

    def plugin_commands(self) -> dict[str, tuple[str, click.Command]]:
        """``{name: (plugin, command)}`` of the plugins' commands that zoo takes: a name zoo's
        own commands or an earlier plugin's have is refused, with a warning."""
        out: dict[str, tuple[str, click.Command]] = {}
        with use_load_deadline():  # a plugin that hangs at import fails after ZOO_PLUGIN_TIMEOUT
            found = plugin_commands()
        for plugin, command in found:
            name = command.name or ""
            if name in COMMANDS or name in out:
                owner = "zoo's own" if name in COMMANDS else f"plugin {out[name][0]!r}'s"
                log.warning(
                    "plugin %r: command %r is refused: it is %s `zoo %s`", plugin, name, owner, name
                )
                continue
            out[name] = (plugin, command)
        self.found = out  # what invoke names a failed command's plugin from
        return out

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ZooError, OSError, JSONLimitError) as exc:  # bad input or a failed write/read
            if os.environ.get("ZOO_DEBUG", "") not in ("", "0"):
                raise
            click.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(exc.exit_code if isinstance(exc, ZooError) else 1)
        except Exception as exc:  # a plugin's command that failed: one line naming the plugin
            name = ctx.invoked_subcommand
            click_own = (click.ClickException, click.exceptions.Exit, click.Abort)
            debug = os.environ.get("ZOO_DEBUG", "") not in ("", "0")
            if debug or name is None or name in COMMANDS or isinstance(exc, click_own):
                raise
            plugin = getattr(self, "found", {}).get(name, ("?", None))[0]
            click.echo(
                f"error: plugin {plugin!r} command {name!r} failed: {one_line(exc, typed=True)}",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """zoo: register, train, benchmark, export and fetch PyTorch models."""
    install_stderr_handler()  # one line per diagnostic, whatever the process did to logging
    # for this command, a plugin that hangs at import fails after ZOO_PLUGIN_TIMEOUT
    ctx.with_resource(use_load_deadline())


def main() -> None:
    """Entry point of the ``zoo`` script: click's usage errors become one ``error:`` line too."""
    try:
        code = cli.main(standalone_mode=False)
    except click.UsageError as exc:  # unknown option, bad value, missing argument
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C outside a command that handles it
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
