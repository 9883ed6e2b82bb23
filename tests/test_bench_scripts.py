"""The bench scripts in benchmarks/: they parse and run (figures are printed, never asserted)."""

from __future__ import annotations

import importlib.util
import json
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


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_script_is_valid_bash_and_requires_a_directory():
    script = BENCHMARKS / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "usage: benchmarks/gpu_check.sh DIR" in proc.stderr
