"""First-party datasets that ship offline: scikit-learn's real sets and its generators.

Every set is split 80/20 deterministically (stratified for classification) and standardised
with statistics of the train split only; each declares that transform (``transform``: the
per-feature mean/std, numbers) and its class names (``classes``), which exported weights carry.
``diabetes`` standardises its regression targets too and declares that (``target_transform``),
so predictions on raw rows come back in the target's own units.
"""

import zoo
from zoo_datasets.declared import CLASSES, TARGET_TRANSFORMS, TRANSFORMS

_SETS = [
    # name, task, input_shape, num_classes, summary
    (
        "circles",
        "binary",
        (2,),
        2,
        "Two noisy concentric circles (sklearn make_circles), 1000 points",
    ),
    ("moons", "binary", (2,), 2, "Two interleaving half moons (sklearn make_moons), 1000 points"),
    ("blobs", "multiclass", (2,), 4, "Four Gaussian blobs (sklearn make_blobs), 1000 points"),
    ("spirals", "multiclass", (2,), 3, "Three interleaved spiral arms, 900 points"),
    ("diabetes", "regression", (10,), None, "Diabetes progression, 442 patients (sklearn)"),
    ("breast-cancer", "binary", (30,), 2, "Wisconsin breast cancer, 569 tumours (sklearn)"),
    ("iris", "multiclass", (4,), 3, "Iris flowers, 150 samples, 3 species (sklearn)"),
    ("wine", "multiclass", (13,), 3, "Wine cultivars, 178 samples (sklearn)"),
    ("digits", "multiclass", (1, 8, 8), 10, "Handwritten digits as 1x8x8 images, 1797 (sklearn)"),
]


STANDARDISED = (
    "standardised with the train split's mean/std (see transform); zoo predict applies it to "
    "raw inputs"
)


@zoo.hookimpl
def register_datasets(register):
    for name, task, shape, num_classes, summary in _SETS:
        meta = {"num_classes": num_classes} if num_classes else {}
        meta["transform"] = TRANSFORMS[name]  # what load_dataset applied: raw -> model inputs
        if name in CLASSES:
            meta["classes"] = CLASSES[name]
        if name in TARGET_TRANSFORMS:  # predictions are turned back into the target's units
            meta["target_transform"] = TARGET_TRANSFORMS[name]
        target = f"zoo_datasets.sets:{name.replace('-', '_')}"
        register(
            name, target, task=task, input_shape=shape, summary=summary,
            preprocessing=STANDARDISED + (" (targets too)" if task == "regression" else ""),
            **meta,
        )  # fmt: skip
