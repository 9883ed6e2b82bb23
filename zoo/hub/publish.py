"""Publishing: copy exported weights into a local registry directory and index them.

This module does not import torch (reading the weights' metadata does, inside the call).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from zoo._util.atomic import atomic_path, os_reason, write_bytes, write_json
from zoo.errors import FetchError, UsageError, ZooError
from zoo.hub.cache import CHUNK, locked
from zoo.hub.entries import (
    ENTRY_NAME,
    SCHEMA,
    PretrainedEntry,
    local_path,
    parse_index,
    read_document,
)

__all__ = ["publish"]


def publish(
    source: str | os.PathLike,
    registry: str | os.PathLike,
    tag: str,
    *,
    force: bool = False,
    license: str | None = None,
    recipe: str | os.PathLike | None = None,
    summary: str | None = None,
) -> PretrainedEntry:
    """Copy a weights file (or a run dir's ``model.safetensors``) into a local registry.

    The entry (``model.tag``) takes its model, kwargs, dataset and metrics from the file's
    metadata, completed from the run's ``run.json`` when ``source`` is a run dir. ``index.json``
    is rewritten atomically under a lock; an existing entry is replaced only with ``force``.
    """
    from zoo.weights import files as weights
    from zoo.weights import source as rundir

    weights_path = rundir.resolve_weights(source)
    run = _run_of(source)
    kept = Path(source) / rundir.RECIPE
    recipe = recipe or (kept if kept.is_file() else None)
    meta = weights.read_metadata(weights_path)
    if not meta.get("model"):
        why = (
            "was exported from a module not built by zoo.create_model, so it names no model entry"
            if meta.get("format") == weights.FORMAT
            else "has no zoo model metadata (it was not written by zoo.export)"
        )
        raise UsageError(f"{weights_path} {why}; only weights of zoo models can be published")
    name = f"{meta['model']}.{tag}"
    if not ENTRY_NAME.match(name):
        raise UsageError(f"tag {tag!r} must be lower-case letters, digits and '-'")
    root = local_path(str(registry))
    if root.suffix == ".json":
        root = root.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(
            f"cannot create registry directory {root}: {os_reason(exc, root / 'x')}"
        ) from None
    try:
        with locked(root):  # the directory itself: publishing leaves no lock file behind
            index_path = root / "index.json"
            doc = _read_index_doc(index_path)
            existing = [e for e in doc["entries"] if isinstance(e, dict) and e.get("name") == name]
            if existing and not force:
                raise UsageError(f"{name} is already in {index_path}; use --force to replace it")
            filename = f"{name}.safetensors"
            digest, size = hashlib.sha256(), 0
            with (
                atomic_path(root / filename) as tmp,
                open(weights_path, "rb") as src,
                open(tmp, "wb") as dst,
            ):
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    dst.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            raw: dict[str, Any] = {
                "name": name,
                "model": meta["model"],
                "kwargs": meta.get("kwargs") or {},
                "files": [{"url": filename, "sha256": digest.hexdigest(), "size": size}],
                "metrics": meta.get("metrics") or run.get("result", {}).get("metrics", {}),
                "dataset": meta.get("dataset") or run.get("settings", {}).get("dataset"),
                "license": license or (existing[0].get("license") if existing else None) or "MIT",
                "recipe": None,
                "created": meta.get("created"),
            }
            if recipe and not Path(recipe).is_file():
                raise UsageError(f"no such recipe file: {recipe}")
            summary = summary or (existing[0].get("summary") if existing else None)
            summary = summary or (_recipe_description(Path(recipe)) if recipe else None)
            if summary:
                raw["summary"] = summary
            if recipe:
                recipe_src = Path(recipe)
                dest = root / "recipes" / f"{name}.toml"
                if recipe_src.resolve() != dest.resolve():
                    write_bytes(dest, recipe_src.read_bytes())
                raw["recipe"] = f"recipes/{name}.toml"
            doc["entries"] = sorted(
                [e for e in doc["entries"] if not (isinstance(e, dict) and e.get("name") == name)]
                + [raw],
                key=lambda e: str(e.get("name", "")) if isinstance(e, dict) else "",
            )
            # the index as it will be written passes the same checks every reader makes
            entries = parse_index(json.dumps(doc), str(index_path))
            entry = next(e for e in entries if e.name == name)
            write_json(index_path, doc)
    except OSError as exc:
        where = exc.filename or root
        raise ZooError(
            f"cannot write to registry {root} ({where}): {exc.strerror or exc}"
        ) from None
    return entry


def _recipe_description(path: Path) -> str | None:
    """A recipe's ``description`` (the entry's summary when none is given)."""
    import tomllib

    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("description")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def _run_of(source: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` beside a run dir's weights ({} for a bare weights file)."""
    from zoo.weights import source as rundir

    path = Path(source)
    if not (path / rundir.RUN_JSON).is_file():
        return {}
    try:
        return rundir.read_run_json(path)
    except ValueError as exc:
        raise UsageError(f"{path / rundir.RUN_JSON} is not valid JSON ({exc})") from None


def _read_index_doc(path: Path) -> dict[str, Any]:
    """The registry's index document (a new, empty one when there is none yet)."""
    if not path.exists():
        return {"schema": SCHEMA, "entries": []}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FetchError(f"cannot read registry index {path}: {exc.strerror or exc}") from None
    return read_document(data, str(path))
