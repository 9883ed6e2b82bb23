"""Publishing: copy exported weights into a local registry directory and index them.

Publishing validates everything before it writes anything, then commits under the registry's
lock:

1. **Validate** (nothing written yet): the weights file and the model it pins (a zoo 0.1 file's
   bare name must be a first-party model's), the tag, the recipe (read now), the registry's
   current ``index.json`` (every entry parsed as readers parse it), that an existing entry is
   replaced only with ``force``, and the new index as every reader will parse it.
2. **Stage**: the weights (and recipe) are copied under names no file of the registry has yet
   (``NAME.safetensors``, else ``NAME-<sha256 prefix>.safetensors``; a file with the same bytes
   is reused), each written atomically. The current index references none of them.
3. **Commit**: ``index.json`` is replaced atomically; that rename is the commit. Files only the
   replaced entry used are removed afterwards (a leftover is harmless: nothing references it).

A failure before the commit removes what was staged, so the registry is left byte-for-byte as
it was. This module does not import torch (reading the weights' metadata does, in the call).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo._util.atomic import atomic_path, os_reason, write_json
from zoo.errors import FetchError, UsageError, ZooError
from zoo.hub.cache import locked
from zoo.hub.entries import (
    ENTRY_NAME,
    SCHEMA,
    PretrainedEntry,
    local_path,
    max_index_bytes,
    parse_index,
    read_document,
)
from zoo.hub.transfer import CHUNK, read_all
from zoo.registry.entries import Pin
from zoo.registry.plugins import pinned_entry
from zoo.weights import card as cards
from zoo.weights import hf

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
    card: str | os.PathLike | None = None,
    intended_use: str | None = None,
    limitations: str | None = None,
    evaluation: str | None = None,
) -> PretrainedEntry:
    """Copy a weights file (or a run dir's ``model.safetensors``) into a local registry.

    The entry (``model.tag``) takes its model pin (``plugin``, ``dist``, ``dist_version``),
    kwargs, dataset and metrics from the file's metadata, completed from the run's ``run.json``
    when ``source`` is a run dir. An existing entry is replaced only with ``force``. Everything
    is validated first; then files and ``index.json`` are committed atomically under the
    registry's lock (see the module doc): a failure leaves the registry as it was.

    A model card (``NAME.md`` beside the weights, the entry's ``card``; see
    :mod:`zoo.weights.card`) is written when ``card`` (a card file, or a flat file of
    ``key: value`` fields) or any of ``intended_use``, ``limitations``, ``evaluation`` is given,
    or when ``source`` is a ``zoo export --format hf`` folder with a ``README.md``. zoo fills in
    what it knows (model, kwargs, dataset, metrics, recipe, run settings, preprocessing, labels);
    the arguments override the card file's fields. A card needs ``license`` and ``intended_use``.

    Raises:
        UsageError: bad tag, missing recipe, weights of no zoo model, an existing entry
            without ``force``, a card missing a required field or outside zoo's flat subset.
        FetchError: the registry's current index is malformed.
        ZooError: the registry cannot be written.
    """
    try:
        root = local_path(str(registry))
    except FetchError as exc:  # gopher://x: not a directory one can publish into
        raise UsageError(str(exc)) from None
    if root.suffix == ".json":
        root = root.parent
    from zoo.weights import files as weights
    from zoo.weights import source as rundir

    weights_path = rundir.resolve_weights(source)
    run = _run_of(source)
    kept = Path(source) / rundir.RECIPE
    recipe_path = Path(recipe) if recipe else (kept if kept.is_file() else None)
    recipe_bytes = _read_recipe(recipe_path)
    given = {"intended_use": intended_use, "limitations": limitations, "evaluation": evaluation}
    user, user_body = _card_input(source, card, {"license": license, **given})
    license = license or _text(user.get("license"))
    wants_card = bool(user) or bool(user_body)
    meta = weights.read_metadata(weights_path)
    pin = _model_pin(meta, weights.read_pins(meta, weights_path), weights_path, weights.FORMATS)
    name = f"{pin.name}.{tag}"
    if not ENTRY_NAME.match(name):
        raise UsageError(f"tag {tag!r} must be lower-case letters, digits and '-'")
    digest, size = _sha256(weights_path)
    config_bytes = _folder_config(source, pin)  # an hf export folder is published as a folder
    made_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(
            f"cannot create registry directory {root}: {os_reason(exc, root / 'x')}"
        ) from None
    staged: list[Path] = []
    try:
        with locked(root):  # the directory itself: publishing leaves no lock file behind
            index_path = root / "index.json"
            doc = _read_index_doc(index_path)
            existing = [e for e in doc["entries"] if isinstance(e, dict) and e.get("name") == name]
            if existing and not force:
                raise UsageError(f"{name} is already in {index_path}; use --force to replace it")
            old = existing[0] if existing else {}
            filename = _free_name(
                root,
                f"{name}/{hf.WEIGHTS}" if config_bytes else f"{name}.safetensors",
                digest,
                size,
            )
            raw: dict[str, Any] = {
                "name": name,
                "model": pin.name,
                "plugin": pin.plugin,
                "dist": pin.dist,
                "dist_version": pin.version,
                "kwargs": meta.get("kwargs") or {},
                "files": [{"url": filename, "sha256": digest, "size": size}],
                "metrics": meta.get("metrics") or run.get("result", {}).get("metrics", {}),
                "dataset": meta.get("dataset") or run.get("settings", {}).get("dataset"),
                "license": license or old.get("license") or "MIT",
                "recipe": None,
                "created": meta.get("created"),
            }
            if pin.version is None:
                del raw["dist_version"]
            if config_bytes is not None:
                config_digest = hashlib.sha256(config_bytes).hexdigest()
                config_name = _free_name(
                    root, f"{name}/{hf.CONFIG}", config_digest, len(config_bytes)
                )
                raw["files"].append(
                    {"url": config_name, "sha256": config_digest, "size": len(config_bytes)}
                )
            summary = summary or old.get("summary")
            summary = summary or (_recipe_description(recipe_bytes) if recipe_bytes else None)
            if summary:
                raw["summary"] = summary
            if recipe_bytes is not None:
                recipe_digest = hashlib.sha256(recipe_bytes).hexdigest()
                raw["recipe"] = _free_name(
                    root, f"recipes/{name}.toml", recipe_digest, len(recipe_bytes)
                )
            card_bytes = None
            if wants_card:
                facts = {
                    **{k: raw[k] for k in ("kwargs", "metrics", "dataset", "recipe", "created")},
                    "model": pin.qualname, "summary": summary, "settings": run.get("settings"),
                    "transform": meta.get("transform"), "classes": meta.get("classes"),
                }  # fmt: skip
                user = {**user, "license": raw["license"] if license or old else ""}
                fields, body = cards.compose(name, facts, user, user_body)
                absent = cards.missing(fields)
                if absent:
                    raise UsageError(
                        f"model card for {name} lacks {', '.join(absent)}: pass "
                        + " and ".join(f"--{k.replace('_', '-')}" for k in absent)
                        + " or put them in --card FILE"
                    )
                card_bytes = cards.render(fields, body).encode("utf-8")
                cards.parse(card_bytes.decode("utf-8"), f"model card for {name}")  # reads back
                card_digest = hashlib.sha256(card_bytes).hexdigest()
                raw["card"] = {
                    "url": _free_name(
                        root,
                        f"{name}/{hf.CARD}" if config_bytes else f"{name}.md",
                        card_digest,
                        len(card_bytes),
                    ),
                    "sha256": card_digest,
                    "size": len(card_bytes),
                }
            doc["schema"] = SCHEMA
            doc["entries"] = sorted(
                [e for e in doc["entries"] if not (isinstance(e, dict) and e.get("name") == name)]
                + [raw],
                key=lambda e: str(e.get("name", "")) if isinstance(e, dict) else "",
            )
            # the index as it will be written passes the same checks every reader makes
            entries = parse_index(json.dumps(doc), str(index_path))
            entry = next(e for e in entries if e.name == name)
            # validated: now the writes, none of them over a file the registry has
            _write(root / filename, _copier(weights_path, digest), staged)
            if recipe_bytes is not None:
                _write(root / raw["recipe"], lambda tmp: tmp.write_bytes(recipe_bytes), staged)
            if card_bytes is not None:
                _write(root / raw["card"]["url"], lambda tmp: tmp.write_bytes(card_bytes), staged)
            if config_bytes is not None:
                _write(root / config_name, lambda tmp: tmp.write_bytes(config_bytes), staged)
            write_json(index_path, doc)  # the commit
            staged.clear()
            with contextlib.suppress(OSError):  # a leftover is harmless: nothing references it
                _remove_unreferenced(root, old, doc)
    except BaseException as exc:
        for path in reversed(staged):  # not committed: the registry is as it was
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink(missing_ok=True)
        if made_root:
            with contextlib.suppress(OSError):
                root.rmdir()  # only if empty
        if isinstance(exc, OSError):
            where = exc.filename or root
            raise ZooError(
                f"cannot write to registry {root} ({where}): {exc.strerror or exc}"
            ) from None
        raise
    return entry


def _model_pin(meta: dict[str, Any], pins: dict[str, Pin], path: Path, formats: tuple) -> Pin:
    """The model the weights pin, complete (plugin, distribution, version), or a one-line error.

    A zoo 0.1 file's bare name is completed from the first-party model of that name.
    """
    pin = pins.get("model")
    if pin is None:
        why = (
            "was exported from a module not built by zoo.create_model, so it names no model entry"
            if meta.get("format") in formats
            else "has no zoo model metadata (it was not written by zoo.export)"
        )
        raise UsageError(f"{path} {why}; only weights of zoo models can be published")
    if pin.plugin is None or pin.dist is None:
        pin = pinned_entry(pin, source=str(path)).pin
    return pin


def _read_recipe(path: Path | None) -> bytes | None:
    """The recipe's bytes (read before anything is written), or a one-line error."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such recipe file: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read recipe {path}: {exc.strerror or exc}") from None


def _sha256(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copier(src: Path, digest: str) -> Callable[[Path], None]:
    """Write ``src`` into a temp path, checking it still has the bytes validated earlier."""

    def copy(tmp: Path) -> None:
        got = hashlib.sha256()
        with open(src, "rb") as fh, open(tmp, "wb") as out:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                out.write(chunk)
                got.update(chunk)
        if got.hexdigest() != digest:
            raise ZooError(f"{src} changed while it was being published; try again")

    return copy


def _free_name(root: Path, rel: str, digest: str, size: int) -> str:
    """Where a file with ``digest`` goes under ``root`` without touching any existing file:
    ``rel`` or ``stem-<sha>.suffix``, whichever is free or already holds exactly these bytes."""
    stem, dot, suffix = rel.rpartition(".")
    candidates = (rel, f"{stem}-{digest[:16]}{dot}{suffix}", f"{stem}-{digest}{dot}{suffix}")
    for candidate in candidates:
        path = root / candidate
        if path.is_file() and path.stat().st_size == size and _sha256(path) == (digest, size):
            return candidate
    for candidate in candidates:
        if not (root / candidate).exists():
            return candidate
    raise ZooError(f"cannot publish into {root}: {rel} and its alternatives hold other files")


def _write(path: Path, write: Callable[[Path], None], staged: list[Path]) -> None:
    """Write a new file atomically (``write`` fills a temp path); a file already there holds
    the same bytes (see :func:`_free_name`) and is kept as it is."""
    if path.exists():
        return
    if not path.parent.exists():
        path.parent.mkdir()  # recipes/ (the registry root exists)
        staged.append(path.parent)
    with atomic_path(path) as tmp:
        write(tmp)
    staged.append(path)


def _remove_unreferenced(root: Path, old: dict[str, Any], doc: dict[str, Any]) -> None:
    """After the commit: delete the replaced entry's files that no entry references now."""
    used = {_local(ref) for e in doc["entries"] if isinstance(e, dict) for ref in _refs(e)}
    for ref in _refs(old):
        rel = _local(ref)
        if rel and rel not in used:
            (root / rel).unlink(missing_ok=True)
            if (root / rel).parent != root:  # an entry's folder (recipes/, NAME/) once empty
                with contextlib.suppress(OSError):
                    (root / rel).parent.rmdir()


def _refs(entry: dict[str, Any]) -> list[str]:
    files = entry.get("files") if isinstance(entry.get("files"), list) else []
    urls = [f.get("url") for f in files if isinstance(f, dict)]
    card = entry.get("card")
    card_url = card.get("url") if isinstance(card, dict) else None
    return [u for u in [*urls, entry.get("recipe"), card_url] if isinstance(u, str)]


def _local(ref: str) -> str:
    """A relative in-registry path (``a/b.x``), or ``""`` for anything else (URL, ``..``)."""
    parts = urllib.parse.urlsplit(ref)
    segments = ref.replace("\\", "/").split("/")
    if parts.scheme or parts.netloc or ref.startswith(("/", "\\")) or ".." in segments:
        return ""
    return "/".join(s for s in segments if s not in ("", "."))


def _recipe_description(data: bytes) -> str | None:
    """A recipe's ``description`` (the entry's summary when none is given)."""
    import tomllib

    try:
        value = tomllib.loads(data.decode("utf-8")).get("description")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def _card_input(
    source: str | os.PathLike, card: str | os.PathLike | None, given: dict[str, str | None]
) -> tuple[dict[str, Any], str]:
    """The card fields and body the user gave: ``card`` (else an exported HF folder's
    ``README.md``: its header fields), then the arguments over them. ``({}, "")`` asks for no
    card."""
    fields: dict[str, Any] = {}
    body = ""
    folder_card = Path(source) / hf.CARD
    if card is not None:
        fields, body = cards.read_fields(card)
    elif hf.is_hf_folder(source) and folder_card.is_file():
        fields, _ = cards.read_card(folder_card)
    named = {k: v for k, v in given.items() if v}
    if not fields and not body and not (named.keys() - {"license"}):
        return {}, ""  # no card asked for (--license alone is the index's license, as before)
    return {**fields, **named}, body


def _folder_config(source: str | os.PathLike, pin: Pin) -> bytes | None:
    """The ``config.json`` of a ``zoo export --format hf`` folder (checked, and naming the
    model its weights pin), else ``None``."""
    if not hf.is_hf_folder(source):
        return None
    config = hf.read_config(source)
    if (config.get("plugin"), config["model"]) != (pin.plugin, pin.name):
        raise UsageError(
            f"{Path(source) / hf.CONFIG} names model {config.get('plugin')}/{config['model']} "
            f"but its weights are for {pin.qualname}"
        )
    return (Path(source) / hf.CONFIG).read_bytes()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _run_of(source: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` beside a run dir's weights ({} for a bare weights file)."""
    from zoo.weights import source as rundir

    path = Path(source)
    if not (path / rundir.RUN_JSON).is_file():
        return {}
    return rundir.read_run_json(path)


def _read_index_doc(path: Path) -> dict[str, Any]:
    """The registry's index document, validated as every reader validates it (a new, empty one
    when there is none yet)."""
    if not path.exists():
        return {"schema": SCHEMA, "entries": []}
    data = read_all(str(path), max_index_bytes(), "registry index", "ZOO_MAX_INDEX_BYTES")
    parse_index(data, str(path))
    return read_document(data, str(path))
