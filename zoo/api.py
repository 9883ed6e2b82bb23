"""The stable Python API over the registry: list, describe and create entries.

Listing reads only what plugins registered, so it never imports torch or a plugin's target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownNameError, UsageError, ZooError
from zoo.models import build_model, model_kwargs
from zoo.registry.entries import Entry
from zoo.registry.plugins import get_registry
from zoo.tasks import contracts as tasks
from zoo.tasks.contracts import accepted_kwargs

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "val", "test")


def list_models(pattern: str | list[str] | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names matching ``pattern`` (fnmatch); with ``pretrained``, only those
    that have at least one pretrained entry."""
    names = get_registry().names("model", pattern)
    if pretrained:
        have = {p.split(".", 1)[0] for p in list_pretrained()}
        names = [n for n in names if n.split("/")[-1] in have]
    return names


def list_losses(pattern: str | list[str] | None = None) -> list[str]:
    """Registered loss names matching ``pattern``."""
    return get_registry().names("loss", pattern)


def list_datasets(pattern: str | list[str] | None = None) -> list[str]:
    """Registered dataset names matching ``pattern``."""
    return get_registry().names("dataset", pattern)


def list_pretrained(pattern: str | list[str] | None = None) -> list[str]:
    """Pretrained entry names (``model.tag``) from every configured registry and plugin."""
    from zoo.hub import index as hub

    return hub.list_pretrained(pattern)


def get_entry(kind: str, name: str) -> Entry:
    """The registry entry a name resolves to (raises with close matches when unknown)."""
    return get_registry().get(kind, name)


def info(name: str) -> dict[str, Any]:
    """Describe every entry called ``name`` (model, loss, dataset or pretrained ``model.tag``)."""
    registry = get_registry()
    found = registry.find(name)
    if not found and "." in name:
        from zoo.hub import index as hub

        return hub.get_pretrained(name).to_dict()
    if not found:
        raise UnknownNameError(registry.unknown_message(name))
    if len(found) > 1 and "/" not in name:
        kinds = {e.kind for e in found}
        if len(kinds) == 1:
            registry.get(found[0].kind, name)  # raises the ambiguity error
    return _describe(found[0]) if len(found) == 1 else {"entries": [_describe(e) for e in found]}


def _describe(entry: Entry) -> dict[str, Any]:
    out = entry.to_dict()
    if entry.kind == "model":
        out["input_kind"] = entry.input_kind
        out["defaults"] = entry.defaults
        out["datasets"] = [
            d.name for d in get_registry().entries("dataset") if not tasks.incompatibility(entry, d)
        ]
        from zoo.hub import index as hub

        out["pretrained"] = hub.list_pretrained(f"{entry.name}.*")
    elif entry.kind == "loss":
        out["expects"] = entry.meta.get("expects", "logits")
    elif entry.kind == "dataset":
        out["input_kind"] = entry.input_kind
        out["input_shape"] = list(entry.meta["input_shape"])
        out["standard_kwargs"] = tasks.standard_kwargs(entry)
    return out


def create_model(
    name: str, pretrained: str | None = None, *, dataset: str | None = None, **kwargs: Any
) -> torch.nn.Module:
    """Build a registered model.

    ``dataset`` fills ``in_features``/``in_channels``/``image_size``/``num_classes`` from that
    dataset (only those the model accepts); ``defaults`` and then ``kwargs`` override them.
    ``pretrained="tag"`` builds with the pretrained entry's kwargs and loads its weights
    (fetched and verified into the cache first).
    """
    registry = get_registry()
    entry = registry.get("model", name)
    if pretrained is not None:
        from zoo.hub import index as hub
        from zoo.weights import files as weights

        found = hub.get_pretrained(f"{entry.name}.{pretrained}")
        model = build_model(entry, {**found.kwargs, **kwargs}, dataset=found.dataset)
        weights.load_weights(model, hub.fetch(found.name))
        return model
    data_entry = None
    if dataset is not None:
        data_entry = registry.get("dataset", dataset)
        tasks.check_compatible(entry, data_entry)
    return build_model(entry, model_kwargs(entry, data_entry, kwargs), dataset=dataset)


def create_loss(name: str, **kwargs: Any) -> torch.nn.Module:
    """Build a registered loss module, called as ``loss(output, target)``."""
    entry = get_registry().get("loss", name)
    target = entry.load()
    try:
        return target(**_tensor_kwargs(kwargs))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"loss {entry.name!r}: {exc}") from exc


TENSOR_KWARGS = ("weight", "pos_weight")  # torch.nn losses take these as tensors


def _tensor_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Class weights given as numbers or lists (CLI, recipes, JSON) become float tensors."""
    if not any(k in TENSOR_KWARGS and not _is_tensor(v) for k, v in kwargs.items()):
        return kwargs
    import torch

    return {
        k: torch.as_tensor(v, dtype=torch.float32) if k in TENSOR_KWARGS and v is not None else v
        for k, v in kwargs.items()
    }


def _is_tensor(value: Any) -> bool:
    return value is None or type(value).__name__ == "Tensor"


def load_dataset(
    name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None, **kwargs: Any
) -> Any:
    """Load one split: ``(X, y)`` tensors for in-memory datasets, else a ``Dataset``.

    Args:
        data_dir: root of local dataset files (what ``--data-dir`` and ``$ZOO_DATA`` name). It is
            passed as ``root=`` to a dataset whose target takes ``root`` and was not given one;
            datasets that read no files ignore it.
    """
    entry = get_registry().get("dataset", name)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    target = entry.load()
    if (
        data_dir is not None
        and "root" not in kwargs
        and "root" in accepted_kwargs(target, {"root": None})
    ):
        kwargs["root"] = str(Path(data_dir).expanduser())
    try:
        return target(split, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"dataset {entry.name!r}: {exc}") from exc
    except OSError as exc:
        raise ZooError(f"dataset {entry.name!r}: {exc}") from exc
