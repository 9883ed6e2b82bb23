"""Builder for torchvision classification models (imports torchvision on call only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def build(
    arch: str,
    num_classes: int = 1000,
    image_size: int | Sequence[int] | None = None,
    **kwargs: Any,
):
    """``torchvision.models.get_model(arch, weights=None, num_classes=...)``.

    ``image_size`` is passed on only to the architectures that take it (ViT); the others
    are fully convolutional up to their global pooling and accept any size.
    """
    from torchvision import models

    if image_size is not None and arch.startswith("vit_"):
        size = image_size if isinstance(image_size, int) else int(image_size[0])
        kwargs["image_size"] = size
    return models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
