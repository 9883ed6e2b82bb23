"""Issue 11, "CLI and API input": atomic writes, ``zoo bench``'s outputs, devices, settings,
interrupts and the JSON it reads, and the CLI core.

Each case runs the real thing (the click command in-process, or ``python -m zoo`` where a
process is needed: signals, the top-level usage errors) and asserts the exit code, one
``error: ...`` line with no traceback, and no temp file left behind. A full or read-only disk is
a size-limited or read-only tmpfs, mounted when the test runs as root (skipped otherwise, with
the reason).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo._util.atomic import write_json
from zoo.cli import cli
from zoo.errors import ZooError, one_line

FAST = ["--threads", "1", "--min-run-time", "0.02", "--warmup", "0"]
NO_DEVICE = ["-m", "linear", "-d", "line", "--mode", "infer", *FAST]
ONE_ROW = [*NO_DEVICE, "--device", "cpu"]


@dataclass
class Outcome:
    """What a user saw: exit code, stdout, stderr."""

    code: int
    stdout: str
    stderr: str


def bench(*args: str) -> Outcome:
    """``zoo bench ARGS`` through the real click group (an escaping exception fails the test)."""
    result = CliRunner().invoke(cli, ["bench", *map(str, args)], catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def api(call: Callable[[], object]) -> Outcome:
    """A library call, reported as the CLI reports its error (``error: <one line>``)."""
    try:
        call()
    except (ZooError, OSError) as exc:
        code = exc.exit_code if isinstance(exc, ZooError) else 1
        return Outcome(code, "", f"error: {one_line(exc)}\n")
    return Outcome(0, "", "")


def zoo(*args: str, timeout: float = 120) -> Outcome:
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, timeout=timeout
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def expect_error(out: Outcome, code: int, *needles: str) -> str:
    """Exit ``code``, stderr one ``error:`` line holding each needle, no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert out.code == code, (out.code, out.stderr)
    return lines[0]


def no_debris(*dirs: Path) -> None:
    """No temp file of an atomic write (``.NAME.XXXX.tmp``) under ``dirs``."""
    for root in dirs:
        left = [str(p) for p in Path(root).rglob("*.tmp")]
        assert not left, left


@contextmanager
def tmpfs(where: Path, *, size: str = "64k", read_only: bool = False) -> Iterator[Path]:
    """A size-limited (or read-only) tmpfs at ``where``; skips unless root and mountable."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mount.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(disk: Path) -> None:
    """Fill ``disk`` until a write fails (a file with nothing in it still fits)."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        try:
            while fh.write(b"\0" * 1024):
                pass
        except OSError:
            pass


# -- atomic writes: the error names the target, the temp file is gone -------------------------


def case_atomic_into_a_directory_that_takes_no_files(tmp_path):
    target = Path("/proc/zoo-hostile.json")
    line = expect_error(api(lambda: write_json(target, {})), 1, f": {target}")
    assert ".tmp" not in line


def case_atomic_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("x")
    target = tmp_path / "plain" / "sub" / "x.json"
    expect_error(api(lambda: write_json(target, {})), 1, "plain is not a directory", str(target))


