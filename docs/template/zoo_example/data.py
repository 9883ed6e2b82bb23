"""The dataset: ``rings(split)`` returns (X float32 (N, 2), y int64 (N,)), the same every call."""

import math

import torch


def rings(split: str, n: int = 600, noise: float = 0.15, seed: int = 0):
    if split not in ("train", "test"):
        raise ValueError(f"rings has splits train and test, not {split!r}")
    g = torch.Generator().manual_seed(seed)  # seeded: both loads of a split are identical
    y = torch.arange(n) % 3
    radius = 1.0 + y.float() + noise * torch.randn(n, generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    X = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    cut = int(0.8 * n)  # first 80% train, the rest test
    if split == "train":
        return X[:cut].float(), y[:cut].long()
    return X[cut:].float(), y[cut:].long()
