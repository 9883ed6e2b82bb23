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
    """``("hidden=[32,32]", "act=relu")`` -> dict; values are JSON when they parse."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} wants key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


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
    from zoo.rundir import RUN_JSON, read_run_json
    from zoo.train import Trainer

    if params["data_dir"]:
        os.environ["ZOO_DATA"] = str(Path(params["data_dir"]).expanduser())
    settings: dict[str, Any] = {}
    resume = params["resume"]
    if resume:
        run_dir = Path(resume)
        if run_dir.name == "checkpoint" and not (run_dir / RUN_JSON).exists():
            run_dir = run_dir.parent
        if (run_dir / RUN_JSON).exists():
            saved = read_run_json(run_dir).get("settings", {})
            settings.update({k: v for k, v in saved.items() if k in RESUMABLE})
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
    model, dataset = settings.pop("model", None), settings.pop("dataset", None)
    if not model or not dataset:
        raise UsageError("zoo train needs --model and --dataset (or a --recipe naming them)")
    out = params["out"]
    if out is None:
        if resume:
            out = str(Path(resume).parent if Path(resume).name == "checkpoint" else resume)
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = str(Path("runs") / f"{stamp}-{_slug(model)}-{_slug(dataset)}")
    trainer = Trainer(model, dataset, out=out, resume=resume, **settings)
    result = trainer.fit()
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


def _echo_metrics(metrics: dict[str, float]) -> None:
    from zoo.cli.output import echo_table

    echo_table([(k, v) for k, v in metrics.items()], ["metric", "value"])


@click.command("evaluate")
@click.argument("source", metavar="RUN|WEIGHTS")
@click.option(
    "--dataset", "-d", help="Dataset to evaluate on (default: the one it was trained on)."
)
@click.option("--split", default="test", show_default=True)
@click.option("--loss", help="Loss to report (default by task).")
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
    from zoo.train import evaluate_model

    if data_dir:
        os.environ["ZOO_DATA"] = str(Path(data_dir).expanduser())
    path = rundir.resolve_weights(source)
    meta = weights.read_metadata(path)
    dataset = dataset or meta.get("dataset")
    if not dataset:
        raise UsageError(f"{path} does not record its dataset; pass --dataset")
    dev = resolve_device(device)
    model = weights.load(path, device=str(dev))
    dataset_kwargs = parse_kwargs(dataset_arg, "--dataset-arg")
    if not dataset_arg and dataset == meta.get("dataset"):
        dataset_kwargs = ((meta.get("extra") or {}).get("train") or {}).get("dataset_kwargs") or {}
    metrics = evaluate_model(
        model, dataset, split, batch_size=batch_size, device=str(dev),
        dataset_kwargs=dataset_kwargs, loss=loss,
    )  # fmt: skip
    if as_json:
        from zoo.cli.output import echo_json

        echo_json({"weights": str(path), "dataset": dataset, "split": split, "metrics": metrics})
    else:
        _echo_metrics(metrics)


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
    from zoo.train import predict_model

    path = rundir.resolve_weights(source)
    meta = weights.read_metadata(path)
    dev = resolve_device(device)
    model = weights.load(path, device=str(dev))
    task, input_shape = None, None
    if meta.get("dataset"):
        try:
            entry = api.get_entry("dataset", meta["dataset"])
            task, input_shape = entry.tasks[0], tuple(entry.meta["input_shape"])
        except UsageError:
            pass
    if task is None:
        model_entry = api.get_entry("model", meta["model"])
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
