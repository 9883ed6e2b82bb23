"""What a benchmark row records about where it ran: devices, environment, peak memory.

Device strings are checked here without touching torch's device state: an unknown device is a
usage error, a known one that this machine lacks (``cuda`` without a GPU) is *absent* and the
harness skips it with a note.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_FORMS = "cpu, cuda, cuda:N, mps or auto"
_DEVICE = re.compile(r"^(cpu|mps|auto|cuda(?::\d+)?)$")

PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_PRECISION_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
}


def parse_device(text: str) -> str:
    """Canonical device (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``auto``), else a UsageError."""
    value = text.strip().lower()
    if not _DEVICE.match(value):
        raise UsageError(f"unknown device {text!r}; use {DEVICE_FORMS}")
    return value


def resolve_auto(device: str) -> str:
    """``auto`` -> the best device here (cuda > mps > cpu); anything else unchanged."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def absent_reason(device: str) -> str | None:
    """Why a well-formed device cannot be used on this machine, or ``None`` when it can."""
    from zoo.runtime.device import resolve_device

    try:
        resolve_device(device)
    except UsageError as exc:
        return str(exc)
    return None


def precision_reason(precision: str, device: str) -> str | None:
    """Why ``precision`` cannot run on ``device`` (the trainer's rule: fp16 needs CUDA)."""
    import torch

    from zoo.runtime.device import resolve_precision

    try:
        resolve_precision(precision, torch.device(device))
    except UsageError as exc:
        return str(exc)
    return None


def parse_precision(text: str) -> str:
    """``fp32`` / ``bf16`` / ``fp16`` (aliases such as ``bfloat16`` accepted) or a UsageError."""
    value = text.strip().lower()
    value = _PRECISION_ALIASES.get(value, value)
    if value not in PRECISIONS:
        raise UsageError(f"unknown precision {text!r}; use one of {', '.join(PRECISIONS)}")
    return value


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
