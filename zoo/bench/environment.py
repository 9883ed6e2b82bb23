"""What a benchmark row records about where it ran: the environment, a device synchroniser
and peak memory. (Device and precision spellings are :mod:`zoo.runtime.device`'s grammar, the
same as the trainer's.)
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["MemoryProbe", "environment", "synchronizer"]


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A no-argument function that waits for queued work on ``device`` (no-op on CPU)."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


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
    """Peak memory over a piece of work.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak. CPU: growth of the
    process's peak resident set size over the RSS at the start (``/proc/self/status``), so
    allocator caches kept from an earlier combination count as zero growth; ``--isolate``
    gives each combination a fresh process.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss_growth"
        self._start = 0
        self._can_reset = False

    def __enter__(self) -> MemoryProbe:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._can_reset = _reset_peak_rss()
            self._start = _proc_status().get("VmRSS", 0)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peak(self) -> int | None:
        """Peak bytes since ``__enter__`` (``None`` where the platform cannot tell)."""
        if self.device.type == "cuda":
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        status = _proc_status()
        if not status:
            return None
        top = status.get("VmHWM", 0) if self._can_reset else status.get("VmRSS", 0)
        return max(0, top - self._start)
