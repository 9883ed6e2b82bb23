"""Hugging Face style model folders: ``config.json``, ``model.safetensors`` and ``README.md``.

``zoo export --format hf -o DIR`` (:func:`export_folder`) writes the three files a Hugging
Face model repository holds: the weights as :func:`zoo.weights.export` writes them, the model
card (:mod:`zoo.weights.card`), and ``config.json`` naming the model entry, its kwargs, the
data's preprocessing and labels (``id2label``, as transformers' configs do) and the zoo
version. ``zoo.load(DIR)`` (:func:`load_folder`) rebuilds the model from such a folder.

``config.json`` is data: it is read within :data:`MAX_CONFIG_BYTES` and the JSON depth limit,
only the fields below are looked at (others are ignored), each is type-checked, and the model
it names must be a registered model entry (``plugin/name``, pinned as weights files pin it),
never an import path. When the weights file records its model (as zoo's do), the two must agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo._util.atomic import write_json, write_text
from zoo._util.jsonio import JSONLimitError, read_json
from zoo.errors import UsageError, WeightsError
from zoo.registry.entries import Pin
from zoo.weights.preprocess import FIELDS as PREPROCESSING

__all__ = [
    "CARD",
    "CONFIG",
    "FORMAT",
    "MAX_CONFIG_BYTES",
    "WEIGHTS",
    "export_folder",
    "is_hf_folder",
    "load_folder",
    "read_config",
]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
FORMAT = "zoo.hf/1"
MAX_CONFIG_BYTES = 32 << 20  # 100,000 class names of 200 characters fit
_TEXT = ("model", "plugin", "dist", "dist_version", "dataset", "zoo_version")


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding ``config.json`` (a model folder to load)."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file()


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The known fields of a folder's ``config.json``, checked; one-line errors name it.

    Raises:
        WeightsError: not JSON, too large or deep, a field of the wrong type, or a format
            this zoo does not read.
    """
    from zoo.weights.preprocess import field_problem

    path = Path(folder) / CONFIG
    try:
        raw = read_json(path, max_bytes=MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise WeightsError(f"{folder} holds no {CONFIG}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except JSONLimitError as exc:
        raise WeightsError(f"{path} is not a model config: {exc}") from None
    if not isinstance(raw, dict):
        raise WeightsError(f"{path} is not a JSON object")
    if raw.get("zoo_format") != FORMAT:
        raise WeightsError(
            f"{path} is not a zoo model config (zoo_format {raw.get('zoo_format')!r}; this zoo "
            f"reads {FORMAT!r}, written by `zoo export --format hf`)"
        )
    out: dict[str, Any] = {"zoo_format": FORMAT}
    for key in _TEXT:
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= 200):
            raise WeightsError(f"{path}: {key} must be a name of 1 to 200 characters")
        out[key] = value
    if not out["model"]:
        raise WeightsError(f"{path}: names no model")
    for key in ("kwargs", "metrics"):
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise WeightsError(f"{path}: {key} must be an object")
        out[key] = value
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in out["metrics"].values()
    ):
        raise WeightsError(f"{path}: metrics must be numbers")
    for key in PREPROCESSING:
        value = raw.get(key)
        if value is None:
            continue
        problem = field_problem(key, value)
        if problem:
            raise WeightsError(f"{path}: {key} {problem}")
        out[key] = value
    return out


def _pin(config: dict[str, Any], path: Path) -> Pin:
    """The model ``config`` names, as a checked pin (a registered entry's name, not code)."""
    ref = config["model"]
    if config.get("plugin") and "/" not in ref:
        ref = f"{config['plugin']}/{ref}"
    try:
        pin = Pin.parse("model", ref, config.get("dist"), config.get("dist_version"))
        pin.check()
    except ValueError as exc:
        raise WeightsError(f"{path}: model {config['model']!r}: {exc}") from None
    return pin


