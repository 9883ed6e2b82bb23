"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint directory holds

- ``model.safetensors``: the model's ``state_dict`` (tied tensors stored once, aliases in JSON),
- ``state.safetensors``: every tensor of the optimizer state, the GradScaler and RNG states,
- ``state.json``: the epoch, the trainer's own state (with ``world_size``, the number of
  processes that trained it, and ``torchrun_id``, the torchrun job's id) and the non-tensor
  rest of the optimizer ``state_dict`` (tensors replaced by ``{"__tensor__": key}``, tuples
  and int-keyed dicts tagged so they come back exactly).

It is written into a fresh hidden directory (``state.json`` last) that is then renamed into
place, so a reader - or a run killed at any instant - only ever sees a complete checkpoint. A
write that fails (a full disk) removes that directory and is one line naming the checkpoint and
the free space (:func:`write_error`); the previous checkpoint stays in place.

A checkpoint is data: :func:`load_checkpoint` checks the whole of it (JSON by size and depth,
every field's type, every tensor reference, the random states) before anything uses it, and
anything wrong is one :class:`CorruptCheckpoint` line, ``corrupt checkpoint: <what>``.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from zoo._util.atomic import disk_full, write_json, write_reason
from zoo._util.jsonio import read_json
from zoo.errors import UsageError, ZooError, one_line
from zoo.weights.files import split_shared

__all__ = [
    "FORMAT",
    "MAX_STATE_JSON",
    "NAME",
    "Checkpoint",
    "CorruptCheckpoint",
    "capture_rng",
    "check_fits",
    "checkpoint_epoch",
    "decode",
    "discard_checkpoints",
    "encode",
    "find_checkpoint",
    "load_checkpoint",
    "read_trainer_record",
    "restore_rng",
    "save_checkpoint",
    "write_error",
]

FORMAT = "zoo-checkpoint/1"
NAME = "checkpoint"
_OLD = "checkpoint.old"
_TMP_PREFIX = ".checkpoint.tmp-"
MAX_STATE_JSON = 64 * 1024 * 1024  # bytes of a checkpoint's state.json zoo reads


class CorruptCheckpoint(ZooError):
    """A checkpoint that is not what zoo wrote: ``corrupt checkpoint: <what>`` (exit 1)."""

    def __init__(self, what: str):
        super().__init__(f"corrupt checkpoint: {what}")


def write_error(target: str | os.PathLike, exc: BaseException) -> ZooError:
    """The one line for a failed write of ``target``: why (on a full disk, with the space free
    where it goes)."""
    return ZooError(f"cannot write {target}: {write_reason(exc, target)}")


# -- generic tensor/JSON codec ---------------------------------------------------------------


def encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """A JSON-able copy of ``obj`` with each tensor moved into ``tensors`` under a dotted key."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {
            "__items__": [
                [encode(k, tensors, f"{prefix}.k{i}"), encode(v, tensors, f"{prefix}.{i}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise ZooError(f"cannot store a {type(obj).__name__} in a checkpoint ({prefix})")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Invert :func:`encode`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {decode(k, tensors): decode(v, tensors) for k, v in obj["__items__"]}
        return {k: decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    return obj


# -- RNG state -------------------------------------------------------------------------------


def capture_rng(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a run consumes: torch (CPU and CUDA), numpy, Python, the shuffle."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["shuffle"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Put back what :func:`capture_rng` recorded."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    if generator is not None and "shuffle" in state:
        generator.set_state(state["shuffle"])


# -- save / load -----------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    path: Path
    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    scaler_state: dict[str, Any] | None
    rng: dict[str, Any] | None
    trainer: dict[str, Any]


def save_checkpoint(
    run_dir: str | os.PathLike,
    *,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
    rng: dict[str, Any] | None = None,
    trainer: dict[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/checkpoint`` (replacing the previous one only once the new one is whole).

    A write that fails (a full disk, ...) removes what it wrote and raises :func:`write_error`'s
    one line; the previous checkpoint is left as it was.
    """
    run_dir = Path(run_dir)
    final, old = run_dir / NAME, run_dir / _OLD
    tmp = run_dir / f"{_TMP_PREFIX}{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _write_parts(tmp, epoch, model, optimizer, scaler, rng, trainer)
    except Exception as exc:  # OSError, SafetensorError (a full disk), ...
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ZooError) and not disk_full(exc):
            raise
        raise write_error(final, exc) from exc
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    for stale in run_dir.glob(f"{_TMP_PREFIX}*"):  # a killed writer's (the run dir is ours)
        shutil.rmtree(stale, ignore_errors=True)
    _fsync_dir(run_dir)
    return final


