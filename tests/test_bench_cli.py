"""``zoo bench`` and ``zoo bench compare`` through the real click CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from zoo.bench.rows import SCHEMA
from zoo.cli import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST = ["--threads", "1", "--min-run-time", "0.02", "--warmup", "0"]


def invoke(*args: str):
    return CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def done_when(tmp_path_factory):
    """The issue's acceptance command (with a small timing budget): infer, train and fit."""
    out = tmp_path_factory.mktemp("bench")
    result = invoke(
        "--model", "mlp,linear,tinyvgg", "--dataset", "digits,circles", "--device", "cpu",
        "--mode", "infer,train,fit", "--epochs", "2",
        "--json", str(out / "out.json"), "--csv", str(out / "out.csv"),
        "--plot", str(out / "out.png"), *FAST,
    )  # fmt: skip
    return result, out


def test_done_when_runs_only_compatible_pairs_and_writes_three_files(done_when):
    import matplotlib.image

    result, out = done_when
    assert result.exit_code == 0, result.output
    data = json.loads((out / "out.json").read_text())
    assert data["schema"] == SCHEMA == 3  # issue 10 item 8: 2; issue 13: 3 (key fields)
    assert {"environment", "rows", "skipped", "config"} <= set(data)
    pairs = {(r["model"], r["dataset"]) for r in data["rows"]}
    assert pairs == {
        ("mlp", "circles"), ("linear", "circles"), ("tinyvgg", "digits"),
        ("mlp", "digits"), ("linear", "digits"),  # features models take digits flattened
    }  # fmt: skip
    assert sorted(r["mode"] for r in data["rows"]) == sorted(["infer", "train", "fit"] * 5)
    assert all(r["error"] is None for r in data["rows"])
    for row in data["rows"]:
        if row["mode"] == "fit":
            assert row["metric_name"] == "accuracy" and row["metric"] is not None
            assert row["fit_seconds"] > 0 and row["curve"]
        else:
            assert row["samples_per_s"] > 0
    csv_lines = (out / "out.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,dataset,loss,task,mode,device")
    assert len(csv_lines) == 1 + len(data["rows"])
    png = out / "out.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(png).shape[:2]
    assert height > 100 and width > 100


def test_table_on_stdout_progress_on_stderr(done_when):
    result, _ = done_when
    assert result.stdout.splitlines()[0].startswith("model")
    assert "skipped  tinyvgg/circles: model 'tinyvgg' takes image inputs" in result.stdout
    assert "[1/15]" in result.stderr and "[1/15]" not in result.stdout
    assert "wrote " in result.stderr


def test_json_to_stdout_and_quiet():
    result = invoke("-m", "linear", "-d", "circles", "--device", "cpu", "--mode", "infer",
                    "--json", "-", "-q", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == SCHEMA and len(data["rows"]) == 1
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "nope", "-d", "circles"], "error: unknown model 'nope'"),
        (["-m", "zzz*", "-d", "circles"], "error: model pattern 'zzz*' matches no registered"),
        (["-m", "mlp", "-d", "nope"], "error: unknown dataset 'nope'"),
        (["-m", "mlp", "-d", "circles", "--loss", "nope"], "error: unknown loss 'nope'"),
        (["-m", "mlp", "-d", "circles", "--device", "gpu"], "error: unknown device 'gpu'"),
        (["-m", "mlp", "-d", "circles", "--precision", "fp64"], "error: unknown precision"),
        (["-m", "mlp", "-d", "circles", "-b", "0"], "error: batch size must be a positive"),
        (["-m", "mlp", "-d", "circles", "--mode", "x"], "error: unknown mode 'x'"),
        (["-m", "tinyvgg", "-d", "circles"], "error: no compatible combination to run"),
        (["-d", "circles"], "error: give --model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = invoke(*args, *FAST)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_importing_the_bench_modules_does_not_import_torch():
    code = (
        "import sys, zoo.bench.plan, zoo.bench.report, zoo.cli.bench; "
        "print([m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_bad_input_through_the_real_command(run_zoo):
    proc = run_zoo("bench", "--model", "mlp", "--dataset", "circles", "--batch-size", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: batch size must be a positive integer, got '0'"


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_compare_exit_code_says_whether_anything_regressed(done_when, tmp_path):
    _, out = done_when
    old = json.loads((out / "out.json").read_text())
    for row in old["rows"]:  # a slower noisy row is not a regression without --strict
        row["noisy"] = False
    base = _write(tmp_path / "old.json", old)
    same = invoke("compare", base, base)
    assert same.exit_code == 0, same.output
    assert "0 of 15 matching rows slower by more than 7%" in same.stdout

    slower = copy.deepcopy(old)
    infer = next(r for r in slower["rows"] if r["mode"] == "infer")
    infer["latency_ms_median"] *= 1.2
    new = _write(tmp_path / "new.json", slower)
    result = invoke("compare", base, new)
    assert result.exit_code == 1
    assert "SLOWER" in result.stdout and "1.200" in result.stdout
    assert "regression: 1 row(s) slower by more than 7%" in result.stderr
    relaxed = invoke("compare", base, new, "--threshold", "25%")
    assert relaxed.exit_code == 0
    as_json = invoke("compare", base, new, "--json")
    assert json.loads(as_json.stdout)["regressed"] == 1

    failing = copy.deepcopy(old)
    failing["rows"][0]["error"] = "RuntimeError: boom"
    broken = invoke("compare", base, _write(tmp_path / "broken.json", failing))
    assert broken.exit_code == 1 and "BROKEN" in broken.stdout
    assert "regression: 1 row(s) ran before and fail now" in broken.stderr


def test_compare_bad_input(tmp_path):
    missing = invoke("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert missing.exit_code == 2 and missing.stderr.startswith("error: no such file")
    other = _write(tmp_path / "other.json", {"schema": 99, "rows": []})
    wrong = invoke("compare", other, other)
    assert wrong.exit_code == 2 and "schema 99" in wrong.stderr
    good = _write(tmp_path / "good.json", {"schema": 1, "rows": []})
    bad = invoke("compare", good, good, "--threshold", "lots")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: threshold must be a number")


def test_compare_with_no_shared_rows_is_an_error(done_when, tmp_path):
    _, out = done_when
    empty = _write(tmp_path / "empty.json", {"schema": 1, "rows": []})
    result = invoke("compare", str(out / "out.json"), empty)
    assert result.exit_code == 2
    assert "share no rows to compare" in result.stderr