def load_folder(folder: str | os.PathLike, device: str = "cpu") -> Any:
    """Rebuild the model of a ``zoo export --format hf`` folder (``config.json`` and
    ``model.safetensors``), in eval mode, with ``zoo_spec`` as :func:`zoo.load` gives it.

    A weights file that records its model (zoo's do) must record the model and kwargs the
    config names; a plain safetensors file is loaded into the model the config names.
    """
    from zoo.registry.plugins import pinned_entry
    from zoo.weights import files

    folder = Path(folder)
    config = read_config(folder)
    where = folder / CONFIG
    pin = _pin(config, where)
    entry = pinned_entry(pin, source=str(where))  # a registered model, or what to install
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise WeightsError(f"{folder} holds no {WEIGHTS}")
    meta = files.read_metadata(weights)
    if meta.get("model"):
        model = files.load(weights, device=device)
        spec = model.zoo_spec
        if (spec.plugin, spec.model) != (entry.plugin, entry.name) or spec.kwargs != config[
            "kwargs"
        ]:
            raise WeightsError(
                f"{where} names {entry.qualname} {json.dumps(config['kwargs'], sort_keys=True)} "
                f"but {weights} holds {spec.plugin}/{spec.model} "
                f"{json.dumps(spec.kwargs, sort_keys=True)}"
            )
    else:
        model = files.build_for_file(
            entry, config["kwargs"], weights, source=str(where), dataset=config.get("dataset")
        ).to(device)
        model.zoo_spec.extra.update({"metrics": dict(config["metrics"]), "source": str(weights)})
    kept = {k: config[k] for k in PREPROCESSING if k in config}
    if kept and "preprocessing" not in model.zoo_spec.extra:
        model.zoo_spec.extra["preprocessing"] = {"dataset": config.get("dataset"), **kept}
    model.zoo_spec.extra["source"] = str(folder)
    return model.eval()


def export_folder(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    force: bool = False,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write ``out/`` as a Hugging Face style model folder from a zoo weights file.

    Args:
        source: a zoo weights file (the weights are copied as :func:`zoo.weights.export`
            writes them, with their metadata).
        out: the folder; it may exist only if empty, or with ``force`` (its three files are
            replaced, nothing else in it is touched).
        card: card fields the user gives (``license``, ``intended_use``...); the card is
            written with what zoo knows either way.
    """
    from zoo.weights import card as cards
    from zoo.weights import files

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder; an hf export writes a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} is not empty; pass --force to replace its model files")
    meta = files.read_metadata(source)
    model = files.load(source)
    spec = model.zoo_spec
    kept = spec.extra.get("preprocessing") or {}
    config: dict[str, Any] = {
        "zoo_format": FORMAT,
        "library_name": "zoo",
        "model": spec.model,
        "plugin": spec.plugin,
        "dist": spec.dist,
        "dist_version": spec.version,
        "kwargs": spec.kwargs,
        "dataset": meta.get("dataset"),
        "metrics": meta.get("metrics") or {},
        **{k: kept[k] for k in PREPROCESSING if k in kept},
        "zoo_version": __version__,
    }
    if config.get("classes"):
        config["id2label"] = {str(i): name for i, name in enumerate(config["classes"])}
        config["label2id"] = {name: i for i, name in enumerate(config["classes"])}
    out.mkdir(parents=True, exist_ok=True)
    files.export(
        model, out / WEIGHTS, dataset=meta.get("dataset"), metrics=meta.get("metrics"),
        extra=meta.get("extra"),
    )  # fmt: skip
    facts = {
        "model": f"{spec.plugin}/{spec.model}",
        "kwargs": spec.kwargs,
        "dataset": meta.get("dataset"),
        "metrics": meta.get("metrics") or {},
        "transform": config.get("transform"),
        "classes": config.get("classes"),
        "created": meta.get("created"),
        "load": f'zoo.load("{out.name}")',
    }
    name = f"{spec.model}.{meta.get('dataset') or 'export'}"
    fields, body = cards.compose(name, facts, dict(card or {}))
    fields.pop("zoo_entry", None)  # a folder is not (yet) a registry entry
    write_text(out / CARD, cards.render(fields, body))
    write_json(out / CONFIG, config)
    return out
