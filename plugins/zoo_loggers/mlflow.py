"""The ``mlflow`` logger: one MLflow run per fit, through ``mlflow.MlflowClient`` (needs
``zoo[mlflow]``), so a notebook's active MLflow run is left alone.

Where: the tracking URI of ``MLFLOW_TRACKING_URI``, else MLflow's default (a local store in
the working directory); the experiment of ``MLFLOW_EXPERIMENT_ID`` or ``MLFLOW_EXPERIMENT_NAME``
(created if need be), else MLflow's ``Default``. What: every setting as a param (JSON for
lists and dicts), tags ``zoo.model``, ``zoo.dataset``, ``zoo.task``, ``zoo.run_dir``; each
epoch's ``metrics.csv`` row as metrics at step = epoch; the final test metrics as
``final_test_<metric>``; the run ends ``FINISHED``, ``FAILED`` or ``KILLED`` as the fit did.
A resumed fit is a new MLflow run with the same ``zoo.run_dir`` tag.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import zoo
from zoo_loggers import scalars

NAME = "mlflow"
MAX_PARAM = 6000  # MLflow's longest param value
STATUS = {
    "finished": "FINISHED",
    "stopped_early": "FINISHED",
    "interrupted": "KILLED",
    "killed": "KILLED",
}  # anything else: FAILED

_runs: dict[str, tuple[Any, str]] = {}  # run.id -> (MlflowClient, MLflow run id)


@zoo.hookimpl
def on_fit_start(run):
    if NAME not in run.loggers:
        return
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient()
    tags = {"zoo.model": run.model, "zoo.dataset": run.dataset, "zoo.task": run.task}
    if run.run_dir is not None:
        tags["zoo.run_dir"] = os.path.abspath(run.run_dir)
    name = run.run_dir.name if run.run_dir is not None else f"{run.model}-{run.dataset}"
    created = client.create_run(_experiment(client), run_name=name, tags=tags)
    run_id = created.info.run_id
    _runs[run.id] = (client, run_id)
    params = [Param(k, _param(v)) for k, v in sorted(run.settings.items())]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=params[i : i + 100])


@zoo.hookimpl
def on_epoch_end(run, metrics):
    if run.id in _runs:
        _log(*_runs[run.id], scalars(metrics), run.epoch)


@zoo.hookimpl
def on_fit_end(run, metrics):
    client, run_id = _runs.pop(run.id, (None, None))
    if client is None:
        return
    try:
        final = {f"final_test_{k}": v for k, v in scalars(metrics).items()}
        _log(client, run_id, final, run.epoch)
    finally:
        client.set_terminated(run_id, status=STATUS.get(run.status, "FAILED"))


def _experiment(client: Any) -> str:
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not name:
        return "0"  # MLflow's Default experiment
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _log(client: Any, run_id: str, values: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."
