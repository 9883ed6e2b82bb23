"""The numeric precision of a run, as one object (after Lightning Fabric's ``Precision`` plugins).

``Precision("bf16", device)`` knows everything the training step and the evaluation loop do
differently per precision:

- :meth:`Precision.forward_context`: ``torch.autocast`` to bf16/fp16 around the forward pass
  (nothing for fp32); :meth:`Precision.convert_output` brings the output back to fp32 for the
  loss and the metrics.
- :meth:`Precision.backward` and :meth:`Precision.step`: the backward pass and
  ``optimizer.step()``, through a ``GradScaler`` for fp16 (scale, step, update).
- :meth:`Precision.state_dict` / :meth:`Precision.load_state_dict`: the scaler's state, for
  checkpoints (empty without a scaler).

fp16 needs a ``GradScaler`` and is supported on CUDA only; bf16 needs a GPU that has it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.runtime.device import parse_precision

__all__ = ["Precision"]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """``fp32``, ``bf16`` (autocast) or ``fp16`` (autocast + GradScaler) on one device.

    Args:
        name: a precision of the grammar (:func:`zoo.runtime.device.parse_precision`: ``fp32``,
            ``bf16``, ``fp16`` or an alias such as ``half``).
        device: where the model runs (a ``torch.device`` or its string).

    Raises:
        UsageError: an unknown name, fp16 off CUDA, or bf16 on a GPU without it (one line).
    """

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu"):
        self.name = parse_precision(name)
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if self.name == "bf16" and cuda and not torch.cuda.is_bf16_supported():
            gpu = torch.cuda.get_device_name(self.device)
            raise UsageError(f"precision bf16 is not supported by {gpu}")
        if self.name == "fp16" and not cuda:
            raise UsageError(
                f"precision fp16 needs a CUDA device (GradScaler), not {self.device.type}; "
                "use bf16 or fp32 there"
            )
        self.autocast_dtype: torch.dtype | None = _DTYPES[self.name]
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler("cuda") if self.name == "fp16" else None
        )

    def __repr__(self) -> str:
        return f"Precision({self.name!r}, {str(self.device)!r})"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the forward pass computes in (``torch.float32`` for fp32)."""
        return self.autocast_dtype or torch.float32

    def forward_context(self) -> AbstractContextManager[Any]:
        """``torch.autocast(device type, dtype)`` for bf16/fp16; a no-op context for fp32."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def convert_output(self, output: torch.Tensor) -> torch.Tensor:
        """The forward pass's output as fp32 (unchanged for fp32): losses and metrics run in fp32
        outside autocast (``BCELoss`` refuses to autocast)."""
        return output if self.autocast_dtype is None else output.float()

    def backward(self, tensor: torch.Tensor) -> None:
        """The backward pass from ``tensor`` (for fp16, from the GradScaler-scaled tensor)."""
        (tensor if self.scaler is None else self.scaler.scale(tensor)).backward()

    def clip(self, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
        """Clip the gradients of ``optimizer``'s parameters to total norm ``max_norm`` (for fp16,
        unscaled first, so the norm is the true one)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; for fp16 ``scaler.step(optimizer)`` then ``scaler.update()``
        (a step whose gradients overflowed is skipped and the scale lowered)."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The GradScaler's state (what a checkpoint keeps); ``{}`` without a scaler."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict` (an empty or missing state is ignored)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
