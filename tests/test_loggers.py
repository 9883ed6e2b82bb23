"""Loggers (issue 14 item 5): the training events reach plugins, each in its own guard, and the
first-party TensorBoard and MLflow loggers write what ``run.json`` and ``metrics.csv`` record,
read back with each library's own reader."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line_error, zoo_cli

import zoo
from zoo.errors import UsageError, ZooError

SMALL = {"epochs": 2, "batch_size": 64, "quiet": True}  # mlp on circles: a second or two

# A logger plugin that writes every event it gets, as JSON lines, where $RECORD_TO says.
RECORDER = """\
import json, os

import zoo


def _write(event, run, **more):
    with open(os.environ["RECORD_TO"], "a") as f:
        row = {"event": event, "id": run.id, "epoch": run.epoch, "status": run.status,
               "loggers": list(run.loggers), "model": run.model, "dataset": run.dataset,
               "task": run.task, "run_dir": str(run.run_dir), "lr": run.settings["lr"]}
        f.write(json.dumps({**row, **more}) + "\\n")


@zoo.hookimpl
def on_fit_start(run):
    _write("start", run)


@zoo.hookimpl
def on_epoch_end(run, metrics):
    print("recorder says hello")  # a plugin's stdout never reaches zoo's own output
    _write("epoch", run, metrics=metrics)


@zoo.hookimpl
def on_fit_end(run, metrics):
    _write("end", run, metrics=metrics)
"""

BROKEN = """\
import zoo

calls = []


@zoo.hookimpl
def on_fit_start(run):
    calls.append("start")


@zoo.hookimpl
def on_epoch_end(metrics):  # a subset of the spec's arguments is pluggy's rule, and fine
    calls.append("epoch")
    raise ValueError("disk on fire")


@zoo.hookimpl
def on_fit_end(run, metrics):
    calls.append("end")
"""


def _history(run_dir: Path) -> list[dict]:
    """The run directory's metrics.csv, one dict per epoch (floats written with repr: exact)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in rows]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the events and their guard ------------------------------------------------------------------


def test_a_logger_plugin_gets_every_event_with_what_the_run_records(
    make_plugin, tmp_path, monkeypatch
):
    make_plugin("zoo-recorder", {"zoo_recorder.py": RECORDER}, {"recorder": "zoo_recorder"})
    record = tmp_path / "events.jsonl"
    monkeypatch.setenv("RECORD_TO", str(record))
    run_dir = tmp_path / "run"
    result = zoo.Trainer("mlp", "circles", out=run_dir, logger="recorder", **SMALL).fit()

    events = _records(record)
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "end"]
    assert len({e["id"] for e in events}) == 1  # one Run object for the whole fit
    assert [e["epoch"] for e in events] == [0, 1, 2, 2]
    assert [e["status"] for e in events] == ["running"] * 3 + ["finished"]
    start = events[0]
    assert (start["model"], start["dataset"], start["task"]) == ("mlp", "circles", "binary")
    assert start["loggers"] == ["recorder"] and start["run_dir"] == str(run_dir)
    assert start["lr"] == json.loads((run_dir / "run.json").read_text())["settings"]["lr"]
    assert [e["metrics"] for e in events[1:3]] == _history(run_dir) == result.history
    assert events[3]["metrics"] == result.metrics


def test_on_fit_end_says_how_a_failed_run_ended(make_plugin, tmp_path, monkeypatch):
    make_plugin("zoo-recorder", {"zoo_recorder.py": RECORDER}, {"recorder": "zoo_recorder"})
    record = tmp_path / "events.jsonl"
    monkeypatch.setenv("RECORD_TO", str(record))
    trainer = zoo.Trainer("mlp", "circles", out=tmp_path / "run", **{**SMALL, "lr": 1e12})
    with pytest.raises(ZooError, match="training diverged"):
        trainer.fit()
    events = _records(record)
    assert [(e["event"], e["status"]) for e in events] == [
        ("start", "running"),
        ("end", "diverged"),
    ]
    assert events[-1]["metrics"] == {} and events[-1]["loggers"] == []


