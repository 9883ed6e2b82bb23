"""What a ``RUN|WEIGHTS`` argument names: a run directory's files, or a weights file.

``zoo evaluate``, ``predict``, ``export`` and ``publish`` take either; this module is the one
reader of a run directory's layout (the trainer's :mod:`zoo.train.rundir` writes it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["MAX_RUN_JSON", "RECIPE", "RUN_JSON", "WEIGHTS", "read_run_json", "resolve_weights"]

RUN_JSON = "run.json"
RUN_JSON_MAX = 64 << 20  # a run.json holds settings and per-epoch history: a few KB to MB
WEIGHTS = "model.safetensors"
RECIPE = "recipe.toml"
MAX_RUN_JSON = 16 * 1024 * 1024  # bytes of a run.json zoo reads


def resolve_weights(source: str | os.PathLike) -> Path:
    """A run directory's ``model.safetensors``, or ``source`` itself when it is a file."""
    from zoo.errors import UsageError

    path = Path(source)
    if path.is_dir():
        weights = path / WEIGHTS
        if not weights.is_file():
            unfinished = (path / "checkpoint").exists()
            hint = " (the run has not finished; resume it first)" if unfinished else ""
            raise UsageError(f"{path} holds no {WEIGHTS}{hint}")
        return weights
    if not path.is_file():
        raise UsageError(f"{source} is neither a run directory nor a weights file")
    return path


def read_run_json(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run's ``run.json``; a corrupt or unreadable file is a one-line error naming it."""
    from zoo._util.jsonio import JSONLimitError, read_json
    from zoo.errors import UsageError

    path = Path(run_dir) / RUN_JSON
    try:
        data = read_json(path, max_bytes=MAX_RUN_JSON)
    except JSONLimitError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a JSON object")
    return data
