"""The work of a row: FLOPs counted by ``torch.utils.flop_counter`` and the device's peak.

FLOPs are what :class:`torch.utils.flop_counter.FlopCounterMode` counts for one call (matrix
multiplies, convolutions, attention; elementwise ops are not counted, as in timm and fvcore);
MACs are FLOPs / 2. ``infer`` counts the forward pass, ``train`` forward + loss + backward
(the optimizer's update is elementwise and not counted). Known limit of the counter (torch
2.14): the backward of a grouped convolution is counted as if ungrouped (a depthwise 3x3 conv
of 64 channels: backward = 65 x forward), so ``train`` FLOPs of depthwise models
(MobileNet, EfficientNet) are overstated; forward counts are exact.

:data:`PEAK_TFLOPS` is the dense (no sparsity) peak of known NVIDIA devices per dtype, from
NVIDIA's data sheets (SXM parts unless the name says PCIe); ``fp32`` rows use the ``tf32``
peak when torch lets float32 matmuls use TF32.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, one_line

if TYPE_CHECKING:
    import torch

__all__ = [
    "PEAK_TFLOPS",
    "count_flops",
    "layer_errors",
    "peak_dtype",
    "peak_fraction",
    "peak_tflops",
]

#: device-name fragment (matched in order, case-insensitive) -> dtype -> dense peak TFLOP/s
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
    "T4": {"fp32": 8.1, "fp16": 65.0},
}


def count_flops(fn: Callable[[], Any]) -> int:
    """The FLOPs ``FlopCounterMode`` counts while ``fn()`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_dtype(precision: str, device_type: str) -> str:
    """The dtype whose peak applies: the precision, or ``tf32`` for fp32 CUDA matmuls that
    torch lets use TF32 (``torch.backends.cuda.matmul.allow_tf32``)."""
    if precision == "fp32" and device_type == "cuda":
        import torch

        if torch.backends.cuda.matmul.allow_tf32:
            return "tf32"
    return precision


def peak_tflops(device_name: str | None, dtype: str) -> float | None:
    """The table's peak TFLOP/s for a device name and dtype (``None`` if unknown)."""
    if not device_name:
        return None
    for fragment, peaks in PEAK_TFLOPS.items():
        if re.search(rf"\b{re.escape(fragment)}\b", device_name, re.IGNORECASE):
            return peaks.get(dtype)
    return None


def peak_fraction(device_name: str | None, dtype: str, flops_per_s: float | None) -> float | None:
    """Achieved FLOP/s as a fraction of the device's peak for ``dtype`` (``None`` if unknown)."""
    peak = peak_tflops(device_name, dtype)
    if peak is None or not flops_per_s:
        return None
    return flops_per_s / (peak * 1e12)


@contextmanager
def layer_errors(model: torch.nn.Module, what: str) -> Iterator[None]:
    """Re-raise a failure inside ``model``'s forward as one :class:`ZooError` line naming
    ``what`` (the model and its input) and the innermost layer that failed."""
    stack: list[str] = []

    def enter(name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any) -> None:
            stack.append(f"{name or 'top'} ({type(module).__name__})")

        return hook

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    except Exception as exc:
        where = f" at layer {stack[-1]}" if stack else ""
        raise ZooError(f"{what} fails{where}: {one_line(exc, typed=True)}") from exc
    finally:
        for handle in handles:
            handle.remove()
