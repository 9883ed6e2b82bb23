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

Keys may be written with ``-`` or ``_`` (``batch-size`` = ``batch_size``). Settings may also sit
in a ``[train]`` table. Informational keys (``name``, ``description``, ``expect``, ...) are
returned separately and never change training. Flags given on the command line override the
recipe.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

# Trainer keyword arguments a recipe may set, with the type each must have.
SETTINGS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "dataset": (str,),
    "loss": (str,),
    "optimizer": (str,),
    "lr": (int, float),
    "weight_decay": (int, float),
    "momentum": (int, float),
    "epochs": (int,),
    "batch_size": (int,),
    "device": (str,),
    "precision": (str,),
    "seed": (int,),
    "shuffle": (bool,),
    "compile": (bool, str),
    "patience": (int,),
    "monitor": (str,),
    "model_kwargs": (dict,),
    "loss_kwargs": (dict,),
    "dataset_kwargs": (dict,),
    "workers": (int,),
    "train_metrics": (bool,),
    "quiet": (bool,),
}
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
    """``(trainer settings, informational fields)`` from a parsed TOML document."""
    body = dict(data)
    table = body.pop("train", None)
    if table is not None:
        if not isinstance(table, dict):
            raise UsageError(f"{source}: [train] must be a table")
        body.update(table)
    settings: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for raw, value in body.items():
        key = _key(raw)
        if key in INFO_KEYS:
            info[key] = value
            continue
        if key not in SETTINGS:
            raise UsageError(
                f"{source}: unknown setting {raw!r}; recipes take {', '.join(SETTINGS)} "
                f"(and informational {', '.join(INFO_KEYS)})"
            )
        types = SETTINGS[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            raise UsageError(
                f"{source}: {raw} must be {want}, got {type(value).__name__} {value!r}"
            )
        settings[key] = float(value) if types == (int, float) else value
    return settings, info


def load_recipe(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a recipe file: ``(trainer settings, informational fields)``."""
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


def trainer_from_recipe(path: str | os.PathLike, **overrides: Any):
    """A :class:`zoo.train.Trainer` built from a recipe, ``overrides`` winning."""
    from zoo.train.trainer import Trainer

    settings, _ = load_recipe(path)
    settings.update(overrides)
    for required in ("model", "dataset"):
        if required not in settings:
            raise UsageError(f"recipe {path} does not name a {required}")
    model, dataset = settings.pop("model"), settings.pop("dataset")
    return Trainer(model, dataset, **settings)
