"""Wall-clock timing of a callable: warm-up, adaptive blocks, robust statistics.

The harness times ``fn`` the way ``torch.utils.benchmark.Timer.blocked_autorange`` does:
calls are grouped in blocks (about 10 ms each, shorter for a short ``min_run_time``) so the
timer's own cost is negligible and a block spans several scheduler time slices, blocks are
repeated until ``min_run_time`` seconds are spent, and every statistic (median, IQR, p90,
p99) is over the per-call time of each block. ``sync`` (``torch.cuda.synchronize`` on CUDA)
is called only before the clock starts and before it stops, so queued GPU work is counted
without serialising the launches inside a block.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["NOISE_THRESHOLD", "Measurement", "measure", "quantile"]

NOISE_THRESHOLD = 0.10  # IQR / median above this flags a measurement as noisy
BLOCK_SECONDS = 0.01  # target block length (torch.utils.benchmark's blocks end up ~10 ms too)
MIN_BLOCK_SECONDS = 1e-3


@dataclass(frozen=True)
class Measurement:
    """Per-call times (seconds) of one timed callable and their summary statistics."""

    times: tuple[float, ...]
    block: int  # calls per timed block

    @property
    def median(self) -> float:
        """Median per-call time (s)."""
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        """Interquartile range of the per-call times (s)."""
        return quantile(self.times, 0.75) - quantile(self.times, 0.25)

    @property
    def p90(self) -> float:
        """90th percentile of the per-call times (s)."""
        return quantile(self.times, 0.90)

    @property
    def p99(self) -> float:
        """99th percentile of the per-call times (s)."""
        return quantile(self.times, 0.99)

    @property
    def relative_iqr(self) -> float:
        """IQR / median (0 for a zero median)."""
        return self.iqr / self.median if self.median > 0 else 0.0

    @property
    def noisy(self) -> bool:
        """``True`` when IQR / median exceeds 10%."""
        return self.relative_iqr > NOISE_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        """The times, the block size and the summary statistics."""
        return {
            **asdict(self),
            "median": self.median,
            "iqr": self.iqr,
            "p90": self.p90,
            "p99": self.p99,
            "samples": len(self.times),
            "noisy": self.noisy,
        }


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), ``0 <= q <= 1``."""
    data = sorted(values)
    if not data:
        raise ValueError("quantile of no values")
    pos = (len(data) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _nothing() -> None:
    return None


def measure(
    fn: Callable[[], Any],
    *,
    min_run_time: float = 0.2,
    warmup: float | None = None,
    min_samples: int = 5,
    max_run_time: float | None = None,
    sync: Callable[[], Any] = _nothing,
) -> Measurement:
    """Time ``fn()``: warm up, pick a block size, then time blocks for ``min_run_time`` s.

    ``warmup`` (seconds, default a quarter of ``min_run_time``) runs ``fn`` at least twice
    before anything is recorded. At least ``min_samples`` blocks are timed, but a callable so
    slow that ``max_run_time`` (default ``10 * min_run_time``, at least 2 s) passes stops
    after two samples.
    """
    if min_run_time <= 0:
        raise ValueError("min_run_time must be positive")
    warmup = min_run_time / 4 if warmup is None else warmup
    max_run_time = max(10 * min_run_time, 2.0) if max_run_time is None else max_run_time
    clock = time.perf_counter

    # Warm-up; also estimates the time of one call.
    sync()
    start = clock()
    calls = 0
    while True:
        fn()
        calls += 1
        sync()
        elapsed = clock() - start
        if calls >= 2 and elapsed >= warmup:
            break
    per_call = elapsed / calls
    target = min(BLOCK_SECONDS, max(MIN_BLOCK_SECONDS, min_run_time / 20))
    block = max(1, math.ceil(target / per_call)) if per_call > 0 else 1000

    times: list[float] = []
    total = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collector pauses inside a timed block
    try:
        while True:
            sync()
            t0 = clock()
            for _ in range(block):
                fn()
            sync()
            dt = clock() - t0
            times.append(dt / block)
            total += dt
            if len(times) >= min_samples and total >= min_run_time:
                break
            if len(times) >= 2 and total >= max_run_time:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(times=tuple(times), block=block)
