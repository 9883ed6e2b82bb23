"""zoo's first-party loggers, each a plugin of the training events (entry points
``tensorboard`` and ``mlflow``), declared as a third party declares theirs.

Each acts only on runs that chose it (``zoo train --logger tensorboard,mlflow``; see
:mod:`zoo.train.loggers`) and imports its library only then, so loading the plugins stays
light. The ``csv`` logger is the run directory's own ``metrics.csv``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["scalars"]


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row, ``epoch`` aside (that is the step)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
    }