def test_a_logger_plugin_that_raises_warns_once_by_name_and_training_goes_on(
    make_plugin, tmp_path, caplog
):
    plain = zoo.Trainer("mlp", "circles", out=tmp_path / "plain", **SMALL).fit()
    make_plugin("zoo-broken", {"zoo_broken.py": BROKEN}, {"broken": "zoo_broken"})
    with caplog.at_level(logging.WARNING, logger="zoo"):
        logged = zoo.Trainer("mlp", "circles", out=tmp_path / "logged", **SMALL).fit()

    import zoo_broken

    assert zoo_broken.calls == ["start", "epoch"]  # not called again in this run
    warnings = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
    assert warnings == [
        "logger plugin 'broken' failed in on_epoch_end (ValueError: disk on fire): it is not "
        "called again in this run; training goes on"
    ]
    assert logged.metrics == plain.metrics and len(logged.history) == 2
    strip = ("seconds", "eval_seconds", "samples_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in logged.history] == [
        {k: v for k, v in r.items() if k not in strip} for r in plain.history
    ]
    assert json.loads((tmp_path / "logged" / "run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    "source, words",
    [
        (
            "import zoo\n\n@zoo.hookimpl\ndef on_epoch_end(run, metric):\n    pass\n",
            ["'on_epoch_end'", "{'metric'}"],
        ),
        (
            "import zoo\n\n@zoo.hookimpl(wrapper=True)\ndef on_fit_end(run, metrics):\n"
            "    return (yield)\n",
            ["'on_fit_end'", "wrapper=True", "def on_fit_end(run, metrics)"],
        ),
        (
            "import zoo\n\n@zoo.hookimpl\ndef on_epoch_ends(run, metrics):\n    pass\n",
            ["unknown hook 'on_epoch_ends'", "did you mean 'on_epoch_end'?"],
        ),
    ],
)
def test_event_hooks_are_validated_like_the_register_hooks(make_plugin, source, words):
    make_plugin("zoo-bad-events", {"zoo_bad_events.py": source}, {"bad-events": "zoo_bad_events"})
    record = next(r for r in zoo.registry.plugin_records() if r.name == "bad-events")
    assert record.status == "failed"
    for word in words:
        assert word in record.error


# -- choosing loggers: refused before any work ---------------------------------------------------


def test_an_unknown_logger_is_a_usage_error_before_any_work(tmp_path):
    out = tmp_path / "run"
    result = zoo_cli("train", "-m", "mlp", "-d", "circles", "--out", out, "--logger", "tensorbord")
    line = one_line_error(result, 2)
    assert line == "error: unknown logger 'tensorbord'; did you mean: tensorboard?"
    assert not out.exists()


def test_a_missing_logger_library_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    out = tmp_path / "run"
    result = zoo_cli("train", "-m", "mlp", "-d", "circles", "--out", out, "--logger", "csv,mlflow")
    line = one_line_error(result, 2)
    assert line == "error: logger 'mlflow' needs the mlflow package: pip install 'zoo[mlflow]'"
    assert not out.exists()


def test_loggers_that_write_into_the_run_dir_need_one():
    with pytest.raises(UsageError, match="logger 'tensorboard' writes into the run directory"):
        zoo.Trainer("mlp", "circles", logger="tensorboard", **SMALL)
    assert zoo.Trainer("mlp", "circles", logger=" ", **SMALL).loggers == ()


def test_a_disabled_first_party_logger_says_so(monkeypatch):
    pytest.importorskip("tensorboard", reason="needs zoo[tensorboard]")
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "tensorboard")
    with pytest.raises(UsageError, match="its plugin is disabled by ZOO_DISABLE_PLUGINS"):
        zoo.Trainer("mlp", "circles", out="x", logger="tensorboard", **SMALL)


# -- the first-party loggers, read back ----------------------------------------------------------


def test_tensorboard_event_file_holds_each_epoch_of_the_history(tmp_path):
    pytest.importorskip("tensorboard", reason="needs zoo[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    result = zoo.Trainer("mlp", "circles", out=run_dir, logger="tensorboard", **SMALL).fit()
    files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    history = _history(run_dir)
    assert history == result.history
    columns = [k for k in history[0] if k != "epoch"]
    assert set(events.Tags()["scalars"]) == {*columns, "final_test_loss", "final_test_accuracy",
                                             "final_test_f1"}  # fmt: skip
    for key in columns:
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert logged == [(row["epoch"], np.float32(row[key])) for row in history], key
    final = {k: events.Scalars(f"final_test_{k}")[0] for k in result.metrics}
    assert {k: (e.step, e.value) for k, e in final.items()} == {
        k: (2, np.float32(v)) for k, v in result.metrics.items()
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's own, of SQLAlchemy's
def test_mlflow_default_store_holds_params_and_metrics_per_epoch(
    make_plugin, tmp_path, monkeypatch
):
    """``zoo train`` in a fresh directory with no MLFLOW_TRACKING_URI: MLflow's default, a
    local SQLite store there; a printing logger plugin alongside leaves ``--json`` intact."""
    pytest.importorskip("mlflow", reason="needs zoo[mlflow]")
    from mlflow import MlflowClient

    make_plugin("zoo-recorder", {"zoo_recorder.py": RECORDER}, {"recorder": "zoo_recorder"})
    monkeypatch.setenv("RECORD_TO", str(tmp_path / "events.jsonl"))
    for name in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = ["-m", "mlp", "-d", "circles", "--epochs", "2", "--batch-size", "64", "-q"]
    done = zoo_cli("train", *args, "--out", "run", "--logger", "mlflow", "--json")
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)  # the plugin's print is not in it
    assert "recorder says hello" not in done.output

    run_dir = work / "run"
    recorded, history = json.loads((run_dir / "run.json").read_text()), _history(run_dir)
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (found,) = client.search_runs(["0"])  # MLflow's Default experiment
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert found.data.tags["zoo.run_dir"] == str(run_dir.resolve())
    assert found.data.tags["zoo.model"] == "mlp" and found.data.tags["zoo.task"] == "binary"
    settings = recorded["settings"]
    assert found.data.params["lr"] == json.dumps(settings["lr"])
    assert found.data.params["model_kwargs"] == json.dumps(settings["model_kwargs"], sort_keys=True)
    assert found.data.params["logger"] == "mlflow"
    assert set(found.data.params) == set(settings)
    for key in [k for k in history[0] if k != "epoch"]:
        logged = [(m.step, m.value) for m in client.get_metric_history(found.info.run_id, key)]
        assert sorted(logged) == [(row["epoch"], row[key]) for row in history], key
    final = {k: found.data.metrics[f"final_test_{k}"] for k in printed["metrics"]}
    assert final == printed["metrics"] == recorded["result"]["metrics"]
