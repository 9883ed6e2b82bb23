"""Training: the Trainer around the one train step, its settings, checkpoints, run directories.

The names below load on first use, so ``zoo train --help`` (which only needs
:class:`~zoo.train.config.TrainConfig`) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "FitResult": "zoo.train.trainer",
    "Run": "zoo.train.loggers",
    "Trainer": "zoo.train.trainer",
    "TrainConfig": "zoo.train.config",
    "TrainState": "zoo.train.config",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo.train' has no attribute {name!r}")
    return getattr(import_module(module), name)
