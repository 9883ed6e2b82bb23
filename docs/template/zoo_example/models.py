"""The model: zoo passes in_features and num_classes from the dataset it is built for."""

import torch
from torch import nn


class Block(nn.Module):
    """x + ReLU(Linear(LayerNorm(x)))."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.fc(self.norm(x)))


class ResMLP(nn.Module):
    """Stem, ``depth`` residual blocks of ``width`` units, linear head: (N, F) -> (N, K)."""

    def __init__(self, in_features: int, num_classes: int = 1, width: int = 32, depth: int = 2):
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
