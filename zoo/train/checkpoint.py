"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint directory holds

- ``model.safetensors``: the model's ``state_dict`` (tied tensors stored once, aliases in JSON),
- ``state.safetensors``: every tensor of the optimizer state, the GradScaler and RNG states,
- ``state.json``: the epoch, the trainer's own state and the non-tensor rest of the optimizer
  ``state_dict`` (tensors replaced by ``{"__tensor__": key}``, tuples and int-keyed dicts
  tagged so they come back exactly).

It is written into a fresh hidden directory (``state.json`` last) that is then renamed into
place, so a reader - or a run killed at any instant - only ever sees a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from zoo._util.atomic import write_json
from zoo.errors import UsageError, ZooError
from zoo.weights.files import split_shared

__all__ = [
    "FORMAT",
    "NAME",
    "Checkpoint",
    "capture_rng",
    "checkpoint_epoch",
    "decode",
    "discard_checkpoints",
    "encode",
    "find_checkpoint",
    "load_checkpoint",
    "read_trainer_record",
    "restore_rng",
    "save_checkpoint",
]

FORMAT = "zoo-checkpoint/1"
NAME = "checkpoint"
_OLD = "checkpoint.old"
_TMP_PREFIX = ".checkpoint.tmp-"


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
    """Write ``run_dir/checkpoint`` (replacing the previous one only once the new one is whole)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{_TMP_PREFIX}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
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
    final, old = run_dir / NAME, run_dir / _OLD
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(run_dir)
    return final


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The newest complete checkpoint in a run directory (or the checkpoint directory itself)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"resume: {path} does not exist")
    if (path / "state.json").is_file() and (path / "model.safetensors").is_file():
        return path
    candidates = [path / NAME, *sorted(path.glob(f"{_TMP_PREFIX}*")), path / _OLD]
    best: tuple[int, Path] | None = None
    for cand in candidates:
        epoch = _complete_epoch(cand)
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


def _complete_epoch(path: Path) -> int | None:
    try:
        body = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (path / "model.safetensors").is_file() or not (path / "state.safetensors").is_file():
        return None
    return int(body.get("epoch", -1))


def read_trainer_record(path: str | os.PathLike) -> dict[str, Any]:
    """The trainer's JSON record in the newest complete checkpoint of ``path`` (its settings,
    fingerprint, history, ...), read without its tensors: what a resume checks before any work."""
    where = find_checkpoint(path)
    body = _read_part(where / "state.json", lambda f: json.loads(f.read_text(encoding="utf-8")))
    record = body.get("trainer") if isinstance(body, dict) else None
    if not isinstance(record, dict):
        raise ZooError(f"resume: {where / 'state.json'} has no trainer record")
    return decode(record, {})


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint (a run directory or its ``checkpoint/``) back into tensors and dicts."""
    where = find_checkpoint(path)
    body = _read_part(where / "state.json", lambda f: json.loads(f.read_text(encoding="utf-8")))
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ZooError(f"resume: {where} is not a {FORMAT} checkpoint")
    model_state = _read_part(where / "model.safetensors", lambda f: load_file(str(f)))
    tensors = _read_part(where / "state.safetensors", lambda f: load_file(str(f)))
    for alias, key in body.get("model_aliases", {}).items():
        model_state[alias] = model_state[key]
    return Checkpoint(
        path=where,
        epoch=int(body["epoch"]),
        model_state=model_state,
        optimizer_state=decode(body["optimizer"], tensors) if body.get("optimizer") else None,
        scaler_state=decode(body["scaler"], tensors) if body.get("scaler") else None,
        rng=decode(body["rng"], tensors) if body.get("rng") else None,
        trainer=decode(body.get("trainer") or {}, tensors),
    )


def _read_part(path: Path, read: Any) -> Any:
    """``read(path)``; any failure (truncated, corrupt, unreadable) is one line naming the file."""
    try:
        return read(path)
    except Exception as exc:  # SafetensorError, JSONDecodeError, OSError, ...
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise ZooError(f"resume: cannot read {path} ({reason}); the checkpoint is damaged") from exc


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
