"""Builder for torchvision classification models (imports torchvision on call only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def build(
    arch: str,
    num_classes: int = 1000,
    image_size: int | Sequence[int] | None = None,
    in_channels: int = 3,
    in_features: int | None = None,
    **kwargs: Any,
):
    """``torchvision.models.get_model(arch, weights=None, num_classes=...)``.

    ``image_size`` is passed on only to the architectures that take it (ViT); the others
    are fully convolutional up to their global pooling and accept any size. ``in_channels``
    other than 3 replaces the first conv with one taking that many (pretrained weights are
    adapted to it by :mod:`zoo.weights.adapt`); ``in_features`` is accepted and not passed on.
    """
    from torch import nn
    from torchvision import models

    if image_size is not None and arch.startswith("vit_"):
        size = image_size if isinstance(image_size, int) else int(image_size[0])
        kwargs["image_size"] = size
    model = models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
        parent, _, attr = name.rpartition(".")
        new = nn.Conv2d(
            in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
        )  # fmt: skip
        setattr(model.get_submodule(parent) if parent else model, attr, new)
    return model
