"""Task contracts: what each task needs, and whether a (model, dataset, loss) fits together.

A task decides how many outputs a model needs, which loss is the default and which metrics
are reported. No torch here: compatibility checks and listing stay light.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import IncompatibleError
from zoo.registry.entries import Entry

__all__ = [
    "LOWER_IS_BETTER",
    "STANDARD_KWARGS",
    "TASKS",
    "accepted_kwargs",
    "check_compatible",
    "flattens",
    "get_task",
    "incompatibility",
    "output_size",
    "standard_kwargs",
    "Task",
]

STANDARD_KWARGS = ("in_features", "in_channels", "image_size", "num_classes")


@dataclass(frozen=True)
class Task:
    name: str
    default_loss: str
    metrics: tuple[str, ...]
    primary_metric: str  # the headline metric; all primary metrics here are higher-is-better


TASKS: dict[str, Task] = {
    "regression": Task("regression", "mse", ("mae", "mse", "r2"), "r2"),
    "binary": Task("binary", "bce-with-logits", ("accuracy", "f1"), "accuracy"),
    "multiclass": Task("multiclass", "cross-entropy", ("accuracy", "f1"), "accuracy"),
}

LOWER_IS_BETTER = {"mae", "mse", "loss"}


def get_task(name: str) -> Task:
    return TASKS[name]


def incompatibility(model: Entry, dataset: Entry, loss: Entry | None = None) -> str | None:
    """The one-line reason a (model, dataset, loss) combination cannot work, or ``None``."""
    task = dataset.tasks[0]
    if task not in model.tasks:
        return (
            f"model {model.name!r} serves {'/'.join(model.tasks)} but dataset "
            f"{dataset.name!r} is {task}"
        )
    if model.input_kind == "image" and dataset.input_kind != "image":
        shape = "x".join(map(str, dataset.meta["input_shape"]))
        return (
            f"model {model.name!r} takes {model.input_kind} inputs but dataset "
            f"{dataset.name!r} gives {dataset.input_kind} ({shape})"
        )
    channels = model.meta.get("in_channels")
    if channels is not None and dataset.input_kind == "image":
        have = dataset.meta["input_shape"][0]
        if have != channels:
            return (
                f"model {model.name!r} takes {channels}-channel images but dataset "
                f"{dataset.name!r} has {have}"
            )
    smallest = model.meta.get("min_image_size")
    if smallest is not None and dataset.input_kind == "image":
        need = [smallest, smallest] if isinstance(smallest, int) else list(smallest)
        have = list(dataset.meta["input_shape"][1:])
        if any(h < n for h, n in zip(have, need, strict=False)):
            return (
                f"model {model.name!r} takes images of at least {'x'.join(map(str, need))} "
                f"but dataset {dataset.name!r} has {'x'.join(map(str, have))}"
            )
    multiple = model.meta.get("image_size_multiple")
    if multiple is not None and dataset.input_kind == "image":
        have = list(dataset.meta["input_shape"][1:])
        if any(h % multiple for h in have):
            return (
                f"model {model.name!r} takes images whose sides are multiples of {multiple} "
                f"but dataset {dataset.name!r} has {'x'.join(map(str, have))}"
            )
    if loss is not None and task not in loss.tasks:
        return f"loss {loss.name!r} serves {'/'.join(loss.tasks)}, not {task} ({dataset.name!r})"
    return None


def flattens(model: Entry, dataset: Entry) -> bool:
    """Whether the model built for ``dataset`` flattens its inputs: a model that takes
    features, on image data (``(N, C, H, W)`` batches reach it as ``(N, C*H*W)``)."""
    return model.input_kind == "features" and dataset.input_kind == "image"


def check_compatible(model: Entry, dataset: Entry, loss: Entry | None = None) -> None:
    """Raise :class:`IncompatibleError` with the reason when the combination cannot work."""
    reason = incompatibility(model, dataset, loss)
    if reason:
        raise IncompatibleError(f"incompatible combination: {reason}")


def output_size(dataset: Entry) -> int:
    """How many outputs a model needs for a dataset: K classes, 1 logit (binary) or targets."""
    task = dataset.tasks[0]
    if task == "multiclass":
        return int(dataset.meta["num_classes"])
    if task == "binary":
        return 1
    return int(dataset.meta.get("num_targets", 1))


def standard_kwargs(dataset: Entry) -> dict[str, Any]:
    """``in_features`` (flattened size), ``in_channels``/``image_size`` (images), ``num_classes``.

    ``num_classes`` is the number of model outputs the task needs (1 for binary and for a
    single regression target), so one ``nn.Linear(in_features, num_classes)`` fits every task.
    """
    shape = tuple(dataset.meta["input_shape"])
    kwargs: dict[str, Any] = {"in_features": math.prod(shape), "num_classes": output_size(dataset)}
    if len(shape) == 3:
        kwargs["in_channels"] = shape[0]
        kwargs["image_size"] = [shape[1], shape[2]]
    return kwargs


def accepted_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn``'s signature accepts (all of them with ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}
