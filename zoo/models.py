"""How a registered model is built: its effective kwargs and the :class:`ModelSpec` it carries.

``build_model`` is the one place a model entry's target is called; the result carries
``model.zoo_spec`` so export records exactly what was built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError
from zoo.registry.entries import Entry
from zoo.tasks import contracts as tasks

if TYPE_CHECKING:
    import torch

__all__ = ["ModelSpec", "build_model", "model_kwargs"]


@dataclass
class ModelSpec:
    """How a model was built, attached as ``model.zoo_spec`` so export can record it."""

    model: str
    kwargs: dict[str, Any]
    plugin: str
    dist: str
    version: str
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_kwargs(entry: Entry, dataset: Entry | None, user: dict[str, Any]) -> dict[str, Any]:
    """Effective kwargs: the dataset's standard ones it accepts, then defaults, then user's."""
    target = entry.load()
    merged: dict[str, Any] = {}
    if dataset is not None:
        merged.update(tasks.accepted_kwargs(target, tasks.standard_kwargs(dataset)))
    merged.update(entry.defaults)
    merged.update(user)
    return merged


def build_model(
    entry: Entry, kwargs: dict[str, Any], dataset: str | None = None
) -> torch.nn.Module:
    """Call a model entry's target with exactly ``kwargs`` and tag the result with its spec."""
    try:
        model = entry.load()(**kwargs)
    except TypeError as exc:
        raise UsageError(f"model {entry.name!r}: {exc}") from exc
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            f"model {entry.name!r}: target returned {type(model).__name__}, not nn.Module"
        )
    model.zoo_spec = ModelSpec(
        model=entry.name,
        kwargs=dict(kwargs),
        plugin=entry.plugin,
        dist=entry.dist,
        version=entry.version,
        dataset=dataset,
    )
    return model
