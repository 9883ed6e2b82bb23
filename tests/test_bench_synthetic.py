"""``zoo bench`` on synthetic input: shapes, FLOPs/MACs, compile and channels-last, dry run.

FLOPs are checked against ``torch.utils.flop_counter.FlopCounterMode`` run here on the same
architecture and batch, and MACs of a Linear-only model against the count done by hand.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from zoo.bench.flops import peak_fraction, peak_tflops
from zoo.bench.plan import bench
from zoo.cli import cli

FAST = ["--threads", "1", "--min-run-time", "0.02", "--warmup", "0", "--device", "cpu"]
FAST_KW = {"threads": 1, "min_run_time": 0.02, "warmup": 0, "devices": "cpu"}


def invoke(*args: str):
    return CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """tinyvgg at 3x16x16 (infer and train) plus mlp at the same shape; JSON written."""
    out = tmp_path_factory.mktemp("synthetic") / "r.json"
    result = invoke(
        "--model", "tinyvgg,linear", "--input-shape", "3x16x16", "--num-classes", "5",
        "--mode", "infer,train", "-b", "2", "--json", str(out), *FAST,
    )  # fmt: skip
    return result, json.loads(out.read_text())


def test_synthetic_rows_need_no_dataset_and_record_their_input(tiny_run):
    result, data = tiny_run
    assert result.exit_code == 0, result.output
    rows = data["rows"]
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    for row in rows:
        assert row["input"] == "synthetic" and row["dataset"] == "synthetic"
        assert row["input_shape"] == [3, 16, 16] and row["num_classes"] == 5
        assert row["task"] == "multiclass" and row["samples_per_s"] > 0
    assert {r["loss"] for r in rows if r["mode"] == "train"} == {"cross-entropy"}
    assert data["config"]["input_shape"] == [3, 16, 16]
    assert data["environment"]["host"]
    assert "3x16x16" in result.stdout and "GMACs" in result.stdout and "GFLOP/s" in result.stdout


def test_flops_match_flop_counter_on_the_same_model_and_batch(tiny_run):
    from zoo_vision.models import TinyVGG

    _, data = tiny_run
    model = TinyVGG(in_channels=3, num_classes=5, image_size=[16, 16], hidden=64)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([1, 3])
    with torch.inference_mode():
        forward = _flops(lambda: model(x))

    def train() -> None:
        torch.nn.functional.cross_entropy(model(x), y).backward()

    train_flops = _flops(train)
    rows = {r["mode"]: r for r in data["rows"] if r["model"] == "tinyvgg"}
    assert rows["infer"]["flops"] == forward > 0
    assert rows["train"]["flops"] == train_flops > forward  # backward counted too
    for row in rows.values():
        assert row["macs"] == row["flops"] / 2 and row["gmacs"] == row["flops"] / 2e9
        expected = row["flops"] / (row["latency_ms_median"] / 1e3)
        assert row["flops_per_s"] == pytest.approx(expected)
        assert row["params_m"] == pytest.approx(row["params"] / 1e6)
        assert row["peak_fraction"] is None  # a CPU has no peak in the table


def test_macs_of_a_linear_only_model_by_hand(tiny_run):
    _, data = tiny_run
    row = next(r for r in data["rows"] if r["model"] == "linear" and r["mode"] == "infer")
    # flatten 3x16x16 = 768 features -> 5 classes, batch 2: 2 * 768 * 5 multiply-adds
    assert row["macs"] == 2 * 768 * 5 == row["flops"] / 2


def test_declared_input_size_is_the_default_and_a_model_without_one_is_skipped():
    result = bench("tinyvgg,mlp", modes="infer", batch_sizes=1, **FAST_KW)
    (row,) = result.rows
    assert row["model"] == "tinyvgg" and row["input_shape"] == [1, 28, 28]
    assert row["num_classes"] == 1000 and row["error"] is None  # neither says: 1000
    (skip,) = result.skipped
    assert skip["model"] == "mlp" and "declares no input_size" in skip["reason"]
    assert "--input-shape" in skip["reason"]


def test_torchvision_entries_declare_224():
    from zoo.bench.plan import Grid, make_plan

    plan = make_plan(Grid("resnet18,mobilenet-v3-small", [], "auto", "cpu", 1, "fp32", "infer"))
    assert [c.input_shape for c in plan.combos] == [(3, 224, 224)] * 2
    assert [c.num_classes for c in plan.combos] == [1000] * 2


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("3x224", "--input-shape must be C x H x W or F"),
        ("0x1x1", "every dimension must be >= 1"),
        ("3xax4", "--input-shape must be C x H x W or F"),
    ],
)
def test_malformed_input_shape_is_a_usage_error_before_work(shape, message):
    result = invoke("--model", "tinyvgg", "--input-shape", shape, *FAST)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "digits", "--input-shape", "1x8x8"], "are for synthetic input"),
        (["--mode", "fit"], "--mode fit trains on a dataset"),
        (["--compile-mode", "fastest"], "unknown compile mode 'fastest'"),
        (["--num-classes", "0"], "number of classes must be a positive"),
    ],
)
def test_bad_synthetic_usage_is_one_line(args, message):
    result = invoke("--model", "tinyvgg", *args, *FAST)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_shape_the_model_cannot_take_is_a_row_error_naming_model_and_layer():
    result = invoke("--model", "tinyvgg,linear", "--input-shape", "3x8x8",
                    "--mode", "infer", "-b", "1", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output  # 3x8x8 suits both
    # ViT-B/16 declares sides that are multiples of 16, not that they are equal: the forward
    # pass refuses 16x32, and that is the row's error, naming model and layer
    result = bench("vit-b-16,linear", input_shape="3x16x32", modes="infer", batch_sizes=1,
                   **FAST_KW)  # fmt: skip
    bad, good = result.rows
    assert good["error"] is None
    error = bad["error"]
    assert error.startswith("model vit-b-16 on input 3x16x32 (batch 1) fails at layer ")
    assert "(VisionTransformer): AssertionError: Wrong image width" in error and "\n" not in error
    # a size the model declares it cannot take is known before running: a skip with the reason
    result = bench("squeezenet1-1,linear", input_shape="3x8x8", modes="infer", batch_sizes=1,
                   **FAST_KW)  # fmt: skip
    assert [r["model"] for r in result.rows] == ["linear"]
    assert any(
        "'squeezenet1-1' takes images of at least 17x17" in s["reason"] for s in result.skipped
    )


def test_channels_last_is_a_column_and_part_of_the_key():
    from zoo.bench.rows import row_key

    result = bench("tinyvgg", input_shape="3x8x8", modes="infer", batch_sizes=1,
                   channels_last=True, **FAST_KW)  # fmt: skip
    (row,) = result.rows
    assert row["channels_last"] is True and row["compile"] is False and row["error"] is None
    assert "chlast" in result.table()
    assert row_key(row) != row_key({**row, "channels_last": False})
    assert row_key({k: v for k, v in row.items() if k != "compile"}) == row_key(row)


def test_compile_a_tiny_linear_model(tmp_path):
    result = bench("linear", input_shape="4", modes="infer", batch_sizes=2, compile=True,
                   **FAST_KW)  # fmt: skip
    (row,) = result.rows
    assert row["error"] is None, row["error"]
    assert row["compile"] is True and row["compile_mode"] == "default"
    assert row["flops"] == 2 * 2 * 4 * 1000  # counted on the eager model: 2 * b * in * out
    assert "compile(default)" in result.table()


def test_compile_failure_is_a_row_error_and_the_rest_runs(run_zoo, tmp_path):
    """No C++ compiler: inductor cannot build mlp's fused ReLU, that row fails in one line;
    linear (one matmul, no generated C++) still compiles and runs."""
    out = tmp_path / "r.json"
    proc = run_zoo(
        "bench", "--model", "mlp,linear", "--input-shape", "4", "--mode", "infer", "-b", "2",
        "--compile", "--json", str(out), "-q", *FAST,
        env={"CXX": "/nonexistent/c++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    row, rest = json.loads(out.read_text())["rows"]
    assert row["error"].startswith("torch.compile (default) failed for mlp: ")
    assert "\n" not in row["error"] and row["compile"] is True
    assert rest["model"] == "linear" and rest["error"] is None and rest["samples_per_s"] > 0
    assert "error: 1 of 2 rows failed" in proc.stderr


def test_dry_run_prints_the_plan_and_skips_without_running():
    result = invoke("--model", "tinyvgg,mlp,resnet18", "--mode", "infer,train", "--dry-run",
                    "--channels-last", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "plan: 4 row(s)"
    assert "  [1] tinyvgg synthetic 1x28x28 cpu b32 fp32 infer channels-last" in lines
    assert any("resnet18 synthetic 3x224x224 cross-entropy" in line for line in lines)
    assert any(line.startswith("skipped  mlp/synthetic: model 'mlp' declares no") for line in lines)
    assert "samples/s" not in result.stdout


def test_peak_table():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "tf32") == 156.0
    assert peak_tflops("NVIDIA L40S", "fp32") is None  # not the L4
    assert peak_tflops("Tesla T4", "bf16") is None
    assert peak_fraction("NVIDIA L4", "fp16", 60.5e12) == pytest.approx(0.5)
    assert peak_fraction("AMD EPYC", "fp32", 1e9) is None


# -- runtimes: torch beside ONNX Runtime ----------------------------------------------------------


def test_onnxruntime_rows_beside_torch_ones():
    result = bench("tinyvgg", input_shape="1x8x8", modes="infer,train", batch_sizes=2,
                   runtimes="torch,onnxruntime", **FAST_KW)  # fmt: skip
    by_runtime = {(r["runtime"], r["mode"]): r for r in result.rows}
    assert set(by_runtime) == {("torch", "infer"), ("torch", "train"), ("onnxruntime", "infer")}
    ort_row, torch_row = by_runtime["onnxruntime", "infer"], by_runtime["torch", "infer"]
    assert ort_row["error"] is None, ort_row["error"]
    assert ort_row["samples_per_s"] > 0 and ort_row["flops"] == torch_row["flops"]
    assert ort_row["compile"] is False and ort_row["peak_memory_bytes"] is None
    assert any("onnxruntime runs inference only" in s["reason"] for s in result.skipped)
    assert "onnxruntime" in result.table()


def test_an_onnxruntime_output_mismatch_is_a_row_error(monkeypatch):
    import zoo.bench.ort

    monkeypatch.setattr(zoo.bench.ort, "ORT_ATOL", -1.0)  # nothing can agree within it
    result = bench("tinyvgg", input_shape="1x8x8", modes="infer", batch_sizes=1,
                   runtimes="torch,onnxruntime", **FAST_KW)  # fmt: skip
    torch_row, ort_row = result.rows
    assert torch_row["error"] is None
    assert ort_row["error"].startswith("onnxruntime output differs from torch: max abs diff ")


def test_missing_onnxruntime_is_one_line_naming_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    result = invoke("--model", "tinyvgg", "--runtime", "torch,onnxruntime", *FAST)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: --runtime onnxruntime needs onnxruntime: pip install onnxruntime "
        "(onnxruntime-gpu for the CUDA provider)"
    )
    bad = invoke("--model", "tinyvgg", "--runtime", "tensorrt", *FAST)
    assert bad.exit_code == 2 and "unknown runtime 'tensorrt'" in bad.stderr