def case_atomic_target_is_a_directory(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    line = expect_error(api(lambda: write_json(target, {})), 1, f"Is a directory: {target}")
    assert ".tmp" not in line
    no_debris(tmp_path)


def case_atomic_read_only_directory(tmp_path):
    with tmpfs(tmp_path / "ro", read_only=True) as disk:
        target = disk / "new" / "x.json"
        expect_error(api(lambda: write_json(target, {})), 1, f"Read-only file system: {target}")


def case_atomic_full_disk(tmp_path):
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        target = disk / "made" / "for" / "x.json"  # directories made for it go too
        out = api(lambda: write_json(target, {"data": "x" * 200_000}))
        expect_error(out, 1, "No space left on device (", f"free on {disk}): {target}")
        assert list(disk.iterdir()) == []


def case_atomic_full_disk_keeps_the_old_file(tmp_path):
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        target = disk / "x.json"
        write_json(target, {"old": True})
        out = api(lambda: write_json(target, {"data": "x" * 200_000}))
        expect_error(out, 1, "No space left on device", str(target))
        assert json.loads(target.read_text()) == {"old": True}
        assert [p.name for p in disk.iterdir()] == ["x.json"]


# -- zoo bench: every output is checked before any work (exit 2) ------------------------------


def case_bench_json_in_proc(tmp_path):
    out = bench(*ONE_ROW, "--json", "/proc/zoo-bench.json")
    expect_error(out, 2, "cannot write --json /proc/zoo-bench.json: No such file or directory")
    assert out.stdout == ""  # no table: nothing ran


def case_bench_csv_is_a_directory(tmp_path):
    out = bench(*ONE_ROW, "--csv", tmp_path)
    expect_error(out, 2, f"cannot write --csv {tmp_path}: Is a directory")
    assert out.stdout == ""


def case_bench_plot_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("x")
    out = bench(*ONE_ROW, "--plot", tmp_path / "plain" / "p.png")
    expect_error(out, 2, "cannot write --plot", "plain is not a directory")
    assert out.stdout == ""


def case_bench_export_dir_is_a_file(tmp_path):
    (tmp_path / "plain").write_text("x")
    out = bench(*ONE_ROW, "--mode", "fit", "--epochs", "1", "--export", tmp_path / "plain")
    expect_error(out, 2, "cannot write --export", "plain is not a directory")
    assert out.stdout == ""


def case_bench_json_and_csv_the_same_file(tmp_path):
    out = bench(*ONE_ROW, "--json", tmp_path / "r.out", "--csv", tmp_path / "r.out")
    expect_error(out, 2, f"--json and --csv name the same file {tmp_path / 'r.out'}")
    assert out.stdout == ""


def case_bench_json_on_a_read_only_disk(tmp_path):
    with tmpfs(tmp_path / "ro", read_only=True) as disk:
        out = bench(*ONE_ROW, "--json", disk / "r.json")
        expect_error(out, 2, f"cannot write --json {disk / 'r.json'}: Read-only file system")


def case_bench_json_on_a_full_disk(tmp_path):
    """The check passes (a file fits), the write after the run does not: one line, exit 1."""
    with tmpfs(tmp_path / "disk", size="16k") as disk:
        fill(disk)
        out = bench(*ONE_ROW, "-q", "--json", disk / "r.json")
        expect_error(out, 1, "No space left on device (", f"free on {disk}): {disk / 'r.json'}")
        assert out.stdout.startswith("model")  # the table was printed first
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


# -- zoo bench: devices and settings are checked before any work (exit 2) ---------------------


def _absent_cuda() -> str:
    import torch

    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


def case_bench_absent_mps(tmp_path):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    out = bench(*NO_DEVICE, "--device", "mps")
    expect_error(out, 2, "device 'mps' is not available", "this machine has: cpu")
    assert out.stdout == ""


def case_bench_absent_cuda_alone(tmp_path):
    device = _absent_cuda()
    out = bench(*NO_DEVICE, "--device", device)
    expect_error(out, 2, f"device '{device}' is not available", "this machine has: cpu")
    assert out.stdout == ""


def case_bench_absent_cuda_beside_cpu(tmp_path):
    # one `--device cpu,cuda` command serves every machine: the absent one is a skip note
    device = _absent_cuda()
    out = bench(*NO_DEVICE, "--device", f"cpu,{device}", "--json", tmp_path / "r.json")
    assert out.code == 0, out.stderr
    assert f"device '{device}' is not available" in out.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert rows and {row["device"] for row in rows} == {"cpu"}


def case_bench_nothing_to_run(tmp_path):
    out = bench(*ONE_ROW, "--precision", "fp16", "--device", "cpu")
    expect_error(out, 2, "no combination to run: precision fp16 needs a CUDA device")


def _bad_setting(option: str, value: str, message: str) -> Callable[[Path], None]:
    def case(tmp_path):
        out = bench(*ONE_ROW, "--mode", "infer,train", option, value)
        expect_error(out, 2, message)
        assert out.stdout == ""

    case.__name__ = f"case_bench{option.replace('-', '_')}_{value}"
    return case


# -- zoo bench compare: the JSON it reads is bounded (exit 2, its usage-error convention) -----


def case_compare_2000_deep(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 2000 + "]" * 2000)
    expect_error(bench("compare", deep, deep), 2, f"{deep}: not a zoo bench result: nested")


def case_compare_huge_file(tmp_path):
    from zoo.bench.report import RESULT_MAX_BYTES

    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:  # sparse: costs no disk
        fh.truncate(RESULT_MAX_BYTES + 10)
    out = bench("compare", huge, huge)
    expect_error(out, 2, f"{huge}: not a zoo bench result: larger than the")


def case_compare_a_directory(tmp_path):
    expect_error(bench("compare", tmp_path, tmp_path), 2, f"cannot read {tmp_path}: Is a dir")


ROW = {"model": "m", "dataset": "d", "loss": None, "device": "cpu", "batch_size": 8}
ROW |= {"precision": "fp32", "mode": "infer", "latency_ms_median": 1.0}


def _malformed_row(name: str, row: object, message: str) -> Callable[[Path], None]:
    """``zoo bench compare`` of a result whose first row is ``row``: exit 2, the row named."""

    def case(tmp_path):
        good, bad = tmp_path / "good.json", tmp_path / "bad.json"
        good.write_text(json.dumps({"schema": 2, "rows": [ROW]}))
        bad.write_text(json.dumps({"schema": 2, "rows": [row]}))
        out = bench("compare", good, bad)
        expect_error(out, 2, f"{bad}: not a zoo bench result: row 1: {message}")

    case.__name__ = f"case_compare_row_{name}"
    return case


# -- zoo bench interrupted: the rows that finished are reported and written -------------------


def _interrupt(tmp_path: Path, signum: int) -> None:
    """Send ``signum`` once the first row is reported; the table, the JSON and the CSV hold
    the rows that finished (the one being measured is dropped)."""
    json_path, csv_path = tmp_path / "r.json", tmp_path / "r.csv"
    args = ["-m", "linear,mlp", "-d", "line", "--device", "cpu", "--mode", "infer,train"]
    args += ["--threads", "1", "--min-run-time", "0.2", "--warmup", "0", "-b", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "bench", *args, "--json", json_path, "--csv", csv_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if line.startswith("[1/4]") and "ms/batch" in line:  # the first row is finished
            proc.send_signal(signum)
            break
    stdout, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 128 + signum, stderr
    finished = 1 + sum(line.startswith("[") and "ms/batch" in line for line in stderr.split("\n"))
    done = f"{finished} of 4 combinations finished"
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines()[-1] == f"interrupted ({name}): {done}"
    assert stdout.startswith("model") and f"interrupted: {done}" in stdout
    data = json.loads(json_path.read_text())
    assert data["interrupted"] == {"rows": finished, "planned": 4} and finished < 4
    assert [(r["model"], r["mode"]) for r in data["rows"]][:1] == [("linear", "infer")]
    assert all(r["latency_ms_median"] > 0 for r in data["rows"])
    assert len(csv_path.read_text().splitlines()) == 1 + finished  # header + the finished rows
    no_debris(tmp_path)


def case_bench_ctrl_c(tmp_path):
    _interrupt(tmp_path, signal.SIGINT)


def case_bench_sigterm(tmp_path):
    _interrupt(tmp_path, signal.SIGTERM)


# -- the CLI core stays as it is --------------------------------------------------------------


def case_cli_help(tmp_path):
    out = zoo("--help")
    assert out.code == 0 and out.stderr == "" and "Commands:" in out.stdout


def case_cli_unknown_command(tmp_path):
    expect_error(zoo("bogus"), 2, "No such command 'bogus'")


def case_cli_unknown_option(tmp_path):
    expect_error(zoo("bench", "--bogus"), 2, "No such option '--bogus'")


def case_cli_os_error_is_one_line(tmp_path):
    (tmp_path / "plain").write_text("x")
    path = tmp_path / "plain" / "r.json"
    expect_error(zoo("bench", "compare", str(path), str(path)), 2, "plain is not a directory")


CLI_AND_API_INPUT = [
    case_atomic_into_a_directory_that_takes_no_files,
    case_atomic_under_a_file,
    case_atomic_target_is_a_directory,
    case_atomic_read_only_directory,
    case_atomic_full_disk,
    case_atomic_full_disk_keeps_the_old_file,
    case_bench_json_in_proc,
    case_bench_csv_is_a_directory,
    case_bench_plot_under_a_file,
    case_bench_export_dir_is_a_file,
    case_bench_json_and_csv_the_same_file,
    case_bench_json_on_a_read_only_disk,
    case_bench_json_on_a_full_disk,
    case_bench_absent_mps,
    case_bench_absent_cuda_alone,
    case_bench_absent_cuda_beside_cpu,
    case_bench_nothing_to_run,
    _bad_setting("--seed", "1180591620717411303424", "seed must be an integer from"),
    _bad_setting("--lr", "nan", "learning rate must be a finite number, got nan"),
    _bad_setting("--lr", "inf", "learning rate must be a finite number, got inf"),
    _bad_setting("--warmup", "nan", "warmup must be a finite number, got nan"),
    _bad_setting("--warmup", "inf", "warmup must be a finite number, got inf"),
    _bad_setting("--min-run-time", "inf", "min_run_time must be a finite number, got inf"),
    case_compare_2000_deep,
    case_compare_huge_file,
    case_compare_a_directory,
    _malformed_row("not_an_object", 1, "an object expected, got int"),
    _malformed_row("time_is_text", ROW | {"latency_ms_median": "x"}, "latency_ms_median must"),
    _malformed_row("time_is_negative", ROW | {"latency_ms_median": -1}, "latency_ms_median must"),
    _malformed_row("time_is_nan", ROW | {"latency_ms_median": math.nan}, "latency_ms_median must"),
    _malformed_row("key_is_a_list", ROW | {"device": [1]}, "device must be a scalar or null"),
    case_bench_ctrl_c,
    case_bench_sigterm,
    case_cli_help,
    case_cli_unknown_command,
    case_cli_unknown_option,
    case_cli_os_error_is_one_line,
]


@pytest.mark.parametrize("case", CLI_AND_API_INPUT, ids=lambda c: c.__name__.removeprefix("case_"))
def test_cli_and_api_input(case, tmp_path):
    case(tmp_path)
    no_debris(tmp_path)
