"""torchvision's ImageNet classification models, registered lazily.

Listing imports nothing: each entry's target is a ``functools.partial`` over a builder that
imports torchvision only when a model is created. Names follow zoo's convention
(``mobilenet_v3_small`` is listed as ``mobilenet-v3-small``; the underscore form resolves too).
"""

from functools import partial

import zoo
from zoo_torchvision.build import build

# upstream name, summary, classifier (as timm's pretrained_cfg), first conv, smallest image
# (torchvision's ``min_size``; ViT-B/16 takes any multiple of 16 through ``image_size``)
ARCHITECTURES = [
    ("resnet18", "ResNet-18 (torchvision)", "fc", "conv1", 1),
    ("resnet34", "ResNet-34 (torchvision)", "fc", "conv1", 1),
    ("resnet50", "ResNet-50 (torchvision)", "fc", "conv1", 1),
    ("mobilenet_v2", "MobileNetV2 (torchvision)", "classifier.1", "features.0.0", 1),
    ("mobilenet_v3_small", "MobileNetV3-Small (torchvision)", "classifier.3", "features.0.0", 1),
    ("mobilenet_v3_large", "MobileNetV3-Large (torchvision)", "classifier.3", "features.0.0", 1),
    ("efficientnet_b0", "EfficientNet-B0 (torchvision)", "classifier.1", "features.0.0", 1),
    (
        "vit_b_16", "ViT-B/16 (torchvision); image_size a multiple of 16", "heads.head",
        "conv_proj", 16,
    ),
    ("convnext_tiny", "ConvNeXt-Tiny (torchvision)", "classifier.2", "features.0.0", 32),
    ("regnet_y_400mf", "RegNetY-400MF (torchvision)", "fc", "stem.0", 1),
    ("shufflenet_v2_x1_0", "ShuffleNetV2 x1.0 (torchvision)", "fc", "conv1.0", 1),
    ("squeezenet1_1", "SqueezeNet 1.1 (torchvision)", "classifier.1", "features.0", 17),
]  # fmt: skip


@zoo.hookimpl
def register_models(register):
    for upstream, summary, classifier, first_conv, smallest in ARCHITECTURES:
        register(
            upstream.replace("_", "-"),
            partial(build, upstream),
            tasks=["binary", "multiclass"],
            input_kind="image",  # any number of channels: the builder adapts the first conv
            upstream=f"torchvision.models.{upstream}",
            input_size=[3, 224, 224],
            num_classes=1000,
            classifier=classifier,
            first_conv=first_conv,
            min_image_size=smallest,
            **({"image_size_multiple": 16} if upstream == "vit_b_16" else {}),  # its patches
            summary=summary,
        )
