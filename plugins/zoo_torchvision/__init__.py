"""torchvision's ImageNet classification models, registered lazily.

Listing imports nothing: each entry's target is a ``functools.partial`` over a builder that
imports torchvision only when a model is created. Names follow zoo's convention
(``mobilenet_v3_small`` is listed as ``mobilenet-v3-small``; the underscore form resolves too).
"""

from functools import partial

import zoo
from zoo_torchvision.build import build

# upstream name, summary
ARCHITECTURES = [
    ("resnet18", "ResNet-18 (torchvision)"),
    ("resnet34", "ResNet-34 (torchvision)"),
    ("resnet50", "ResNet-50 (torchvision)"),
    ("mobilenet_v2", "MobileNetV2 (torchvision)"),
    ("mobilenet_v3_small", "MobileNetV3-Small (torchvision)"),
    ("mobilenet_v3_large", "MobileNetV3-Large (torchvision)"),
    ("efficientnet_b0", "EfficientNet-B0 (torchvision)"),
    ("vit_b_16", "ViT-B/16 (torchvision); image_size a multiple of 16"),
    ("convnext_tiny", "ConvNeXt-Tiny (torchvision)"),
    ("regnet_y_400mf", "RegNetY-400MF (torchvision)"),
    ("shufflenet_v2_x1_0", "ShuffleNetV2 x1.0 (torchvision)"),
    ("squeezenet1_1", "SqueezeNet 1.1 (torchvision)"),
]


@zoo.hookimpl
def register_models(register):
    for upstream, summary in ARCHITECTURES:
        register(
            upstream.replace("_", "-"),
            partial(build, upstream),
            tasks=["binary", "multiclass"],
            input_kind="image",
            in_channels=3,
            upstream=f"torchvision.models.{upstream}",
            input_size=[3, 224, 224],
            num_classes=1000,
            summary=summary,
        )
