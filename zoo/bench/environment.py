"""What a benchmark row records about where it ran: the environment, a device synchroniser
and peak memory. (Device and precision spellings are :mod:`zoo.runtime.device`'s grammar, the
same as the trainer's.)
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zoo.runtime.device import synchronize

if TYPE_CHECKING:
    import torch

__all__ = [
    "MemoryProbe",
    "environment",
    "peak_of_allocations",
    "process_peak_rss",
    "synchronizer",
]


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A no-argument function that waits for queued work on ``device`` (no-op on CPU)."""
    return functools.partial(synchronize, device)


def environment() -> dict[str, Any]:
    """The run's environment: versions, machine, threads, visible accelerators."""
    import torch

    import zoo
    from zoo.runtime.device import device_name

    env: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "zoo_version": zoo.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "executable": sys.executable,
        "cpu": device_name(torch.device("cpu")),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda_version": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [],
    }
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["cudnn_version"] = torch.backends.cudnn.version()
    return env


# -- peak memory -----------------------------------------------------------------------------


def process_peak_rss() -> int | None:
    """This process's peak resident set size in bytes (VmHWM; ``None`` off Linux)."""
    return _proc_status().get("VmHWM")


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process in bytes, from /proc (Linux)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ``clear_refs`` value 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class MemoryProbe:
    """Peak bytes torch allocated over a piece of work, the same whatever ran before it.

    CUDA (``cuda_max_allocated``): ``torch.cuda.max_memory_allocated`` after
    ``reset_peak_memory_stats``. CPU (``cpu_allocated_peak``): ``torch.profiler`` with
    ``profile_memory=True`` records every allocation and free of torch's CPU allocator inside
    the block; the peak of the running sum of the block's own allocations is the figure (frees
    of memory allocated before the block are not counted). Other devices (``rss_growth``): the
    growth of the process's peak RSS, which depends on what ran before. Keep the block short:
    the profiler records every operator.
    """

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            self.kind = "cuda_max_allocated"
        elif device.type == "cpu":
            self.kind = "cpu_allocated_peak"
        else:
            self.kind = "rss_growth"
        self._start = 0
        self._can_reset = False
        self._profiler: Any = None
        self._cpu_peak: int | None = None

    def __enter__(self) -> MemoryProbe:
        import gc

        import torch

        gc.collect()  # garbage of earlier work is freed now, not inside the block
        if self.kind == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == "cpu_allocated_peak":
            from torch.profiler import ProfilerActivity, profile

            self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            try:
                with _quiet_kineto():
                    self._profiler.__enter__()
            except RuntimeError:  # another profiler is running: no figure rather than a wrong one
                self._profiler = None
        else:
            self._can_reset = _reset_peak_rss()
            self._start = _proc_status().get("VmRSS", 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._profiler is not None:
            profiler, self._profiler = self._profiler, None
            with _quiet_kineto():
                profiler.__exit__(None, None, None)
            results = profiler.profiler.kineto_results if profiler.profiler else None
            if results is not None:
                self._cpu_peak = peak_of_allocations(_cpu_allocations(results))
        return None

    def peak(self) -> int | None:
        """Peak bytes of the block (``None`` where the platform cannot tell)."""
        if self.kind == "cuda_max_allocated":
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        if self.kind == "cpu_allocated_peak":
            return self._cpu_peak
        status = _proc_status()
        if not status:
            return None
        top = status.get("VmHWM", 0) if self._can_reset else status.get("VmRSS", 0)
        return max(0, top - self._start)


@contextmanager
def _quiet_kineto() -> Iterator[None]:
    """Keep the profiler backend's start/stop lines off stderr (``KINETO_LOG_LEVEL``, unless
    the user set it), for this block only."""
    if "KINETO_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["KINETO_LOG_LEVEL"] = "6"  # above every level kineto logs at
    try:
        yield
    finally:
        os.environ.pop("KINETO_LOG_LEVEL", None)


def _cpu_allocations(results: Any) -> list[tuple[int, int, int]]:
    """(time ns, signed bytes, address) of each CPU allocation event of a profiler result."""
    from torch._C._profiler import _EventType

    out = []
    stack = list(reversed(results.experimental_event_tree()))  # depth-first, in order
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.children))
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            if fields.device.type == "cpu":
                out.append((node.start_time_ns, int(fields.alloc_size), int(fields.ptr)))
    return out


def peak_of_allocations(events: list[tuple[int, int, int]]) -> int:
    """The highest total of live bytes over ``(time, signed bytes, address)`` events.

    Counting starts at zero; a free (negative bytes) counts only for an address allocated
    within the events, so memory that existed before, or a free reported with a stale size,
    never lowers the figure.
    """
    live: dict[int, int] = {}
    total = peak = 0
    for _, size, ptr in sorted(events, key=lambda e: e[0]):  # stable: ties keep their order
        if size > 0:
            total += size - live.get(ptr, 0)  # an address reused without a reported free
            live[ptr] = size
            peak = max(peak, total)
        elif ptr in live:
            total -= live.pop(ptr)
    return peak
