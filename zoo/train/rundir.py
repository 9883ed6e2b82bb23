"""The files of a run directory: ``run.json``, ``metrics.csv``, ``loss_curves.png`` and the kept
recipe, and what a :class:`~zoo.train.Trainer` records in them (:func:`run_info`,
:func:`write_outputs`), from its public record: its settings, :class:`~zoo.train.config.TrainState`
and what it built.

A run directory belongs to one process at a time (:func:`claim_run_dir`): it is created
exclusively (or is an empty directory, or one whose run is dead), and an OS lock on its ``.lock``
file is held for the whole run and dies with the process. Two runs never write into one
directory, and one whose holder died can be resumed or, before its first checkpoint, started
again.

Every file is written atomically. The curves are drawn by :mod:`zoo.train.curves`.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy
import torch

import zoo
from zoo._util.atomic import write_json, write_text
from zoo._util.jsonio import jsonable
from zoo._util.log import get_logger
from zoo.errors import UsageError, ZooError, one_line
from zoo.runtime.device import device_name
from zoo.tasks import contracts as tasks
from zoo.train.checkpoint import discard_checkpoints, find_checkpoint, write_error
from zoo.train.config import TrainConfig
from zoo.train.curves import CURVES, CurvesHelper
from zoo.weights import files as weights
from zoo.weights.source import RECIPE, RUN_JSON, WEIGHTS, read_run_json

__all__ = [
    "CURVES",
    "LAST",
    "LOCK",
    "METRICS_CSV",
    "WEIGHTS",
    "RunLock",
    "claim_run_dir",
    "default_run_dir",
    "find_run",
    "keep_recipe",
    "recorded_settings",
    "run_info",
    "versions",
    "write_metrics_csv",
    "write_outputs",
    "write_run_json",
]

METRICS_CSV = "metrics.csv"
LOCK = ".lock"  # held (fcntl.flock) by the process writing the run
_MAX_NAMES = 1000  # default names tried: base, base-2, ..., base-1000

log = get_logger(__name__)
LAST = "last.safetensors"  # with save_best: the last epoch's weights (WEIGHTS the best's)


def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Versions that decide a run's numbers: Python, zoo, torch, numpy and the plugins used
    (``extra``, e.g. ``{"model:mlp": "zoo 0.1 (workflow)"}``)."""
    out = {
        "python": platform.python_version(),
        "zoo": zoo.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "",
        "platform": platform.platform(),
    }
    out.update(extra or {})
    return out


def keep_recipe(run_dir: str | os.PathLike, recipe: str | os.PathLike) -> Path:
    """Copy the recipe a run was trained from into it (``zoo publish`` ships it along).

    Returns:
        The copy's path.
    """
    return write_text(Path(run_dir) / RECIPE, Path(recipe).read_text(encoding="utf-8"))


def write_run_json(run_dir: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``run.json`` (atomically) into ``run_dir``; returns its path."""
    return write_json(Path(run_dir) / RUN_JSON, data)


def find_run(path: str | os.PathLike) -> Path:
    """The run directory ``--resume`` names (the run, or its ``checkpoint/``), or a clear error."""
    path = Path(path)
    if path.name == "checkpoint" and not (path / RUN_JSON).exists():
        path = path.parent
    if not path.is_dir() or not ((path / RUN_JSON).is_file() or (path / "checkpoint").is_dir()):
        raise UsageError(f"no run to resume in {path} (no {RUN_JSON} or checkpoint/)")
    return path


def recorded_settings(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``settings`` a run's ``run.json`` recorded (``{}`` when it has none).

    A value of the wrong type for its :class:`TrainConfig` field is a one-line error naming the
    file; keys that are no field (``task``, ``entries``, newer settings) are returned as they are.
    """
    path = Path(run_dir)
    if not (path / RUN_JSON).is_file():
        return {}
    settings = read_run_json(path).get("settings") or {}
    if not isinstance(settings, dict):
        raise UsageError(f"{path / RUN_JSON}: settings is not a JSON object")
    names = TrainConfig.names()
    where = f"{path / RUN_JSON} settings"
    return {k: TrainConfig.check(k, v, where) if k in names else v for k, v in settings.items()}


def default_run_dir(model: str, dataset: str, resume: str | os.PathLike | None = None) -> Path:
    """Where a run goes when no ``--out`` is given: the resumed run's own directory, else
    ``runs/<time>-<model>-<dataset>`` (claim it with ``unique=True``: a name already taken gets
    ``-2``, ``-3``, ...)."""
    if resume is not None:
        return find_run(resume)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{_slug(model)}-{_slug(dataset)}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name.split("/")[-1])


