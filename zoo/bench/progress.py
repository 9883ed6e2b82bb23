"""Progress of a benchmark run on stderr: rows done / total and the row being measured.

The modes are the trainer's (:class:`zoo.train.progress.Progress`): on a terminal a tqdm bar
shows rows done / total, named after the row being measured (model, input, device, batch
size, precision, mode, knobs, runtime), with each finished row's line printed above it;
anywhere else (a pipe, a CI log) only the finished rows' lines, no bar; quiet, nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from zoo.bench.rows import Combo

__all__ = ["BenchProgress"]


class BenchProgress:
    """Reports a run of ``total`` rows; ``mode`` is ``bar``, ``lines`` or ``off``.

    ``write`` (a callable taking one line) receives the lines instead of ``stream`` and never
    shows a bar.
    """

    def __init__(
        self,
        total: int,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        write: Callable[[str], Any] | None = None,
    ):
        self.total = total
        self.stream = stream or sys.stderr
        self._write_line = write
        if quiet:
            self.mode = "off"
        elif write is not None:
            self.mode = "lines"
        else:
            isatty = getattr(self.stream, "isatty", None)
            self.mode = "bar" if isatty is not None and isatty() else "lines"
        self._bar: Any = None

    def message(self, text: str) -> None:
        """A line (a skipped combination, a file written), above the bar if there is one."""
        if self.mode == "off":
            return
        if self._write_line is not None:
            self._write_line(text)
        elif self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def start(self, index: int, combo: Combo) -> None:
        """Row ``index`` (1-based) is about to be measured: the bar names it."""
        if self.mode != "bar":
            return
        if self._bar is not None:
            self._bar.set_description_str(combo.label(), refresh=True)
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.total, desc=combo.label(), initial=index - 1, file=self.stream,
            unit="row", leave=False, dynamic_ncols=True,
        )  # fmt: skip

    def finish(self, index: int, combo: Combo, row: dict[str, Any]) -> None:
        """Row ``index`` is done: its line, and the bar moves on."""
        self.message(f"[{index}/{self.total}] {combo.label()}: {row_summary(row)}")
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Remove the bar (the finished rows' lines stay)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def row_summary(row: dict[str, Any]) -> str:
    """``1.23 ms/batch, 812 samples/s``, the fit's metric and time, or the row's error."""
    if row.get("error"):
        return f"error: {row['error']}"
    if row["mode"] == "fit":
        return f"{row['metric_name']} {row['metric']:.4g} in {row['fit_seconds']:.3g} s"
    noisy = f" (noisy: {row['noise']})" if row.get("noisy") else ""
    return f"{row['latency_ms_median']:.4g} ms/batch, {row['samples_per_s']:.4g} samples/s{noisy}"
