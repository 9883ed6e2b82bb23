"""Weights files: safetensors with zoo metadata, so a model rebuilds from the file alone.

``export`` writes ``model.state_dict()`` (tied tensors stored once, their aliases recorded)
with a ``__metadata__`` that names the model entry, its kwargs, plugin, distribution and
version, dataset, metrics, zoo version and creation time, and the transform the data had, its
class names and its targets' transform (``transform``, ``classes``, ``target_transform``:
:mod:`zoo.weights.preprocess`). ``load`` rebuilds the model from that metadata on the ``meta``
device (no random initialisation of weights about to be overwritten) and assigns the file's
tensors; ``load_weights`` loads a file into a model you built. Nothing is ever unpickled. A
malformed file, or one for another architecture, is a one-line :class:`~zoo.errors.WeightsError`.

The file is data, never instructions: its header is read with size and depth limits
(:data:`MAX_HEADER`, :data:`HEADER_DEPTH`; each metadata field is JSON of the type the format
gives it), the recorded kwargs are checked against the model's signature before it is called,
and the model built on the ``meta`` device is compared with the header's names, shapes and
dtypes before any tensor is allocated. A tensor holding NaN, or a parameter holding inf (a
diverged run), is refused with its name.

A weights file pins what it was made with (``zoo.weights/2``: the ``pins`` field, see
:func:`read_pins`): the model as ``plugin/name`` with its distribution and version, and the
dataset and loss when known. ``load`` builds exactly the pinned model entry or fails with one
line naming what to install; installing another plugin that registers the same name changes
nothing. ``zoo.weights/1`` files still load: their recorded plugin and distribution are the
pin, and a bare name without them (zoo 0.1) resolves to the first-party entry only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import stat
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn import init

from zoo import __version__
from zoo._util.atomic import atomic_path, write_reason
from zoo._util.jsonio import JSONLimitError, loads
from zoo._util.log import get_logger
from zoo.errors import WeightsError, ZooError, one_line, short_repr
from zoo.models import BUILD_ERRORS, build_model, check_kwargs
from zoo.registry.entries import KINDS, Entry, Pin
from zoo.registry.plugins import get_registry, pinned_entry
from zoo.weights.classpath import class_path, find_loaded_class, known_kwargs
from zoo.weights.preprocess import FIELDS as PREPROCESSING
from zoo.weights.preprocess import field_problem

__all__ = [
    "FORMAT",
    "FORMATS",
    "build_for_file",
    "export",
    "load",
    "load_weights",
    "read_header",
    "read_metadata",
    "read_pins",
    "split_shared",
    "tensor_identity",
]

FORMAT = "zoo.weights/2"
FORMATS = ("zoo.weights/1", FORMAT)  # what this zoo reads
ALIGNMENT = 64  # bytes; what torch's CPU allocator guarantees
MAX_HEADER = 100 * 1024 * 1024  # bytes; safetensors' own limit on the JSON header
HEADER_DEPTH = 3  # {key: {"shape": [...]}}: metadata values are strings holding JSON
JSON_FIELDS = ("kwargs", "metrics", "extra", "aliases", "pins", *PREPROCESSING)
# each a JSON object but ``classes``, a list of names (zoo.weights.preprocess checks those)
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn", "I16": "int16", "U16": "uint16", "F16": "float16",
    "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "I64": "int64",
    "U64": "uint64", "F64": "float64",
}  # fmt: skip


# ---------------------------------------------------------------- export


def export(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights to a safetensors file (atomically) with zoo metadata.

    The model entry, kwargs, plugin and version come from ``model.zoo_spec`` (set by
    ``zoo.create_model``). A plain ``nn.Module`` (not built by ``zoo.create_model``) exports
    with its class path and constructor kwargs (``model_kwargs``, else Lightning's
    ``hparams``, else none when it takes none: :mod:`zoo.weights.classpath`), so :func:`load`
    rebuilds it once its module is imported; when either cannot be known, a warning says that
    loading will need the model built by hand (:func:`load_weights`). Tied tensors are stored
    once. An unwritable ``path`` is a one-line :class:`~zoo.errors.WeightsError`.
    """
    tensors, aliases = split_shared(model.state_dict())
    spec = getattr(model, "zoo_spec", None)
    meta: dict[str, Any] = {"format": FORMAT, "zoo_version": __version__}
    if spec is not None:
        meta.update(
            model=spec.model, kwargs=spec.kwargs, plugin=spec.plugin, dist=spec.dist,
            dist_version=spec.version,
        )  # fmt: skip
    else:
        meta.update(_plain_module(model, model_kwargs, path))
    dataset = dataset if dataset is not None else getattr(spec, "dataset", None)
    if dataset is not None:
        meta["dataset"] = dataset
    pins = _pins(spec, dataset, extra)
    if pins:
        meta["pins"] = pins
    if metrics is not None:
        meta["metrics"] = {str(k): float(v) for k, v in metrics.items()}
    if extra:
        meta["extra"] = extra
    for key, value in _preprocessing(spec, dataset, extra).items():
        problem = field_problem(key, value)
        if problem:  # the weights are still good: written without it, as before zoo recorded it
            get_logger(__name__).warning(f"{path}: not recording the data's {key}: it {problem}")
            continue
        meta[key] = value
    if aliases:
        meta["aliases"] = aliases
    dtype = _state_dtype(tensors)
    if dtype is not None:
        meta["dtype"] = dtype
    if getattr(spec, "flatten", False):
        meta["flatten"] = "true"
    meta["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    header = {}
    for key, value in meta.items():
        if key in JSON_FIELDS:
            try:
                header[key] = json.dumps(value, sort_keys=True)
            except (TypeError, ValueError) as exc:
                raise WeightsError(
                    f"cannot export: {key} is not JSON-serialisable ({exc})"
                ) from exc
        else:
            header[key] = str(value)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=header)
    except (OSError, SafetensorError) as exc:
        raise WeightsError(f"cannot write {path}: {write_reason(exc, path)}") from None
    return path


