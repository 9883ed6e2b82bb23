"""torchvision's pretrained weights as hub entries, from a generated table in the package.

``torchvision.json`` beside this module is written by ``tools/torchvision_table.py`` from
torchvision's ``Weights`` enums (a test regenerates it and compares): one entry per weight,
named ``model.tag`` (``resnet50.imagenet1k-v2``), with its URL, the sha256 prefix its file name
publishes, a byte cap, metrics, parameter count, categories (a reference to one shared list),
recipe, license and inference transforms. These are the only entries with absolute URLs and
prefix-only hashes (:attr:`~zoo.hub.entries.FileRef.prefix_only`): user registries keep their
rules. :mod:`zoo.hub.cache` fetches them on trust on first use, converting the ``.pth`` to
safetensors once.

``$ZOO_MIRROR`` (like ``HF_ENDPOINT``) replaces the scheme and host of these URLs, keeping
their path (after the mirror's own path, if it has one). This module does not import torch.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from functools import lru_cache
from pathlib import Path
from typing import Any

from zoo._util.jsonio import JSONLimitError, read_json
from zoo.errors import FetchError, UsageError
from zoo.hub.entries import FileRef, PretrainedEntry
from zoo.registry.plugins import get_registry

__all__ = ["MAX_TABLE_BYTES", "PLUGIN", "TABLE", "categories", "entries", "mirrored", "transforms"]

TABLE = Path(__file__).with_name("torchvision.json")
PLUGIN = "torchvision"  # the plugin whose models the table's weights are for
MAX_TABLE_BYTES = 4 << 20  # the table is ~30 KB
_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")


@lru_cache(maxsize=4)
def _read(path: Path) -> dict[str, Any]:
    try:
        doc = read_json(path, max_bytes=MAX_TABLE_BYTES)
    except (OSError, JSONLimitError) as exc:
        raise FetchError(f"cannot read the torchvision weights table {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FetchError(f"malformed torchvision weights table {path}: no entries list")
    return doc


def entries() -> list[PretrainedEntry]:
    """The table's entries for the torchvision models registered here (pinned to them)."""
    doc = _read(TABLE)
    models = {e.name: e for e in get_registry().entries("model") if e.plugin == PLUGIN}
    out = []
    for raw in doc["entries"]:
        model = models.get(raw.get("model"))
        if model is None:  # the plugin is not loaded (blocked): its weights are not listed
            continue
        out.append(_entry(raw, model))
    return out


def _entry(raw: dict[str, Any], model: Any) -> PretrainedEntry:
    name, prefix = raw["name"], raw["sha256_prefix"]
    url = raw["url"]
    if not _PREFIX.match(prefix) or not Path(urllib.parse.urlsplit(url).path).stem.endswith(
        f"-{prefix}"
    ):
        raise FetchError(f"malformed torchvision weights table {TABLE}: {name}: bad prefix")
    ref = FileRef(url, prefix, int(raw["max_bytes"]), prefix_only=True)
    metrics = raw.get("metrics", {})
    return PretrainedEntry(
        name=name, model=raw["model"], files=(ref,), kwargs=dict(raw.get("kwargs", {})),
        metrics={k: float(v) for k, v in metrics.items()}, license=raw.get("license"),
        recipe=raw.get("recipe"), summary=f"torchvision {raw['enum']} (ImageNet-1K)",
        registry=PLUGIN, source=f"table:{TABLE.name}", plugin=model.plugin, dist=model.dist,
        dist_version=model.version, default=bool(raw.get("default")),
        about={
            "enum": raw["enum"], "num_params": raw.get("num_params"),
            "categories": raw.get("categories"), "transforms": raw.get("transforms"),
        },
    )  # fmt: skip


def categories(entry: PretrainedEntry) -> list[str]:
    """The class names of a table entry (its shared list, e.g. ImageNet-1K's 1000), else ``[]``."""
    ref = entry.about.get("categories")
    shared = _read(TABLE).get("categories", {})
    return list(shared.get(ref, ())) if isinstance(ref, str) else []


def transforms(entry: PretrainedEntry) -> dict[str, Any]:
    """The inference transforms of a table entry (resize, crop, interpolation, mean, std)."""
    return dict(entry.about.get("transforms") or {})


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$ZOO_MIRROR``'s (its path kept, after the
    mirror's own path); ``url`` itself when the variable is unset. A value that is not an
    ``http(s)://host`` URL is a one-line :class:`UsageError`."""
    mirror = os.environ.get("ZOO_MIRROR", "").strip()
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"ZOO_MIRROR={mirror!r} must be an http(s)://host[:port][/path] URL")
    old = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/") + old.path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, old.query, ""))
