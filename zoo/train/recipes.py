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

A recipe is a file, or the name of a pretrained entry whose registry holds the recipe it was
trained with (``zoo train --recipe tinyvgg.digits``, :func:`find_recipe`): the bundled
registry's recipes are package data of ``zoo_registry``, found through ``importlib.resources``,
so they work from any install, not only from a checkout.
"""

from __future__ import annotations

import os
import tomllib
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from zoo._util.names import unknown_message
from zoo.errors import FetchError, UnknownNameError, UsageError
from zoo.train.config import TrainConfig

if TYPE_CHECKING:
    from zoo.hub.entries import PretrainedEntry

__all__ = ["ALIASES", "INFO_KEYS", "find_recipe", "load_recipe", "parse_recipe"]

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


def find_recipe(recipe: str | os.PathLike) -> Path:
    """The recipe file ``recipe`` names: a path (an existing file, or any ``.toml`` name), else
    a pretrained entry (``tinyvgg.digits``, ``workflow/mlp.iris``) whose local registry holds
    the recipe it was trained with (its index's ``recipe``, inside the registry).

    Raises:
        UnknownNameError: neither a file nor an entry (close matches among the entries that
            have a recipe).
        UsageError: the entry has no recipe zoo can read (none, or one on the web).
    """
    path = Path(recipe)
    if not isinstance(recipe, str) or path.exists() or path.suffix.lower() == ".toml":
        return path
    from zoo.hub import index as hub

    try:
        entry = hub.get_pretrained(recipe)
    except UnknownNameError:
        have = [name for name, e in hub.all_entries().items() if _local_recipe(e) is not None]
        raise UnknownNameError(
            unknown_message(
                "recipe",
                recipe,
                have,
                key=recipe.strip().lower(),
                otherwise="give a recipe file (.toml) or a pretrained entry that has one "
                "(see `zoo list pretrained`)",
            )
        ) from None
    found = _local_recipe(entry)
    if found is None:
        where = (
            f" (its recipe: {urllib.parse.urljoin(entry.source, entry.recipe)})"
            if entry.recipe
            else ""
        )
        raise UsageError(
            f"pretrained entry {entry.name} has no local recipe file{where}; "
            "give a recipe file (.toml)"
        )
    if not found.is_file():
        raise UsageError(f"the recipe of pretrained entry {entry.name} is missing: {found}")
    return found


def _local_recipe(entry: PretrainedEntry) -> Path | None:
    """Where a local registry keeps ``entry``'s recipe, a relative path inside it (``None``
    for no recipe, a URL, or a registry on the web)."""
    from zoo.hub.entries import local_path

    ref = entry.recipe
    if not ref or urllib.parse.urlsplit(ref).scheme or not ref.endswith(".toml"):
        return None
    rel = PurePosixPath(ref)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    try:
        index = local_path(entry.source)  # the bundled one: importlib.resources' zoo_registry
    except FetchError:  # http(s) registries, plugin declarations
        return None
    return index.parent.joinpath(*rel.parts)


def load_recipe(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a recipe (a file, or a pretrained entry's: :func:`find_recipe`): ``(settings,
    informational fields)`` as :func:`parse_recipe` gives."""
    path = find_recipe(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read recipe {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"recipe {path} is not valid TOML: {exc}") from None
    return parse_recipe(data, str(path))
