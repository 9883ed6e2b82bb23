"""The loss curves' helper process (``zoo.train.curves``): it draws what this process would,
is not waited for when it is not ready or fails, and leaves nothing behind a run that ends
without a request or a parent that is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from zoo.train.curves import CURVES, CurvesHelper, plot_curves

HISTORY = [
    {"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 1 - 0.5 / e,
     "test_accuracy": 1 - 0.6 / e, "lr": 1e-3}
    for e in range(1, 5)
]  # fmt: skip


@pytest.fixture
def helper():
    """A started helper, ready; stopped at the end whatever the test did with it."""
    helper = CurvesHelper.start()
    process = helper.process
    deadline = time.monotonic() + 60
    try:
        while not helper.ready():
            assert process is not None and process.poll() is None, "helper died"
            assert time.monotonic() < deadline, "helper never became ready"
            time.sleep(0.05)
        yield helper
    finally:
        helper.close()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_ready_helper_draws_the_same_image_as_this_process(tmp_path, helper):
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
    assert process.returncode == -signal.SIGKILL  # stopped before drawing, and reaped
    assert pixels(tmp_path / CURVES).shape == (400, 1000, 3)


def test_a_helper_that_died_after_ready_is_not_waited_for(tmp_path, helper):
    helper.process.kill()
    helper.process.wait()
    assert helper.draw(tmp_path, HISTORY, "accuracy") == tmp_path / CURVES
    assert (tmp_path / CURVES).stat().st_size > 0


def test_a_run_ending_without_a_request_leaves_no_file(tmp_path, helper):
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


def test_short_runs_and_no_history_start_no_helper(tmp_path):
    assert CurvesHelper.start(seconds_left=0.5).process is None
    assert CurvesHelper(None).draw(tmp_path, [], "accuracy") is None
    assert list(tmp_path.iterdir()) == []


TRAINER_RUNS = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    import zoo.train.curves as curves

    curves.WORTH_S = 0.0  # these runs are short: start the helper after epoch 1 anyway
    started = []
    start, ready = curves.CurvesHelper.start.__func__, curves.CurvesHelper.ready

    def recorded_start(cls, seconds_left=float("inf")):
        helper = start(cls, seconds_left)
        started.append(helper.process)
        return helper

    def waited_ready(self):  # the run ends before the helper is up: wait for it here
        deadline = time.monotonic() + 60
        while not ready(self) and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return ready(self)

    curves.CurvesHelper.start = classmethod(recorded_start)
    curves.CurvesHelper.ready = waited_ready
    import zoo

    out = sys.argv[1]
    kw = dict(quiet=True, device="cpu", threads=1)
    zoo.Trainer("mlp", "circles", epochs=2, out=f"{out}/done", **kw).fit()
    drew = {"matplotlib_here": "matplotlib" in sys.modules, "code": started[0].returncode}

    def terminate_once_started():
        while len(started) < 2:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_started, daemon=True).start()
    try:
        zoo.Trainer("mlp", "circles", epochs=100000, out=f"{out}/stopped", **kw).fit()
    except BaseException as exc:
        drew["stopped"] = type(exc).__name__
    drew["stopped_code"] = started[1].returncode
    print(json.dumps(drew))
    """
)


def test_the_trainer_draws_with_its_helper_and_stops_it_when_the_run_stops(tmp_path):
    """Two real runs in a fresh process: a finished one whose curves the helper drew (the
    process never imported matplotlib), and one SIGTERMed mid-run, whose helper is stopped
    with it and draws nothing."""
    out = subprocess.run(
        [sys.executable, "-c", TRAINER_RUNS, str(tmp_path)], capture_output=True, text=True,
        timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"matplotlib_here": False, "code": 0, "stopped": result["stopped"],
                      "stopped_code": -signal.SIGKILL}  # fmt: skip
    assert result["stopped"] in ("Terminated", "KeyboardInterrupt")
    assert pixels(tmp_path / "done" / CURVES).shape == (400, 1000, 3)
    assert not (tmp_path / "stopped" / CURVES).exists()
    assert not list((tmp_path / "stopped").glob(f".{CURVES}*"))
