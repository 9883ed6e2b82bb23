"""What ``--resume`` does with a changed setting: applied from the first resumed epoch and
recorded (``run.json``'s ``changes``, ``metrics.csv``), or refused with one line before any
work; never recorded and ignored (issue 10, item 5)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from cli_helpers import one_line_error, zoo_cli
from safetensors.torch import load_file

import zoo
from zoo.errors import UsageError
from zoo.train.checkpoint import load_checkpoint
from zoo.train.config import RESUME, TrainConfig

BASE = ["-m", "mlp", "-d", "circles", "--optimizer", "sgd", "--lr", "0.05", "--batch-size",
        "32", "--no-shuffle", "--seed", "0", "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """mlp on circles, plain SGD at lr 0.05, batches of 32 in order, 2 epochs."""
    out = tmp_path_factory.mktemp("runs") / "r"
    result = zoo_cli("train", *BASE, "--epochs", "2", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run(two_epochs, tmp_path):
    return shutil.copytree(two_epochs, tmp_path / "run")


def hand_loop(phases, optimizer=torch.optim.SGD, **options):
    """The canonical loop written out: ``phases`` of (epochs, lr, weight_decay, batch_size[,
    other group settings]), the optimizer's param groups set at each phase as a user would."""
    torch.manual_seed(0)
    model = zoo.create_model("mlp", dataset="circles")
    X, y = zoo.load_dataset("circles", "train")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    optimizer = optimizer(model.parameters(), lr=phases[0][1], **options)
    for epochs, lr, weight_decay, batch, *more in phases:
        for group in optimizer.param_groups:
            group.update(lr=lr, weight_decay=weight_decay, **(more[0] if more else {}))
        for _ in range(epochs):
            for i in range(0, len(X), batch):
                model.train()
                loss = loss_fn(model(X[i : i + batch]).squeeze(-1), y[i : i + batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return model.state_dict()


def assert_weights(run_dir, expected):
    saved = load_file(run_dir / "model.safetensors")
    assert saved.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(saved[key], value), key


def csv_column(run_dir, name):
    with open(run_dir / "metrics.csv") as fh:
        return [float(row[name]) for row in csv.DictReader(fh)]


def test_a_new_lr_on_resume_trains_the_resumed_epochs_at_it_and_says_so(run, tmp_path):
    python_copy = shutil.copytree(run, tmp_path / "python")
    result = zoo_cli("train", "--resume", run, "--epochs", "4", "--lr", "0.5",
                     "--weight-decay", "0.01", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output

    assert_weights(run, hand_loop([(2, 0.05, 0.0, 32), (2, 0.5, 0.01, 32)]))
    assert csv_column(run, "lr") == [0.05, 0.05, 0.5, 0.5]
    info = json.loads((run / "run.json").read_text())
    assert (info["settings"]["lr"], info["settings"]["weight_decay"]) == (0.5, 0.01)
    assert info["changes"] == [
        {"epoch": 3, "setting": "lr", "from": 0.05, "to": 0.5},
        {"epoch": 3, "setting": "weight_decay", "from": 0.0, "to": 0.01},
        {"epoch": 3, "setting": "epochs", "from": 2, "to": 4},
    ]
    groups = load_checkpoint(run).optimizer_state["param_groups"]
    assert {(g["lr"], g["weight_decay"]) for g in groups} == {(0.5, 0.01)}

    # the Python API resumes the same way
    zoo.Trainer.resumed(python_copy, epochs=4, lr=0.5, weight_decay=0.01, quiet=True).fit()
    assert_weights(python_copy, load_file(run / "model.safetensors"))
    assert json.loads((python_copy / "run.json").read_text())["changes"] == info["changes"]


FUSED_ARGS = ["-m", "mlp", "-d", "circles", "--lr", "0.01", "--batch-size", "64",
              "--no-shuffle", "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.mark.parametrize("first", [True, False])
def test_fused_changed_on_resume_takes_effect_from_the_first_resumed_epoch(tmp_path, first):
    """The checkpoint's optimizer state says how it stepped; the resumed run's setting wins."""
    flag = {True: "--fused", False: "--no-fused"}
    run = tmp_path / "r"
    assert zoo_cli("train", *FUSED_ARGS, flag[first], "--epochs", "1", "--out", run).exit_code == 0
    result = zoo_cli("train", "--resume", run, "--epochs", "2", flag[not first])
    assert result.exit_code == 0, result.output

    phases = [(1, 0.01, 0.0, 64, {"fused": first}), (1, 0.01, 0.0, 64, {"fused": not first})]
    assert_weights(run, hand_loop(phases, torch.optim.Adam))
    info = json.loads((run / "run.json").read_text())
    assert {"epoch": 2, "setting": "fused", "from": first, "to": not first} in info["changes"]
    groups = load_checkpoint(run).optimizer_state["param_groups"]
    assert {bool(g["fused"]) for g in groups} == {not first}


def test_a_run_of_a_zoo_before_fused_resumes_unfused_unless_told(tmp_path):
    """A record without ``fused`` was trained with torch's default step: resuming it keeps
    that step (no change), and ``--fused`` is a change from False."""
    run = tmp_path / "r"
    assert zoo_cli("train", *FUSED_ARGS, "--no-fused", "--epochs", "1", "--out", run).exit_code == 0
    for name, keys in (
        ("run.json", ("settings",)),
        ("checkpoint/state.json", ("trainer", "settings")),
    ):
        record = json.loads((run / name).read_text())
        settings = record
        for key in keys:
            settings = settings[key]
        del settings["fused"]  # as zoo wrote it before the setting existed
        (run / name).write_text(json.dumps(record))
    older = shutil.copytree(run, tmp_path / "older")

    assert zoo_cli("train", "--resume", run, "--epochs", "2").exit_code == 0
    assert_weights(run, hand_loop([(2, 0.01, 0.0, 64)], torch.optim.Adam))
    info = json.loads((run / "run.json").read_text())
    assert info["settings"]["fused"] is False
    assert [c["setting"] for c in info["changes"]] == ["epochs"]

    assert zoo_cli("train", "--resume", older, "--epochs", "2", "--fused").exit_code == 0
    changes = json.loads((older / "run.json").read_text())["changes"]
    assert {"epoch": 2, "setting": "fused", "from": False, "to": True} in changes


def test_changes_of_several_resumes_accumulate_with_their_epochs(run):
    assert zoo_cli("train", "--resume", run, "--epochs", "3", "--lr", "0.2").exit_code == 0
    assert zoo_cli("train", "--resume", run, "--epochs", "4", "--batch-size", "64").exit_code == 0
    assert_weights(run, hand_loop([(2, 0.05, 0.0, 32), (1, 0.2, 0.0, 32), (1, 0.2, 0.0, 64)]))
    changes = json.loads((run / "run.json").read_text())["changes"]
    assert [(c["epoch"], c["setting"], c["from"], c["to"]) for c in changes] == [
        (3, "lr", 0.05, 0.2), (3, "epochs", 2, 3), (4, "epochs", 3, 4), (4, "batch_size", 32, 64),
    ]  # fmt: skip
    assert csv_column(run, "lr") == [0.05, 0.05, 0.2, 0.2]


def test_a_new_monitor_rebuilds_early_stopping_from_the_whole_history(run):
    result = zoo_cli("train", "--resume", run, "--epochs", "3", "--monitor", "accuracy",
                     "--patience", "10", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    accuracy = csv_column(run, "test_accuracy")
    best = max(accuracy)
    info = json.loads((run / "run.json").read_text())
    assert info["result"]["best"] == best
    assert info["result"]["best_epoch"] == accuracy.index(best) + 1
    settings = {c["setting"]: (c["from"], c["to"]) for c in info["changes"]}
    assert settings["monitor"] == (None, "test_accuracy")
    assert settings["patience"] == (None, 10)


@pytest.mark.parametrize(
    ("flag", "value", "diff"),
    [
        ("--seed", "1", "seed (0 -> 1)"),
        ("--optimizer", "adam", "optimizer ('sgd' -> 'adam')"),
        ("--model-arg", "hidden=[8]", "model_kwargs ("),
        ("--dataset-arg", "n_samples=200", "dataset_kwargs ({} -> {'n_samples': 200})"),
    ],
)
def test_a_setting_the_checkpoint_fixes_is_refused_before_any_work(run, flag, value, diff):
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = one_line_error(zoo_cli("train", "--resume", run, "--epochs", "3", flag, value))
    assert line.startswith(f"error: resume: {run / 'checkpoint'} is a checkpoint of 'mlp' on ")
    assert f"this run differs in {diff}" in line and "cannot change" in line
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing ran, nothing was written


def test_python_resume_refuses_a_new_seed_when_built(run):
    with pytest.raises(UsageError, match=r"differs in seed \(0 -> 3\)"):
        zoo.Trainer.resumed(run, epochs=3, seed=3)


def test_every_setting_says_what_a_resume_does_with_it():
    policies = {name: TrainConfig.meta(name)["resume"] for name in TrainConfig.names()}
    assert set(policies.values()) <= set(RESUME)
    refused = {name for name, policy in policies.items() if policy == "refuse"}
    own_data = {"target", "labels", "task", "image_size", "test_fraction", "val_fraction"}
    assert refused == {
        "model", "dataset", "optimizer", "seed", "model_kwargs", "dataset_kwargs", *own_data,
        "scheduler", "warmup_epochs", "accumulate",  # the schedule and step count are the run's
        "pretrained", "init", "freeze_backbone",  # its starting weights and what trains
    }  # fmt: skip
    assert set(TrainConfig.names(fingerprint=True)) == refused
    assert {name for name, policy in policies.items() if policy == "session"} == {"quiet", "plot"}
