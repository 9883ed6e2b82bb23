"""``zoo evaluate`` and ``zoo predict``: thin commands over :func:`zoo.evaluate` and
:func:`zoo.predict`, and the readers/writers of their input and output files (``.npy``,
``.csv``, ``.safetensors``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zoo import api
from zoo.cli.train import echo_metrics, parse_kwargs
from zoo.errors import UsageError, ZooError, one_line
from zoo.train.config import TrainConfig

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["evaluate_cmd", "predict_cmd", "read_input", "write_names", "write_predictions"]

# --threads: the one rule of zoo.runtime.threads, described once (by TrainConfig's field)
_threads_option = click.option("--threads", type=int, help=TrainConfig.meta("threads")["help"])


@click.command("evaluate")
@click.argument("source", metavar="RUN|WEIGHTS")
@click.option(
    "--dataset", "-d", help="Dataset to evaluate on (default: the one it was trained on)."
)
@click.option("--split", default="test", show_default=True)
@click.option("--loss", help="Loss to report (default: the run's on its dataset, else by task).")
@click.option("--batch-size", type=int, default=api.EVAL_BATCH_SIZE, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--dataset-arg", multiple=True, metavar="KEY=VALUE", help="Dataset kwarg (JSON value)."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Root of local datasets (default $ZOO_DATA; a run's recorded one is not applied).",
)
@_threads_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(
    source: str, dataset: str | None, split: str, loss: str | None, batch_size: int, device: str,
    dataset_arg: tuple[str, ...], data_dir: str | None, threads: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Evaluate a run's model (or a weights file, or a pretrained entry) on a dataset split."""
    path = api.resolve_weights(source)
    metrics = api.evaluate(
        path, dataset, split, loss=loss, batch_size=batch_size, device=device, threads=threads,
        dataset_kwargs=parse_kwargs(dataset_arg, "--dataset-arg") if dataset_arg else None,
        data_dir=data_dir,
    )  # fmt: skip
    if as_json:
        from zoo.cli.output import echo_json
        from zoo.weights.files import read_metadata

        shown = dataset or read_metadata(path).get("dataset")
        echo_json({"weights": str(path), "dataset": shown, "split": split, "metrics": metrics})
    else:
        echo_metrics(metrics)


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
@click.option(
    "--raw", is_flag=True,
    help="Model outputs (logits/values; standardised values where the targets were) instead "
    "of labels or values in the target's units.",
)  # fmt: skip
@click.option("--proba", is_flag=True, help="Class probabilities (binary: the positive class's).")
@click.option(
    "--no-transform",
    "transformed",
    is_flag=True,
    help="Inputs are already transformed (as load_dataset returns them): skip the transform "
    "recorded with the weights.",
)
@click.option("--batch-size", type=int, default=api.EVAL_BATCH_SIZE, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@_threads_option
def predict_cmd(
    source: str, input_path: str, output: str | None, key: str | None, raw: bool, proba: bool,
    transformed: bool, batch_size: int, device: str, threads: int | None,
) -> None:  # fmt: skip
    """Predict with a run's model (or weights, or a pretrained entry) on raw inputs: the
    transform recorded with the weights is applied; class names (when recorded), else labels,
    else values."""
    if raw and proba:
        raise UsageError("--raw and --proba are two different outputs: give one")  # before work
    path = api.resolve_weights(source)
    X = read_input(Path(input_path), key)
    pred = api.predict(
        path, X, raw=raw, proba=proba, transform=not transformed, batch_size=batch_size,
        device=device, threads=threads,
    )  # fmt: skip
    named = output is None or Path(output).suffix.lower() == ".csv"  # .npy/.safetensors: labels
    if named and not (raw or proba) and pred.dim() == 1 and not pred.is_floating_point():
        recorded = api.transforms(path)
        if recorded.classes and all(0 <= v < len(recorded.classes) for v in pred.tolist()):
            write_names(recorded.names(pred), output)
            return
    write_predictions(pred, output)


def write_names(names: list[str], output: str | None) -> None:
    """Class names, one a line, to stdout or a ``.csv`` file (atomically)."""
    text = "".join(f"{name}\n" for name in names)
    if output is None:
        sys.stdout.write(text)
        return
    from zoo._util.atomic import write_text

    write_text(Path(output), text)
    click.echo(f"wrote {len(names)} predictions to {output}", err=True)


def read_input(path: Path, key: str | None = None) -> torch.Tensor:
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
            X = torch.from_numpy(_real_array(path, np.load(path, allow_pickle=False)))
        elif suffix == ".csv":
            X = torch.from_numpy(_read_csv(path))
        else:
            raise UsageError(f"input {path}: use a .safetensors, .npy or .csv file")
    except UsageError:
        raise
    except Exception as exc:  # malformed file of any of the three kinds
        raise UsageError(f"cannot read input {path}: {one_line(exc)}") from None
    if X.is_complex():
        raise UsageError(
            f"input {path} holds complex numbers (dtype {_dtype_name(X.dtype)}); give real numbers"
        )
    return X.to(torch.float32)


def _real_array(path: Path, array: np.ndarray) -> np.ndarray:
    """``array`` when it holds real numbers (or booleans); complex, string or object arrays
    are refused with one line rather than losing their imaginary part or failing later."""
    if array.dtype.kind not in "biuf":
        what = {"c": "complex numbers", "U": "strings", "S": "bytes", "O": "Python objects"}
        raise UsageError(
            f"input {path} holds {what.get(array.dtype.kind, 'non-numeric values')} "
            f"(dtype {array.dtype}); give real numbers"
        )
    return array


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _read_csv(path: Path) -> np.ndarray:
    import numpy as np

    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        [float(v) for v in first.strip().split(",") if v.strip()]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float32)


def write_predictions(pred: torch.Tensor, output: str | None) -> None:
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
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        from zoo._util.atomic import write_reason

        try:
            with atomic_path(out) as tmp:
                save_file({"predictions": pred.contiguous()}, str(tmp))
        except SafetensorError as exc:  # its writer's I/O errors
            raise ZooError(f"cannot write {out}: {write_reason(exc, out)}") from None
    elif suffix == ".csv":
        import io

        buf = io.StringIO()
        _write_csv_rows(buf, rows)
        write_text(out, buf.getvalue())
    else:
        raise UsageError(f"output {out}: use a .npy, .csv or .safetensors file")
    click.echo(f"wrote {len(array)} predictions to {out}", err=True)


def _write_csv_rows(stream: Any, rows: np.ndarray) -> None:
    fmt = str if rows.dtype.kind in "iub" else (lambda v: repr(float(v)))
    for row in rows:
        stream.write(",".join(fmt(v) for v in row.tolist()) + "\n")
