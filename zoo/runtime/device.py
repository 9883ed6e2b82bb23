"""The one device and precision grammar, shared by the trainer, ``zoo bench`` and evaluation.

Devices: ``auto`` (cuda > mps > cpu), ``cpu``, ``cpu:N``, ``cuda``, ``cuda:N``, ``mps`` (and
``mps:N``). :func:`parse_device` checks the spelling only and gives the canonical string
(``cpu:0`` -> ``cpu``, ``CUDA:1`` -> ``cuda:1``); :func:`resolve_device` also checks that this
machine has the device and returns a ``torch.device``. Both raise a one-line
:class:`~zoo.errors.UsageError`.

Precisions: ``fp32`` (``float32``, ``float``, ``32``), ``bf16`` (``bfloat16``) and ``fp16``
(``float16``, ``16``, ``half``); :func:`parse_precision` gives the canonical name.
:class:`zoo.runtime.precision.Precision` turns a name and a device into what a training step
needs (autocast dtype, GradScaler).

Parsing imports nothing heavy (``zoo bench`` validates its grid before torch is imported);
torch is imported by the functions that look at the machine.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from zoo.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "synchronize",
    "DEVICE_FORMS",
    "PRECISIONS",
    "PRECISION_ALIASES",
    "PRECISION_DTYPES",
    "best_device",
    "device_name",
    "parse_device",
    "parse_precision",
    "resolve_device",
    "unavailable_reason",
]

DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")

PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
PRECISION_ALIASES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "32": "fp32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "16": "fp16",
    "half": "fp16",
}


def _split(text: str | torch.device) -> tuple[str, int | None]:
    """``(kind, index or None)`` of a device spelling; a UsageError for anything else."""
    spec = str(text).strip().lower()
    match = _DEVICE.match(spec)
    if not match or (match.group(1) == "auto" and match.group(2) is not None):
        raise UsageError(f"unknown device {str(text)!r}; use {DEVICE_FORMS}")
    index = match.group(2)
    return match.group(1), None if index is None else int(index)


def parse_device(text: str | torch.device) -> str:
    """The canonical spelling of a device (syntax only: availability is not checked).

    ``cpu:0`` and ``mps:0`` become ``cpu`` and ``mps`` (there is one of each); ``cuda`` (the
    current GPU) and ``cuda:0`` stay apart.

    Raises:
        UsageError: for anything outside the grammar (``unknown device 'tpu'; use ...``).
    """
    kind, index = _split(text)
    if index is None or (kind in ("cpu", "mps") and index == 0):
        return kind
    return f"{kind}:{index}"


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def best_device() -> str:
    """What ``auto`` means on this machine: ``cuda`` > ``mps`` > ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for a spelling of the grammar, if this machine has it.

    ``auto`` is :func:`best_device`; ``cuda`` is the current CUDA device (with its index).

    Raises:
        UsageError: an unknown spelling, or a device this machine does not have (one line).
    """
    import torch

    kind, index = _split(name)
    spec = parse_device(name)
    if kind == "auto":
        kind = best_device()
    if kind == "cpu":
        if index:
            raise UsageError(f"device {spec!r} is not available: the CPU is one device, cpu:0")
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise UsageError("device 'mps' is not available on this machine (try --device cpu)")
        if index:
            raise UsageError(f"device {spec!r} is not available: there is one MPS device, mps:0")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} is not available: no CUDA GPU (try --device cpu)")
    count = torch.cuda.device_count()
    i = index if index is not None else torch.cuda.current_device()
    if i >= count:
        raise UsageError(f"device {spec!r} is not available: this machine has {count} CUDA GPU(s)")
    return torch.device("cuda", i)


def unavailable_reason(name: str | torch.device) -> str | None:
    """Why a device cannot be used on this machine (the :func:`resolve_device` error), or
    ``None`` when it can."""
    try:
        resolve_device(name)
    except UsageError as exc:
        return str(exc)
    return None


def parse_precision(text: str) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for any alias of the table (case-insensitive).

    Raises:
        UsageError: ``unknown precision 'fp8'; use one of fp32, bf16, fp16``.
    """
    name = PRECISION_ALIASES.get(str(text).strip().lower())
    if name is None:
        raise UsageError(f"unknown precision {str(text)!r}; use one of {', '.join(PRECISIONS)}")
    return name


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


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU): before reading a clock."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