def _write_parts(
    tmp: Path,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: Any,
    rng: dict[str, Any] | None,
    trainer: dict[str, Any] | None,
) -> None:
    """The three files of a checkpoint, into ``tmp`` (``state.json`` last)."""
    model_tensors, aliases = split_shared(model.state_dict())
    save_file(model_tensors, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
    tensors: dict[str, torch.Tensor] = {}
    body = {
        "format": FORMAT,
        "epoch": epoch,
        "model_aliases": aliases,
        "optimizer": encode(optimizer.state_dict(), tensors, "optimizer") if optimizer else None,
        "scaler": encode(scaler.state_dict(), tensors, "scaler") if scaler is not None else None,
        "rng": encode(rng, tensors, "rng") if rng is not None else None,
        "trainer": encode(trainer or {}, tensors, "trainer"),
    }
    save_file(tensors, str(tmp / "state.safetensors"), metadata={"format": FORMAT})
    for name in ("model.safetensors", "state.safetensors"):
        _fsync(tmp / name)
    write_json(tmp / "state.json", body)  # last: its presence marks the checkpoint complete


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The newest complete checkpoint in a run directory (or the checkpoint directory itself).

    A run's ``checkpoint/`` whose ``state.json`` is there but is no checkpoint's is a
    :class:`CorruptCheckpoint`, not "no checkpoint"; leftovers of an interrupted write that do
    not read are passed over.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"resume: {path} does not exist")
    if (path / "state.json").is_file() and (path / "model.safetensors").is_file():
        return path
    candidates = [path / NAME, *sorted(path.glob(f"{_TMP_PREFIX}*")), path / _OLD]
    best: tuple[int, Path] | None = None
    for cand in candidates:
        epoch = _complete_epoch(cand, strict=cand.name == NAME and (cand / "state.json").is_file())
        if epoch is not None and (best is None or epoch > best[0]):
            best = (epoch, cand)
    if best is None:
        raise UsageError(f"resume: no checkpoint in {path} (expected {path / NAME}/state.json)")
    return best[1]


def discard_checkpoints(run_dir: str | os.PathLike) -> None:
    """Remove every checkpoint directory of ``run_dir``, complete or not (a run started again)."""
    run_dir = Path(run_dir)
    for cand in [run_dir / NAME, run_dir / _OLD, *run_dir.glob(f"{_TMP_PREFIX}*")]:
        if cand.is_dir():
            shutil.rmtree(cand)


def checkpoint_epoch(path: str | os.PathLike) -> int | None:
    """The epoch a complete checkpoint directory holds (``None`` when it is not one)."""
    return _complete_epoch(Path(path))


def _complete_epoch(path: Path, *, strict: bool = False) -> int | None:
    """The epoch of the complete checkpoint ``path``; ``None`` when it is none (``strict``:
    a :class:`CorruptCheckpoint` when its ``state.json`` is there but wrong)."""
    if not (path / "model.safetensors").is_file() or not (path / "state.safetensors").is_file():
        if strict:
            missing = "model" if (path / "state.safetensors").is_file() else "state"
            raise CorruptCheckpoint(f"{path} has a state.json but no {missing}.safetensors")
        return None
    try:
        return _epoch(_read_body(path), path)
    except CorruptCheckpoint:
        if strict:
            raise
        return None


def _read_body(where: Path) -> dict[str, Any]:
    """``state.json`` of checkpoint ``where``: a bounded read, an object in this format."""
    path = where / "state.json"
    try:
        body = read_json(path, max_bytes=MAX_STATE_JSON)
    except (OSError, ValueError) as exc:
        raise CorruptCheckpoint(f"cannot read {path} ({one_line(exc)})") from None
    if not isinstance(body, dict):
        raise CorruptCheckpoint(f"{path} is not a JSON object")
    if body.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path} is not a {FORMAT} checkpoint")
    return body


def _epoch(body: dict[str, Any], where: Path) -> int:
    epoch = body.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise CorruptCheckpoint(
            f"{where / 'state.json'}: epoch must be an integer >= 1, got {epoch!r}"
        )
    return epoch


