"""Wall-clock timing of a callable: warm-up, separated rounds of adaptive blocks, robust statistics.

The harness times ``fn`` the way ``torch.utils.benchmark.Timer.blocked_autorange`` does:
calls are grouped in blocks (about 10 ms each, shorter for a short ``min_run_time``) so the
timer's own cost is negligible and a block spans several scheduler time slices, and every
statistic (median, IQR, p90, p99) is over the per-call time of each block. ``sync``
(``torch.cuda.synchronize`` on CUDA) is called only before the clock starts and before it
stops, so queued GPU work is counted without serialising the launches inside a block.

The blocks are timed in several *rounds* separated by a short pause, each a share of
``min_run_time``. A machine whose load changes during the measurement (another process takes
the cores for a while) shows as rounds that disagree even when most blocks agree, which IQR
alone misses. A measurement is noisy when IQR / median or the spread of the round medians
(slowest / fastest - 1) exceeds :data:`NOISE_THRESHOLD`.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NOISE_THRESHOLD",
    "ROUNDS",
    "Measurement",
    "measure",
    "noise_reason",
    "quantile",
    "spread",
]

NOISE_THRESHOLD = 0.10  # IQR / median, or round-median spread, above this flags a measurement
ROUNDS = 4  # separated rounds of blocks per measurement
ROUND_GAP_SECONDS = 0.005  # pause between rounds (sleeping: the scheduler may run others)
BLOCK_SECONDS = 0.01  # target block length (torch.utils.benchmark's blocks end up ~10 ms too)
MIN_BLOCK_SECONDS = 1e-3


@dataclass(frozen=True)
class Measurement:
    """Per-call times (seconds) of one timed callable and their summary statistics.

    ``rounds`` holds how many of ``times`` (in order) each separated round timed; by default
    all of them are one round.
    """

    times: tuple[float, ...]
    block: int  # calls per timed block
    rounds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.rounds:
            object.__setattr__(self, "rounds", (len(self.times),))
        if sum(self.rounds) != len(self.times) or min(self.rounds) < 1:
            raise ValueError(f"rounds {self.rounds} do not split {len(self.times)} times")

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
    def round_medians(self) -> tuple[float, ...]:
        """The median per-call time (s) of each round."""
        out, start = [], 0
        for n in self.rounds:
            out.append(statistics.median(self.times[start : start + n]))
            start += n
        return tuple(out)

    @property
    def round_spread(self) -> float:
        """Slowest / fastest round median - 1 (0 for a single round)."""
        return spread(self.round_medians)

    @property
    def noise(self) -> str | None:
        """Why the measurement is noisy (``None`` when it is not): see :func:`noise_reason`."""
        return noise_reason(self.relative_iqr, self.round_spread)

    @property
    def noisy(self) -> bool:
        """``True`` when IQR / median or the round spread exceeds :data:`NOISE_THRESHOLD`."""
        return self.noise is not None

    def to_dict(self) -> dict[str, Any]:
        """The times, the block size, the rounds and the summary statistics."""
        return {
            "times": list(self.times),
            "block": self.block,
            "rounds": list(self.rounds),
            "median": self.median,
            "iqr": self.iqr,
            "p90": self.p90,
            "p99": self.p99,
            "samples": len(self.times),
            "round_medians": list(self.round_medians),
            "round_spread": self.round_spread,
            "noise": self.noise,
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


def spread(values: Sequence[float]) -> float:
    """``max / min - 1`` of positive values: how far the slowest is above the fastest (0 for
    fewer than two values or a non-positive minimum)."""
    if len(values) < 2 or min(values) <= 0:
        return 0.0
    return max(values) / min(values) - 1


def noise_reason(relative_iqr: float | None, round_spread: float | None) -> str | None:
    """``"rounds disagree by 35%"`` / ``"IQR 14% of median"`` when above
    :data:`NOISE_THRESHOLD`, else ``None`` (a missing figure counts as quiet)."""
    reasons = []
    if round_spread is not None and round_spread > NOISE_THRESHOLD:
        reasons.append(f"rounds disagree by {round_spread:.0%}")
    if relative_iqr is not None and relative_iqr > NOISE_THRESHOLD:
        reasons.append(f"IQR {relative_iqr:.0%} of median")
    return "; ".join(reasons) or None


def _nothing() -> None:
    return None


def measure(
    fn: Callable[[], Any],
    *,
    min_run_time: float = 0.2,
    warmup: float | None = None,
    min_samples: int = 5,
    max_run_time: float | None = None,
    rounds: int = ROUNDS,
    sync: Callable[[], Any] = _nothing,
) -> Measurement:
    """Time ``fn()``: warm up, pick a block size, then time ``rounds`` separated rounds of
    blocks for ``min_run_time`` s in all.

    ``warmup`` (seconds, default a quarter of ``min_run_time``) runs ``fn`` at least twice
    before anything is recorded. Each round times at least ``min_samples / rounds`` blocks and
    ``min_run_time / rounds`` seconds, then pauses briefly; a callable so slow that
    ``max_run_time`` (default ``10 * min_run_time``, at least 2 s) passes stops after two
    samples, with the rounds it got to.
    """
    if min_run_time <= 0:
        raise ValueError("min_run_time must be positive")
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
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
    round_time = min_run_time / rounds
    round_samples = max(1, math.ceil(min_samples / rounds))

    times: list[float] = []
    counts: list[int] = []
    total = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collector pauses inside a timed block
    try:
        out_of_time = False
        for r in range(rounds):
            if r:
                time.sleep(ROUND_GAP_SECONDS)
            n = 0
            spent = 0.0
            while True:
                sync()
                t0 = clock()
                for _ in range(block):
                    fn()
                sync()
                dt = clock() - t0
                times.append(dt / block)
                n += 1
                spent += dt
                total += dt
                if len(times) >= 2 and total >= max_run_time:
                    out_of_time = True
                    break
                if n >= round_samples and spent >= round_time:
                    break
            counts.append(n)
            if out_of_time:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(times=tuple(times), block=block, rounds=tuple(counts))
