"""Fine-tuning loads: pretrained weights into a model with another head or input channels.

A model entry declares its classifier (``classifier="fc"``, as timm's
``pretrained_cfg["classifier"]``; an integer part indexes from the end of a ``Sequential``:
``layers.-1`` is an MLP's last layer) and may declare its ``first_conv`` (else the model's first
``Conv2d``). :func:`load_adapted` loads every tensor of a weights file except a classifier
whose shape differs (the freshly built classifier stays: re-initialised), and adapts the first
conv to another number of input channels as timm does (1 channel: the pretrained filters
summed; more: repeated and scaled by ``3 / in_channels``). Each adaptation is one log line.
Any other mismatch is a one-line :class:`~zoo.errors.WeightsError` naming the layer.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

from zoo._util.log import get_logger
from zoo.errors import PluginError, WeightsError
from zoo.weights.files import _check_finite, _read_tensors, read_header

__all__ = ["adapt_conv", "load_adapted", "module_path"]


def module_path(model: nn.Module, path: str) -> str:
    """The state-dict prefix of the submodule ``path`` names (``layers.-1`` -> ``layers.4``);
    a path the model does not have is a one-line :class:`~zoo.errors.PluginError` (a model
    entry declared it)."""
    module, parts = model, []
    for part in path.split("."):
        if part.lstrip("-").isdigit() and isinstance(module, nn.Sequential | nn.ModuleList):
            if not module:
                raise PluginError(f"the model has no module {path!r} (its entry declares it)")
            index = int(part) % len(module)
            module, part = module[index], str(index)
        else:
            try:
                module = module.get_submodule(part)
            except AttributeError:
                raise PluginError(
                    f"the model has no module {path!r} (its entry declares it)"
                ) from None
        parts.append(part)
    return ".".join(parts)


def adapt_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A conv weight ``(out, in, kh, kw)`` for ``in_channels`` inputs, as timm's
    ``adapt_input_conv``: summed over the inputs for 1, else repeated and scaled."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = math.ceil(in_channels / weight.shape[1])
    return weight.repeat(1, repeat, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def load_adapted(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    classifier: str | None,
    first_conv: str | None = None,
    source: str,
) -> list[str]:
    """Load ``path`` into ``model`` but a differently shaped classifier (left as built), the
    first conv adapted to the model's input channels; return the log lines it wrote."""
    path = Path(path)
    tensors, _ = _read_tensors(path, "cpu", read_header(path))
    expected = model.state_dict()
    _check_finite(path, tensors, expected)
    head = module_path(model, classifier) + "." if classifier else None
    conv = _first_conv(model, first_conv)
    notes: list[str] = []
    changed: list[tuple[str, torch.Size, torch.Size]] = []  # the classifier's tensors
    kept: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        want = expected.get(key)
        if want is None:
            raise WeightsError(f"{source}: layer {key!r} of the weights is not in the model")
        if tensor.shape == want.shape:
            kept[key] = tensor
        elif head and key.startswith(head):
            changed.append((key, tensor.shape, want.shape))
        elif key == f"{conv}.weight" and tensor.shape[:1] + tensor.shape[2:] == (
            want.shape[:1] + want.shape[2:]
        ):
            kept[key] = adapt_conv(tensor, want.shape[1]).to(want.dtype)
            how = "summing" if want.shape[1] == 1 else "repeating and scaling"
            notes.append(
                f"adapting first conv {conv!r} from {tensor.shape[1]} to {want.shape[1]} input "
                f"channel{'s' if want.shape[1] > 1 else ''} by {how} the pretrained filters"
            )
        else:
            raise WeightsError(
                f"{source}: cannot fine-tune into this shape: layer {key!r} is "
                f"{list(tensor.shape)} in the weights, {list(want.shape)} in the model"
                + ("" if classifier else " (the model entry declares no classifier)")
            )
    if changed:
        notes.append(_head_note(head[:-1], changed))
    missing = [k for k in expected if k not in tensors and not (head and k.startswith(head))]
    if missing:
        raise WeightsError(f"{source}: the weights have no layer {missing[0]!r} of the model")
    model.load_state_dict(kept, strict=False)
    log = get_logger(__name__)
    for note in notes:
        log.warning(note)
    return notes


def _head_note(name: str, changed: list[tuple[str, torch.Size, torch.Size]]) -> str:
    """The one line saying the classifier ``name`` is re-initialised, and why: another number
    of outputs (classes), another input (the features reaching it: another ``image_size``
    changes them for a flatten-then-linear head), or both."""
    key, had, has = max(changed, key=lambda c: len(c[1]))  # the weight, over the bias
    why = []
    if any(a[:1] != b[:1] for _, a, b in changed):
        why.append("another number of classes")
    if any(a[1:] != b[1:] for _, a, b in changed):
        why.append("another input size, as another image_size makes it")
    return (
        f"re-initialising classifier {name!r}: {key} is {list(had)} in the weights, "
        f"{list(has)} in this model ({' and '.join(why)})"
    )


def _first_conv(model: nn.Module, declared: str | None) -> str | None:
    if declared:
        return module_path(model, declared)
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
