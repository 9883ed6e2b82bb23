"""How a registered model is built: its effective kwargs and the :class:`ModelSpec` it carries.

``build_model`` is the one place a model entry's target is called; the result carries
``model.zoo_spec`` so export records exactly what was built.

A model that takes features (``input_kind="features"``, declared or inferred from a target that
accepts ``in_features`` but neither ``in_channels`` nor ``image_size``) built for an image
dataset is wrapped in :class:`FlattenInputs`: ``(N, C, H, W)`` batches reach it as
``(N, C*H*W)``, and ``in_features`` is ``C*H*W``. The flatten is part of the built model, so
training, ``zoo.export`` (which records ``flatten`` in the file), ``zoo.load``, ONNX export and
``zoo predict`` all run the same function. The wrapper's ``state_dict`` is the inner model's,
key for key, so weights move between the wrapped and the bare model.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, WeightsError, ZooError, short_repr
from zoo.registry.entries import Entry
from zoo.registry.plugins import get_registry
from zoo.tasks import contracts as tasks

if TYPE_CHECKING:
    import torch

# FlattenInputs is defined on first use (module __getattr__), so torch is not imported here.
__all__ = ["FlattenInputs", "ModelSpec", "build_model", "check_kwargs", "model_kwargs"]  # noqa: F822


@dataclass
class ModelSpec:
    """How a model was built, attached as ``model.zoo_spec`` so export can record it.

    ``flatten``: the target's model sits inside :class:`FlattenInputs` (a features model built
    for image data).
    """

    model: str
    kwargs: dict[str, Any]
    plugin: str
    dist: str
    version: str
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    flatten: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_kwargs(
    entry: Entry, dataset: Entry | None, user: dict[str, Any], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Effective kwargs: the dataset's standard ones it accepts, then defaults, then ``base``
    (those of the weights a fine-tune starts from) but for what the dataset decides, then
    user's."""
    target = entry.load()
    merged: dict[str, Any] = {}
    if dataset is not None:
        merged.update(tasks.accepted_kwargs(target, tasks.standard_kwargs(dataset)))
    decided = set(merged)
    merged.update(entry.defaults)
    merged.update({k: v for k, v in (base or {}).items() if k not in decided})
    merged.update(user)
    return merged


def build_model(
    entry: Entry,
    kwargs: dict[str, Any],
    dataset: str | Entry | None = None,
    *,
    flatten: bool | None = None,
    source: str | None = None,
) -> torch.nn.Module:
    """Call a model entry's target with exactly ``kwargs`` and tag the result with its spec.

    Args:
        entry: the model entry.
        kwargs: passed to the target as they are.
        dataset: the dataset (entry, or registered name) the model is built for; its name is
            recorded in the spec.
        flatten: wrap the model in :class:`FlattenInputs`. ``None`` (the default) decides it
            from the entry and the dataset (:func:`zoo.tasks.contracts.flattens`); a dataset
            name that is not registered gives no flatten.
        source: where ``kwargs`` come from when not from the user (a weights file, an index
            entry): they are checked first (:func:`check_kwargs`), and a target that refuses
            them is a :class:`~zoo.errors.WeightsError` naming ``source``.

    Raises:
        UsageError: the target refuses the user's ``kwargs`` (``hidden=-5``): one line naming
            the model and, where the message shows it, the kwarg.
    """
    data_entry = dataset if isinstance(dataset, Entry) else None
    if flatten is None:
        if data_entry is None and dataset is not None:
            data_entry = _registered_dataset(dataset)
        flatten = data_entry is not None and tasks.flattens(entry, data_entry)
    target = entry.load()
    if source is not None:
        check_kwargs(entry.name, target, kwargs, source)
    try:
        model = target(**kwargs)
    except BUILD_ERRORS as exc:
        raise _build_error(entry, kwargs, exc, source) from exc
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            f"model {entry.name!r}: target returned {type(model).__name__}, not nn.Module"
        )
    if flatten:
        model = _flatten_inputs()(model)
    model.zoo_spec = ModelSpec(
        model=entry.name,
        kwargs=dict(kwargs),
        plugin=entry.plugin,
        dist=entry.dist,
        version=entry.version,
        dataset=dataset.name if isinstance(dataset, Entry) else dataset,
        flatten=bool(flatten),
    )
    return model


#: What a model's constructor raises for kwargs it cannot take (torch's negative sizes and
#: failed allocations are RuntimeErrors).
BUILD_ERRORS = (TypeError, ValueError, RuntimeError, OverflowError, MemoryError)


