"""Weights files: safetensors with zoo metadata, so a model rebuilds from the file alone.

``export`` writes ``model.state_dict()`` (tied tensors stored once, their aliases recorded)
with a ``__metadata__`` that names the model entry, its kwargs, plugin, distribution and
version, dataset, metrics, zoo version and creation time. ``load`` rebuilds the model from
that metadata on the ``meta`` device (no random initialisation of weights about to be
overwritten) and assigns the file's tensors; ``load_weights`` loads a file into a model you
built. Nothing is ever unpickled. A malformed file, or one for another architecture, is a
one-line :class:`~zoo.errors.WeightsError`.

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
import os
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
from zoo._util.atomic import atomic_path, os_reason
from zoo._util.log import get_logger
from zoo.errors import UsageError, WeightsError, ZooError
from zoo.models import build_model
from zoo.registry.entries import KINDS, Pin
from zoo.registry.plugins import get_registry, pinned_entry

__all__ = [
    "FORMAT",
    "FORMATS",
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
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
JSON_FIELDS = ("kwargs", "metrics", "extra", "aliases", "pins")
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
    pins = _pins(spec, dataset, extra)
    if pins:
        meta["pins"] = pins
    if metrics is not None:
        meta["metrics"] = {str(k): float(v) for k, v in metrics.items()}
    if extra:
        meta["extra"] = extra
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
    except OSError as exc:
        raise WeightsError(f"cannot write {path}: {os_reason(exc, path)}") from None
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
    """Load a safetensors file into ``model`` (strict: keys, shapes and dtypes must fit).

    Floating-point tensors stored in another dtype than the model's are cast to the model's,
    with a one-line warning; one that would overflow it, or an integer/float mismatch, is a
    one-line :class:`~zoo.errors.WeightsError`.
    """
    path = Path(path)
    device = _model_device(model)
    tensors, meta = _read_tensors(path, "cpu" if device in (None, "meta") else device)
    expected = model.state_dict()
    _check_fit(path, meta, expected, tensors, model_name=_spec_name(model))
    wanted = {k: v.dtype for k, v in expected.items()}
    tensors = _cast_floats(path, tensors, wanted, "the model's dtype")
    on_meta = any(t.is_meta for t in expected.values())
    ties = _ties(model)
    model.load_state_dict(tensors, strict=True, assign=on_meta)
    if on_meta:
        _retie(model, ties)


def load(path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """Rebuild the model a zoo weights file was exported from, in eval mode, on ``device``.

    The model is built on the ``meta`` device (skipping random initialisation) and the file's
    tensors are assigned in place; a model that cannot be built that way is built normally.
    Tied parameters stay tied. A model recorded as flattening its inputs (a features model
    trained on images) is rebuilt so.

    Floating-point tensors come in the dtype the metadata records for the model (``dtype``:
    ``float32``, ``bfloat16``, ...; ``mixed``: each as stored); a file that records none
    (written before zoo recorded it) loads in the dtype the model is built in. A stored
    tensor in another dtype is cast, with a one-line warning; one the cast would overflow,
    or a ``dtype`` zoo does not know, is a one-line :class:`~zoo.errors.WeightsError`.
    """
    path = Path(path)
    tensors, meta = _read_tensors(path, device)
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
    kwargs = meta.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise WeightsError(f"{path}: metadata field 'kwargs' must be an object")
    entry = _model_entry(meta, path)
    target = entry.load()  # import outside the meta-device context
    del target
    dataset = meta.get("dataset")
    flatten = _recorded_flatten(path, meta)
    recorded = _recorded_dtype(path, meta)
    try:
        with torch.device("meta"), _no_init_on_meta():
            model = build_model(entry, kwargs, dataset=dataset, flatten=flatten)
    except UsageError:
        raise
    except Exception:  # a constructor that cannot run on meta tensors: build it for real
        model = None
    on_meta = model is not None
    if model is None:
        model = build_model(entry, kwargs, dataset=dataset, flatten=flatten)
    expected = model.state_dict()
    _check_fit(path, meta, expected, tensors, model_name=entry.name)
    tensors = _cast_floats(path, tensors, *_wanted_dtypes(recorded, expected, tensors))
    ties = _ties(model)
    model.load_state_dict(tensors, strict=True, assign=True)
    _retie(model, ties)
    if on_meta and any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        # e.g. a non-persistent buffer the file cannot fill: build it for real
        on_meta = False
        model = build_model(entry, kwargs, dataset=dataset, flatten=flatten)
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
