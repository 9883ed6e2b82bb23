"""The transform a dataset applied to its inputs, and its class names, kept with the weights.

A dataset declares them (``transform=`` and ``classes=`` when it registers, see
docs/plugins.md); a run on your own data records them (``run.json``'s ``data``); export writes
them into the weights metadata, and :class:`Transform` applies them to raw inputs, as
torchvision's ``weights.transforms()`` does. The format is the one own-data runs record::

    {"standardise": "per column" | "per channel", "mean": [float, ...], "std": [float, ...]}

A regression dataset that also standardised its targets (``diabetes``) declares
``target_transform`` in the same format (``per column``, one mean/std per output): the model
predicts standardised values and :meth:`Transform.inverse_target` turns them back into the
target's own units (``value * std + mean``).

Recorded values are description, never code: each is type-checked and size-bounded
(:func:`transform_problem`, :func:`classes_problem`) before it is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from zoo.errors import UsageError

__all__ = [
    "FIELDS",
    "MAX_CLASSES",
    "MAX_STATS",
    "STANDARDISE",
    "Transform",
    "classes_problem",
    "field_problem",
    "target_transform_problem",
    "transform_problem",
]

STANDARDISE = ("per column", "per channel")  # x -> (x - mean) / std over features or channels
MAX_STATS = 65536  # values in each of mean and std
MAX_CLASSES = 100_000
MAX_CLASS_NAME = 200  # characters
FIELDS = ("transform", "classes", "target_transform")  # the weights metadata fields they travel in


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


def target_transform_problem(value: Any) -> str | None:
    """Why ``value`` is not a recorded target transform (``None`` when it is one)."""
    problem = transform_problem(value)
    if problem is None and value["standardise"] != "per column":
        return "'standardise' must be 'per column' (one mean/std per output)"
    return problem


def classes_problem(value: Any) -> str | None:
    """Why ``value`` is not a list of class names (``None`` when it is one)."""
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_CLASSES:
        return f"must be a list of 2 to {MAX_CLASSES} class names"
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_CLASS_NAME for v in value):
        return f"must hold names of 1 to {MAX_CLASS_NAME} characters"
    return None


def field_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is not what the weights metadata field ``key`` (one of :data:`FIELDS`)
    holds (``None`` when it is)."""
    check = {"transform": transform_problem, "target_transform": target_transform_problem}
    return check.get(key, classes_problem)(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Transform:
    """Callable that turns raw inputs into what the model was trained on.

    ``standardise`` is ``None`` when nothing is recorded (weights written before zoo recorded
    it): inputs pass unchanged and :attr:`recorded` is ``False``. ``classes`` are the names of
    the class indices, when known; ``target_mean``/``target_std`` the standardisation of a
    regression target (empty when the targets were not standardised).
    """

    standardise: str | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] | None = None
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()

    @classmethod
    def from_record(
        cls, transform: Any = None, classes: Any = None, target_transform: Any = None
    ) -> Transform:
        """From checked metadata values (``None`` for what is not recorded)."""
        names = tuple(classes) if classes is not None else None
        target = target_transform or {"mean": (), "std": ()}
        stats = (tuple(map(float, target["mean"])), tuple(map(float, target["std"])))
        if transform is None:
            return cls(None, (), (), names, *stats)
        return cls(
            transform["standardise"], tuple(map(float, transform["mean"])),
            tuple(map(float, transform["std"])), names, *stats,
        )  # fmt: skip

    @classmethod
    def from_meta(cls, meta: Any) -> Transform:
        """From a checked metadata mapping holding any of :data:`FIELDS`."""
        return cls.from_record(*(meta.get(key) for key in FIELDS))

    @property
    def recorded(self) -> bool:
        """Whether a transform is recorded (else inputs are taken as already transformed)."""
        return self.standardise is not None

    def to_record(self) -> dict[str, Any] | None:
        """The metadata form (``None`` when nothing is recorded)."""
        if self.standardise is None:
            return None
        return {"standardise": self.standardise, "mean": list(self.mean), "std": list(self.std)}

    @property
    def target_recorded(self) -> bool:
        """Whether the targets were standardised (predictions are turned back by
        :meth:`inverse_target`)."""
        return bool(self.target_mean)

    def target_record(self) -> dict[str, Any] | None:
        """The ``target_transform`` metadata form (``None`` when nothing is recorded)."""
        if not self.target_mean:
            return None
        return {"standardise": "per column", "mean": list(self.target_mean),
                "std": list(self.target_std)}  # fmt: skip

    def inverse_target(self, values: Any) -> Any:
        """Predicted values in the target's own units: ``value * std + mean`` (in float64,
        returned as float32) over the last axis of ``(N, K)`` outputs, or of ``(N,)`` values
        of one output; unchanged when the targets were not standardised."""
        import torch

        x = values if isinstance(values, torch.Tensor) else torch.as_tensor(values)
        if not self.target_mean:
            return x
        n = len(self.target_mean)
        if (x.shape[-1] if x.dim() > 1 else 1) != n:
            raise UsageError(
                f"outputs of shape {list(x.shape)} do not fit the recorded target transform "
                f"of {n} output{'s' if n > 1 else ''}"
            )
        mean = torch.tensor(self.target_mean, dtype=torch.float64)
        std = torch.tensor(self.target_std, dtype=torch.float64)
        if x.dim() <= 1:
            mean, std = mean[0], std[0]
        return (x.to(torch.float64) * std + mean).to(torch.float32)

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
