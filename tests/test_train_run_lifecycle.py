"""Reported problems with train/evaluate/predict: qualified names, resume errors, kwargs,
batch sizes, Ctrl-C, the data dir, the loss-curve plot and ``--epochs 0``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import one_line_error, zoo_cli

import zoo
from zoo import api
from zoo.cli.train import parse_kwargs
from zoo.errors import UsageError
from zoo.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 1-epoch linear/circles run; tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("runs") / "lin"
    result = zoo_cli("train", "-m", "linear", "-d", "circles", "--epochs", "1", "--device",
                     "cpu", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    return shutil.copytree(finished_run, tmp_path / "run")


# -- 1. qualified names with a clashing plugin -------------------------------------------------

CLASH = """
import torch
import zoo
from zoo import api


def net(in_features=2, num_classes=1):
    return torch.nn.Linear(in_features, num_classes)


def data(split):
    X = torch.zeros(8, 2)
    return X, torch.zeros(8)


@zoo.hookimpl
def register_models(register):
    register("mlp", "clash:net", input_kind="features")


@zoo.hookimpl
def register_datasets(register):
    register("circles", "clash:data", task="binary", input_shape=(2,), num_classes=2)


@zoo.hookimpl
def register_losses(register):
    register("bce-with-logits", "torch.nn:BCEWithLogitsLoss", tasks=["binary"])