def read_trainer_record(path: str | os.PathLike) -> dict[str, Any]:
    """The trainer's JSON record in the newest complete checkpoint of ``path`` (its settings,
    fingerprint, history, ...), read without its tensors: what a resume checks before any work."""
    where = find_checkpoint(path)
    body = _read_body(where)
    _epoch(body, where)
    return _check_trainer(_decoded(body.get("trainer"), {}, where, "trainer"), where)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint (a run directory or its ``checkpoint/``) back into tensors and dicts.

    Everything is checked before it is returned (see the module docstring); what is wrong is one
    :class:`CorruptCheckpoint` line.
    """
    where = find_checkpoint(path)
    body = _read_body(where)
    epoch = _epoch(body, where)
    model_state = _read_part(where / "model.safetensors", lambda f: load_file(str(f)))
    tensors = _read_part(where / "state.safetensors", lambda f: load_file(str(f)))
    aliases = body.get("model_aliases") or {}
    if not isinstance(aliases, dict):
        raise CorruptCheckpoint(f"{where / 'state.json'}: model_aliases is not an object")
    for alias, key in aliases.items():
        if not isinstance(key, str) or key not in model_state:
            raise CorruptCheckpoint(
                f"{where / 'state.json'}: alias {alias!r} names no tensor of model.safetensors"
            )
        model_state[alias] = model_state[key]
    parts = {}
    for name in ("optimizer", "scaler", "rng"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise CorruptCheckpoint(f"{where / 'state.json'}: {name} is not an object")
        parts[name] = _decoded(value, tensors, where, name) if value else None
    if parts["rng"] is not None:
        _check_rng(parts["rng"], where)
    if parts["optimizer"] is not None:
        _check_optimizer(parts["optimizer"], where)
    return Checkpoint(
        path=where,
        epoch=epoch,
        model_state=model_state,
        optimizer_state=parts["optimizer"],
        scaler_state=parts["scaler"],
        rng=parts["rng"],
        trainer=_check_trainer(_decoded(body.get("trainer"), tensors, where, "trainer"), where),
    )


def _decoded(obj: Any, tensors: dict[str, torch.Tensor], where: Path, what: str) -> Any:
    """:func:`decode`, with a reference to a missing tensor or a malformed tag made one line."""
    try:
        return decode(obj, tensors)
    except KeyError as exc:
        raise CorruptCheckpoint(
            f"{where}: {what} refers to tensor {exc.args[0]!r}, which state.safetensors lacks"
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptCheckpoint(f"{where / 'state.json'}: malformed {what} ({exc})") from None


def _check_trainer(record: Any, where: Path) -> dict[str, Any]:
    """The trainer's record, refused unless each field has the type the trainer writes."""
    if record is None:
        record = {}
    at = where / "state.json"
    if not isinstance(record, dict):
        raise CorruptCheckpoint(f"{at}: trainer is not an object")
    for key in ("settings", "fingerprint", "early"):
        if not isinstance(record.get(key) or {}, dict):
            raise CorruptCheckpoint(f"{at}: trainer {key} is not an object")
    for key in ("history", "changes"):
        rows = record.get(key) or []
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CorruptCheckpoint(f"{at}: trainer {key} is not a list of objects")
    for row in record.get("history") or []:
        if not _is_int(row.get("epoch")):
            raise CorruptCheckpoint(f"{at}: a history row has epoch {row.get('epoch')!r}")
    world = record.get("world_size")
    if world is not None and (not _is_int(world) or world < 1):
        raise CorruptCheckpoint(f"{at}: trainer world_size is {world!r}, not a process count")
    if not isinstance(record.get("torchrun_id") or "", str):
        raise CorruptCheckpoint(f"{at}: trainer torchrun_id is not a string")
    early = record.get("early") or {}
    checks = {
        "elapsed_s": (record.get("elapsed_s"), _is_number),
        "early best": (early.get("best"), _is_number),
        "early best_epoch": (early.get("best_epoch"), _is_int),
        "early bad_epochs": (early.get("bad_epochs"), _is_int),
    }
    for name, (value, ok) in checks.items():
        if value is not None and not ok(value):
            raise CorruptCheckpoint(f"{at}: trainer {name} is {value!r}, not a number")
    return record


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_rng(state: Any, where: Path) -> None:
    """Try each recorded random state on a fresh generator: a wrong one is refused here."""
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"{where}: rng is not an object")
    trials = {
        "torch": lambda s: torch.Generator().set_state(s),
        "shuffle": lambda s: torch.Generator().set_state(s),
        "numpy": lambda s: np.random.RandomState().set_state(s),
        "python": lambda s: random.Random().setstate(s),
    }
    for name, trial in trials.items():
        if name not in state and name == "shuffle":
            continue
        try:
            trial(state[name])
        except Exception as exc:  # KeyError, TypeError, ValueError, RuntimeError
            raise CorruptCheckpoint(
                f"{where}: the {name} random state does not restore ({one_line(exc, typed=True)})"
            ) from None
    cuda = state.get("cuda", [])
    if not isinstance(cuda, list | tuple) or not all(
        isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda
    ):
        raise CorruptCheckpoint(f"{where}: the cuda random states are not byte tensors")


