"""Device and precision resolution: ``auto`` picks cuda > mps > cpu; unavailable ones are refused.

``resolve_precision`` turns ``fp32`` / ``bf16`` / ``fp16`` into what the training step needs:
an autocast dtype (or ``None`` for plain fp32) and whether a ``GradScaler`` is used (fp16 on
CUDA only).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from zoo.errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (cuda > mps > cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a ``torch.device``.

    Raises :class:`UsageError` for an unknown spelling or a device this machine does not have.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    spec = str(name).strip().lower()
    match = _DEVICE.match(spec)
    if not match:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if index is not None:
            raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise UsageError("device 'mps' is not available on this machine (try --device cpu)")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} is not available: no CUDA GPU (try --device cpu)")
    count = torch.cuda.device_count()
    i = int(index) if index is not None else torch.cuda.current_device()
    if i >= count:
        raise UsageError(f"device {spec!r} is not available: this machine has {count} CUDA GPU(s)")
    return torch.device("cuda", i)


def resolve_precision(name: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use GradScaler)`` for ``fp32``, ``bf16`` or ``fp16``.

    fp16 needs a GradScaler and is supported on CUDA only; elsewhere it is a :class:`UsageError`.
    """
    import torch

    spec = str(name).strip().lower()
    if spec in ("fp32", "float32", "32"):
        return None, False
    if spec in ("bf16", "bfloat16"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UsageError(
                f"precision bf16 is not supported by {torch.cuda.get_device_name(device)}"
            )
        return torch.bfloat16, False
    if spec in ("fp16", "float16", "16"):
        if device.type != "cuda":
            raise UsageError(
                f"precision fp16 needs a CUDA device (GradScaler), not {device.type}; "
                "use bf16 or fp32 there"
            )
        return torch.float16, True
    raise UsageError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")


def device_name(device: torch.device) -> str:
    """A human name for the device: the GPU's product name, else the CPU's."""
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return _cpu_name() or platform.processor() or platform.machine()


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
