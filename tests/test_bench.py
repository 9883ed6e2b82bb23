"""``zoo.bench``: the grid, the rows, failures as rows, OOM decay, outputs and compare."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch

import zoo
from zoo.bench.combo import decay_on_oom, fit_curve, run_combo
from zoo.bench.plan import Grid, bench, make_plan
from zoo.bench.report import compare, load_result
from zoo.bench.rows import ROW_FIELDS, SCHEMA, Combo, Settings
from zoo.errors import IncompatibleError, UsageError

FAST = {"min_run_time": 0.02, "warmup": 0.0, "threads": 1}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid():
    """One small real run: 3 models x 2 datasets, infer + train, fp32/bf16/fp16, cpu + cuda."""
    return bench(
        "mlp,linear,tinyvgg",
        "digits,circles",
        devices="cpu,cuda",
        precisions="fp32,bf16,fp16",
        modes="infer,train",
        batch_sizes=8,
        **FAST,
    )


def test_only_compatible_pairs_run_and_the_rest_are_skipped_once_with_a_reason(grid):
    pairs = {(r["model"], r["dataset"]) for r in grid.rows}
    assert pairs == {
        ("mlp", "circles"), ("linear", "circles"), ("tinyvgg", "digits"),
        ("mlp", "digits"), ("linear", "digits"),  # features models take digits flattened
    }  # fmt: skip
    reasons = [s["reason"] for s in grid.skipped]
    assert len(reasons) == len(set(reasons))
    incompatible = {(s["model"], s["dataset"]) for s in grid.skipped if s["model"]}
    assert incompatible == {("tinyvgg", "circles")}
    assert any("takes image inputs" in r for r in reasons)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_an_absent_device_and_an_unsupported_precision_are_skipped_with_a_note(grid):
    devices = [s for s in grid.skipped if s["device"] == "cuda"]
    assert len(devices) == 1 and "not available" in devices[0]["reason"]
    fp16 = [s for s in grid.skipped if s["precision"] == "fp16"]
    assert len(fp16) == 1 and fp16[0]["device"] == "cpu"
    assert {r["device"] for r in grid.rows} == {"cpu"}
    assert {r["precision"] for r in grid.rows} == {"fp32", "bf16"}


def test_every_row_has_every_field_and_the_measurements(grid):
    assert not grid.errors
    # 5 pairs x 2 precisions x (infer + train with the task's default loss)
    assert len(grid.rows) == 20
    for row in grid.rows:
        assert set(ROW_FIELDS) <= set(row)
        assert row["latency_ms_median"] > 0 and row["samples_per_s"] > 0
        assert row["latency_ms_p99"] >= row["latency_ms_p90"] >= 0
        assert row["latency_ms_iqr"] >= 0
        assert isinstance(row["noisy"], bool)
        # issue 10 item 8: noisy on IQR or on separated timing rounds that disagree
        assert row["noisy"] == (
            row["latency_ms_iqr"] / row["latency_ms_median"] > 0.10 or row["round_spread"] > 0.10
        )
        assert row["params"] > 0 and row["weights_bytes"] >= 4 * row["params"]
        assert isinstance(row["peak_memory_bytes"], int) and row["peak_memory_bytes"] >= 0
        assert row["memory_kind"] == "cpu_allocated_peak"  # issue 10 item 8: was rss_growth
        assert row["torch_version"] == torch.__version__
        assert row["threads"] == 1
        assert row["device_name"]
        assert row["dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[row["precision"]]
        assert row["effective_batch_size"] == row["batch_size"] == 8
        assert row["samples_per_s"] == pytest.approx(8 / (row["latency_ms_median"] / 1e3))
    losses = {(r["dataset"], r["mode"], r["loss"]) for r in grid.rows}
    assert ("circles", "infer", None) in losses
    assert ("circles", "train", "bce-with-logits") in losses
    assert ("digits", "train", "cross-entropy") in losses


def test_threads_are_set_for_the_run_and_restored_after_it():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = bench("linear", "circles", devices="cpu", modes="infer", **FAST)
        assert result.rows[0]["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_json_csv_and_png_outputs(grid, tmp_path):
    import matplotlib.image

    data = json.loads(grid.write_json(tmp_path / "out.json").read_text())
    assert data["schema"] == SCHEMA
    assert set(data) == {"schema", "environment", "config", "rows", "skipped"}
    assert data["environment"]["torch_version"] == torch.__version__
    assert data["environment"]["cpu_count"] >= 1
    assert len(data["rows"]) == len(grid.rows)
    assert load_result(tmp_path / "out.json")["rows"] == data["rows"]

    with open(grid.write_csv(tmp_path / "out.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(ROW_FIELDS)
    assert len(rows) == len(grid.rows)
    assert {r["model"] for r in rows} == {"mlp", "linear", "tinyvgg"}

    png = grid.plot(tmp_path / "out.png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(png).shape[:2]
    assert height > 100 and width > 100


def test_table_marks_the_best_value_per_column_and_lists_skips(grid):
    table = grid.table()
    lines = table.splitlines()
    assert lines[0].split()[:7] == ["model", "dataset", "loss", "device", "prec", "batch", "mode"]
    assert "*" in table
    assert sum(line.startswith("skipped") for line in lines) == len(grid.skipped)
    # the fastest circles-infer row carries the mark in samples/s
    circles = [r for r in grid.rows if r["dataset"] == "circles" and r["mode"] == "infer"]
    best = max(circles, key=lambda r: r["samples_per_s"])
    row_lines = lines[2 : 2 + len(grid.rows)]
    marked = row_lines[grid.rows.index(best)]
    assert "*" in marked


def test_a_failing_combination_is_a_row_with_its_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "empty"))
    result = bench("tinyvgg", "fashion-mnist,digits", devices="cpu", modes="infer", **FAST)
    by_dataset = {r["dataset"]: r for r in result.rows}
    assert "FashionMNIST is not under" in by_dataset["fashion-mnist"]["error"]
    assert "\n" not in by_dataset["fashion-mnist"]["error"]
    assert by_dataset["digits"]["error"] is None
    assert result.errors == [by_dataset["fashion-mnist"]]
    assert "error  tinyvgg fashion-mnist" in result.table()


def test_a_dataset_object_split_is_batched_by_indexing(tmp_path, monkeypatch):
    """CIFAR-10's loader returns a Dataset (binary records written here in the real format)."""
    import numpy as np

    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = rng.integers(0, 256, size=(6, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(6) % 10
    records.tofile(folder / "test_batch.bin")
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    result = bench("tinyvgg", "cifar10", devices="cpu", modes="infer", batch_sizes=8, **FAST)
    (row,) = result.rows
    assert row["error"] is None, row["error"]
    assert row["effective_batch_size"] == 8 and row["samples_per_s"] > 0


def test_an_oom_halves_the_batch_size_until_it_fits():
    class Picky(torch.nn.Module):
        """A real module that runs out of memory above 8 samples, like a full GPU."""

        def forward(self, x):
            if x.shape[0] > 8:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return x * 2

    model = Picky()
    tried = []

    def run(batch):
        tried.append(batch)
        return model(torch.ones(batch, 3)).shape[0]

    result, batch = decay_on_oom(run, 64)
    assert (result, batch) == (8, 8)
    assert tried == [64, 32, 16, 8]
    with pytest.raises(ValueError):
        decay_on_oom(lambda b: (_ for _ in ()).throw(ValueError("other")), 64)


def test_an_oom_wrapped_in_another_error_still_decays():
    from zoo.errors import ZooError

    def run(batch):
        if batch > 4:
            try:
                raise torch.OutOfMemoryError("CUDA out of memory")
            except torch.OutOfMemoryError as exc:
                raise ZooError("training failed") from exc
        return batch

    assert decay_on_oom(run, 16) == (4, 4)
    with pytest.raises(torch.OutOfMemoryError):
        decay_on_oom(lambda b: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")), 1)


def test_a_device_missing_at_run_time_is_a_row_error_not_a_crash():
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    combo = Combo("linear", "circles", None, "cuda:7", 8, "fp32", "infer")
    row = run_combo(combo, Settings(min_run_time=0.02, warmup=0.0))
    assert "'cuda:7' is not available" in row["error"] and "\n" not in row["error"]
    assert row["latency_ms_median"] is None


def test_bce_and_bce_with_logits_both_plan_on_the_same_model():
    plan = make_plan(Grid("mlp", "breast-cancer", "bce,bce-with-logits", "cpu", 32, "fp32", "fit"))
    assert [(c.model, c.loss, c.mode) for c in plan.combos] == [
        ("mlp", "bce", "fit"),
        ("mlp", "bce-with-logits", "fit"),
    ]


def test_patterns_expand_and_auto_is_the_task_default_loss():
    plan = make_plan(Grid("fashion-*", "digits", "auto", "auto", "4,16", "fp32", "train"))
    assert {c.model for c in plan.combos} == {"fashion-v0", "fashion-v1"}
    assert {c.loss for c in plan.combos} == {"cross-entropy"}
    assert {c.batch_size for c in plan.combos} == {4, 16}
    # the config records the grid as resolved: patterns expanded, "auto" device chosen
    assert plan.config["models"] == ["fashion-v0", "fashion-v1"]
    assert plan.config["devices"] == ["cuda" if torch.cuda.is_available() else "cpu"]
    assert plan.config["batch_sizes"] == [4, 16]


def test_an_incompatible_loss_is_skipped_but_inference_still_runs():
    plan = make_plan(Grid("mlp", "circles", "cross-entropy", "cpu", 8, "fp32", "infer,train"))
    assert [(c.mode, c.loss) for c in plan.combos] == [("infer", None)]
    assert "serves multiclass, not binary" in plan.skipped[0]["reason"]
    with pytest.raises(IncompatibleError, match="no compatible combination"):
        make_plan(Grid("tinyvgg", "circles", "auto", "cpu", 8, "fp32", "train"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"models": "zzz-*"}, "model pattern 'zzz-*' matches no registered model"),
        ({"datasets": "no-such-data"}, "unknown dataset 'no-such-data'"),
        ({"losses": "no-such-loss"}, "unknown loss 'no-such-loss'"),
        ({"devices": "tpu"}, "unknown device 'tpu'"),
        ({"precisions": "fp8"}, "unknown precision 'fp8'"),
        ({"batch_sizes": 0}, "batch size must be a positive integer, got 0"),
        ({"batch_sizes": "abc"}, "batch size must be a positive integer, got 'abc'"),
        ({"modes": "predict"}, "unknown mode 'predict'"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"min_run_time": 0}, "min_run_time must be a positive number"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(kwargs, message):
    args = {"models": "mlp", "datasets": "circles", "devices": "cpu", **kwargs}
    with pytest.raises(UsageError) as info:
        bench(args.pop("models"), args.pop("datasets"), **args)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_isolate_runs_each_combination_in_its_own_process():
    result = bench("linear", "circles", devices="cpu", modes="infer", isolate=True, **FAST)
    (row,) = result.rows
    assert row["error"] is None, row["error"]
    assert row["samples_per_s"] > 0 and row["params"] == 3
    assert result.config["isolate"] is True
    # --isolate still gives whole-process RSS: the child's peak, torch's libraries included
    assert row["process_peak_rss_bytes"] > 50 * 2**20 > row["peak_memory_bytes"]
    assert "proc rss" in result.table()


def _quiet(result):
    """The result as a JSON document, every row unflagged (noisy rows only count with strict)."""
    data = copy.deepcopy(result.to_dict())
    for row in data["rows"]:
        row["noisy"] = False
    return data


def test_compare_flags_rows_that_got_slower(grid):
    old = _quiet(grid)
    new = copy.deepcopy(old)
    slow = new["rows"][0]
    slow["latency_ms_median"] *= 1.5
    fast = new["rows"][1]
    fast["latency_ms_median"] *= 0.5
    result = compare(old, new, threshold=0.07)
    assert len(result.rows) == len(grid.rows)
    assert [r["status"] for r in result.regressed] == ["slower"]
    assert result.regressed[0]["ratio"] == pytest.approx(1.5)
    assert result.rows[1]["status"] == "faster"
    assert all(r["status"] == "same" for r in result.rows[2:])
    assert not compare(old, old).regressed
    del new["rows"][-1]
    assert len(compare(old, new).only_old) == 1


def test_compare_flags_rows_that_fail_now_and_skips_decayed_batches(grid):
    old = grid.to_dict()
    new = copy.deepcopy(old)
    new["rows"][0]["error"] = "OutOfMemoryError: CUDA out of memory"
    new["rows"][1]["effective_batch_size"] = 4  # decayed after an OOM: ms/batch don't compare
    new["rows"][1]["latency_ms_median"] *= 3
    result = compare(old, new)
    assert [r["status"] for r in result.rows[:2]] == ["broken", "n/a"]
    assert result.broken == [result.rows[0]] and not result.regressed
    both = compare(new, new)
    assert both.rows[0]["status"] == "error" and not both.broken


def test_fit_curve_follows_the_trainer_history():
    history = [
        {"epoch": 1, "seconds": 1.0, "eval_seconds": 0.5, "test_accuracy": 0.5},
        {"epoch": 2, "seconds": 1.0, "eval_seconds": 0.5, "test_accuracy": 0.75},
    ]
    assert fit_curve(history, "accuracy", 0.75, 4.0) == [[2.5, 0.5], [4.0, 0.75]]
    assert fit_curve([], "accuracy", 0.7, 2.0) == [[2.0, 0.7]]


def test_fit_runs_bce_and_bce_with_logits_and_exports(tmp_path):
    result = bench(
        "mlp",
        "breast-cancer",
        "bce,bce-with-logits",
        devices="cpu",
        modes="fit",
        epochs=2,
        export_dir=tmp_path / "weights",
        **FAST,
    )
    assert [r["loss"] for r in result.rows] == ["bce", "bce-with-logits"]
    for row in result.rows:
        assert row["error"] is None, row["error"]
        assert row["metric_name"] == "accuracy" and 0.5 < row["metric"] <= 1.0
        assert row["metrics"]["accuracy"] == row["metric"]
        assert row["fit_seconds"] > 0 and row["epochs"] == 2
        assert row["curve"][-1] == [pytest.approx(row["fit_seconds"]), row["metric"]]
        loaded = zoo.load(row["export"])
        assert sum(p.numel() for p in loaded.parameters()) == row["params"]
    png = result.plot(tmp_path / "fit.png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
