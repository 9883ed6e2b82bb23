"""Synthetic input: random, seeded samples of a given shape and labels of the model's task.

``zoo bench --input-shape 3x224x224`` (or a model's declared ``input_size``) needs no dataset:
the model is built as for a dataset of that shape (:func:`synthetic_entry` stands in for the
dataset entry, so compatibility, standard kwargs and flattening follow the usual rules) and
timed on standard-normal inputs with uniformly random labels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError
from zoo.registry.entries import Entry

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_NUM_CLASSES",
    "SYNTHETIC",
    "default_shape",
    "parse_input_shape",
    "synthetic_batch",
    "synthetic_entry",
    "synthetic_task",
]

SYNTHETIC = "synthetic"  # the ``dataset`` of a synthetic row
DEFAULT_NUM_CLASSES = 1000  # multiclass outputs when neither --num-classes nor the model says
_MAX_ELEMENTS = 2**31  # one sample larger than this is surely a typo


def parse_input_shape(text: Any) -> tuple[int, ...]:
    """``"3x224x224"`` -> ``(3, 224, 224)``: one sample's shape, 1 (features) or 3 (C, H, W)
    dimensions, each a positive integer; anything else is a one-line UsageError."""
    if isinstance(text, list | tuple):
        parts = [str(p) for p in text]
    else:
        parts = str(text).strip().lower().split("x")
    usage = f"--input-shape must be C x H x W or F, such as 3x224x224 or 64, got {text!r}"
    if len(parts) not in (1, 3) or not all(p.strip().isdigit() for p in parts):
        raise UsageError(usage)
    shape = tuple(int(p) for p in parts)
    if min(shape) < 1:
        raise UsageError(f"{usage}: every dimension must be >= 1")
    if math.prod(shape) > _MAX_ELEMENTS:
        raise UsageError(f"--input-shape {text!r} is too large ({math.prod(shape)} elements)")
    return shape


def default_shape(model: Entry) -> tuple[int, ...] | None:
    """The model's declared ``input_size`` (``None`` if it declares none or a malformed one)."""
    size = model.meta.get("input_size")
    if not isinstance(size, list | tuple):
        return None
    try:
        return parse_input_shape(size)
    except UsageError:
        return None


def synthetic_task(model: Entry) -> str:
    """The task of a model's synthetic labels: multiclass where it serves it, else its first."""
    return "multiclass" if "multiclass" in model.tasks else model.tasks[0]


def synthetic_entry(shape: tuple[int, ...], task: str, num_classes: int | None) -> Entry:
    """A dataset entry describing synthetic input (never loaded: it has no target)."""
    meta: dict[str, Any] = {"input_shape": list(shape)}
    if task == "multiclass":
        meta["num_classes"] = num_classes or DEFAULT_NUM_CLASSES
    elif task == "binary":
        meta["num_classes"] = 2
    return Entry(
        kind="dataset",
        name=SYNTHETIC,
        target="",
        plugin="zoo",
        dist="zoo",
        version="",
        summary="random input of the given shape",
        tasks=(task,),
        meta=meta,
    )


def synthetic_batch(
    entry: Entry, batch: int, *, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` standard-normal samples and random labels of the entry's task, seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    shape = tuple(entry.meta["input_shape"])
    x = torch.randn((batch, *shape), generator=generator)
    task = entry.tasks[0]
    if task == "multiclass":
        y = torch.randint(0, int(entry.meta["num_classes"]), (batch,), generator=generator)
    elif task == "binary":
        y = torch.randint(0, 2, (batch,), generator=generator).float()
    else:
        y = torch.randn((batch,), generator=generator)
    return x.to(device), y.to(device)
