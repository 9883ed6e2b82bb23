"""The straight-line dataset of the original workflow."""

from __future__ import annotations

import torch

WEIGHT, BIAS = 0.7, 0.3


def line(split: str, start: float = 0.0, end: float = 1.0, step: float = 0.02):
    """``X = arange(start, end, step)`` as a column, ``y = 0.7 X + 0.3``; first 80% is train."""
    X = torch.arange(start, end, step).unsqueeze(1)
    y = WEIGHT * X[:, 0] + BIAS
    cut = int(0.8 * len(X))
    if split == "train":
        return X[:cut], y[:cut]
    if split == "test":
        return X[cut:], y[cut:]
    raise ValueError(f"line has splits train and test, not {split!r}")