"""


def test_qualified_names_train_resume_evaluate_and_predict(make_plugin, tmp_path):
    make_plugin("zoo-clash", {"clash/__init__.py": CLASH}, entry_points={"clash": "clash"})
    # the clash is real, and the bare name stays zoo's own (issue 10 item 2)
    assert api.get_entry("model", "mlp").plugin == "workflow"
    assert api.get_entry("model", "clash/mlp").plugin == "clash"
    run = tmp_path / "run"
    result = zoo_cli("train", "-m", "workflow/mlp", "-d", "datasets/circles", "--loss",
                     "losses/bce-with-logits", "--model-arg", "hidden=[4]", "--epochs", "1",
                     "--device", "cpu", "--out", run, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())
    assert info["settings"]["model"] == "mlp" and info["model"]["plugin"] == "workflow"
    assert info["settings"]["entries"] == {
        "model": "workflow/mlp", "dataset": "datasets/circles", "loss": "losses/bce-with-logits",
    }  # fmt: skip
    assert info["dataset"]["train_size"] == 800  # the first-party circles, not the clash's 8

    result = zoo_cli("train", "--resume", run, "--epochs", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["result"]["epochs"] == 2
    # the bare name the run recorded is fine as long as it names the same model
    result = zoo_cli("train", "--resume", run, "--model", "mlp", "--epochs", "3", "--quiet")
    assert result.exit_code == 0, result.output

    result = zoo_cli("evaluate", run, "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    recorded = json.loads((run / "run.json").read_text())["result"]["metrics"]
    assert got["dataset"] == "circles"
    assert got["metrics"]["accuracy"] == pytest.approx(recorded["accuracy"])

    X, _ = zoo.load_dataset("datasets/circles", "test")
    np.save(tmp_path / "x.npy", X[:5].numpy())
    result = zoo_cli("predict", run, "-i", tmp_path / "x.npy")
    assert result.exit_code == 0, result.output
    assert [int(v) in (0, 1) for v in result.stdout.split()] == [True] * 5


def test_python_api_trains_a_qualified_model(make_plugin):
    make_plugin("zoo-clash", {"clash/__init__.py": CLASH}, entry_points={"clash": "clash"})
    t = zoo.Trainer("workflow/mlp", "datasets/circles", "losses/bce-with-logits", epochs=1,
                    device="cpu", quiet=True, model_kwargs={"hidden": [4]})  # fmt: skip
    result = t.fit()
    assert result.model.zoo_spec.plugin == "workflow" and "accuracy" in result.metrics
    assert t.evaluate("train")["accuracy"] >= 0.0


# -- 2. resume errors --------------------------------------------------------------------------


def test_resume_of_nothing_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "some.csv").write_text("a,b\n")
    for target in (tmp_path / "nonexist", tmp_path / "empty", tmp_path / "some.csv"):
        line = one_line_error(zoo_cli("train", "--resume", target))
        assert line == f"error: no run to resume in {target} (no run.json or checkpoint/)"


@pytest.mark.parametrize(
    ("flag", "value", "was"), [("--model", "tinyvgg", "linear"), ("--dataset", "moons", "circles")]
)
def test_resume_with_another_model_or_dataset_conflicts(run_copy, flag, value, was):
    line = one_line_error(zoo_cli("train", "--resume", run_copy, flag, value, "--epochs", "2"))
    assert line == f"error: {flag} {value} conflicts with the resumed run ({was})"


def test_corrupt_run_json_is_one_line(run_copy):
    (run_copy / "run.json").write_text('{"settings": {"model": ')
    line = one_line_error(zoo_cli("train", "--resume", run_copy, "--epochs", "2"))
    assert line.startswith(f"error: {run_copy / 'run.json'} is not valid JSON (")


@pytest.mark.parametrize("name", ["state.safetensors", "model.safetensors"])
def test_truncated_checkpoint_file_is_one_line(run_copy, name):
    path = run_copy / "checkpoint" / name
    path.write_bytes(path.read_bytes()[:40])
    line = one_line_error(zoo_cli("train", "--resume", run_copy, "--epochs", "2"), code=1)
    assert f"corrupt checkpoint: cannot read {path} (" in line and "damaged" in line


# -- 3. kwargs that look like JSON must be JSON -------------------------------------------------


def test_model_arg_json_rule(tmp_path):
    line = one_line_error(
        zoo_cli(
            "train",
            "-m",
            "mlp",
            "-d",
            "circles",
            "--model-arg",
            "hidden=[8",
            "--out",
            tmp_path / "r",
        )  # fmt: skip
    )
    assert "--model-arg hidden=[8: '[8' is not valid JSON" in line
    assert not (tmp_path / "r").exists()
    got = parse_kwargs(
        ("act=relu", "h=[8, 8]", "n=3", "lr=.5", "p=+1", 's="3x3"', "b=true", "x=-inf", "z=null"),
        "--model-arg",
    )
    assert got == {"act": "relu", "h": [8, 8], "n": 3, "lr": 0.5, "p": 1, "s": "3x3", "b": True,
                   "x": "-inf", "z": None}  # fmt: skip
    for bad in ("k={", 'k="open', "k=3x3", "k=1,2", "k=-1e"):
        with pytest.raises(UsageError, match=r"--loss-arg k=.* is not valid JSON"):
            parse_kwargs((bad,), "--loss-arg")


# -- 4. batch size 0 ----------------------------------------------------------------------------


def test_batch_size_zero_is_the_same_error_for_predict_and_evaluate(finished_run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2), dtype=np.float32))
    predicted = one_line_error(
        zoo_cli("predict", finished_run, "-i", tmp_path / "x.npy", "--batch-size", "0")
    )
    evaluated = one_line_error(zoo_cli("evaluate", finished_run, "--batch-size", "0"))
    assert predicted == evaluated == "error: batch size must be a positive integer, got 0"


# -- 5. Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_leaves_a_resumable_run_and_exits_130(tmp_path):
    run = tmp_path / "run"
    args = ["train", "-m", "mlp", "-d", "circles", "--dataset-arg", "n_samples=5000",
            "--batch-size", "8", "--epochs", "50", "--device", "cpu",
            "--out", str(run)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", *args], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint" / "state.json").exists():
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted at epoch ")
    assert last.endswith(f"; continue with: zoo train --resume {run}")
    assert "Traceback" not in stderr and "Aborted" not in stderr
    ckpt = load_checkpoint(run)  # the last complete checkpoint is intact
    epoch = int(last.removeprefix("interrupted at epoch ").split(";")[0])
    assert ckpt.epoch >= 1 and epoch in (ckpt.epoch, ckpt.epoch + 1)
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def test_ctrl_c_while_a_checkpoint_is_written_waits_for_it():
    from zoo.train.trainer import _sigint_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt), _sigint_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("finished the write")
    assert steps == ["finished the write"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- 6. evaluate reuses the data dir ------------------------------------------------------------

FILEDATA = """
import os
from pathlib import Path