def _check_optimizer(state: Any, where: Path) -> None:
    """The shape of an optimizer ``state_dict``: ``state`` by int id, ``param_groups`` a list."""
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict):
        raise CorruptCheckpoint(f"{where}: optimizer state has no state table")
    groups = state.get("param_groups")
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups
    ):
        raise CorruptCheckpoint(f"{where}: optimizer param_groups is not a list of groups")
    for key, value in state["state"].items():
        if not _is_int(key) or not isinstance(value, dict):
            raise CorruptCheckpoint(f"{where}: optimizer state entry {key!r} is malformed")


def check_fits(ckpt: Checkpoint, model: torch.nn.Module, optimizer: Any = None) -> None:
    """Refuse, before loading anything, a checkpoint whose tensors do not fit ``model`` and
    ``optimizer`` as built: another dtype (never cast silently), optimizer groups or
    hyperparameters of another kind, per-parameter state of another shape."""
    for key, have in model.state_dict().items():
        saved = ckpt.model_state.get(key)
        if isinstance(saved, torch.Tensor) and saved.dtype != have.dtype:
            raise CorruptCheckpoint(
                f"{ckpt.path}: tensor {key!r} is {_dtype(saved)}, the model's is {_dtype(have)}"
            )
    if optimizer is None or ckpt.optimizer_state is None:
        return
    saved_groups = ckpt.optimizer_state["param_groups"]
    groups = optimizer.param_groups
    if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in groups]:
        raise CorruptCheckpoint(f"{ckpt.path}: its optimizer groups do not match the model's")
    by_id: dict[Any, torch.Tensor] = {}
    for saved, group in zip(saved_groups, groups, strict=True):
        for key, value in group.items():
            if key != "params" and key in saved and not _same_kind(saved[key], value):
                raise CorruptCheckpoint(
                    f"{ckpt.path}: optimizer setting {key!r} is {saved[key]!r}, "
                    f"not a {type(value).__name__}"
                )
        by_id.update(zip(saved["params"], group["params"], strict=True))
    for pid, entry in ckpt.optimizer_state["state"].items():
        param = by_id.get(pid)
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor) or param is None or value.dim() == 0:
                continue
            if (
                value.shape != param.shape
                or value.dtype.is_floating_point != param.is_floating_point()
            ):
                raise CorruptCheckpoint(
                    f"{ckpt.path}: optimizer {name} of parameter {pid} is {_dtype(value)} "
                    f"{list(value.shape)}, the parameter {_dtype(param)} {list(param.shape)}"
                )


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _same_kind(saved: Any, live: Any) -> bool:
    """Whether a recorded hyperparameter has the kind of the live one (``betas`` a pair, ...)."""
    if live is None or isinstance(live, torch.Tensor):
        return True
    if isinstance(live, bool):  # torch's optional flags (``fused``, ``foreach``) default to None
        return saved is None or isinstance(saved, bool)
    if isinstance(live, int | float):
        return _is_number(saved)
    if isinstance(live, tuple | list):
        return (
            isinstance(saved, tuple | list)
            and len(saved) == len(live)
            and all(_same_kind(a, b) for a, b in zip(saved, live, strict=True))
        )
    return isinstance(saved, type(live))


def _read_part(path: Path, read: Any) -> Any:
    """``read(path)``; any failure (truncated, corrupt, unreadable) is one line naming the file."""
    try:
        return read(path)
    except Exception as exc:  # SafetensorError, JSONDecodeError, OSError, ...
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise CorruptCheckpoint(
            f"cannot read {path} ({reason}); the checkpoint is damaged"
        ) from exc


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
