"""Fine-tuning: the weights a run starts from, and which of them train.

``pretrained=TAG`` (``zoo train --pretrained TAG``: a pretrained entry of the run's model,
``true`` its default) or ``init=RUN|WEIGHTS|ENTRY`` (``--init``: any weights of that model)
build the model with the kwargs those weights were trained with, except the ones the dataset
decides (``in_features``, ``in_channels``, ``image_size``, ``num_classes``), and load them as
:func:`zoo.weights.adapt.load_adapted` does: a classifier of another shape (more classes, or
another input size from another ``image_size``) is re-initialised, the first conv adapted to
another number of input channels, each said in one log line.

``freeze_backbone`` (``--freeze-backbone``) leaves only the classifier the model entry declares
trainable: the optimizer gets its parameters alone, and the frozen normalisation layers stay in
eval mode while training (as Keras runs a frozen ``BatchNormalization``), so nothing of the
body changes, running statistics included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from zoo import api
from zoo._util.log import get_logger
from zoo.errors import UnknownNameError, UsageError, ZooError
from zoo.models import FlattenInputs
from zoo.registry.entries import Entry
from zoo.registry.plugins import get_registry
from zoo.weights.adapt import load_adapted, module_path
from zoo.weights.source import read_run_json

__all__ = [
    "Start",
    "freeze_backbone",
    "frozen_norms_eval",
    "load_start",
    "no_classifier",
    "recorded_init",
    "resolve_start",
    "trainable",
]

log = get_logger(__name__)


@dataclass
class Start:
    """The weights a run starts from (what :func:`resolve_start` found, nothing read yet).

    Attributes:
        source: how messages and ``run.json`` name it (``pretrained entry mlp.circles``).
        kwargs: the model kwargs the weights were trained with (``{}`` when not recorded).
        entry: the pretrained entry (fetched when loaded), else ``None``.
        path: the weights file, for ``init`` given as a run directory or file.
        tag: the pretrained entry's tag (what ``pretrained=True`` resolved to).
    """

    source: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    entry: Any = None
    path: Path | None = None
    tag: str | None = None


def resolve_start(model: Entry, *, pretrained: str | bool | None, init: str | None) -> Start | None:
    """What ``pretrained`` or ``init`` names for ``model`` (at most one of them is set), from
    metadata only: an index entry or a weights file's header; nothing is fetched."""
    if pretrained is not None and pretrained is not False:
        tag = (
            True if pretrained is True or str(pretrained).strip().lower() == "true" else pretrained
        )
        found = api.pretrained_entry(model, tag)
        return Start(
            f"pretrained entry {found.name}", dict(found.kwargs), entry=found, tag=found.tag
        )
    if init is None:
        return None
    text = os.fspath(init)
    if Path(text).exists():
        from zoo.weights import files as weights

        path = api.resolve_weights(text)
        meta = weights.read_metadata(path)
        pin = weights.read_pins(meta, path).get("model")
        if pin is not None and get_registry().pinned(pin) is not model:
            raise UsageError(
                f"--init {text} holds weights for {pin.describe()}, not for model "
                f"{model.qualname!r}"
            )
        kwargs = meta.get("kwargs") if pin is not None else None
        return Start(str(path), dict(kwargs) if isinstance(kwargs, dict) else {}, path=path)
    from zoo.hub import index as hub
    from zoo.hub.entries import model_entry, qualified_name

    try:
        found = hub.get_pretrained(text)
    except UnknownNameError as exc:
        raise UnknownNameError(
            f"--init {text} is neither a run directory nor a weights file; {exc}"
        ) from None
    if model_entry(found) is not model:
        raise UsageError(
            f"--init: pretrained entry {qualified_name(found)} holds weights for "
            f"{found.pin.describe()}, not for model {model.qualname!r}"
        )
    return Start(f"pretrained entry {found.name}", dict(found.kwargs), entry=found, tag=found.tag)


def load_start(model: nn.Module, start: Start, entry: Entry) -> dict[str, Any]:
    """Load ``start``'s weights into ``model`` (fetching a pretrained entry into the cache
    first), the head and first conv adapted; return what ``run.json`` records of it."""
    from zoo.hub import cache

    if start.entry is not None:
        path = cache.fetch_entry(start.entry)
    else:
        path = Path(start.path or "").resolve()
    notes = load_adapted(
        _core(model), path, classifier=entry.meta.get("classifier"),
        first_conv=entry.meta.get("first_conv"), source=start.source,
    )  # fmt: skip
    digest = cache.file_sha256(path)
    return {
        "source": start.source,
        "entry": start.entry.name if start.entry is not None else None,
        "path": str(path),
        "sha256": digest,
        "adapted": notes,
    }


def freeze_backbone(model: nn.Module, entry: Entry | None) -> dict[str, Any]:
    """Leave only ``entry``'s declared classifier of ``model`` trainable; log and return the
    trainable and total parameter counts (what ``run.json`` records as ``freeze``)."""
    classifier = entry.meta.get("classifier") if entry is not None else None
    if not classifier:
        raise UsageError(no_classifier(entry))
    core = _core(model)
    head = module_path(core, classifier)
    for name, param in core.named_parameters():
        param.requires_grad_(name.startswith(head + "."))
    total = sum(p.numel() for p in core.parameters())
    kept = sum(p.numel() for p in core.parameters() if p.requires_grad)
    if not kept:
        raise UsageError(f"--freeze-backbone: classifier {head!r} has no parameters to train")
    log.warning(
        "freezing the backbone: training classifier %r only, %s of %s parameters",
        head, f"{kept:,}", f"{total:,}",
    )  # fmt: skip
    return {"classifier": head, "trainable": kept, "parameters": total}


def no_classifier(entry: Entry | None) -> str:
    """The one line refusing ``--freeze-backbone`` for a model that declares no classifier."""
    what = f"model {entry.name!r}" if entry is not None else "a model passed in as a module"
    return (
        f"--freeze-backbone needs the model's classifier, and {what} declares none "
        "(a model entry's classifier=, e.g. 'fc')"
    )


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimizer gets: those that require gradients."""
    return [p for p in model.parameters() if p.requires_grad]


def frozen_norms_eval(model: nn.Module) -> None:
    """Put the normalisation layers whose parameters are all frozen (or that have none but
    running statistics) in eval mode, after ``model.train()``."""
    for module in model.modules():
        stats = getattr(module, "track_running_stats", False)
        params = list(module.parameters(recurse=False))
        if stats and not any(p.requires_grad for p in params):
            module.eval()


def recorded_init(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``run.json``'s ``init`` record of a resumed run, kept as it was (a resume does not load
    the init again); ``None`` when there is none or it cannot be read."""
    try:
        init = read_run_json(run_dir).get("init")
    except (ZooError, OSError):
        return None
    return init if isinstance(init, dict) else None


def _core(model: nn.Module) -> nn.Module:
    """The model a ``FlattenInputs`` wraps (its state dict and module paths), else ``model``."""
    return model.model if isinstance(model, FlattenInputs) else model
