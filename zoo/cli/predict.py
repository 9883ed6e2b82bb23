"""``zoo evaluate`` and ``zoo predict``: thin commands over :mod:`zoo.evaluation`, and the
readers/writers of their input and output files (``.npy``, ``.csv``, ``.safetensors``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from zoo.cli.train import echo_metrics, parse_kwargs
from zoo.errors import UsageError
from zoo.weights.source import resolve_weights


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
    from zoo.runtime.device import resolve_device
    from zoo.train.evaluation import check_batch_size, evaluate_model
    from zoo.weights import files as weights

    check_batch_size(batch_size)
    path = resolve_weights(source)
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
        echo_metrics(metrics)


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
    from zoo import api
    from zoo.runtime.device import resolve_device
    from zoo.train.evaluation import check_batch_size, predict_model
    from zoo.weights import files as weights

    check_batch_size(batch_size)
    path = resolve_weights(source)
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

    from zoo._util.atomic import atomic_path, write_text

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
