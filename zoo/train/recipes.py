"""Training recipes: a TOML file holding the same settings as ``zoo train``'s flags.

```toml
model = "tinyvgg"
dataset = "digits"
epochs = 5
optimizer = "adam"
lr = 0.001
batch_size = 32
seed = 0

[model_kwargs]        # like --model-arg hidden=16
hidden = 16

[expect]              # informational: what the recipe is known to reach
accuracy = 0.95
```

The settings are the fields of :class:`zoo.train.config.TrainConfig`, with the types its
annotations give. Keys may be written with ``-`` or ``_`` (``batch-size`` = ``batch_size``;
``model_args`` = ``model_kwargs``). Settings may also sit in a ``[train]`` table. Informational
keys (``name``, ``description``, ``expect``, ...) are returned separately and never change
training. Flags given on the command line override the recipe.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo.train.config import TrainConfig

__all__ = ["ALIASES", "INFO_KEYS", "load_recipe", "parse_recipe"]

INFO_KEYS = (
    "name",
    "tag",
    "description",
    "summary",
    "license",
    "notes",
    "expect",
    "metrics",
    "version",
)
ALIASES = {
    "model_args": "model_kwargs",
    "loss_args": "loss_kwargs",
    "dataset_args": "dataset_kwargs",
}


def _key(key: str) -> str:
    key = key.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def parse_recipe(
    data: dict[str, Any], source: str = "recipe"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a parsed TOML document into settings and informational fields.

    Args:
        data: the document (``tomllib.loads``).
        source: what to name in errors (the file).

    Returns:
        ``(settings, info)``: the :class:`TrainConfig` fields the recipe sets (checked against
        their annotations; an int for a float becomes a float) and its informational keys.
    """
    body = dict(data)
    table = body.pop("train", None)
    if table is not None:
        if not isinstance(table, dict):
            raise UsageError(f"{source}: [train] must be a table")
        body.update(table)
    names = TrainConfig.names()
    settings: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for raw, value in body.items():
        key = _key(raw)
        if key in INFO_KEYS:
            info[key] = value
        elif key in names:
            settings[key] = TrainConfig.check(key, value, source, raw)
        else:
            raise UsageError(
                f"{source}: unknown setting {raw!r}; recipes take {', '.join(names)} "
                f"(and informational {', '.join(INFO_KEYS)})"
            )
    return settings, info


def load_recipe(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a recipe file: ``(settings, informational fields)`` as :func:`parse_recipe` gives."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read recipe {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"recipe {path} is not valid TOML: {exc}") from None
    return parse_recipe(data, str(path))
