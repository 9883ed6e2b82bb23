"""Models of the classic workflow."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LinearRegression(nn.Module):
    """``y = weight * x + bias`` with ``weight`` and ``bias`` as raw ``nn.Parameter``.

    With several features the products are summed, so ``in_features=1`` is exactly the
    original workflow's model.
    """

    def __init__(self, in_features: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_features))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weight * x).sum(dim=-1, keepdim=True) + self.bias


class Linear(nn.Module):
    """One ``nn.Linear``: linear regression, logistic regression or softmax regression."""

    def __init__(self, in_features: int, num_classes: int = 1):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """``Linear -> ReLU`` blocks of the given hidden sizes, then a linear head."""

    def __init__(
        self,
        in_features: int,
        num_classes: int = 1,
        hidden: int | Sequence[int] = (64, 64),
        dropout: float = 0.0,
    ):
        super().__init__()
        sizes = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        width = in_features
        for size in sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
