"""``zoo train``, ``zoo evaluate`` and ``zoo predict``: thin commands over :mod:`zoo.train`.

Settings come from, lowest first: the defaults, the resumed run's ``run.json``, a
``--recipe`` file, and the flags given on the command line.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from zoo import rundir
from zoo.errors import UsageError

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
    from zoo.recipes import load_recipe
    from zoo.rundir import RUN_JSON, find_run, read_run_json
    from zoo.train import Trainer

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
        _echo_metrics(result.metrics)
        click.echo(f"run: {result.run_dir}")


def _resumed_name(key: str, name: str | None, saved: dict[str, Any], given: bool) -> str | None:
    """The name to build for a resumed run: its recorded ``plugin/name`` unless another was
    asked for, which is refused for the model and dataset (the checkpoint is theirs)."""
    from zoo.registry import normalize_name

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

    from zoo.checkpoint import find_checkpoint

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


def _echo_metrics(metrics: dict[str, float]) -> None:
    from zoo.cli.output import echo_table

    echo_table([(k, v) for k, v in metrics.items()], ["metric", "value"])


@click.command("evaluate")
@click.argument("source", metavar="RUN|WEIGHTS")
@click.option(
    "--dataset", "-d", help="Dataset to evaluate on (default: the one it was trained on)."
)
@click.option("--split", default="test", show_default=True)
@click.option("--loss", help="Loss to report (default: the run's on its dataset, else by task).")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--dataset-arg", multiple=True, metavar="KEY=VALUE", help="Dataset kwarg (JSON value)."
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Root of local datasets (sets ZOO_DATA)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(
    source: str, dataset: str | None, split: str, loss: str | None, batch_size: int, device: str,
    dataset_arg: tuple[str, ...], data_dir: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Evaluate a run's model (or a weights file) on a dataset split."""
    from zoo import weights
    from zoo.devices import resolve_device
    from zoo.train import check_batch_size, evaluate_model

    check_batch_size(batch_size)
    path = rundir.resolve_weights(source)
    meta = weights.read_metadata(path)
    train = _train_record(meta)
    if data_dir:
        os.environ["ZOO_DATA"] = str(Path(data_dir).expanduser())
    elif train.get("data_dir") and Path(train["data_dir"]).is_dir():
        os.environ["ZOO_DATA"] = train["data_dir"]  # the data dir the run was trained with
    own = dataset is None or dataset == meta.get("dataset")
    shown = dataset or meta.get("dataset")
    dataset = dataset or _recorded_dataset(meta)
    if not dataset:
        raise UsageError(f"{path} does not record its dataset; pass --dataset")
    dev = resolve_device(device)
    model = weights.load(path, device=str(dev))
    dataset_kwargs = parse_kwargs(dataset_arg, "--dataset-arg")
    if not dataset_arg and own:
        dataset_kwargs = train.get("dataset_kwargs") or {}
    if loss is None and own:
        loss = _recorded_entry(train, "loss")  # the loss it was trained with
    metrics = evaluate_model(
        model, dataset, split, batch_size=batch_size, device=str(dev),
        dataset_kwargs=dataset_kwargs, loss=loss,
    )  # fmt: skip
    if as_json:
        from zoo.cli.output import echo_json

        echo_json({"weights": str(path), "dataset": shown, "split": split, "metrics": metrics})
    else:
        _echo_metrics(metrics)


def _train_record(meta: dict[str, Any]) -> dict[str, Any]:
    """The training settings ``zoo train`` stores in a weights file (``{}`` for others)."""
    train = (meta.get("extra") or {}).get("train")
    return train if isinstance(train, dict) else {}


def _recorded_dataset(meta: dict[str, Any]) -> str | None:
    """The weights' dataset as ``plugin/name`` when recorded and still registered, else bare."""
    return _recorded_entry(_train_record(meta), "dataset") or meta.get("dataset")


def _recorded_entry(train: dict[str, Any], kind: str) -> str | None:
    """``plugin/name`` of the run's ``kind`` entry if recorded and still registered, else bare."""
    from zoo import api
    from zoo.errors import UnknownNameError

    ref = (train.get("entries") or {}).get(kind)
    if ref:
        try:
            api.get_entry(kind, ref)
            return ref
        except UnknownNameError:
            pass
    return train.get(kind)


