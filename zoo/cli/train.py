"""``zoo train``: a thin command over :class:`zoo.train.Trainer`.

Settings come from, lowest first: the defaults, the resumed run's ``run.json``, a
``--recipe`` file, and the flags given on the command line.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from zoo.errors import UsageError
from zoo.train import rundir

# CLI parameter name -> Trainer keyword
TRAINER_FLAGS = {
    "model": "model",
    "dataset": "dataset",
    "loss": "loss",
    "optimizer": "optimizer",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "momentum": "momentum",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "device": "device",
    "precision": "precision",
    "seed": "seed",
    "shuffle": "shuffle",
    "compile_": "compile",
    "patience": "patience",
    "monitor": "monitor",
    "workers": "workers",
    "quiet": "quiet",
}
KWARG_FLAGS = {
    "model_arg": "model_kwargs",
    "loss_arg": "loss_kwargs",
    "dataset_arg": "dataset_kwargs",
}
RESUMABLE = (
    "model", "dataset", "loss", "optimizer", "lr", "weight_decay", "momentum", "epochs",
    "batch_size", "device", "precision", "seed", "shuffle", "compile", "patience", "monitor",
    "model_kwargs", "loss_kwargs", "dataset_kwargs", "workers", "train_metrics",
)  # fmt: skip


def parse_kwargs(values: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``("hidden=[32,32]", "act=relu")`` -> dict.

    A value that looks like JSON - it starts with ``[``, ``{`` or ``"``, or like a number
    (a digit, or ``-``/``+``/``.`` and a digit), or is ``true``/``false``/``null`` - must
    parse (numbers such as ``.5`` or ``+1`` also parse as Python does); anything else is
    kept as a plain string (``act=relu``). Quote text that looks like JSON: ``name='"3x3"'``.
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
        raise UsageError(
            f"{flag} {key}={raw}: {raw!r} is not valid JSON ({reason}); quote text as "
            f"{key}='\"...\"'"
        ) from None


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name.split("/")[-1])


@click.command("train")
@click.option("--model", "-m", help="Registered model name.")
@click.option("--dataset", "-d", help="Registered dataset name.")
@click.option("--loss", help="Loss name (default by task: mse, bce-with-logits, cross-entropy).")
@click.option(
    "--optimizer", default="adam", show_default=True, help="torch.optim name: sgd, adam, adamw, ..."
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True, help="For sgd/rmsprop.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True, help="Per process.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", default="fp32", show_default=True, help="fp32, bf16 or fp16 (CUDA).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shuffle/--no-shuffle", default=True, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--patience", type=int, help="Early stopping: epochs without improvement.")
@click.option("--monitor", help="Metric for early stopping, e.g. loss, accuracy, train_loss.")
@click.option("--model-arg", multiple=True, metavar="KEY=VALUE", help="Model kwarg (JSON value).")
@click.option("--loss-arg", multiple=True, metavar="KEY=VALUE", help="Loss kwarg (JSON value).")
@click.option(
    "--dataset-arg", multiple=True, metavar="KEY=VALUE", help="Dataset kwarg (JSON value)."
)
@click.option("--workers", type=int, help="DataLoader workers (Dataset-backed data only).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory (default runs/<time>-<model>-<dataset>).",
)
@click.option(
    "--resume", type=click.Path(), help="Continue the run in DIR from its last checkpoint."
)
@click.option("--recipe", type=click.Path(dir_okay=False), help="TOML file with these settings.")
@click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Root of local datasets (sets ZOO_DATA)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def train_cmd(ctx: click.Context, **params: Any) -> None:
    """Train a model on a dataset with the canonical PyTorch loop; writes a run directory."""
    from zoo.train.recipes import load_recipe
    from zoo.train.rundir import find_run
    from zoo.train.trainer import Trainer
    from zoo.weights.source import RUN_JSON, read_run_json

    if params["data_dir"]:
        os.environ["ZOO_DATA"] = str(Path(params["data_dir"]).expanduser())
    settings: dict[str, Any] = {}
    saved: dict[str, Any] = {}
    resume = params["resume"]
    if resume:
        run_dir = find_run(resume)
        if (run_dir / RUN_JSON).exists():
            saved = read_run_json(run_dir).get("settings") or {}
            settings.update({k: v for k, v in saved.items() if k in RESUMABLE})
        if not params["data_dir"] and saved.get("data_dir"):
            os.environ["ZOO_DATA"] = saved["data_dir"]  # the data the run was trained on
    if params["recipe"]:
        recipe, _ = load_recipe(params["recipe"])
        settings.update(recipe)
    for flag, key in TRAINER_FLAGS.items():
        if _given(ctx, flag) or key not in settings:
            settings[key] = params[flag]
    for flag, key in KWARG_FLAGS.items():
        given = parse_kwargs(params[flag], "--" + flag.replace("_", "-"))
        if given:
            settings[key] = {**settings.get(key, {}), **given}
    if saved:
        for key in ("model", "dataset", "loss"):
            settings[key] = _resumed_name(key, settings.get(key), saved, _given(ctx, key))
    model, dataset = settings.pop("model", None), settings.pop("dataset", None)
    if not model or not dataset:
        raise UsageError("zoo train needs --model and --dataset (or a --recipe naming them)")
    out = params["out"]
    if out is None:
        if resume:
            out = str(find_run(resume))
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = str(Path("runs") / f"{stamp}-{_slug(model)}-{_slug(dataset)}")
    trainer = Trainer(model, dataset, out=out, resume=resume, **settings)
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        _interrupted(ctx, trainer, out)
    if not trainer.dist.is_main:
        return  # under torchrun, rank 0 alone reports
    if params["recipe"] and result.run_dir is not None:
        rundir.keep_recipe(result.run_dir, params["recipe"])
    if params["as_json"]:
        from zoo.cli.output import echo_json

        echo_json(
            {
                "run_dir": str(result.run_dir) if result.run_dir else None,
                "metrics": result.metrics,
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early,
                "seconds": result.seconds,
            }
        )
    elif result.run_dir is not None:
        echo_metrics(result.metrics)
        click.echo(f"run: {result.run_dir}")


def _resumed_name(key: str, name: str | None, saved: dict[str, Any], given: bool) -> str | None:
    """The name to build for a resumed run: its recorded ``plugin/name`` unless another was
    asked for, which is refused for the model and dataset (the checkpoint is theirs)."""
    from zoo.registry.entries import normalize_name

    old, ref = saved.get(key), (saved.get("entries") or {}).get(key)
    if not name or not old:
        return name
    plugin, _, bare = normalize_name(name).rpartition("/")
    same = bare == normalize_name(old) and (not plugin or not ref or f"{plugin}/{bare}" == ref)
    if not same:
        if key == "loss":
            return name  # a different loss is a legitimate change of settings
        where = f"--{key} {name}" if given else f"the recipe's {key} {name!r}"
        raise UsageError(f"{where} conflicts with the resumed run ({old})")
    if ref and not plugin:
        from zoo import api
        from zoo.errors import UnknownNameError

        try:
            api.get_entry(key, ref)
            return ref  # resolves even if another plugin now shares the bare name
        except UnknownNameError:
            return name
    return name


def _interrupted(ctx: click.Context, trainer: Any, out: str) -> None:
    """Ctrl-C: one line saying where the run stopped and how to continue it; exit 130."""
    import shlex

    from zoo.train.checkpoint import find_checkpoint

    epoch = getattr(trainer, "current_epoch", None)
    where = f"at epoch {epoch}" if epoch else "during setup"
    try:
        find_checkpoint(out)
        done = True
    except UsageError:
        done = False
    if done:
        click.echo(
            f"interrupted {where}; continue with: zoo train --resume {shlex.quote(out)}", err=True
        )
    else:
        click.echo(f"interrupted {where}, before the first checkpoint; nothing to resume", err=True)
    ctx.exit(130)


def echo_metrics(metrics: dict[str, float]) -> None:
    """Metrics as a two-column table."""
    from zoo.cli.output import echo_table

    echo_table([(k, v) for k, v in metrics.items()], ["metric", "value"])
