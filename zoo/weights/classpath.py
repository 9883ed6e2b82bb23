"""Modules zoo did not build: their class path and kwargs, recorded at export.

A model given to ``zoo.export`` or ``zoo.Trainer`` as a plain ``nn.Module`` names no model
entry. When its class can be found again by name (``package.module:Class``, not defined in
``__main__`` or inside a function) and its constructor's kwargs are known, the file records
both (``model_class``, ``kwargs``), so :func:`zoo.load` can rebuild it.

A file is data, never instructions: ``zoo.load`` never imports the module a file names. It
builds the class only when the user's own code has already imported that module (it is in
``sys.modules``), looked up without running any module ``__getattr__``; otherwise one line
says what to import, or to build the model and call ``zoo.weights.load_weights``.

kwargs are known when given (``zoo.export(..., model_kwargs=...)``), when the module carries
Lightning's ``hparams`` mapping, or when the constructor takes no arguments.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Mapping
from typing import Any

import torch

from zoo.errors import WeightsError

__all__ = ["class_path", "find_loaded_class", "known_kwargs"]

#: ``package.module:Outer.Inner``: identifiers only (what a file may name).
CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
MAX_CLASS_PATH = 300  # characters


def class_path(model: torch.nn.Module) -> tuple[str | None, str]:
    """``("module:QualName", "")`` for a class importable by name, else ``(None, why not)``."""
    cls = type(model)
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__":
        return None, f"its class {qualname} is defined in __main__"
    if "<locals>" in qualname:
        return (
            None,
            f"its class {qualname.split('.<locals>')[0]}.<locals>... is defined inside a function",
        )
    return f"{module}:{qualname}", ""


def known_kwargs(
    model: torch.nn.Module, given: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    """The constructor kwargs to record: ``given``, else Lightning's ``hparams``, else ``{}``
    when the constructor takes no arguments at all; ``(None, why not)`` otherwise (defaults
    are not assumed: a module built with ``dropout=0.5`` must not come back with 0.1)."""
    if given is not None:
        return dict(given), ""
    hparams = getattr(model, "hparams", None)
    if isinstance(hparams, Mapping):
        return dict(hparams), ""
    try:
        params = list(inspect.signature(type(model)).parameters.values())
    except (TypeError, ValueError):
        return None, "its constructor has no signature"
    if params:
        names = ", ".join(("*" if p.kind is p.VAR_POSITIONAL else "") + p.name for p in params)
        return None, f"its constructor takes {names} (give model_kwargs=...)"
    return {}, ""


def find_loaded_class(path_text: Any, source: str) -> type[torch.nn.Module]:
    """The ``nn.Module`` subclass a file's ``model_class`` names, from a module the process
    has already imported; a one-line :class:`~zoo.errors.WeightsError` otherwise."""
    if (
        not isinstance(path_text, str)
        or len(path_text) > MAX_CLASS_PATH
        or not CLASS_PATH.fullmatch(path_text)
    ):
        raise WeightsError(f"{source}: metadata field 'model_class' is not a class path")
    module_name, qualname = path_text.split(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise WeightsError(
            f"{source} holds a {path_text} that zoo did not build; zoo never imports code a "
            f"file names: import {module_name} first, or build the model and use "
            "zoo.weights.load_weights(model, path)"
        )
    found: Any = module
    for part in qualname.split("."):
        found = vars(found).get(part) if hasattr(found, "__dict__") else None
        if found is None:
            break
    if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        raise WeightsError(f"{source}: {path_text} is not an nn.Module class in {module_name}")
    return found