def read_input(path: Path, key: str | None = None):
    """Inputs from ``.safetensors`` (one tensor, or ``key``), ``.npy`` or ``.csv`` as float32."""
    import numpy as np
    import torch

    suffix = path.suffix.lower()
    if not path.exists():
        raise UsageError(f"input file {path} does not exist")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if key is None:
                named = [k for k in ("input", "inputs", "x", "X") if k in tensors]
                if len(tensors) == 1:
                    key = next(iter(tensors))
                elif named:
                    key = named[0]
                else:
                    raise UsageError(
                        f"{path} holds several tensors ({', '.join(sorted(tensors))}); "
                        "pick one with --key"
                    )
            if key not in tensors:
                raise UsageError(f"{path} has no tensor {key!r} (has {', '.join(sorted(tensors))})")
            X = tensors[key]
        elif suffix == ".npy":
            X = torch.from_numpy(np.load(path, allow_pickle=False))
        elif suffix == ".csv":
            X = torch.from_numpy(_read_csv(path))
        else:
            raise UsageError(f"input {path}: use a .safetensors, .npy or .csv file")
    except UsageError:
        raise
    except Exception as exc:  # malformed file of any of the three kinds
        raise UsageError(f"cannot read input {path}: {exc}") from None
    return X.to(torch.float32)


def _read_csv(path: Path):
    import numpy as np

    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        [float(v) for v in first.strip().split(",") if v.strip()]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float32)


def shape_inputs(X, input_shape: tuple[int, ...] | None):
    """Reshape flat rows to the dataset's input shape: ``(N, 64)`` -> ``(N, 1, 8, 8)``."""
    import math

    if input_shape is None:
        return X
    shape = tuple(input_shape)
    size = math.prod(shape)
    if tuple(X.shape[1:]) == shape:
        return X
    if X.dim() == len(shape) and tuple(X.shape) == shape:
        return X.unsqueeze(0)  # one sample
    if X.numel() % size == 0 and (X.dim() == 1 or math.prod(X.shape[1:]) == size):
        return X.reshape(-1, *shape)
    raise UsageError(
        f"input of shape {list(X.shape)} does not fit the model's input {list(shape)} per sample"
    )


@click.command("predict")
@click.argument("source", metavar="RUN|WEIGHTS")
@click.option("--input", "-i", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Inputs: .safetensors, .npy or .csv (one sample per row).")  # fmt: skip
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write to .npy, .csv or .safetensors (default: stdout).",
)
@click.option("--key", help="Tensor name in a .safetensors input holding several.")
@click.option("--raw", is_flag=True, help="Model outputs (logits/values) instead of labels.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def predict_cmd(
    source: str, input_path: str, output: str | None, key: str | None, raw: bool,
    batch_size: int, device: str,
) -> None:  # fmt: skip
    """Predict with a run's model (or a weights file): labels for classification, else values."""
    from zoo import api, weights
    from zoo.devices import resolve_device
    from zoo.train import check_batch_size, predict_model

    check_batch_size(batch_size)
    path = rundir.resolve_weights(source)
    meta = weights.read_metadata(path)
    dev = resolve_device(device)
    model = weights.load(path, device=str(dev))
    task, input_shape = None, None
    dataset = _recorded_dataset(meta)
    if dataset:
        try:
            entry = api.get_entry("dataset", dataset)
            task, input_shape = entry.tasks[0], tuple(entry.meta["input_shape"])
        except UsageError:
            pass
    if task is None:
        spec = getattr(model, "zoo_spec", None)
        ref = f"{spec.plugin}/{spec.model}" if spec is not None else meta["model"]
        model_entry = api.get_entry("model", ref)
        if len(model_entry.tasks) == 1:
            task = model_entry.tasks[0]
    X = shape_inputs(read_input(Path(input_path), key), input_shape)
    try:
        pred = predict_model(model, X, task=task, batch_size=batch_size, raw=raw)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"the model cannot take inputs of shape {list(X.shape)}: {first}"
        ) from None
    write_predictions(pred, output)


def write_predictions(pred, output: str | None) -> None:
    """Predictions to stdout (CSV rows) or to a .npy/.csv/.safetensors file (atomically)."""
    import numpy as np

    from zoo.fileio import atomic_path, write_text

    array = pred.numpy()
    rows = array.reshape(len(array), -1) if array.ndim != 1 else array.reshape(-1, 1)
    if output is None:
        _write_csv_rows(sys.stdout, rows)
        return
    out = Path(output)
    suffix = out.suffix.lower()
    if suffix == ".npy":
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        with atomic_path(out) as tmp:
            save_file({"predictions": pred.contiguous()}, str(tmp))
    elif suffix == ".csv":
        import io

        buf = io.StringIO()
        _write_csv_rows(buf, rows)
        write_text(out, buf.getvalue())
    else:
        raise UsageError(f"output {out}: use a .npy, .csv or .safetensors file")
    click.echo(f"wrote {len(array)} predictions to {out}", err=True)


def _write_csv_rows(stream, rows) -> None:
    fmt = str if rows.dtype.kind in "iub" else (lambda v: repr(float(v)))
    for row in rows:
        stream.write(",".join(fmt(v) for v in row.tolist()) + "\n")
