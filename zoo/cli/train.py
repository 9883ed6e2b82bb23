"""``zoo train``: a thin command over :class:`zoo.train.Trainer`.

Its setting options are generated from :class:`zoo.train.config.TrainConfig` (one per field:
name, short option, type, default and help come from the field). The command parses them,
hands the ones given to :func:`zoo.train.resume.resolve_config` (defaults, the resumed run's
recorded settings, a ``--recipe``, then these flags), builds the trainer and prints the result.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from zoo.errors import UsageError
from zoo.train.config import TrainConfig

__all__ = ["COMMAND_OPTIONS", "config_options", "echo_metrics", "parse_kwargs", "train_cmd"]

# Options of the command that are no training setting: where the run goes and what prints.
COMMAND_OPTIONS = ("out", "resume", "recipe", "as_json")


def parse_kwargs(values: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``("hidden=[32,32]", "act=relu")`` -> dict.

    A value that looks like JSON - it starts with ``[``, ``{`` or ``"``, or like a number
    (a digit, or ``-``/``+``/``.`` and a digit), or is ``true``/``false``/``null`` - must
    parse (numbers such as ``.5`` or ``+1`` also parse as Python does); anything else is
    kept as a plain string (``act=relu``). Quote text that looks like JSON: ``name='"3x3"'``.
    A list is JSON too: ``hidden=[32,32]`` (``hidden=32,32`` is refused with that hint).

    Args:
        values: the ``KEY=VALUE`` items as given.
        flag: the option they came from, for errors (``--model-arg``).
    """
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} wants key=value, got {item!r}")
        out[key] = _kwarg_value(raw, flag, key)
    return out


def _looks_like_json(text: str) -> bool:
    if text in ("true", "false", "null") or text[:1] in ("[", "{", '"') or text[:1].isdigit():
        return True
    return text[:1] in ("-", "+", ".") and text[1:2].isdigit()


def _kwarg_value(raw: str, flag: str, key: str) -> Any:
    text = raw.strip()
    try:
        return json.loads(text)
    except ValueError as exc:
        if not _looks_like_json(text):
            return raw
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                pass
        reason = getattr(exc, "msg", str(exc))
        if _is_json_list_items(text):
            raise UsageError(
                f"{flag} {key}={raw}: {raw!r} is not valid JSON; for a list write "
                f"{key}=[{text}] (quote text as {key}='\"...\"')"
            ) from None
        raise UsageError(
            f"{flag} {key}={raw}: {raw!r} is not valid JSON ({reason}); quote text as "
            f"{key}='\"...\"'"
        ) from None


def _is_json_list_items(text: str) -> bool:
    """``32,32``: comma-separated JSON values, meant as a list."""
    try:
        json.loads(f"[{text}]")
    except ValueError:
        return False
    return "," in text


# -- options generated from TrainConfig --------------------------------------------------------


def _flag(name: str) -> str:
    return TrainConfig.meta(name)["flag"] or "--" + name.replace("_", "-")


def _option(name: str) -> Callable[[Any], Any]:
    """The click option of one :class:`TrainConfig` field."""
    meta, hint = TrainConfig.meta(name), TrainConfig.hints()[name]
    default = TrainConfig.default(name)
    flag = _flag(name)
    decls = [flag, *([meta["short"]] if meta["short"] else []), name]
    kwargs: dict[str, Any] = {"help": meta["help"]}
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    # the annotation's first type is the command line's: ``bool | str`` (compile) is a flag a
    # recipe may give a backend name, ``str | bool | None`` (pretrained) text a recipe may set true
    kinds = [k for k in dict.fromkeys(_origin(h) for h in _union(hint)) if k is not type(None)]
    if dict in kinds:  # KEY=VALUE, given several times
        kwargs.update(multiple=True, metavar=meta["metavar"] or "KEY=VALUE")
    elif kinds[0] is bool:
        if default is True:
            decls[0] = f"{flag}/--no-{flag.removeprefix('--')}"
            kwargs.update(default=True, show_default=True)
        else:
            kwargs.update(is_flag=True, default=bool(default))
    else:
        kind = kinds[0]
        kwargs["type"] = click.Path(file_okay=False) if meta["path"] else kind
        if default is not None:
            kwargs.update(default=default, show_default=True)
    return click.option(*decls, **kwargs)


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint) or hint  # dict[str, Any] -> dict


