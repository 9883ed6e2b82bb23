"""Weights files: safetensors export and load (rebuilding the model from metadata), ONNX export."""

from zoo.weights.files import (
    FORMAT,
    export,
    load,
    load_weights,
    read_header,
    read_metadata,
    split_shared,
)

__all__ = [
    "FORMAT",
    "export",
    "load",
    "load_weights",
    "read_header",
    "read_metadata",
    "split_shared",
]
