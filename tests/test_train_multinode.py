"""Past one machine: ``zoo train`` under torchrun's c10d rendezvous, as two "nodes" on this
host; a resume that needs the same number of processes; an elastic restart (``--max-restarts``)
that continues from the last checkpoint. Real torchrun processes throughout (gloo, CPU)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import one_line_error, zoo_cli
from conftest import ZOO_ENV
from safetensors.torch import load_file
from test_train_ddp import assert_matches_one_process

TIMEOUT_S = 300  # one torchrun launch, on a loaded machine
# 800 samples, global batch 24 (12 per process): as tests/test_train_ddp.py
SETTINGS = [
    "--dataset", "circles", "--batch-size", "12", "--optimizer", "sgd",
    "--lr", "0.1", "--momentum", "0.9", "--device", "cpu", "--quiet", "--json",
]  # fmt: skip
TIMING = ("seconds", "eval_seconds", "samples_per_s")

HOLD_PLUGIN = {
    "hold_plugin/__init__.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):
            register("hold-mlp", "hold_plugin.models:HoldMLP", input_kind="features")
    """,
    "hold_plugin/models.py": """
        import os
        import time
        from pathlib import Path

        from torch import nn


        class HoldMLP(nn.Module):
            # With $HOLD_DIR, rank 1 of torchrun's first attempt stops in its first training
            # step after the run's first checkpoint, writes its pid and waits to be killed.

            def __init__(self, in_features, num_classes=1, hidden=16):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
                )

            def forward(self, x):
                hold = os.environ.get("HOLD_DIR")
                first_try = os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"
                if hold and self.training and first_try and os.environ.get("RANK") == "1":
                    if Path(hold, "run", "checkpoint", "state.json").is_file():
                        Path(hold, "pid.tmp").write_text(str(os.getpid()))
                        os.replace(Path(hold, "pid.tmp"), Path(hold, "worker.pid"))
                        time.sleep(300)
                return self.net(x)
    """,
}