def check_kwargs(name: str, target: Any, kwargs: Any, source: str) -> None:
    """Refuse kwargs read from ``source`` (a file, an index) before ``target`` sees them: an
    object of JSON values (finite numbers) whose names the target's signature takes (any
    name when it takes ``**kwargs``), required parameters included. One-line
    :class:`~zoo.errors.WeightsError`."""
    import inspect

    where = f"{source}: model {name!r}"
    if not isinstance(kwargs, dict):
        raise WeightsError(f"{where}: kwargs must be an object, not {type(kwargs).__name__}")
    for key, value in kwargs.items():
        if not _json_value(value):
            raise WeightsError(
                f"{where}: kwarg {key}={short_repr(value)} is not a finite JSON value"
            )
    try:
        inspect.signature(target).bind(**kwargs)
    except TypeError as exc:
        raise WeightsError(
            f"{where}: the recorded kwargs do not fit its signature ({exc})"
        ) from None
    except ValueError:  # no signature to check against: refuse rather than call blind
        raise WeightsError(
            f"{where}: its target has no signature to check kwargs against"
        ) from None


def _json_value(value: Any) -> bool:
    """Whether ``value`` is made of JSON types only, numbers finite (no NaN, no inf)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif not (item is None or isinstance(item, str | int | bool)):
            return False
    return True


def _build_error(
    entry: Entry, kwargs: dict[str, Any], exc: BaseException, source: str | None
) -> ZooError:
    """A constructor's refusal as one line naming the model and, when its message shows one
    kwarg's value, that kwarg: a UsageError for the user's kwargs, a WeightsError for a file's."""
    first = " ".join(str(exc).strip().split("\n")[0].split())  # torch adds C++ frames below
    culprit = _culprit(kwargs, first)
    reason = first if isinstance(exc, TypeError | ValueError) else f"{type(exc).__name__}: {first}"
    if source is None:
        given = culprit or "these kwargs"
        return UsageError(f"model {entry.name!r} cannot be built with {given}: {reason}")
    given = f": {culprit}" if culprit else ""
    return WeightsError(
        f"{source}: model {entry.name!r} cannot be built with the recorded kwargs{given}: {reason}"
    )


def _culprit(kwargs: dict[str, Any], message: str) -> str:
    """``hidden=-5``: the one kwarg whose number ``message`` quotes - the only one quoted, else
    the only one quoted negative, else the one after "got" - or ``""``."""
    number = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
    quoted = re.findall(number, message)
    for among in (
        quoted,
        [n for n in quoted if n.startswith("-")],
        re.findall(rf"\bgot ({number})", message),
    ):
        hits = [key for key, value in kwargs.items() if _numbers(value) & set(among)]
        if len(hits) == 1:
            value = kwargs[hits[0]]
            return f"{hits[0]}={json.dumps(value) if _json_value(value) else short_repr(value)}"
    return ""


def _numbers(value: Any) -> set[str]:
    """How a message may quote the numbers in ``value`` (a number or a list): ``2``, ``2.0``."""
    found: set[str] = set()
    for n in value if isinstance(value, list | tuple) else [value]:
        if isinstance(n, bool):
            continue
        if isinstance(n, int):
            found.add(str(n))
        elif isinstance(n, float) and math.isfinite(n):
            found |= {repr(n)} | ({str(int(n))} if n.is_integer() else set())
    return found


def _registered_dataset(name: str) -> Entry | None:
    try:
        return get_registry().get("dataset", name)
    except ZooError:
        return None


@functools.cache
def _flatten_inputs() -> type:
    """The :class:`FlattenInputs` class, defined on first use (``import zoo`` stays torch-free)."""
    from torch import nn

    class FlattenInputs(nn.Module):
        """``model(x.flatten(1))``: a model that takes features, fed image batches.

        ``state_dict()`` holds the inner model's keys as they are (no ``model.`` prefix) and
        ``load_state_dict`` takes them so: a weights file of the wrapped model loads into the
        bare one and back.
        """

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.flatten = nn.Flatten()
            self.model = model

        def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            return self.model(self.flatten(x), *args, **kwargs)

        def state_dict(
            self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
        ) -> Any:
            return self.model.state_dict(
                *args, destination=destination, prefix=prefix, keep_vars=keep_vars
            )

        def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
            # The keys are the inner model's: move them under its prefix before loading.
            keys = [k for k in state_dict if k.startswith(prefix)]
            moved = {f"{prefix}model.{k[len(prefix) :]}": state_dict.pop(k) for k in keys}
            state_dict.update(moved)
            super()._load_from_state_dict(state_dict, prefix, *args)

    FlattenInputs.__module__, FlattenInputs.__qualname__ = __name__, "FlattenInputs"
    return FlattenInputs


def __getattr__(name: str) -> Any:
    if name == "FlattenInputs":
        return _flatten_inputs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
