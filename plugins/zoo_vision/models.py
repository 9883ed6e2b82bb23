"""The course's computer-vision models; each adapts to channels, image size and classes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)


class FashionV0(nn.Module):
    """Flatten, then two linear layers (no non-linearity): the course's baseline."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 10):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class FashionV1(nn.Module):
    """Flatten, then linear layers with ReLU between and after."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 10):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TinyVGG(nn.Module):
    """Two blocks of (conv3x3 -> ReLU -> conv3x3 -> ReLU -> maxpool2), then a linear head.

    Each block halves height and width, so the head sees ``hidden * (H // 4) * (W // 4)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int | Sequence[int] = 28,
        hidden: int = 10,
    ):
        super().__init__()
        h, w = _hw(image_size)
        if h < 4 or w < 4:
            raise ValueError(f"TinyVGG needs images of at least 4x4, got {h}x{w}")

        def block(c_in: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, hidden, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(hidden, hidden, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.block_1 = block(in_channels)
        self.block_2 = block(hidden)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(hidden * (h // 4) * (w // 4), num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block_2(self.block_1(x)))