def _torchrun(*args: str) -> list[str]:
    launcher = shutil.which("torchrun")
    return [*([launcher] if launcher else [sys.executable, "-m", "torch.distributed.run"]), *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(pythonpath: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ZOO_ENV}
    # torchrun shares its rendezvous store with the workers and keeps it across restarts: a
    # restarted group could read the previous attempt's addresses (pytorch/pytorch#135712)
    env.update(OMP_NUM_THREADS="1", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1", **extra)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return env


class Launches:
    """Real processes started together, each in its own process group; on leaving, any still
    running is killed with its whole group, and so are its children's (torchrun starts each
    worker in a session of its own)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
        """Start ``cmd`` in ``cwd``; its output goes to ``logs/name.out`` and ``.err``."""
        with (
            open(self.logs / f"{name}.out", "w") as out,
            open(self.logs / f"{name}.err", "w") as err,
        ):
            proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen, name: str) -> tuple[int, str, str]:
        """Exit code, stdout and stderr of ``proc`` (failing the test at the time limit)."""
        err = self.logs / f"{name}.err"
        try:
            rc = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} ran past {TIMEOUT_S} s: {_tail(err)}")
        return rc, (self.logs / f"{name}.out").read_text(), err.read_text()

    def __enter__(self) -> Launches:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                for group in (proc.pid, *_children(proc.pid)):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(group, signal.SIGKILL)
                proc.wait()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from ``/proc``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, ...
        except (OSError, IndexError):
            continue
        if int(after_name[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _two_nodes(tmp_path: Path, nodes: list[Path], *args: str, tag: str = "") -> list[tuple]:
    """``zoo train`` as one torchrun job (``--rdzv-id zoo-multinode``) of two "nodes", one
    process each, started together in ``nodes`` (their working directories)."""
    cmd = _torchrun(
        "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "zoo-multinode",
        "-m", "zoo", "train", "--model", "mlp", *SETTINGS, *args, "--out", "run",
    )  # fmt: skip
    with Launches(tmp_path) as launches:
        procs = [launches.start(node.name + tag, cmd, node, _env()) for node in nodes]
        return [
            launches.wait(proc, node.name + tag) for proc, node in zip(procs, nodes, strict=True)
        ]


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text()[-n:] if path.is_file() else ""


def _reports(stdout: str) -> list[dict]:
    return [json.loads(stdout[stdout.index("{") :])] if "{" in stdout else []


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "checkpoint" / "state.json").read_text())


@pytest.mark.slow
def test_two_torchrun_nodes_match_one_process_and_global_rank_0_alone_writes(tmp_path, run_zoo):
    nodes = [tmp_path / "node-a", tmp_path / "node-b"]  # each "machine" its own directory
    for node in nodes:
        node.mkdir()
    results = _two_nodes(tmp_path, nodes, "--epochs", "2")
    for rc, _, err in results:
        assert rc == 0, err[-3000:]
    # the rendezvous picked one node's process as global rank 0: it alone reports and writes
    writers = [node for node, (_, out, _) in zip(nodes, results, strict=True) if _reports(out)]
    assert len(writers) == 1
    (main,) = writers
    (other,) = [node for node in nodes if node != main]
    assert list(other.iterdir()) == []  # rank 1 (its node's local rank 0) wrote nothing
    run = main / "run"
    info = json.loads((run / "run.json").read_text())
    assert info["device"]["world_size"] == 2 and info["device"]["backend"] == "gloo"
    record = _state(run)["trainer"]
    assert record["world_size"] == 2 and record["torchrun_id"] == "zoo-multinode"

    assert_matches_one_process(run)

    # resuming it in one process: refused in one line (bad usage), before any work
    proc = run_zoo("train", "--resume", str(run), "--epochs", "3", "--quiet")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "was trained by 2 processes" in line and "this run has 1" in line
    assert "with 2 processes" in line
    assert json.loads((run / "run.json").read_text())["result"]["epochs"] == 2  # untouched

    # the same job again, for a third epoch, where the other node cannot see the run (no
    # shared filesystem): one process would resume, the other start afresh; both refuse
    results = _two_nodes(tmp_path, nodes, "--epochs", "3", tag="again")
    for rc, _, err in results:
        assert rc != 0
        assert "error: the 2 processes start from different epochs (1 to 3)" in err, err[-3000:]
    assert json.loads((run / "run.json").read_text())["result"]["epochs"] == 2


@pytest.mark.slow
def test_an_elastic_restart_continues_from_the_last_checkpoint(tmp_path, make_plugin):
    site = make_plugin("hold-plugin", HOLD_PLUGIN, entry_points={"hold": "hold_plugin"})
    train = [
        "-m",
        "zoo",
        "train",
        "--model",
        "hold-mlp",
        *SETTINGS,
        "--epochs",
        "2",
        "--out",
        "run",
    ]
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed.mkdir()
    reference.mkdir()
    with Launches(tmp_path) as launches:
        elastic = launches.start(
            "elastic",
            _torchrun("--standalone", "--nproc-per-node", "2", "--max-restarts", "1", *train),
            killed, _env(site, HOLD_DIR=str(killed)),
        )  # fmt: skip
        plain = launches.start(  # the same run, uninterrupted
            "plain", _torchrun("--standalone", "--nproc-per-node", "2", *train), reference,
            _env(site),
        )  # fmt: skip
        pid_file = killed / "worker.pid"
        deadline = time.monotonic() + TIMEOUT_S
        while not pid_file.is_file():  # rank 1 waits in epoch 2, after the first checkpoint
            assert elastic.poll() is None, _tail(tmp_path / "elastic.err")
            assert time.monotonic() < deadline, "rank 1 never reached epoch 2"
            time.sleep(0.1)
        assert _state(killed / "run")["epoch"] == 1
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        rc, out, err = launches.wait(elastic, "elastic")
        assert rc == 0, err[-3000:]
        ref_rc, _, ref_err = launches.wait(plain, "plain")
        assert ref_rc == 0, ref_err[-3000:]
    assert "exitcode: -9" in err  # torchrun saw the worker killed and restarted the group
    assert "Traceback" not in err  # the first attempt's rank 0 ended with one line too
    assert len(_reports(out)) == 1
    run, ref = killed / "run", reference / "run"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["resumed_from"] == str(Path("run") / "checkpoint")
    # bit-exact: the resumed run is the uninterrupted one
    got, want = load_file(run / "model.safetensors"), load_file(ref / "model.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key

    def rows(run_dir: Path) -> list[dict]:
        history = _state(run_dir)["trainer"]["history"]
        return [{k: v for k, v in row.items() if k not in TIMING} for row in history]

    assert rows(run) == rows(ref)
    assert (
        info["result"]["metrics"] == json.loads((ref / "run.json").read_text())["result"]["metrics"]
    )


def test_the_checkpoint_records_its_process_count_and_a_bad_one_is_refused(tmp_path):
    run = tmp_path / "run"
    args = ["--model", "mlp", "--dataset", "circles", "--epochs", "1", "--quiet"]
    assert zoo_cli("train", *args, "--out", run).exit_code == 0
    state = _state(run)
    assert state["trainer"]["world_size"] == 1 and state["trainer"]["torchrun_id"] is None
    state["trainer"]["world_size"] = "2"  # a hand-edited file: data, refused by name
    (run / "checkpoint" / "state.json").write_text(json.dumps(state))
    line = one_line_error(zoo_cli("train", "--resume", run, "--epochs", "2"), code=1)
    assert "corrupt checkpoint" in line and "world_size is '2', not a process count" in line
