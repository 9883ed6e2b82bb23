"""The files of a run directory: ``run.json``, ``metrics.csv`` and ``loss_curves.png``, and
what a :class:`~zoo.train.Trainer` records in them (:func:`run_info`, :func:`write_outputs`).

Every file is written atomically. matplotlib is imported only to draw the curves (Agg backend).
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._util.atomic import atomic_path, write_json, write_text
from zoo._util.jsonio import jsonable
from zoo.weights.source import RECIPE, RUN_JSON, WEIGHTS

if TYPE_CHECKING:
    from zoo.train.trainer import Trainer

METRICS_CSV = "metrics.csv"
CURVES = "loss_curves.png"


def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Versions that decide a run's numbers: Python, zoo, torch, numpy and the plugins used."""
    import numpy
    import torch

    import zoo

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
    """Copy the recipe a run was trained from into it (``zoo publish`` ships it along)."""
    return write_text(Path(run_dir) / RECIPE, Path(recipe).read_text(encoding="utf-8"))


def write_run_json(run_dir: str | os.PathLike, data: dict[str, Any]) -> Path:
    return write_json(Path(run_dir) / RUN_JSON, data)


def find_run(path: str | os.PathLike) -> Path:
    """The run directory ``--resume`` names (the run, or its ``checkpoint/``), or a clear error."""
    from zoo.errors import UsageError

    path = Path(path)
    if path.name == "checkpoint" and not (path / RUN_JSON).exists():
        path = path.parent
    if not path.is_dir() or not ((path / RUN_JSON).is_file() or (path / "checkpoint").is_dir()):
        raise UsageError(f"no run to resume in {path} (no {RUN_JSON} or checkpoint/)")
    return path


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


def plot_curves(
    run_dir: str | os.PathLike, history: list[dict[str, Any]], metric: str
) -> Path | None:
    """Train/test loss and ``metric`` per epoch, side by side, as ``loss_curves.png``."""
    if not history:
        return None
    fig = curves_figure(history, metric)
    path = Path(run_dir) / CURVES
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def curves_figure(history: list[dict[str, Any]], metric: str) -> Any:
    """The matplotlib ``Figure`` :func:`plot_curves` saves: loss and ``metric`` per epoch.

    Epoch ticks are whole numbers. ``train_loss`` is the running mean of the step losses over
    the epoch (the weights change while it is summed), so its legend says so; every other
    curve is measured on the weights at the end of the epoch.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, name in zip(fig.subplots(1, 2), ("loss", metric), strict=True):
        for split, style in (("train", "-o"), ("test", "-s")):
            key = f"{split}_{name}"
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                label = "train loss (running mean)" if key == "train_loss" else split
                ax.plot(
                    epochs, [float("nan") if v is None else v for v in values], style, label=label
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def command_line() -> list[str]:
    return list(sys.argv)


def run_info(trainer: Trainer, status: str, started: str, t_start: float) -> dict[str, Any]:
    """What ``run.json`` records of ``trainer``'s run: settings, model, data, device, timings."""
    import time
    from datetime import UTC, datetime

    import torch

    from zoo.runtime.device import device_name

    spec = getattr(trainer.model, "zoo_spec", None)
    plugins = {}
    for entry in (trainer.model_entry, trainer.dataset_entry, trainer.loss_entry):
        if entry is not None:
            plugins[f"{entry.kind}:{entry.name}"] = f"{entry.dist} {entry.version} ({entry.plugin})"
    train_s = sum(r.get("seconds", 0.0) for r in trainer.history)
    eval_s = sum(r.get("eval_seconds", 0.0) for r in trainer.history)
    return {
        "status": status,
        "settings": trainer.settings(),
        "seed": trainer.seed,
        "model": {
            "name": trainer.model_name,
            "kwargs": jsonable(spec.kwargs) if spec else None,
            "plugin": spec.plugin if spec else None,
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        },
        "dataset": {
            "name": trainer.dataset,
            "task": trainer.task,
            "kwargs": trainer.dataset_kwargs,
            "train_size": trainer.train_batches.num_samples,
            "test_size": trainer.test_batches.num_samples,
            "loader": type(trainer.train_batches).__name__,
        },
        "loss": {"name": trainer.loss, "expects": trainer.expects, "kwargs": trainer.loss_kwargs},
        "optimizer": {
            "name": trainer.optimizer_name,
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
            "autocast": str(trainer.autocast).removeprefix("torch.") if trainer.autocast else None,
            "grad_scaler": trainer.scaler is not None,
        },
        "versions": versions(plugins),
        "timings": {
            "setup_s": trainer.setup_seconds,
            "train_s": train_s,
            "eval_s": eval_s,
            "wall_s": time.perf_counter() - t_start,
            "total_s": trainer._elapsed_before + time.perf_counter() - t_start,
            "epochs_run": len(trainer.history),
        },
        "result": {
            "epochs": len(trainer.history),
            "last_epoch": trainer.history[-1]["epoch"] if trainer.history else 0,
            "monitor": trainer.monitor,
            "best": trainer._early.get("best"),
            "best_epoch": trainer._early.get("best_epoch"),
            "error": trainer._diverged_message,
        },
        "resumed_from": trainer.resumed_from,
        "command": command_line(),
        "started": started,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_outputs(
    trainer: Trainer, metrics: dict[str, float], status: str, started: str, t_start: float
) -> None:
    """A finished run's files: the weights (with their training record), ``metrics.csv``, the
    curves and the final ``run.json``."""
    from zoo.tasks import contracts as tasks
    from zoo.weights import files as weights

    extra = {
        "train": {
            k: v for k, v in trainer.settings().items()
            if k in ("loss", "optimizer", "lr", "weight_decay", "momentum", "epochs",
                     "batch_size", "seed", "precision", "dataset_kwargs", "data_dir",
                     "entries")
        }
    }  # fmt: skip
    weights.export(
        trainer.model, trainer.out / WEIGHTS, dataset=trainer.dataset, metrics=metrics, extra=extra
    )
    write_metrics_csv(trainer.out, trainer.history)
    plot_curves(trainer.out, trainer.history, tasks.TASKS[trainer.task].primary_metric)
    info = run_info(trainer, status, started, t_start)
    info["result"]["metrics"] = metrics
    write_run_json(trainer.out, info)
