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
    are fully convolutional up to their global pooling and accept any size. The standard
    ``in_channels`` (always 3 here) and ``in_features`` kwargs are accepted and not passed on.
    """
    from torchvision import models

    if in_channels != 3:
        raise ValueError(f"torchvision's {arch} takes 3-channel images, not {in_channels}")

    if image_size is not None and arch.startswith("vit_"):
        size = image_size if isinstance(image_size, int) else int(image_size[0])
        kwargs["image_size"] = size
    return models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
