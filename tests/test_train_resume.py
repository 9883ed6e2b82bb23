"""Checkpoint and resume: a run SIGKILLed mid-epoch and resumed ends bit-identical (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from zoo.cli import cli
from zoo.errors import UsageError
from zoo.train.checkpoint import decode, encode, load_checkpoint
from zoo.train.trainer import Trainer

SETTINGS = dict(
    model="mlp", dataset="circles", dataset_kwargs={"n_samples": 5000}, batch_size=8, epochs=3,
    optimizer="adam", lr=1e-3, seed=0, device="cpu",
)  # fmt: skip


def trainer(**kw) -> Trainer:
    s = {**SETTINGS, "quiet": True, **kw}
    return Trainer(s.pop("model"), s.pop("dataset"), **s)


def cli_args(out) -> list[str]:
    return [
        "train", "--model", "mlp", "--dataset", "circles", "--dataset-arg", "n_samples=5000",
        "--batch-size", "8", "--epochs", "3", "--optimizer", "adam", "--lr", "0.001",
        "--seed", "0", "--device", "cpu", "--out", str(out), "--quiet",
    ]  # fmt: skip


def checkpoint_epoch(run) -> int:
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def kill_in_epoch_2(args: list[str], run) -> None:
    """Run ``zoo ARGS`` (training into ``run``) as a real process and SIGKILL it just after
    its first checkpoint, in epoch 2."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", *args], env=env)
    try:
        deadline = time.monotonic() + 120
        while checkpoint_epoch(run) < 1:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.1)  # into epoch 2
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    reference = trainer().fit()

    run = tmp_path / "killed"
    kill_in_epoch_2(cli_args(run), run)
    assert checkpoint_epoch(run) in (1, 2)
    assert not (run / "model.safetensors").exists()
    assert json.loads((run / "run.json").read_text())["status"] == "running"

    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output

    resumed = load_file(run / "model.safetensors")
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed[key], value), key
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["resumed_from"]
    assert info["result"]["metrics"] == reference.metrics
    history = [r["test_loss"] for r in reference.history]
    assert [r["test_loss"] for r in _csv_rows(run / "metrics.csv")] == history


def _csv_rows(path):
    import csv

    with open(path) as fh:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(fh)]


def test_resume_from_another_model_is_refused(tmp_path):
    trainer(model="linear", epochs=1, out=tmp_path / "lin").fit()
    with pytest.raises(UsageError, match=r"resume: .* checkpoint of 'linear'.*differs in model"):
        trainer(model="mlp", resume=tmp_path / "lin", out=tmp_path / "lin").fit()
    result = CliRunner().invoke(
        cli, ["train", "--model", "mlp", "--dataset", "circles", "--resume", str(tmp_path / "lin")]
    )
    assert result.exit_code == 2
    assert result.stderr == "error: --model mlp conflicts with the resumed run (linear)\n"


def test_resume_from_a_directory_without_checkpoint(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint in"):
        trainer(resume=tmp_path)


def test_checkpoint_round_trips_optimizer_state_without_pickle(tmp_path):
    t = trainer(model="linear", epochs=1, optimizer="sgd", momentum=0.9, out=tmp_path / "r")
    t.fit()
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.epoch == 1
    saved, live = ckpt.optimizer_state, t.optimizer.state_dict()
    assert saved["param_groups"] == live["param_groups"]
    for idx, state in live["state"].items():
        assert torch.equal(saved["state"][idx]["momentum_buffer"], state["momentum_buffer"])
    raw = (tmp_path / "r" / "checkpoint" / "state.json").read_bytes()
    assert b"pickle" not in raw and not list((tmp_path / "r").rglob("*.pt"))


def test_codec_keeps_tuples_int_keys_and_tensors():
    tensors = {}
    value = {"betas": (0.9, 0.999), "state": {0: {"step": torch.tensor(3.0)}}, "none": None}
    doc = json.loads(json.dumps(encode(value, tensors, "o")))
    back = decode(doc, tensors)
    assert back["betas"] == (0.9, 0.999) and back["none"] is None
    assert torch.equal(back["state"][0]["step"], torch.tensor(3.0))


def test_resume_with_more_epochs_continues_the_history(tmp_path):
    first = trainer(model="linear", epochs=1, out=tmp_path / "r").fit()
    more = trainer(model="linear", epochs=2, out=tmp_path / "r", resume=tmp_path / "r").fit()
    assert [row["epoch"] for row in more.history] == [1, 2]
    assert more.history[0] == first.history[0]
    straight = trainer(model="linear", epochs=2).fit()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(more.model.state_dict()[key], value)
