"""Learning-rate schedules: ``cosine``, ``onecycle``, ``step``, ``plateau``, with linear warmup.

The learning rate of every optimizer step is ``lr * factor``, the factor a pure function of
where training is (epoch and optimizer step within it) - so a resumed run sets exactly the rates
an uninterrupted one does - except ``plateau``'s, whose state (best value, bad epochs, factor)
the checkpoint keeps (:meth:`Schedule.state_dict`).

- ``cosine``: after the warmup, from ``lr`` down to 0 along half a cosine over the remaining
  epochs (per step).
- ``onecycle``: torch's ``OneCycleLR`` shape: up from ``lr/25`` to ``lr`` along a cosine over
  the warmup epochs (30% of the epochs without one), then down to ``lr/25e4``.
- ``step``: ``lr`` times 0.1 every ``max(1, epochs // 3)`` epochs.
- ``plateau``: ``lr`` times 0.1 when the watched loss (the val split's, else the test split's)
  has not improved for :data:`PLATEAU_PATIENCE` epochs, as ``ReduceLROnPlateau``.

``warmup_epochs`` ramps the factor linearly from near 0 to 1 over that many epochs (per step)
for ``cosine``, ``step`` and ``plateau``.
"""

from __future__ import annotations

import math
from typing import Any

from zoo.errors import UsageError

__all__ = ["PLATEAU_PATIENCE", "SCHEDULERS", "Schedule", "check_schedule"]

SCHEDULERS = ("cosine", "onecycle", "step", "plateau")
PLATEAU_PATIENCE = 2
ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 25.0, 1e4  # torch's OneCycleLR defaults


def check_schedule(scheduler: str | None, warmup_epochs: int, epochs: int) -> None:
    """Refuse an unknown scheduler or a bad warmup (one line, before any work)."""
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise UsageError(f"warmup epochs must be 0 or more, got {warmup_epochs!r}")
    if warmup_epochs and warmup_epochs >= epochs:
        raise UsageError(f"warmup epochs ({warmup_epochs}) must be fewer than epochs ({epochs})")


class Schedule:
    """The learning rate per optimizer step of one run.

    Args:
        name: one of :data:`SCHEDULERS`, or ``None`` (a constant ``lr``, after any warmup).
        lr: the base learning rate.
        epochs: the run's total epochs.
        steps_per_epoch: optimizer steps per epoch (batches / accumulate, rounded up).
        warmup_epochs: linear warmup length.
    """

    def __init__(
        self, name: str | None, *, lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: int
    ):
        self.name, self.lr, self.epochs = name, lr, epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup = warmup_epochs
        self.best: float | None = None
        self.bad = 0
        self.reduced = 1.0

    def factor(self, epoch: int, step: int) -> float:
        """The factor of optimizer step ``step`` (0-based) of epoch ``epoch`` (1-based)."""
        done = epoch - 1 + step / self.steps_per_epoch  # epochs done before this step
        if self.name == "onecycle":
            rise = (self.warmup or 0.3 * self.epochs) / self.epochs
            pct = done / self.epochs
            low, final = 1 / ONECYCLE_DIV, 1 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
            if pct < rise:
                return low + (1 - low) * (1 - math.cos(math.pi * pct / rise)) / 2
            return final + (1 - final) * (1 + math.cos(math.pi * (pct - rise) / (1 - rise))) / 2
        warm = 1.0
        if self.warmup and done < self.warmup:
            warm = (done + 1 / self.steps_per_epoch) / self.warmup
        if self.name == "cosine":
            span = self.epochs - self.warmup
            q = min(1.0, max(0.0, done - self.warmup) / span)
            return warm * (1 + math.cos(math.pi * q)) / 2
        if self.name == "step":
            return warm * 0.1 ** ((epoch - 1) // max(1, self.epochs // 3))
        if self.name == "plateau":
            return warm * self.reduced
        return warm

    def apply(self, optimizer: Any, epoch: int, step: int) -> None:
        """Set every parameter group's learning rate for optimizer step ``step`` of ``epoch``."""
        lr = self.lr * self.factor(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = lr

    def end_epoch(self, value: float | None) -> None:
        """``plateau``: the epoch's watched loss (lower is better)."""
        if self.name != "plateau" or value is None or not math.isfinite(value):
            return
        if self.best is None or value < self.best * (1 - 1e-4):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > PLATEAU_PATIENCE:
            self.reduced *= 0.1
            self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps (``plateau``'s record; the rest is a function of time)."""
        return {"name": self.name, "best": self.best, "bad": self.bad, "reduced": self.reduced}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.best = state.get("best")
        self.bad = int(state.get("bad") or 0)
        self.reduced = float(state.get("reduced") or 1.0)
