"""Weights files: safetensors export and load (rebuilding the model from metadata), ONNX export.

The names below load on first use: :mod:`zoo.weights.source` (what a ``RUN|WEIGHTS`` argument
names) stays importable without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "FORMAT",
    "FORMATS",
    "export",
    "load",
    "load_weights",
    "read_header",
    "read_metadata",
    "read_pins",
    "split_shared",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'zoo.weights' has no attribute {name!r}")
    module = "zoo.weights.loading" if name == "load" else "zoo.weights.files"
    return getattr(import_module(module), name)
