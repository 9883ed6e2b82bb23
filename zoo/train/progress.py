"""Training progress on stderr: a tqdm bar on a terminal, plain lines otherwise, or nothing.

The trainer reports only every few steps (``every``), so progress costs nothing per step.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["PLAIN_INTERVAL_S", "format_metrics", "Progress"]

PLAIN_INTERVAL_S = 10.0


def format_metrics(row: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = row.get(key)
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
    return "  ".join(parts)


class Progress:
    """Reports epochs and steps; ``mode`` is ``bar``, ``lines`` or ``off``."""

    def __init__(self, epochs: int, *, quiet: bool = False, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.epochs = epochs
        if quiet:
            self.mode = "off"
        else:
            isatty = getattr(self.stream, "isatty", None)
            self.mode = "bar" if isatty is not None and isatty() else "lines"
        self._bar: Any = None
        self._done = 0
        self._t0 = 0.0
        self._last_line = 0.0

    def start_epoch(self, epoch: int, steps: int) -> None:
        self._done = 0
        self._steps = steps
        self._epoch = epoch
        self._t0 = self._last_line = time.perf_counter()
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=steps, desc=f"epoch {epoch}/{self.epochs}", file=self.stream,
                leave=False, dynamic_ncols=True, unit="step",
            )  # fmt: skip

    def step(self, step: int, loss: float, samples: int) -> None:
        """Called every few steps with the step reached, the latest loss and samples so far."""
        now = time.perf_counter()
        rate = samples / max(now - self._t0, 1e-9)
        if self.mode == "bar" and self._bar is not None:
            self._bar.update(step - self._done)
            self._bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.0f}", refresh=False)
        elif self.mode == "lines" and now - self._last_line >= PLAIN_INTERVAL_S:
            self._last_line = now
            self._write(
                f"epoch {self._epoch}/{self.epochs}  step {step}/{self._steps}  loss {loss:.4f}  "
                f"{rate:.0f} samples/s"
            )
        self._done = step

    def end_epoch(self, row: dict[str, Any], keys: list[str]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.mode == "off":
            return
        rate = row.get("samples_per_s")
        tail = f"  {rate:.0f} samples/s" if isinstance(rate, float) else ""
        self._write(
            f"epoch {row['epoch']}/{self.epochs}  {format_metrics(row, keys)}{tail}  "
            f"{row.get('seconds', 0.0):.2f}s"
        )

    def message(self, text: str) -> None:
        if self.mode != "off":
            self._write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)
