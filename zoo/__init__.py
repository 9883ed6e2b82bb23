"""zoo: a plugin-based PyTorch model zoo.

``import zoo`` is light: the public API below is resolved lazily on first attribute access,
so neither torch nor any plugin is imported until it is needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from zoo.registry.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "list_models": "zoo.api",
    "list_losses": "zoo.api",
    "list_datasets": "zoo.api",
    "list_pretrained": "zoo.api",
    "info": "zoo.api",
    "create_model": "zoo.api",
    "create_loss": "zoo.api",
    "load_dataset": "zoo.api",
    "evaluate": "zoo.api",
    "predict": "zoo.api",
    "transforms": "zoo.api",
    "Trainer": "zoo.train",
    "bench": "zoo.bench",
    "export": "zoo.weights",
    "load": "zoo.weights",
    "fetch": "zoo.hub",
    "ZooError": "zoo.errors",
    "UsageError": "zoo.errors",
}

__all__ = ["hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
