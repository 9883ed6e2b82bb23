"""Distributed data parallel: real ``torchrun`` with 2 CPU processes (gloo) vs one process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from zoo.train.trainer import Trainer


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    out = tmp_path / "ddp"
    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    # 800 samples, global batch 24: the last global batch (8) falls on rank 0 alone
    cmd = [
        *launcher, "--standalone", "--nproc-per-node", "2", "-m", "zoo", "train",
        "--model", "mlp", "--dataset", "circles", "--epochs", "2", "--batch-size", "12",
        "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--device", "cpu",
        "--out", str(out), "--quiet", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # rank 0 alone reports and writes
    info = json.loads((out / "run.json").read_text())
    assert info["device"]["world_size"] == 2 and info["device"]["backend"] == "gloo"

    assert_matches_one_process(out)


def assert_matches_one_process(run_dir) -> None:
    """The run (mlp on circles, 2 epochs, global batch 24, SGD lr 0.1 momentum 0.9) has the
    weights, final metrics and per-epoch train losses of the same training in one process."""
    single = Trainer(
        "mlp", "circles", epochs=2, batch_size=24, optimizer="sgd", lr=0.1, momentum=0.9,
        device="cpu", quiet=True,
    ).fit()  # fmt: skip
    info = json.loads((run_dir / "run.json").read_text())
    weights = load_file(run_dir / "model.safetensors")
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(weights[key], value, atol=1e-5, rtol=0)
    for key, value in single.metrics.items():
        assert info["result"]["metrics"][key] == pytest.approx(value, abs=1e-5)
    losses = [row["train_loss"] for row in _history(run_dir)]
    assert losses == pytest.approx([row["train_loss"] for row in single.history], abs=1e-5)


def _history(run_dir):
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    return state["trainer"]["history"]
