"""The bench scripts in benchmarks/: they parse and run (figures are printed, never asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_harness_accuracy_runs_both_timers_interleaved(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "harness_accuracy", BENCHMARKS / "harness_accuracy.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "figures.json"
    args = ["--model", "linear", "--dataset", "circles", "--batch-size", "16", "--pairs", "2"]
    assert module.main([*args, "--min-run-time", "0.02", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["harness_s"]) == len(data["reference_s"]) == len(data["ratios"]) == 2
    assert data["median_ratio"] > 0 and data["spread_harness"] >= 1.0
    printed = capsys.readouterr().out
    assert "median ratio harness/torch.utils.benchmark" in printed
    assert "spread (max/min of medians over 2 runs)" in printed


def test_noise_detection_runs_every_scene(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "noise_detection", BENCHMARKS / "noise_detection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "noise.json"
    args = ["--model", "linear", "--dataset", "circles", "--batch-size", "16", "--trials", "1"]
    assert module.main([*args, "--min-run-time", "0.02", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["scenes"]) == {"quiet", "hog", "hog-midway"}
    for scene in data["scenes"].values():
        assert scene["trials"] == 1 == scene["spoiled"] + scene["clean"]
        assert scene["flagged_harness_rule"] >= scene["flagged_old_rule"]
    assert "hog-midway" in capsys.readouterr().out


def test_bench_vs_timm_times_every_contender_on_each_point(tmp_path, capsys):
    pytest.importorskip("timm", reason="timm is in the bench extras: pip install -e '.[bench]'")
    spec = importlib.util.spec_from_file_location("bench_vs_timm", BENCHMARKS / "bench_vs_timm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "timm.json"
    args = ["--models", "mobilenet-v3-small", "--batch-sizes", "2", "--image-size", "32"]
    args += ["--steps", "1", "--warmup-steps", "1", "--min-run-time", "0.01", "--api"]
    assert module.main([*args, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["input_shape"] == [3, 32, 32] and data["threads"] == 1
    assert [(p["model"], p["mode"]) for p in data["points"]] == [
        ("mobilenet-v3-small", "infer"),
        ("mobilenet-v3-small", "train"),
    ]
    for point in data["points"]:
        for name in ("zoo", "timm loop", "zoo.bench()", "timm model"):
            assert len(point[f"{name} runs ms"]) == 1 and point[f"{name} ms"] > 0
        assert point["zoo / timm loop"] > 0 and point["timm model / timm loop"] > 0
    assert "zoo / timm loop (same model)" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_script_is_valid_bash_and_requires_a_directory():
    script = BENCHMARKS / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "usage: benchmarks/gpu_check.sh DIR" in proc.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_skips_the_steps_its_time_budget_has_no_room_for(tmp_path):
    env = {**os.environ, "ZOO_GPU_CHECK_DEVICE": "cpu", "ZOO_GPU_CHECK_INSTALL": "0"}
    env["ZOO_GPU_CHECK_BUDGET"] = "0"
    script = BENCHMARKS / "gpu_check.sh"
    proc = subprocess.run(
        ["bash", str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    if proc.returncode == 2 and "is not installed" in proc.stderr:
        pytest.skip("zoo is not installed from this checkout")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "skipped: the 0s budget was spent" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] is False and summary["seconds"] >= 0
    synthetic = summary["checks"]["bench_synthetic exit 0"]
    assert (
        not synthetic["ok"] and "exit 124: skipped: the 0s budget was spent" in synthetic["detail"]
    )