def tensor_identity(tensor: torch.Tensor) -> tuple[Any, ...]:
    """What makes two state-dict entries one tensor (tied weights): the same storage viewed at
    the same offset with the same shape, stride and dtype."""
    t = tensor.detach()
    return (
        str(t.device), t.untyped_storage().data_ptr(), t.storage_offset(),
        tuple(t.shape), tuple(t.stride()), t.dtype,
    )  # fmt: skip


def split_shared(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A ``state_dict`` as safetensors can store it: tied tensors once, plus their aliases.

    Two keys are one tensor (tied weights) when they view the same storage at the same offset
    with the same shape, stride and dtype: the later key becomes an alias of the first. Any
    other view of memory (a slice of a weight, a reshaped or reinterpreted copy of it) is a
    tensor of its own. Weights files and checkpoints both store state this way.

    Returns:
        ``(tensors, aliases)``: the tensors to store - on the CPU, contiguous, none sharing
        memory with another - and ``{alias key: stored key}``.
    """
    seen: dict[tuple[Any, ...], str] = {}
    used: set[tuple[str, int]] = set()  # storages a stored tensor already lives in
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for key, tensor in state.items():
        t = tensor.detach()
        ident = tensor_identity(t)
        storage = ident[:2]
        if t.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        whole = t.untyped_storage().nbytes() == t.numel() * t.element_size()
        if t.device.type != "cpu" or not t.is_contiguous() or not whole or storage in used:
            t = t.to("cpu", memory_format=torch.contiguous_format, copy=True)
        elif t.numel():
            used.add(storage)
        if t.numel():
            seen[ident] = key
        tensors[key] = t
    return tensors, aliases


# ---------------------------------------------------------------- reading


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The raw safetensors JSON header, after checking the file's framing and every field's
    type: ``__metadata__`` an object of strings, each tensor a known dtype, a list of
    non-negative integer dims and two integer offsets inside the file (one-line errors)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise WeightsError(f"{path} is {what}, not a weights file")
        size = info.st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: not a safetensors file (only {size} bytes)")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER or length > size - 8:
                raise WeightsError(
                    f"{path}: not a safetensors file or truncated (header length {length} "
                    f"but file has {size} bytes)"
                )
            raw = fh.read(length)
    except FileNotFoundError:
        raise WeightsError(f"no such weights file: {path}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {one_line(exc)}") from None
    try:
        header = loads(raw, max_bytes=MAX_HEADER, max_depth=HEADER_DEPTH)
    except JSONLimitError as exc:
        raise WeightsError(f"{path}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise WeightsError(
            f"{path}: corrupt safetensors header (__metadata__ must be an object of strings, "
            f"not {short_repr(metadata)})"
        )
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise WeightsError(
                f"{path}: corrupt safetensors header (__metadata__ {key!r} must be a string, "
                f"not {short_repr(value)})"
            )
    data_size = size - 8 - length
    for key, info in header.items():
        if key != "__metadata__":
            _check_tensor_info(path, key, info, data_size)
    return header


def _check_tensor_info(path: Path, key: str, info: Any, data_size: int) -> None:
    if not isinstance(info, dict):
        raise WeightsError(f"{path}: corrupt safetensors entry for {key!r} (not an object)")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise WeightsError(f"{path}: tensor {key!r} has unknown dtype {short_repr(dtype)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise WeightsError(
            f"{path}: tensor {key!r} has shape {short_repr(shape)}; a shape is a list of "
            "non-negative integers"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise WeightsError(
            f"{path}: tensor {key!r} has data_offsets {short_repr(offsets)}; they are two "
            "non-negative integers"
        )
    start, end = offsets
    if end - start != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise WeightsError(
            f"{path}: tensor {key!r} ({dtype} {shape}) does not match its byte range {start}..{end}"
        )
    if end > data_size:
        raise WeightsError(
            f"{path}: truncated (tensor {key!r} needs bytes up to {end}, file holds {data_size})"
        )


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The file's zoo metadata with JSON fields (kwargs, metrics, extra, ...) decoded and
    checked against the format (see :data:`FIELD_TYPES`): one-line errors."""
    return _decode_metadata(Path(path), read_header(path))


def _decode_metadata(path: Path, header: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in header.get("__metadata__", {}).items():
        if key not in JSON_FIELDS:
            meta[key] = value
            continue
        try:
            meta[key] = loads(value, max_bytes=MAX_HEADER)
        except JSONLimitError as exc:
            raise WeightsError(
                f"{path}: metadata field {key!r} is not valid JSON ({exc})"
            ) from None
        _check_field(path, key, meta[key])
    return meta


def _check_field(path: Path, key: str, value: Any) -> None:
    """Refuse a JSON field whose type is not the format's (data is description, not code)."""
    if key in PREPROCESSING:
        problem = field_problem(key, value)
        if problem:
            raise WeightsError(f"{path}: metadata field {key!r} {problem}")
        return
    if not isinstance(value, dict):
        raise WeightsError(
            f"{path}: metadata field {key!r} must be an object, not {short_repr(value)}"
        )
    if key == "aliases" and not all(isinstance(v, str) for v in value.values()):
        raise WeightsError(f"{path}: metadata field 'aliases' must map names to tensor names")
    if key == "metrics" and not all(_is_number(v) for v in value.values()):
        raise WeightsError(f"{path}: metadata field 'metrics' must map names to numbers")
    if key == "extra" and "train" in value:
        train = value["train"]
        entries = train.get("entries", {}) if isinstance(train, dict) else None
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            raise WeightsError(
                f"{path}: metadata field 'extra': 'train' must be an object whose 'entries' "
                "map kinds to entry names"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _file_specs(
    path: Path, header: Mapping[str, Any], meta: Mapping[str, Any]
) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, torch dtype name)}`` of what the file holds, aliases included: what a
    model is checked against before any tensor is read or allocated."""
    specs = {
        key: (tuple(info["shape"]), TORCH_DTYPES[info["dtype"]])
        for key, info in header.items()
        if key != "__metadata__"
    }
    for alias, target in (meta.get("aliases") or {}).items():
        if target not in specs:
            raise WeightsError(f"{path}: alias {alias!r} points to missing tensor {target!r}")
        specs[alias] = specs[target]
    return specs


def _read_tensors(
    path: Path, device: str = "cpu", header: Mapping[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Validated tensors with aliases expanded, and the decoded metadata."""
    path = Path(path)
    header = read_header(path) if header is None else header
    meta = _decode_metadata(path, header)
    _file_specs(path, header, meta)  # the aliases point at stored tensors
    try:
        tensors = load_file(str(path), device=device)
    except SafetensorError as exc:
        raise WeightsError(f"{path}: invalid safetensors file ({one_line(exc)})") from None
    except (RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"{path}: cannot load tensors onto {device!r} ({one_line(exc)})"
        ) from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {one_line(exc)}") from None
    # Tensors read from the file are views at arbitrary byte offsets; some CPU kernels pick
    # another (differently rounding) path for unaligned data, so give those their own memory.
    tensors = {k: v.clone() if v.data_ptr() % ALIGNMENT else v for k, v in tensors.items()}
    for alias, target in (meta.get("aliases") or {}).items():
        tensors[alias] = tensors[target]
    return tensors, meta


def _check_finite(
    path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> None:
    """Refuse NaN in any tensor and inf in a parameter, naming the tensor (a diverged run's
    weights predict nonsense). A buffer may hold inf (an attention mask does)."""
    for key, tensor in tensors.items():
        if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
            continue
        nan = int(torch.isnan(tensor).sum())
        if nan:
            what = f"{nan} NaN value{'s' if nan > 1 else ''}"
        elif isinstance(expected.get(key), torch.nn.Parameter):
            what = "infinite values"
        else:
            continue
        raise WeightsError(
            f"{path}: tensor {key!r} holds {what}; refusing to load it (the run that wrote it "
            "probably diverged)"
        )


# ---------------------------------------------------------------- loading


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into ``model`` (strict: keys, shapes and dtypes must fit).

    The fit is checked against the file's header before any tensor is read. Floating-point
    tensors stored in another dtype than the model's are cast to the model's, with a one-line
    warning; one that would overflow it, an integer/float mismatch, or a tensor holding NaN
    (or a parameter holding inf) is a one-line :class:`~zoo.errors.WeightsError`.
    """
    path = Path(path)
    header = read_header(path)
    meta = _decode_metadata(path, header)
    expected = model.state_dict(keep_vars=True)
    _check_fit(path, meta, expected, _file_specs(path, header, meta), model_name=_spec_name(model))
    device = _model_device(model)
    tensors, _ = _read_tensors(path, "cpu" if device in (None, "meta") else device, header)
    _check_finite(path, tensors, expected)
    wanted = {k: v.dtype for k, v in expected.items()}
    tensors = _cast_floats(path, tensors, wanted, "the model's dtype")
    on_meta = any(t.is_meta for t in expected.values())
    ties = _ties(model)
    model.load_state_dict(tensors, strict=True, assign=on_meta)
    if on_meta:
        _retie(model, ties)


def load(path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """Rebuild the model a zoo weights file was exported from, in eval mode, on ``device``.

    The model is built on the ``meta`` device (skipping random initialisation) and checked
    against the file's header - names, shapes, dtypes - before any tensor is read or
    allocated; the file's tensors are then assigned in place. A model that cannot be built
    that way is built normally. The recorded kwargs are checked against the target's
    signature before it is called (:func:`zoo.models.check_kwargs`). Tied parameters stay
    tied. A model recorded as flattening its inputs (a features model trained on images) is
    rebuilt so.

    Floating-point tensors come in the dtype the metadata records for the model (``dtype``:
    ``float32``, ``bfloat16``, ...; ``mixed``: each as stored); a file that records none
    (written before zoo recorded it) loads in the dtype the model is built in. A stored
    tensor in another dtype is cast, with a one-line warning; one the cast would overflow,
    a ``dtype`` zoo does not know, or a tensor holding NaN (a parameter holding inf) is a
    one-line :class:`~zoo.errors.WeightsError`.

    ``zoo.load`` (:func:`zoo.weights.loading.load`) also takes a folder written by ``zoo
    export --format hf``.
    """
    path = Path(path)
    header = read_header(path)
    meta = _decode_metadata(path, header)
    if not meta.get("model") and "model_class" in meta:
        return _load_plain_module(path, meta, device)
    if not meta.get("model"):
        why = (
            "was exported from a module not built by zoo.create_model, so it names no model entry"
            if meta.get("format") in FORMATS
            else "has no zoo model metadata (it was not written by zoo.export)"
        )
        raise WeightsError(
            f"{path} {why}; zoo.load cannot rebuild it: build the model yourself and use "
            "zoo.weights.load_weights(model, path)"
        )
    entry = _model_entry(meta, path)
    how = {"dataset": meta.get("dataset"), "flatten": _recorded_flatten(path, meta)}
    recorded = _recorded_dtype(path, meta)
    specs = _file_specs(path, header, meta)
    kwargs = meta.get("kwargs") or {}
    model, on_meta = _build(entry, kwargs, str(path), how)
    expected = model.state_dict(keep_vars=True)
    _check_fit(path, meta, expected, specs, model_name=entry.name)
    tensors, _ = _read_tensors(path, device, header)
    _check_finite(path, tensors, expected)
    tensors = _cast_floats(path, tensors, *_wanted_dtypes(recorded, expected, tensors))
    ties = _ties(model)
    model.load_state_dict(tensors, strict=True, assign=True)
    _retie(model, ties)
    if on_meta and any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        # e.g. a non-persistent buffer the file cannot fill: build it for real
        on_meta = False
        model = build_model(entry, kwargs, source=str(path), **how)
        ties = _ties(model)
        model.load_state_dict(tensors, strict=True, assign=True)
        _retie(model, ties)
    if not on_meta:  # built for real: what the file does not hold is as the constructor made it
        if isinstance(recorded, torch.dtype):
            model.to(dtype=recorded)  # as it was when exported in that dtype
        model.to(device)
    model.zoo_spec.extra.update(
        {"metrics": meta.get("metrics") or {}, "source": str(path), "created": meta.get("created")}
    )
    kept = {k: meta[k] for k in PREPROCESSING if k in meta}
    if kept:  # reachable from the model (zoo.transforms), and exported again with it
        model.zoo_spec.extra["preprocessing"] = {"dataset": meta.get("dataset"), **kept}
    return model.eval()


def _plain_module(
    model: torch.nn.Module, given: Mapping[str, Any] | None, path: str | os.PathLike
) -> dict[str, Any]:
    """``model_class`` and ``kwargs`` for a module zoo did not build, when both are known
    (and the kwargs fit its signature as JSON values); else a warning and nothing."""
    found, why = class_path(model)
    kwargs, why_kwargs = known_kwargs(model, given) if found else (None, "")
    if found and kwargs is not None:
        try:
            check_kwargs(found, type(model), kwargs, "export")
        except WeightsError as exc:
            kwargs, why_kwargs = None, str(exc).removeprefix(f"export: model {found!r}: ")
    if found and kwargs is not None:
        return {"model_class": found, "kwargs": kwargs}
    get_logger(__name__).warning(
        f"{path}: exporting a module zoo did not build, and {why or why_kwargs}: zoo.load will "
        "need the model supplied (build it and use zoo.weights.load_weights(model, path))"
    )
    return {}


def _load_plain_module(path: Path, meta: dict[str, Any], device: str) -> torch.nn.Module:
    """Rebuild a module recorded by class path, from a module already imported (never an
    import a file asks for), and load the file into it."""
    cls = find_loaded_class(meta["model_class"], str(path))
    kwargs = meta.get("kwargs") or {}
    check_kwargs(meta["model_class"], cls, kwargs, str(path))
    try:
        model = cls(**kwargs)
    except BUILD_ERRORS as exc:
        raise WeightsError(
            f"{path}: {meta['model_class']}(**kwargs) failed: {one_line(exc)}"
        ) from None
    load_weights(model, path)
    return model.to(device).eval()


def _preprocessing(spec: Any, dataset: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The ``transform``, ``classes`` and ``target_transform`` export records: those of the
    run's own data (its training record), else those the model was loaded with for this same
    dataset, each completed by what the registered ``dataset`` declares (a file written before
    zoo recorded one gains it when exported again)."""
    train = (extra or {}).get("train")
    data = train.get("data") if isinstance(train, dict) else None
    if isinstance(data, dict):
        found = {"transform": data.get("preprocessing"), "classes": data.get("classes")}
        return {k: v for k, v in found.items() if v is not None}
    carried = getattr(spec, "extra", {}).get("preprocessing")
    if not isinstance(carried, dict) or carried.get("dataset") != dataset:
        carried = {}
    declared: dict[str, Any] = {}
    if isinstance(dataset, str) and dataset:
        with contextlib.suppress(ZooError):
            declared = get_registry().get("dataset", dataset).meta
    known = {*carried, *declared}
    return {k: carried.get(k, declared.get(k)) for k in PREPROCESSING if k in known}


def _build(
    entry: Entry, kwargs: dict[str, Any], source: str, how: dict[str, Any]
) -> tuple[torch.nn.Module, bool]:
    """The model built on the ``meta`` device (no allocation, no random initialisation), and
    whether it is; a constructor that cannot run on meta tensors is built for real, and that
    build reports any error of its own (kwargs are checked first, both times)."""
    entry.load()  # import outside the meta-device context
    try:
        with torch.device("meta"), _no_init_on_meta():
            return build_model(entry, kwargs, source=source, **how), True
    except Exception:
        return build_model(entry, kwargs, source=source, **how), False


def build_for_file(
    entry: Entry, kwargs: dict[str, Any], path: str | os.PathLike, *, source: str,
    dataset: str | None = None,
) -> torch.nn.Module:  # fmt: skip
    """Build ``entry`` with ``kwargs`` (from ``source``, e.g. an index entry) and load the
    weights file ``path`` into it, as :func:`load_weights` does: built on the ``meta`` device
    and checked against the file's header first, so kwargs that do not fit the file cost no
    allocation."""
    path = Path(path)
    model, on_meta = _build(entry, kwargs, source, {"dataset": dataset})
    try:
        load_weights(model, path)
        if on_meta and any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
            model = build_model(entry, kwargs, source=source, dataset=dataset)
            load_weights(model, path)
    except WeightsError as exc:
        raise WeightsError(f"{source}: {exc}") from None
    return model


# torch.nn.init's in-place initialisers; on meta tensors they run through slow Python
# decompositions (about 3/4 of building ResNet-50 on meta) to fill values nobody will read.
_INITIALISERS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_",
)  # fmt: skip


@contextlib.contextmanager
def _no_init_on_meta() -> Iterator[None]:
    """Make ``torch.nn.init`` skip meta tensors while a model is built on the meta device.

    Only meta tensors are skipped, so a model another thread builds meanwhile is initialised
    as usual.
    """
    saved = {name: getattr(init, name) for name in _INITIALISERS if hasattr(init, name)}

    def skipping(original: Any) -> Any:
        @functools.wraps(original)
        def initialise(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            return tensor if tensor.is_meta else original(tensor, *args, **kwargs)

        return initialise

    with _INIT_LOCK:
        try:
            for name, original in saved.items():
                setattr(init, name, skipping(original))
            yield
        finally:
            for name, original in saved.items():
                setattr(init, name, original)


_INIT_LOCK = threading.Lock()


def _model_entry(meta: dict[str, Any], path: Path):
    """Exactly the model entry the file pins, or a one-line error naming what to install."""
    pin = read_pins(meta, path).get("model")
    if pin is None:
        raise WeightsError(f"{path}: metadata names no model entry")
    return pinned_entry(pin, source=str(path))


def read_pins(meta: Mapping[str, Any], path: str | os.PathLike = "") -> dict[str, Pin]:
    """What a weights file's metadata pins, by kind: the model, and the dataset and loss when
    recorded (see :class:`~zoo.registry.entries.Pin`).

    ``zoo.weights/2`` records them in ``pins``; for older files they come from the recorded
    ``model``, ``plugin``, ``dist`` and ``dist_version`` and the training record's qualified
    ``entries`` (a bare name, as zoo 0.1 wrote it, is a pin without a plugin).

    Raises:
        WeightsError: ``pins`` is malformed (one line naming ``path``).
    """
    found: dict[str, Pin] = {}
    raw = meta.get("pins")
    if raw is not None:
        if not isinstance(raw, dict):
            raise WeightsError(f"{path}: metadata field 'pins' must be an object")
        for kind in KINDS:
            try:
                if raw.get(kind) is not None:
                    found[kind] = Pin.from_dict(kind, raw[kind])
            except ValueError as exc:
                raise WeightsError(f"{path}: metadata field 'pins': {exc}") from None
    train = (meta.get("extra") or {}).get("train") if isinstance(meta.get("extra"), dict) else None
    train = train if isinstance(train, dict) else {}
    refs = train.get("entries") if isinstance(train.get("entries"), dict) else {}
    recorded = {
        "model": meta.get("model"),
        "dataset": refs.get("dataset") or meta.get("dataset"),
        "loss": refs.get("loss") or train.get("loss"),
    }
    for kind, ref in recorded.items():
        if kind in found or not isinstance(ref, str) or not ref:
            continue
        pin = Pin.parse(kind, ref)
        if kind == "model" and "/" not in ref and meta.get("plugin"):  # zoo.weights/1
            pin = Pin.parse(kind, f"{meta['plugin']}/{ref}", meta.get("dist"))
            pin = replace(pin, version=meta.get("dist_version"))
        try:
            pin.check()
        except ValueError as exc:
            raise WeightsError(f"{path}: metadata: {exc}") from None
        found[kind] = pin
    return found


def _pins(spec: Any, dataset: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The ``pins`` field export writes: the model from its spec; the dataset and loss (from the
    training record's qualified names, else ``dataset``) where they resolve to an entry."""
    pins: dict[str, Any] = {}
    if spec is not None:
        pins["model"] = Pin("model", spec.model, spec.plugin, spec.dist, spec.version).to_dict()
    train = (extra or {}).get("train")
    train = train if isinstance(train, dict) else {}
    refs = train.get("entries") if isinstance(train.get("entries"), dict) else {}
    for kind, ref in (
        ("dataset", refs.get("dataset") or dataset),
        ("loss", refs.get("loss") or train.get("loss")),
    ):
        if isinstance(ref, str) and ref:
            with contextlib.suppress(ZooError):  # a name no entry has: recorded, not pinned
                pins[kind] = get_registry().get(kind, ref).pin.to_dict()
    return pins


def _check_fit(
    path: Path,
    meta: dict[str, Any],
    expected: Mapping[str, torch.Tensor],
    specs: Mapping[str, tuple[tuple[int, ...], str]],
    *,
    model_name: str | None,
) -> None:
    """Raise one line naming missing/unexpected keys, or the first shape or dtype mismatch
    between the model's state and the file's ``{key: (shape, dtype name)}``."""
    missing = [k for k in expected if k not in specs]
    unexpected = [k for k in specs if k not in expected]
    whose = f" (the file is for {meta['model']!r})" if meta.get("model") else ""
    target = f"model {model_name!r}" if model_name else "this model"
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_few(unexpected)}")
        raise WeightsError(f"{path} does not fit {target}{whose}: {'; '.join(parts)}")
    for key, want in expected.items():
        shape, dtype = specs[key]
        if shape != tuple(want.shape):
            raise WeightsError(
                f"{path} does not fit {target}{whose}: {key!r} has shape {list(shape)}, "
                f"model expects {list(want.shape)}"
            )
        floats = getattr(torch, dtype).is_floating_point and want.is_floating_point()
        if dtype != _name(want.dtype) and not floats:
            raise WeightsError(
                f"{path}: tensor {key!r} has dtype {dtype}, model expects {_name(want.dtype)}"
            )


FLOAT_DTYPES = {
    str(t).removeprefix("torch."): t
    for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}
MIXED = "mixed"  # the ``dtype`` of a file whose floating-point tensors differ: each as stored


def _state_dtype(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """What export records as ``dtype``: the one floating-point dtype of the stored tensors,
    ``mixed`` when they differ, ``None`` without any."""
    found = {str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()}
    return found.pop() if len(found) == 1 else (MIXED if found else None)


def _recorded_dtype(path: Path, meta: dict[str, Any]) -> torch.dtype | str | None:
    """The metadata's ``dtype``: a torch dtype, ``mixed``, or ``None`` when not recorded."""
    value = meta.get("dtype")
    if value is None or value == MIXED:
        return value
    if value not in FLOAT_DTYPES:
        raise WeightsError(
            f"{path}: metadata dtype {value!r} is not one of {', '.join(FLOAT_DTYPES)}, {MIXED}"
        )
    return FLOAT_DTYPES[value]


def _recorded_flatten(path: Path, meta: dict[str, Any]) -> bool:
    """Whether the file's model flattens image inputs (absent in files from before zoo did)."""
    value = meta.get("flatten")
    if value not in (None, "true"):
        raise WeightsError(f"{path}: metadata field 'flatten' must be 'true', not {value!r}")
    return value == "true"


def _wanted_dtypes(
    recorded: torch.dtype | str | None,
    expected: Mapping[str, torch.Tensor],
    tensors: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.dtype], str]:
    """Each key's dtype after loading, and why: the recorded one for every floating-point
    tensor, each as stored (``mixed``), or the built model's own (nothing recorded)."""
    if recorded == MIXED:
        return {k: t.dtype for k, t in tensors.items()}, "as stored"
    if isinstance(recorded, torch.dtype):
        wanted = {k: recorded if t.is_floating_point() else t.dtype for k, t in expected.items()}
        return wanted, "the dtype the file records for the model"
    return {k: t.dtype for k, t in expected.items()}, "the model's dtype; the file records none"


def _cast_floats(
    path: Path,
    tensors: dict[str, torch.Tensor],
    wanted: Mapping[str, torch.dtype],
    why: str,
) -> dict[str, torch.Tensor]:
    """``tensors`` with each floating-point one in its ``wanted`` dtype (aliases stay one
    tensor); one warning line sums up the casts. A finite value the cast would turn into
    inf is refused (one line): the file holds numbers that dtype cannot."""
    done: dict[tuple[int, torch.dtype], torch.Tensor] = {}
    casts: dict[str, int] = {}
    out = {}
    for key, tensor in tensors.items():
        want = wanted.get(key, tensor.dtype)
        if tensor.dtype == want or not (tensor.is_floating_point() and want.is_floating_point):
            out[key] = tensor
            continue
        ident = (id(tensor), want)
        if ident not in done:
            cast = tensor.to(want)
            if torch.finfo(want).max < torch.finfo(tensor.dtype).max:
                lost = torch.isfinite(tensor) & ~torch.isfinite(cast)
                if lost.any():
                    raise WeightsError(
                        f"{path}: tensor {key!r} holds values up to "
                        f"{tensor[lost].abs().max().item():.4g} that {_name(want)} cannot "
                        f"represent; refusing to load it as {_name(want)} ({why})"
                    )
            done[ident] = cast
            pair = f"{_name(tensor.dtype)} as {_name(want)}"
            casts[pair] = casts.get(pair, 0) + 1
        out[key] = done[ident]
    if casts:
        what = ", ".join(
            f"{n} tensor{'s' if n > 1 else ''} stored as {pair}"
            for pair, n in sorted(casts.items())
        )
        get_logger(__name__).warning(f"{path}: loaded {what} ({why})")
    return out


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _few(keys: list[str], n: int = 6) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _ties(model: torch.nn.Module) -> list[list[str]]:
    """Groups of dotted names that refer to one parameter or buffer object."""
    groups: dict[int, list[str]] = {}
    for name, value in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        groups.setdefault(id(value), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _retie(model: torch.nn.Module, ties: list[list[str]]) -> None:
    """After ``assign=True`` each alias got its own object: point them back at the first."""
    for first, *others in ties:
        value = model.get_parameter(first) if _is_param(model, first) else model.get_buffer(first)
        for name in others:
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            setattr(owner, attr, value)


def _is_param(model: torch.nn.Module, name: str) -> bool:
    try:
        model.get_parameter(name)
    except AttributeError:
        return False
    return True


def _model_device(model: torch.nn.Module) -> str | None:
    for tensor in [*model.parameters(), *model.buffers()]:
        return str(tensor.device)
    return None


def _spec_name(model: torch.nn.Module) -> str | None:
    spec = getattr(model, "zoo_spec", None)
    return getattr(spec, "model", None)
