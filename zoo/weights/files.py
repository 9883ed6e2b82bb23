"""Weights files: safetensors with zoo metadata, so a model rebuilds from the file alone.

``export`` writes ``model.state_dict()`` (tied tensors stored once, their aliases recorded)
with a ``__metadata__`` that names the model entry, its kwargs, plugin, distribution and
version, dataset, metrics, zoo version and creation time. ``load`` rebuilds the model from
that metadata on the ``meta`` device (no random initialisation of weights about to be
overwritten) and assigns the file's tensors; ``load_weights`` loads a file into a model you
built. Nothing is ever unpickled. A malformed file, or one for another architecture, is a
one-line :class:`~zoo.errors.WeightsError`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import struct
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn import init

from zoo import __version__
from zoo._util.atomic import atomic_path, os_reason
from zoo.errors import UnknownNameError, UsageError, WeightsError
from zoo.models import build_model
from zoo.registry.plugins import get_registry

__all__ = [
    "FORMAT",
    "export",
    "load",
    "load_weights",
    "read_header",
    "read_metadata",
    "split_shared",
]

FORMAT = "zoo.weights/1"
ALIGNMENT = 64  # bytes; what torch's CPU allocator guarantees
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
JSON_FIELDS = ("kwargs", "metrics", "extra", "aliases")
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


# ---------------------------------------------------------------- export


def export(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights to a safetensors file (atomically) with zoo metadata.

    The model entry, kwargs, plugin and version come from ``model.zoo_spec`` (set by
    ``zoo.create_model``). A plain ``nn.Module`` (not built by ``zoo.create_model``) exports
    fine too, but the file then names no model entry: :func:`load` cannot rebuild it, so build
    the module yourself and use :func:`load_weights`. Tied tensors are stored once. An
    unwritable ``path`` is a one-line :class:`~zoo.errors.WeightsError`.
    """
    tensors, aliases = split_shared(model.state_dict())
    spec = getattr(model, "zoo_spec", None)
    meta: dict[str, Any] = {"format": FORMAT, "zoo_version": __version__}
    if spec is not None:
        meta.update(
            model=spec.model, kwargs=spec.kwargs, plugin=spec.plugin, dist=spec.dist,
            dist_version=spec.version,
        )  # fmt: skip
    dataset = dataset if dataset is not None else getattr(spec, "dataset", None)
    if dataset is not None:
        meta["dataset"] = dataset
    if metrics is not None:
        meta["metrics"] = {str(k): float(v) for k, v in metrics.items()}
    if extra:
        meta["extra"] = extra
    if aliases:
        meta["aliases"] = aliases
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
    except OSError as exc:
        raise WeightsError(f"cannot write {path}: {os_reason(exc, path)}") from None
    return path


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
        storage = (str(t.device), t.untyped_storage().data_ptr())
        ident = (*storage, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
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
    """The raw safetensors JSON header, after checking the file's framing (one-line errors)."""
    path = Path(path)
    try:
        size = path.stat().st_size
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
    except IsADirectoryError:
        raise WeightsError(f"{path} is a directory, not a weights file") from None
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{path}: corrupt safetensors header ({exc})") from None
    data_size = size - 8 - length
    for key, info in header.items():
        if key == "__metadata__":
            continue
        _check_tensor_info(path, key, info, data_size)
    return header


def _check_tensor_info(path: Path, key: str, info: Any, data_size: int) -> None:
    try:
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise WeightsError(f"{path}: corrupt safetensors entry for {key!r}") from None
    if dtype not in DTYPE_SIZES:
        raise WeightsError(f"{path}: tensor {key!r} has unknown dtype {dtype!r}")
    numel = 1
    for dim in shape:
        numel *= int(dim)
    if end - start != numel * DTYPE_SIZES[dtype] or start < 0:
        raise WeightsError(
            f"{path}: tensor {key!r} ({dtype} {list(shape)}) does not match its byte range "
            f"{start}..{end}"
        )
    if end > data_size:
        raise WeightsError(
            f"{path}: truncated (tensor {key!r} needs bytes up to {end}, file holds {data_size})"
        )


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The file's zoo metadata with JSON fields (kwargs, metrics, extra) decoded."""
    raw = read_header(path).get("__metadata__") or {}
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS:
            try:
                meta[key] = json.loads(value)
            except (TypeError, ValueError):
                raise WeightsError(f"{path}: metadata field {key!r} is not valid JSON") from None
        else:
            meta[key] = value
    return meta


def _read_tensors(path: Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Validated tensors with aliases expanded, and the decoded metadata."""
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device=device)
    except SafetensorError as exc:
        raise WeightsError(f"{path}: invalid safetensors file ({exc})") from None
    except (RuntimeError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot load tensors onto {device!r} ({exc})") from None
    # Tensors read from the file are views at arbitrary byte offsets; some CPU kernels pick
    # another (differently rounding) path for unaligned data, so give those their own memory.
    tensors = {k: v.clone() if v.data_ptr() % ALIGNMENT else v for k, v in tensors.items()}
    aliases = meta.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise WeightsError(f"{path}: metadata field 'aliases' must be an object")
    for alias, target in aliases.items():
        if target not in tensors:
            raise WeightsError(f"{path}: alias {alias!r} points to missing tensor {target!r}")
        tensors[alias] = tensors[target]
    return tensors, meta


# ---------------------------------------------------------------- loading


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into ``model`` (strict: keys, shapes and dtypes must fit)."""
    path = Path(path)
    device = _model_device(model)
    tensors, meta = _read_tensors(path, "cpu" if device in (None, "meta") else device)
    expected = model.state_dict()
    _check_fit(path, meta, expected, tensors, model_name=_spec_name(model))
    on_meta = any(t.is_meta for t in expected.values())
    ties = _ties(model)
    model.load_state_dict(tensors, strict=True, assign=on_meta)
    if on_meta:
        _retie(model, ties)


def load(path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """Rebuild the model a zoo weights file was exported from, in eval mode, on ``device``.

    The model is built on the ``meta`` device (skipping random initialisation) and the file's
    tensors are assigned in place; a model that cannot be built that way is built normally.
    Tied parameters stay tied.
    """
    path = Path(path)
    tensors, meta = _read_tensors(path, device)
    if not meta.get("model"):
        why = (
            "was exported from a module not built by zoo.create_model, so it names no model entry"
            if meta.get("format") == FORMAT
            else "has no zoo model metadata (it was not written by zoo.export)"
        )
        raise WeightsError(
            f"{path} {why}; zoo.load cannot rebuild it: build the model yourself and use "
            "zoo.weights.load_weights(model, path)"
        )
    kwargs = meta.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise WeightsError(f"{path}: metadata field 'kwargs' must be an object")
    entry = _model_entry(meta)
    target = entry.load()  # import outside the meta-device context
    del target
    dataset = meta.get("dataset")
    try:
        with torch.device("meta"), _no_init_on_meta():
            model = build_model(entry, kwargs, dataset=dataset)
    except UsageError:
        raise
    except Exception:  # a constructor that cannot run on meta tensors: build it for real
        model = None
    if model is not None:
        expected = model.state_dict()
        _check_fit(path, meta, expected, tensors, model_name=entry.name)
        ties = _ties(model)
        model.load_state_dict(tensors, strict=True, assign=True)
        _retie(model, ties)
        if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
            model = None  # e.g. a non-persistent buffer the file cannot fill
    if model is None:
        model = build_model(entry, kwargs, dataset=dataset)
        _check_fit(path, meta, model.state_dict(), tensors, model_name=entry.name)
        model.load_state_dict(tensors, strict=True)
        model.to(device)
    model.zoo_spec.extra.update(
        {"metrics": meta.get("metrics") or {}, "source": str(path), "created": meta.get("created")}
    )
    return model.eval()


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


def _model_entry(meta: dict[str, Any]):
    name, plugin = meta["model"], meta.get("plugin")
    if plugin:
        try:
            return get_registry().get("model", f"{plugin}/{name}")
        except UnknownNameError:
            pass  # plugin renamed or the name moved: fall back to the bare name
    return get_registry().get("model", name)


def _check_fit(
    path: Path,
    meta: dict[str, Any],
    expected: dict[str, torch.Tensor],
    tensors: dict[str, torch.Tensor],
    *,
    model_name: str | None,
) -> None:
    """Raise one line naming missing/unexpected keys, or the first shape or dtype mismatch."""
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
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
        have = tensors[key]
        if tuple(have.shape) != tuple(want.shape):
            raise WeightsError(
                f"{path} does not fit {target}{whose}: {key!r} has shape {list(have.shape)}, "
                f"model expects {list(want.shape)}"
            )
        if have.dtype != want.dtype and not (have.is_floating_point() and want.is_floating_point()):
            raise WeightsError(
                f"{path}: tensor {key!r} has dtype {str(have.dtype).removeprefix('torch.')}, "
                f"model expects {str(want.dtype).removeprefix('torch.')}"
            )


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
