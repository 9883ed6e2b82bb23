"""The ``tensorboard`` logger: one scalar per ``metrics.csv`` column, tagged with the column's
name, at step = epoch, in ``<run dir>/tensorboard/`` (``torch.utils.tensorboard``; needs
``zoo[tensorboard]``). The settings are a text summary (``settings``); the final test metrics
are scalars ``final_test_<metric>`` at the last epoch."""

from __future__ import annotations

import json
from typing import Any

import zoo
from zoo_loggers import scalars

NAME = "tensorboard"
SUBDIR = "tensorboard"

_writers: dict[str, Any] = {}  # run.id -> SummaryWriter


@zoo.hookimpl
def on_fit_start(run):
    if NAME not in run.loggers:
        return
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run.run_dir / SUBDIR))
    settings = json.dumps(run.settings, indent=2, sort_keys=True)
    writer.add_text("settings", f"```\n{settings}\n```", global_step=run.start_epoch - 1)
    _writers[run.id] = writer


@zoo.hookimpl
def on_epoch_end(run, metrics):
    writer = _writers.get(run.id)
    if writer is None:
        return
    for key, value in scalars(metrics).items():
        writer.add_scalar(key, value, global_step=run.epoch)
    writer.flush()  # each epoch is on disk as it ends (TensorBoard shows a run in progress)


@zoo.hookimpl
def on_fit_end(run, metrics):
    writer = _writers.pop(run.id, None)
    if writer is None:
        return
    for key, value in scalars(metrics).items():
        writer.add_scalar(f"final_test_{key}", value, global_step=run.epoch)
    writer.close()
