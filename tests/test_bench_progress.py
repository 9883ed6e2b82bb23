"""``zoo bench`` progress: a bar on a terminal (a real pseudo-terminal), lines in a pipe."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from zoo.bench.progress import BenchProgress
from zoo.bench.rows import Combo

pty = pytest.importorskip("pty")
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")

BENCH = ("bench", "-m", "linear,mlp", "-d", "circles", "--device", "cpu", "--mode", "infer",
         "--min-run-time", "0.02", "--warmup", "0")  # fmt: skip
LABEL = "linear circles cpu b32 fp32 infer"


def _zoo_with_stderr_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the real CLI with stderr on a pseudo-terminal: (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # 24 x 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_") or k == "ZOO_HOME"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    code = proc.wait(timeout=300)
    os.close(master)
    return code, stdout, b"".join(chunks).decode(errors="replace")


def test_a_terminal_sees_rows_done_of_total_and_the_current_row():
    code, stdout, terminal = _zoo_with_stderr_on_a_terminal(*BENCH, "--json", "-")
    assert code == 0, terminal
    assert len(json.loads(stdout)["rows"]) == 2  # stdout holds the JSON alone
    assert "0/2" in terminal and "1/2" in terminal  # tqdm's bar: rows done / total
    assert f"{LABEL}:" in terminal and "row" in terminal and "\r" in terminal
    assert f"[1/2] {LABEL}: " in terminal  # finished rows print above the bar


def test_a_pipe_sees_finished_rows_but_no_bar(run_zoo):
    proc = run_zoo(*BENCH)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "row/s" not in proc.stderr and "s/row" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"[1/2] {LABEL}: ") and lines[1].startswith("[2/2] mlp circles")
    assert len(lines) == 2
    assert "[1/2]" not in proc.stdout


def test_progress_modes_follow_the_stream(tmp_path):
    combo = Combo("linear", "circles", None, "cpu", 32, "fp32", "infer")
    row = {"mode": "infer", "error": "boom", "noisy": False}
    with open(tmp_path / "log", "w+") as stream:
        progress = BenchProgress(3, stream=stream)
        assert progress.mode == "lines"
        progress.start(1, combo)
        progress.finish(1, combo, row)
        progress.close()
        stream.seek(0)
        assert stream.read() == f"[1/3] {LABEL}: error: boom\n"
    lines: list[str] = []
    BenchProgress(1, write=lines.append).message("skipped x")
    assert lines == ["skipped x"]
    assert BenchProgress(1, quiet=True, write=lines.append).mode == "off"
    master, slave = pty.openpty()
    with open(slave, "w") as terminal:
        assert BenchProgress(1, stream=terminal).mode == "bar"
        assert BenchProgress(1, stream=terminal, quiet=True).mode == "off"
    os.close(master)
