"""zoo-example: registers one model and one dataset.

This module is imported whenever zoo discovers plugins (``zoo list``), so it stays light:
no torch here. Targets are "module:attr" strings, imported only when an entry is used.
"""

import zoo


@zoo.hookimpl
def register_models(register):
    register(
        "res-mlp",
        "zoo_example.models:ResMLP",
        input_kind="features",
        defaults={"width": 32, "depth": 2},
        summary="Residual MLP: pre-norm blocks with skip connections",
    )


@zoo.hookimpl
def register_datasets(register):
    register(
        "rings",
        "zoo_example.data:rings",
        task="multiclass",
        input_shape=(2,),
        num_classes=3,
        summary="Three noisy concentric rings, 600 points",
    )
