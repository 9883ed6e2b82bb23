"""Generate ``zoo/hub/torchvision.json``: torchvision's pretrained weights as zoo entries.

Run ``python tools/torchvision_table.py`` after upgrading torchvision or adding a model to
the ``zoo_torchvision`` plugin; ``tests/test_pretrained_torchvision.py`` regenerates the
table with :func:`build_table` and compares it with the checked-in file. One entry per
member of each model's ``Weights`` enum, named ``model.tag`` (``resnet50.imagenet1k-v2``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parents[1] / "zoo" / "hub" / "torchvision.json"
CATEGORIES = "imagenet-1k"
LICENSE = "BSD-3-Clause"  # torchvision's, where a weight declares no license of its own


def build_table() -> dict[str, Any]:
    """The table for every model of the ``zoo_torchvision`` plugin, from torchvision's enums."""
    import torchvision
    from torchvision import models
    from zoo_torchvision import ARCHITECTURES

    categories: list[str] | None = None
    entries = []
    for upstream, *_ in ARCHITECTURES:
        enum = models.get_model_weights(upstream)
        default = enum.DEFAULT.name
        for weights in enum:
            meta = weights.meta
            if categories is None:
                categories = list(meta["categories"])
            if list(meta["categories"]) != categories:
                raise SystemExit(f"{weights}: categories differ from the shared ImageNet list")
            entries.append(_entry(upstream, enum.__name__, weights, weights.name == default))
    return {
        "schema": 1,
        "generator": "tools/torchvision_table.py",
        "torchvision": torchvision.__version__.split("+")[0],
        "categories": {CATEGORIES: categories or []},
        "entries": entries,
    }


def _entry(upstream: str, enum: str, weights: Any, default: bool) -> dict[str, Any]:
    meta = weights.meta
    model = upstream.replace("_", "-")
    file = weights.url.rsplit("/", 1)[-1]
    prefix = Path(file).stem.rsplit("-", 1)[-1]
    transform = weights.transforms()
    kwargs: dict[str, Any] = {"num_classes": len(meta["categories"])}
    if upstream.startswith("vit_"):
        kwargs["image_size"] = int(meta["min_size"][0])
    (metrics,) = meta["_metrics"].values()
    return {
        "name": f"{model}.{weights.name.lower().replace('_', '-')}",
        "model": model,
        "enum": f"{enum}.{weights.name}",
        "default": default,
        "url": weights.url,
        "sha256_prefix": prefix,
        # torchvision gives each file's size in MiB to 3 decimals: the byte cap of a download
        "max_bytes": math.ceil(meta["_file_size"] * 2**20) + 2**16,
        "kwargs": kwargs,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "num_params": int(meta["num_params"]),
        "categories": CATEGORIES,
        "recipe": meta["recipe"],
        "license": meta.get("license", LICENSE),
        "transforms": {
            "resize": list(transform.resize_size),
            "crop": list(transform.crop_size),
            "interpolation": transform.interpolation.value,
            "mean": list(transform.mean),
            "std": list(transform.std),
        },
    }


def render(table: dict[str, Any]) -> str:
    """The table as written: one entry per line, the category list on one line."""
    return json.dumps(table, indent=1, sort_keys=False) + "\n"


def main() -> int:
    TABLE.write_text(render(build_table()))
    print(f"wrote {TABLE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