def _union(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``command`` with one option per :class:`TrainConfig` field, in field order."""
    for name in reversed(TrainConfig.names()):
        command = _option(name)(command)
    return command


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    )


def _overrides(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (``KEY=VALUE`` lists parsed)."""
    out: dict[str, Any] = {}
    for name in TrainConfig.names():
        value = params[name]
        if isinstance(value, tuple):
            if value:
                out[name] = parse_kwargs(value, _flag(name))
        elif _given(ctx, name):
            out[name] = value
    return out


# -- the command -------------------------------------------------------------------------------


@click.command("train")
@config_options
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory, new or empty (default runs/<time>-<model>-<dataset>[-N]).",
)
@click.option(
    "--resume", type=click.Path(), help="Continue the run in DIR from its last checkpoint."
)
@click.option(
    "--recipe", type=click.Path(dir_okay=False),
    help="TOML file with these settings, or a pretrained entry's name (tinyvgg.digits): the "
    "recipe it was trained with.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def train_cmd(ctx: click.Context, **params: Any) -> None:
    """Train a model on a dataset with the canonical PyTorch loop; writes a run directory."""
    from zoo.train.resume import elastic_resume, resolve_config
    from zoo.train.rundir import default_run_dir
    from zoo.train.trainer import Trainer

    # restarted by torchrun (--max-restarts): continue --out from its last checkpoint
    resume, recipe = elastic_resume(params["out"], params["resume"]), params["recipe"]
    config = resolve_config(
        resume=resume, recipe=recipe, overrides=_overrides(ctx, params), given_as="flag"
    )
    if not config.model or not config.dataset:
        raise UsageError("zoo train needs --model and --dataset (or a --recipe naming them)")
    out = params["out"] or str(default_run_dir(config.model, config.dataset, resume))
    trainer = Trainer.from_config(config, out=out, resume=resume, recipe=recipe)
    trainer.build()  # a model or loss that cannot be built: one line, before any work
    trainer.claim_out(unique=not params["out"] and resume is None)  # a default name: -2, -3...
    try:
        result = trainer.fit()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (zoo.train.trainer.Terminated)
        _interrupted(ctx, trainer, str(trainer.out), getattr(exc, "signum", None))
    if not trainer.dist.is_main:
        return  # under torchrun, rank 0 alone reports
    if params["as_json"]:
        from zoo.cli.output import echo_json

        echo_json(
            {
                "run_dir": str(result.run_dir) if result.run_dir else None,
                "metrics": result.metrics,
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early,
                "metrics_from": result.extra.get("metrics_from"),
                "seconds": result.seconds,
            }
        )
    elif result.run_dir is not None:
        if trainer.has_val or trainer.config.save_best:  # else the table is what it always was
            click.echo(f"metrics of the {result.extra['metrics_from']}:")
        echo_metrics(result.metrics)
        click.echo(f"run: {result.run_dir}")


def _interrupted(ctx: click.Context, trainer: Any, out: str, signum: int | None) -> None:
    """Ctrl-C (exit 130) or SIGTERM (exit 143): one line saying where the run stopped and how
    to continue it."""
    import shlex
    import signal
    from pathlib import Path

    from zoo.errors import ZooError
    from zoo.train.checkpoint import find_checkpoint

    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    epoch = trainer.state.epoch
    where = f"at epoch {epoch}" if epoch else "during setup"
    try:
        find_checkpoint(out)
        done = True
    except ZooError:
        done = False
    if done:
        click.echo(
            f"{what} {where}; continue with: zoo train --resume {shlex.quote(out)}", err=True
        )
    elif (Path(out) / "run.json").is_file():
        click.echo(
            f"{what} {where}, before the first checkpoint; start it again with: "
            f"zoo train --resume {shlex.quote(out)}",
            err=True,
        )
    else:
        click.echo(f"{what} {where}, before the first checkpoint; nothing to resume", err=True)
    ctx.exit(128 + (signum or signal.SIGINT))


def echo_metrics(metrics: dict[str, float]) -> None:
    """Metrics as a two-column table."""
    from zoo.cli.output import echo_table

    echo_table([(k, v) for k, v in metrics.items()], ["metric", "value"])
