"""Runs never overwrite each other (issue 10, item 6): a run directory is claimed atomically,
an OS lock is held for the run and dies with the process, default names are unique under
concurrency, and a dead run's directory can be resumed or started again. Real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import one_line_error, zoo_cli

from zoo.errors import UsageError
from zoo.train.checkpoint import checkpoint_epoch
from zoo.train.rundir import LOCK, claim_run_dir
from zoo.weights import read_metadata

# Long enough to be caught mid-run: 5000 points in batches of 8 (625 steps an epoch).
SLOW = ["-m", "mlp", "-d", "circles", "--dataset-arg", "n_samples=5000", "--batch-size", "8",
        "--device", "cpu", "--quiet"]  # fmt: skip


def start(*args, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", "train", *map(str, args)], env=env, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(proc: subprocess.Popen, ready) -> None:
    """Poll until ``ready()``; the process must still be running."""
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def status(run) -> str:
    return json.loads((run / "run.json").read_text())["status"]


def assert_whole(run, lr: float, epochs: int) -> None:
    """One run's files, all of them from that run."""
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["settings"]["lr"] == lr
    assert [r["epoch"] for r in info_history(run)] == list(range(1, epochs + 1))
    assert checkpoint_epoch(run / "checkpoint") == epochs
    assert read_metadata(run / "model.safetensors")["extra"]["train"]["lr"] == lr


def info_history(run):
    import csv

    with open(run / "metrics.csv") as fh:
        return [{"epoch": int(row["epoch"]), "lr": float(row["lr"])} for row in csv.DictReader(fh)]


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()


# -- default names -------------------------------------------------------------------------------


def test_three_concurrent_runs_with_default_names_keep_three_run_dirs(tmp_path, procs):
    lrs = ("0.001", "0.01", "0.1")
    for lr in lrs:
        procs.append(start("-m", "mlp", "-d", "iris", "--epochs", "2", "--device", "cpu",
                           "--lr", lr, "-q", cwd=tmp_path))  # fmt: skip
    dirs = {}
    for lr, proc in zip(lrs, procs, strict=True):
        code, out, err = finish(proc)
        assert code == 0, err
        dirs[lr] = tmp_path / out.strip().splitlines()[-1].removeprefix("run: ")
    assert len(set(dirs.values())) == 3
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {d.name for d in dirs.values()}
    for lr, run in dirs.items():
        assert_whole(run, float(lr), 2)


def test_a_taken_default_name_gets_a_suffix_never_the_taken_dir(tmp_path):
    base = tmp_path / "runs" / "20250101-000000-mlp-iris"
    base.mkdir(parents=True)  # taken, though empty: a concurrent run may be about to lock it
    with claim_run_dir(base, unique=True) as a, claim_run_dir(base, unique=True) as b:
        assert (a.path.name, b.path.name) == (f"{base.name}-2", f"{base.name}-3")
        assert a.held and b.held
    assert not a.held


# -- one writer per directory ----------------------------------------------------------------------


def test_a_second_writer_fails_at_once_and_the_first_run_stays_whole(tmp_path, procs):
    run = tmp_path / "run"
    first = start(*SLOW, "--epochs", "3", "--lr", "0.002", "--out", run)
    procs.append(first)
    wait_for(first, lambda: checkpoint_epoch(run / "checkpoint") is not None)
    first.send_signal(signal.SIGSTOP)  # holds its lock, frozen mid-run
    try:
        busy = f"error: {run} is in use by another run (pid {first.pid}); wait for it to end or "
        line = one_line_error(zoo_cli("train", *SLOW, "--epochs", "1", "--out", run))
        assert line == busy + "pick another --out"
        assert one_line_error(zoo_cli("train", "--resume", run, "--epochs", "3")) == (
            busy + "pick another --out"
        )
    finally:
        first.send_signal(signal.SIGCONT)
    code, _, err = finish(first)
    assert code == 0, err
    assert_whole(run, 0.002, 3)


def test_two_runs_started_together_into_one_out_leave_one_whole_run(tmp_path, procs):
    run = tmp_path / "run"
    lrs = ("0.002", "0.003")
    procs.extend(start(*SLOW, "--epochs", "1", "--lr", lr, "--out", run) for lr in lrs)
    results = [finish(proc) for proc in procs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    (winner,) = [lr for lr, (code, _, _) in zip(lrs, results, strict=True) if code == 0]
    (err,) = [err for code, _, err in results if code == 2]
    assert len(err.strip().splitlines()) == 1
    assert "is in use by another run" in err or "already holds a run" in err
    assert_whole(run, float(winner), 1)


def test_the_lock_is_held_until_released(tmp_path):
    run = tmp_path / "run"
    claim = claim_run_dir(run)
    assert (run / LOCK).read_text().strip() == str(os.getpid())
    with pytest.raises(UsageError, match=f"in use by another run \\(pid {os.getpid()}\\)"):
        claim_run_dir(run)
    claim.release()
    claim_run_dir(run).release()  # an empty directory (but for the lock file) is free again


def test_an_empty_directory_is_accepted_and_one_with_other_files_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = zoo_cli("train", "-m", "linear", "-d", "circles", "--epochs", "1", "--device", "cpu",
                     "--out", empty, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert status(empty) == "finished"

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    line = one_line_error(zoo_cli("train", "-m", "linear", "-d", "circles", "--out", mine))
    assert line == (
        f"error: {mine} is not empty and holds no run; pick another --out (a new or empty "
        f"directory)"
    )
    assert {p.name for p in mine.iterdir()} == {"notes.txt"}  # not even a lock file
    assert (mine / "notes.txt").read_text() == "keep me"


# -- a dead run is no dead end ---------------------------------------------------------------------


def test_sigkill_a_run_then_resume_it(tmp_path, procs):
    run = tmp_path / "run"
    proc = start(*SLOW, "--epochs", "3", "--out", run)
    procs.append(proc)
    wait_for(proc, lambda: checkpoint_epoch(run / "checkpoint") is not None)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert status(run) == "running"  # what it said when it died; its lock died with it

    result = zoo_cli("train", "--resume", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert_whole(run, 0.001, 3)


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(tmp_path, procs):
    run = tmp_path / "run"
    slow_epoch = [*SLOW, "--dataset-arg", "n_samples=100000", "--batch-size", "2"]
    proc = start(*slow_epoch, "--epochs", "1", "--out", run)
    procs.append(proc)
    wait_for(proc, lambda: (run / "run.json").exists())
    proc.send_signal(signal.SIGSTOP)
    assert not (run / "checkpoint").exists()  # an epoch is some 40000 steps
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    # (``--resume`` starts such a run again too: tests/hostile/test_hostile_train.py)
    result = zoo_cli("train", *SLOW, "--epochs", "1", "--lr", "0.004", "--out", run)
    assert result.exit_code == 0, result.output
    assert "stopped before its first checkpoint; starting it again" in result.stderr
    assert_whole(run, 0.004, 1)
