"""The transform a dataset applied to its inputs, and its class names, kept with the weights.

A dataset declares them (``transform=`` and ``classes=`` when it registers, see
docs/plugins.md); a run on your own data records them (``run.json``'s ``data``); export writes
them into the weights metadata, and :class:`Transform` applies them to raw inputs, as
torchvision's ``weights.transforms()`` does. The format is the one own-data runs record::

    {"standardise": "per column" | "per channel", "mean": [float, ...], "std": [float, ...]}

Recorded values are description, never code: each is type-checked and size-bounded
(:func:`transform_problem`, :func:`classes_problem`) before it is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from zoo.errors import UsageError

__all__ = [
    "MAX_CLASSES",
    "MAX_STATS",
    "STANDARDISE",
    "Transform",
    "classes_problem",
    "field_problem",
    "transform_problem",
]

STANDARDISE = ("per column", "per channel")  # x -> (x - mean) / std over features or channels
MAX_STATS = 65536  # values in each of mean and std
MAX_CLASSES = 100_000
MAX_CLASS_NAME = 200  # characters


def transform_problem(value: Any) -> str | None:
    """Why ``value`` is not a recorded transform (``None`` when it is one)."""
    if not isinstance(value, dict):
        return "must be an object"
    if value.get("standardise") not in STANDARDISE:
        return f"'standardise' must be one of {', '.join(map(repr, STANDARDISE))}"
    stats = [value.get("mean"), value.get("std")]
    for key, numbers in zip(("mean", "std"), stats, strict=True):
        if not isinstance(numbers, list) or not 0 < len(numbers) <= MAX_STATS:
            return f"{key!r} must be a list of 1 to {MAX_STATS} numbers"
        if not all(_finite(v) for v in numbers):
            return f"{key!r} must hold finite numbers"
    if len(stats[0]) != len(stats[1]):
        return "'mean' and 'std' must be of the same length"
    if not all(v > 0 for v in stats[1]):
        return "'std' must be positive"
    return None


def classes_problem(value: Any) -> str | None:
    """Why ``value`` is not a list of class names (``None`` when it is one)."""
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_CLASSES:
        return f"must be a list of 2 to {MAX_CLASSES} class names"
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_CLASS_NAME for v in value):
        return f"must hold names of 1 to {MAX_CLASS_NAME} characters"
    return None


def field_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is not what the weights metadata field ``key`` (``transform`` or
    ``classes``) holds (``None`` when it is)."""
    return (transform_problem if key == "transform" else classes_problem)(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Transform:
    """Callable that turns raw inputs into what the model was trained on.

    ``standardise`` is ``None`` when nothing is recorded (weights written before zoo recorded
    it): inputs pass unchanged and :attr:`recorded` is ``False``. ``classes`` are the names of
    the class indices, when known.
    """

    standardise: str | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] | None = None

    @classmethod
    def from_record(cls, transform: Any = None, classes: Any = None) -> Transform:
        """From checked metadata values (``None`` for what is not recorded)."""
        names = tuple(classes) if classes is not None else None
        if transform is None:
            return cls(classes=names)
        return cls(
            transform["standardise"], tuple(map(float, transform["mean"])),
            tuple(map(float, transform["std"])), names,
        )  # fmt: skip

    @property
    def recorded(self) -> bool:
        """Whether a transform is recorded (else inputs are taken as already transformed)."""
        return self.standardise is not None

    def to_record(self) -> dict[str, Any] | None:
        """The metadata form (``None`` when nothing is recorded)."""
        if self.standardise is None:
            return None
        return {"standardise": self.standardise, "mean": list(self.mean), "std": list(self.std)}

    def __call__(self, inputs: Any) -> Any:
        """``(x - mean) / std`` (in float64, returned as float32) over the last axis of
        ``(N, F)`` features or the channel axis of ``(N, C, H, W)`` / ``(C, H, W)`` images."""
        import torch

        x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(inputs)
        if self.standardise is None:
            return x
        n = len(self.mean)
        if self.standardise == "per column":
            axis, shape = x.dim() - 1, (n,)
        else:
            axis = 1 if x.dim() == 4 else 0
            shape = (n, 1, 1)
        if x.dim() == 0 or (self.standardise == "per channel" and x.dim() not in (3, 4)):
            raise UsageError(
                f"inputs of shape {list(x.shape)} do not fit a transform {self.standardise}"
            )
        if x.shape[axis] != n:
            what = "columns" if self.standardise == "per column" else "channels"
            raise UsageError(
                f"inputs have {x.shape[axis]} {what}, the recorded transform {n} "
                f"(inputs of shape {list(x.shape)})"
            )
        mean = torch.tensor(self.mean, dtype=torch.float64).reshape(shape)
        std = torch.tensor(self.std, dtype=torch.float64).reshape(shape)
        return ((x.to(torch.float64) - mean) / std).to(torch.float32)

    def names(self, labels: Any) -> list[str]:
        """Class names of integer ``labels`` (their indices as text when no names are
        recorded)."""
        values = [int(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
        if self.classes is None:
            return [str(v) for v in values]
        return [self.classes[v] for v in values]
