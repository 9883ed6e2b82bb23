"""A model with its recorded standardisation around it: what ``zoo export --format onnx
--include-transform`` puts in the graph (:mod:`zoo.weights.onnx_export`)."""

from __future__ import annotations

import torch

from zoo.weights.preprocess import Transform

__all__ = ["Standardised"]


class Standardised(torch.nn.Module):
    """``model((x - mean) / std)``, then ``* target_std + target_mean`` where the targets
    were standardised: raw inputs in, values in the target's own units out.

    Args:
        model: the model, taking standardised inputs.
        transform: the recorded transform (its statistics become float32 buffers).
        shape: the shape the statistics broadcast in over one sample, ``(F,)`` for features
            or ``(C, 1, 1)`` for images.
    """

    def __init__(self, model: torch.nn.Module, transform: Transform, shape: tuple[int, ...]):
        super().__init__()
        self.model = model
        f32 = torch.float32
        self.register_buffer("mean", torch.tensor(transform.mean, dtype=f32).reshape(shape))
        self.register_buffer("std", torch.tensor(transform.std, dtype=f32).reshape(shape))
        self.target = transform.target_recorded
        if self.target:
            self.register_buffer("target_mean", torch.tensor(transform.target_mean, dtype=f32))
            self.register_buffer("target_std", torch.tensor(transform.target_std, dtype=f32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model((x - self.mean) / self.std)
        if self.target:
            out = out * self.target_std + self.target_mean
        return out