class RunLock:
    """A claimed run directory: ``path``, and the open lock file whose ``flock`` says so.

    The lock goes with :meth:`release` (or ``with``), or with the process, however it ends.
    """

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this process still holds the directory."""
        return self._fd is not None

    def release(self) -> None:
        """Let the directory go (closing the lock file drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run_dir(
    path: str | os.PathLike, *, resuming: bool = False, unique: bool = False
) -> RunLock:
    """Make ``path`` this process's run directory, before any work; one line if it cannot be.

    The directory is created exclusively, or is an existing empty one, or (under the lock) holds
    a run that may be written into: the one being resumed (``resuming``), or a dead one that
    stopped before its first checkpoint, whose leftovers are removed so it starts again. A
    finished or resumable run, another live process's run and files that are no run are
    refused. The lock is ``fcntl.flock`` on ``path/.lock`` (the holder's pid inside).

    Args:
        path: the run directory (``--out``).
        resuming: ``path`` holds the run this process resumes.
        unique: ``path`` is a default name: when taken, ``path-2``, ``path-3``, ... instead,
            each created exclusively, so concurrent runs never share one.

    Returns:
        The :class:`RunLock`; its ``path`` is the directory claimed.
    """
    path = Path(path)
    if unique:
        return _claim_new(path)
    try:
        path.mkdir(parents=True)
        created = True
    except FileExistsError:
        if not path.is_dir():
            raise UsageError(f"{path} exists and is not a directory") from None
        created = False
    if not created and not resuming and not (path / LOCK).exists():
        _check_free(path, locked=False)  # no zoo process ever wrote here: refuse untouched
    claim = _lock(path)
    if claim is None:
        raise UsageError(
            f"{path} is in use by another run (pid {_holder(path)}); wait for it to end or "
            f"pick another --out"
        )
    try:
        if not created and not resuming:
            _check_free(path, locked=True)
    except BaseException:
        claim.release()
        raise
    return claim


def _claim_new(base: Path) -> RunLock:
    """``base``, else ``base-2``, ``base-3``, ...: the first this process creates and locks."""
    for n in range(1, _MAX_NAMES + 1):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        claim = _lock(path)  # None: someone's --out took the empty directory first
        if claim is not None:
            return claim
    raise ZooError(f"no free run directory name like {base} (tried {_MAX_NAMES}); pass --out")


def _lock(path: Path) -> RunLock | None:
    """Lock ``path/.lock`` without waiting; ``None`` when another process holds it."""
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): exclusive creation is all there is
        return RunLock(path, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(path, fd)


def _holder(path: Path) -> str:
    try:
        return (path / LOCK).read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def _check_free(path: Path, *, locked: bool) -> None:
    """Refuse an existing directory unless a new run may go in it; once ``locked`` by this
    process, clear a dead run's leftovers so it starts again."""
    names = {p.name for p in path.iterdir()} - {LOCK}
    if not names:
        return  # an empty directory, made by the user or by a run that died before writing
    try:
        find_checkpoint(path)
        resumable = True
    except UsageError:
        resumable = False
    if resumable or (path / WEIGHTS).is_file():
        raise UsageError(
            f"{path} already holds a run; pick another --out or continue it with --resume {path}"
        )
    if not (path / RUN_JSON).is_file():
        raise UsageError(
            f"{path} is not empty and holds no run; pick another --out (a new or empty directory)"
        )
    if not locked:
        return
    try:
        status = read_run_json(path).get("status", "unknown")
    except (ZooError, OSError):
        status = "unreadable"
    for name in (RUN_JSON, METRICS_CSV, CURVES, RECIPE):
        (path / name).unlink(missing_ok=True)
    discard_checkpoints(path)
    log.warning(
        "%s: its earlier run (%s) stopped before its first checkpoint; starting it again",
        path,
        status,
    )


def write_metrics_csv(run_dir: str | os.PathLike, history: list[dict[str, Any]]) -> Path:
    """One row per epoch; columns are the union of the rows' keys in first-seen order."""
    columns: list[str] = []
    for row in history:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return write_text(Path(run_dir) / METRICS_CSV, buf.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def command_line() -> list[str]:
    """The command that started this process (``sys.argv``), for ``run.json``."""
    return list(sys.argv)


def run_info(trainer: Any, status: str, started: str, t_start: float) -> dict[str, Any]:
    """What ``run.json`` records of a trainer's run: settings, model, data, device, timings.

    Args:
        trainer: a set-up :class:`~zoo.train.Trainer` (read through its public attributes:
            ``settings()``, ``state``, the model, batches, optimizer and device it built).
        status: ``running``, ``finished``, ``stopped_early``, ``diverged``, ``failed`` or
            ``interrupted``.
        started: when this ``fit`` started (ISO 8601).
        t_start: ``time.perf_counter()`` at that moment.
    """
    state = trainer.state
    history = state.history
    settings = trainer.settings()
    spec = getattr(trainer.model, "zoo_spec", None)
    plugins = {}
    for entry in (trainer.model_entry, trainer.dataset_entry, trainer.loss_entry):
        if entry is not None:
            plugins[f"{entry.kind}:{entry.name}"] = f"{entry.dist} {entry.version} ({entry.plugin})"
    train_s = sum(r.get("seconds", 0.0) for r in history)
    eval_s = sum(r.get("eval_seconds", 0.0) for r in history)
    wall_s = time.perf_counter() - t_start
    return {
        "status": status,
        "settings": settings,
        "seed": settings["seed"],
        "model": {
            "name": settings["model"],
            "kwargs": jsonable(spec.kwargs) if spec else None,
            "plugin": spec.plugin if spec else None,
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        },
        # the weights it started from and what of them trained (zoo.train.finetune)
        "init": getattr(trainer, "init_record", None),
        "freeze": getattr(trainer, "freeze_record", None),
        "dataset": {
            "name": settings["dataset"],
            "task": settings["task"],
            "kwargs": settings["dataset_kwargs"],
            "train_size": trainer.train_batches.num_samples,
            "test_size": trainer.test_batches.num_samples,
            "val_size": trainer.val_batches.num_samples if trainer.val_batches else 0,
            "loader": type(trainer.train_batches).__name__,
        },
        "loss": {
            "name": settings["loss"],
            "expects": trainer.expects,
            "kwargs": settings["loss_kwargs"],
        },  # fmt: skip
        "optimizer": {
            "name": settings["optimizer"],
            "class": type(trainer.optimizer).__name__,
            "hyperparameters": jsonable(
                {
                    k: v
                    for k, v in trainer.optimizer.defaults.items()
                    if not isinstance(v, torch.Tensor)
                }
            ),
        },
        "device": {
            "type": trainer.device.type,
            "device": str(trainer.device),
            "name": device_name(trainer.device),
            "threads": torch.get_num_threads(),
            "world_size": trainer.dist.world,
            "backend": trainer.dist.backend,
            "autocast": _dtype_name(trainer.precision_plugin.autocast_dtype),
            "grad_scaler": trainer.precision_plugin.scaler is not None,
        },
        "versions": versions(plugins),
        "timings": {
            "setup_s": trainer.setup_seconds,
            "train_s": train_s,
            "eval_s": eval_s,
            "wall_s": wall_s,
            "total_s": state.elapsed_before + wall_s,
            "epochs_run": len(history),
        },
        "result": {
            "epochs": len(history),
            "last_epoch": history[-1]["epoch"] if history else 0,
            "monitor": settings["monitor"],
            "best": state.best,
            "best_epoch": state.best_epoch,
            "error": state.error,
        },
        "resumed_from": state.resumed_from,
        "changes": state.changes,
        "command": command_line(),
        "started": started,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_outputs(
    trainer: Any, metrics: dict[str, float], status: str, started: str, t_start: float
) -> None:
    """A finished run's files: the weights (with their training record: the settings marked
    ``weights`` and the qualified entries), ``metrics.csv``, the curves, the recipe it was
    trained from (``trainer.recipe``, if any) and the final ``run.json``.

    Args:
        trainer: the :class:`~zoo.train.Trainer` whose ``fit`` finished (see :func:`run_info`).
        metrics: its final test metrics.
        status: ``finished`` or ``stopped_early``.
        started, t_start: as for :func:`run_info`.
    """
    settings = trainer.settings()
    keep = (*TrainConfig.names(weights=True), "entries", "data")
    extra = {"train": {k: settings[k] for k in keep}}
    out = trainer.out
    history = trainer.state.history
    metric = tasks.TASKS[settings["task"]].primary_metric
    _written(out / METRICS_CSV, lambda: write_metrics_csv(out, history))
    if settings.get("plot", True):
        helper = getattr(trainer, "curves_helper", None) or CurvesHelper(None)
        _written(out / CURVES, lambda: helper.draw(out, history, metric))
    if getattr(trainer, "recipe", None) is not None:
        _written(out / RECIPE, lambda: keep_recipe(out, trainer.recipe))
    info = run_info(trainer, status, started, t_start)
    info["result"]["metrics"] = metrics
    info["result"]["metrics_from"] = getattr(trainer, "metrics_from", None)
    last = getattr(trainer, "_last_weights", None)
    if last is not None:  # save_best: the last epoch's weights too, beside the best
        _written(out / LAST, lambda: _export_state(trainer.model, last, out / LAST, extra))
    _written(
        out / WEIGHTS,
        lambda: weights.export(
            trainer.model,
            out / WEIGHTS,
            dataset=None if settings["data"] else settings["dataset"],
            metrics=metrics,
            extra=extra,
        ),
    )  # last but run.json: the weights file marks a finished run
    try:
        _written(out / RUN_JSON, lambda: write_run_json(out, info))
    except ZooError:
        (out / WEIGHTS).unlink(missing_ok=True)  # unrecorded: resuming finishes it again
        raise


def _export_state(model: Any, state: dict[str, Any], path: Path, extra: dict[str, Any]) -> None:
    """Export ``model`` with the weights ``state``, then put its own weights back."""
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    try:
        weights.export(model, path, extra=extra)
    finally:
        model.load_state_dict(current)


def _written(target: Path, write: Any) -> Any:
    """``write()``; a failure (a full disk, ...) is :func:`write_error`'s line naming ``target``."""
    try:
        return write()
    except Exception as exc:  # OSError, SafetensorError, a WeightsError wrapping one, ...
        if isinstance(exc, ZooError) and "No space left" not in one_line(exc):
            raise  # already one line of its own (not a full disk)
        raise write_error(target, exc) from exc


def _dtype_name(dtype: Any) -> str | None:
    """``bfloat16`` for ``torch.bfloat16``; ``None`` for no autocast."""
    return str(dtype).removeprefix("torch.") if dtype is not None else None