import numpy as np
import torch
import zoo
from zoo import api


def data(split, root=None):
    root = Path(root or os.environ.get("ZOO_DATA", "/nonexistent"))
    X = torch.from_numpy(np.load(root / f"{split}.npy"))
    return X, (X[:, 0] > 0).float()


@zoo.hookimpl
def register_datasets(register):
    register("filedata", "filedata:data", task="binary", input_shape=(2,), num_classes=2)
"""


def test_evaluate_and_resume_reuse_the_data_dir(make_plugin, tmp_path, monkeypatch):
    make_plugin("zoo-filedata", {"filedata.py": FILEDATA}, entry_points={"fd": "filedata"})
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.save(data / f"{split}.npy", rng.normal(size=(40, 2)).astype(np.float32))
    run = tmp_path / "run"
    result = zoo_cli("train", "-m", "linear", "-d", "filedata", "--data-dir", data,
                     "--epochs", "1", "--device", "cpu", "--out", run, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["settings"]["data_dir"] == str(data)
    monkeypatch.delenv("ZOO_DATA", raising=False)  # a new shell
    result = zoo_cli("evaluate", run, "--json")  # a recorded path is never applied (issue 11)
    assert result.exit_code == 1 and "recorded dataset options not applied" in result.stderr
    assert f"data_dir='{data}'" in result.stderr
    result = zoo_cli("evaluate", run, "--data-dir", data, "--json")
    assert result.exit_code == 0, result.output
    assert "not applied" not in result.stderr
    recorded = json.loads((run / "run.json").read_text())["result"]["metrics"]
    assert json.loads(result.stdout)["metrics"]["accuracy"] == pytest.approx(recorded["accuracy"])
    monkeypatch.delenv("ZOO_DATA", raising=False)
    result = zoo_cli("train", "--resume", run, "--epochs", "2", "--quiet")
    assert result.exit_code == 0, result.output


# -- 7. the loss-curve plot ---------------------------------------------------------------------


def test_curves_have_integer_epoch_ticks_and_say_train_loss_is_a_running_mean():
    from zoo.train.curves import curves_figure

    history = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "test_loss": 1.1 / e,
            "train_accuracy": 0.5,
            "test_accuracy": 0.4 + e / 100,
        }  # fmt: skip
        for e in (1, 2, 3)
    ]
    fig = curves_figure(history, "accuracy")
    fig.draw_without_rendering()
    loss_ax, metric_ax = fig.axes
    for ax in (loss_ax, metric_ax):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == [
        "train loss (running mean)",
        "test",
    ]
    assert [t.get_text() for t in metric_ax.get_legend().get_texts()] == ["train", "test"]


# -- 8. --epochs 0 --------------------------------------------------------------------------------


def test_epochs_zero_is_refused_unless_resuming(tmp_path, run_copy):
    line = one_line_error(
        zoo_cli("train", "-m", "mlp", "-d", "circles", "--epochs", "0", "--out", tmp_path / "r")
    )
    assert line == "error: epochs must be at least 1, got 0"
    with pytest.raises(UsageError, match="epochs must be at least 1"):
        zoo.Trainer("mlp", "circles", epochs=0)
    for epochs in ("1", "0"):
        line = one_line_error(zoo_cli("train", "--resume", run_copy, "--epochs", epochs))
        assert line.startswith("error: nothing to do: run already has 1 epoch ")
    # a run killed after its last checkpoint but before its outputs still finishes
    (run_copy / "model.safetensors").unlink()
    result = zoo_cli("train", "--resume", run_copy, "--epochs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert (run_copy / "model.safetensors").is_file()
