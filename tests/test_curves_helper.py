"""The loss curves' helper process (``zoo.train.curves``): it draws what this process would,
is not waited for when it is not ready or fails, and leaves nothing behind a run that ends
without a request or a parent that is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
from PIL import Image

from zoo.train.curves import CURVES, CurvesHelper, plot_curves

HISTORY = [
    {"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 1 - 0.5 / e,
     "test_accuracy": 1 - 0.6 / e, "lr": 1e-3}
    for e in range(1, 5)
]  # fmt: skip


def ready_helper(deadline_s: float = 60.0) -> CurvesHelper:
    helper = CurvesHelper.start()
    deadline = time.monotonic() + deadline_s
    while not helper.ready():
        assert helper.process is not None and helper.process.poll() is None, "helper died"
        assert time.monotonic() < deadline, "helper never became ready"
        time.sleep(0.05)
    return helper


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_ready_helper_draws_the_same_image_as_this_process(tmp_path):
    helper = ready_helper()
    process = helper.process
    (tmp_path / "helper").mkdir()
    assert helper.draw(tmp_path / "helper", HISTORY, "accuracy") == tmp_path / "helper" / CURVES
    assert process.returncode == 0  # it drew, and exited
    assert helper.process is None
    here = plot_curves(tmp_path, HISTORY, "accuracy")
    assert np.array_equal(pixels(tmp_path / "helper" / CURVES), pixels(here))
    assert sorted(p.name for p in (tmp_path / "helper").iterdir()) == [CURVES]  # no temp files


def test_a_helper_not_ready_yet_is_stopped_and_the_curves_drawn_here(tmp_path):
    helper = CurvesHelper.start()
    process = helper.process
    assert helper.draw(tmp_path, HISTORY, "accuracy") == tmp_path / CURVES
    assert process.returncode is not None  # stopped and reaped, not left running
    assert pixels(tmp_path / CURVES).shape == (400, 1000, 3)


def test_a_helper_that_died_after_ready_is_not_waited_for(tmp_path):
    helper = ready_helper()
    helper.process.kill()
    helper.process.wait()
    assert helper.draw(tmp_path, HISTORY, "accuracy") == tmp_path / CURVES
    assert (tmp_path / CURVES).stat().st_size > 0


def test_a_run_ending_without_a_request_leaves_no_file(tmp_path):
    helper = ready_helper()
    process = helper.process
    helper.close()
    assert process.returncode is not None
    assert list(tmp_path.iterdir()) == []


def test_a_helper_whose_run_is_killed_exits_by_itself(tmp_path):
    """The run (a real process) is SIGKILLed with its helper ready and waiting: the helper
    sees its pipe close, exits and writes nothing."""
    run = textwrap.dedent(
        """
        import os, signal, sys, time
        from zoo.train.curves import CurvesHelper
        helper = CurvesHelper.start()
        while not helper.ready():
            time.sleep(0.05)
        print(helper.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == -signal.SIGKILL
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline, "the helper outlived its run"
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, its parent gone until init reaps it) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_history_draws_nothing(tmp_path):
    assert CurvesHelper(None).draw(tmp_path, [], "accuracy") is None
    assert list(tmp_path.iterdir()) == []
