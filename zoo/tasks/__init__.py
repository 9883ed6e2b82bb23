"""Task contracts (regression, binary, multiclass): compatibility, model kwargs, metrics.

Importing this package does not import torch; the functions that touch tensors import it.
"""

from typing import Any

from zoo.tasks.contracts import (
    LOWER_IS_BETTER,
    STANDARD_KWARGS,
    TASKS,
    Task,
    accepted_kwargs,
    check_compatible,
    get_task,
    incompatibility,
    output_size,
    standard_kwargs,
)

_METRICS = ("align", "compute_metrics", "predictions", "to_loss_input")  # import torch


def __getattr__(name: str) -> Any:
    if name in _METRICS:
        from zoo.tasks import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'zoo.tasks' has no attribute {name!r}")


__all__ = [
    "LOWER_IS_BETTER",
    "STANDARD_KWARGS",
    "TASKS",
    "Task",
    "accepted_kwargs",
    "align",
    "check_compatible",
    "compute_metrics",
    "get_task",
    "incompatibility",
    "output_size",
    "predictions",
    "standard_kwargs",
    "to_loss_input",
]
