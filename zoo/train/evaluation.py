"""Evaluation and prediction, shared by the trainer, ``zoo evaluate``, ``zoo predict``, the
benchmark harness and the registry reproduction tests.

Everything runs under ``model.eval()`` and ``torch.inference_mode()``; torch is imported
inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo import api
from zoo._util.jsonio import jsonable
from zoo.errors import IncompatibleError, UsageError, ZooError
from zoo.tasks import contracts as tasks
from zoo.tasks import metrics

if TYPE_CHECKING:
    import torch
    from torch import nn

EVAL_BATCH_SIZE = 256


def run_evaluation(
    model: nn.Module,
    batches: Any,
    *,
    task: str,
    loss_fn: nn.Module | None = None,
    expects: str = "logits",
    num_classes: int | None = None,
    autocast: torch.dtype | None = None,
) -> dict[str, float]:
    """``{"loss", *task metrics}`` of ``model`` over ``batches``, under eval + inference mode."""
    import torch

    model.eval()
    outputs, targets = [], []
    device_type = None
    with torch.inference_mode():
        for x, y in batches:
            if autocast is not None:
                device_type = device_type or x.device.type
                with torch.autocast(device_type, dtype=autocast):
                    out = model(x)
                out = out.float()
            else:
                out = model(x)
            outputs.append(metrics.align(task, out, y))
            targets.append(y)
        if not outputs:
            return {}
        output, target = torch.cat(outputs), torch.cat(targets)
        result: dict[str, float] = {}
        if loss_fn is not None:
            result["loss"] = loss_fn(
                metrics.to_loss_input(expects, task, output.float()), target
            ).item()
        result.update(metrics.compute_metrics(task, output, target, num_classes))
    return result


def check_model_fits(model: nn.Module, dataset: str) -> None:
    """Refuse a model built for other inputs/outputs than ``dataset`` gives (one-line error)."""
    spec = getattr(model, "zoo_spec", None)
    if spec is None:
        return
    entry = api.get_entry("dataset", dataset)
    try:
        model_entry = api.get_entry("model", f"{spec.plugin}/{spec.model}")
    except ZooError:
        model_entry = None
    if model_entry is not None:
        tasks.check_compatible(model_entry, entry)
    want = tasks.standard_kwargs(entry)
    for key, value in want.items():
        have = spec.kwargs.get(key)
        if have is not None and jsonable(have) != jsonable(value):
            raise IncompatibleError(
                f"model {spec.model!r} was built with {key}={jsonable(have)} but dataset "
                f"{entry.name!r} needs {key}={jsonable(value)}"
            )


def evaluate_model(
    model: nn.Module,
    dataset: str,
    split: str = "test",
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "cpu",
    dataset_kwargs: dict[str, Any] | None = None,
    loss: str | None = None,
) -> dict[str, float]:
    """Metrics and loss (default: the task's) of ``model`` on one split of ``dataset``."""
    from zoo.runtime.batches import make_batches
    from zoo.runtime.device import resolve_device

    check_batch_size(batch_size)
    entry = api.get_entry("dataset", dataset)
    task = entry.tasks[0]
    check_model_fits(model, entry.qualname)
    loss_entry = api.get_entry("loss", loss or tasks.TASKS[task].default_loss)
    if task not in loss_entry.tasks:
        raise IncompatibleError(f"loss {loss_entry.name!r} does not serve {task} ({entry.name!r})")
    dev = resolve_device(device)
    model.to(dev)
    data = api.load_dataset(entry.qualname, split, **(dataset_kwargs or {}))
    batches = make_batches(data, batch_size, device=dev)
    loss_fn = api.create_loss(loss_entry.qualname).to(dev)
    return run_evaluation(
        model, batches, task=task, loss_fn=loss_fn,
        expects=loss_entry.meta.get("expects", "logits"), num_classes=num_classes_of(entry),
    )  # fmt: skip


def predict_model(
    model: nn.Module,
    X: torch.Tensor,
    *,
    task: str | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    raw: bool = False,
) -> torch.Tensor:
    """Predictions for ``X`` on the model's device, under eval + inference mode, on the CPU.

    Classification gives class labels, regression values; ``raw`` (or an unknown task) gives
    the model's outputs.
    """
    import torch

    check_batch_size(batch_size)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    with torch.inference_mode():
        outs = [model(x.to(device)) for x in X.split(batch_size)] if len(X) else []
        if not outs:
            return torch.empty(0)
        out = torch.cat(outs).float()
        if raw or task is None:
            return out.cpu()
        if task != "multiclass" and out.dim() == 2 and out.shape[-1] == 1:
            out = out.squeeze(-1)
        return metrics.predictions(task, out).cpu()


def check_batch_size(batch_size: Any) -> None:
    """Refuse a batch size below 1 (the same one-line error for evaluate and predict)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size!r}")


def num_classes_of(entry: Any) -> int | None:
    """The class count of a multiclass dataset entry (``None`` for other tasks)."""
    return entry.meta.get("num_classes") if entry.tasks[0] == "multiclass" else None
