"""Bench figures that mean what they say (issue 10 item 8): peak memory per row whatever the
order, fit speed without warm-up, threads by the one rule, noise from separated timing rounds,
and ``zoo bench compare`` matching like with like."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from zoo.bench.combo import fit_speed
from zoo.bench.environment import MemoryProbe, peak_of_allocations
from zoo.bench.plan import bench
from zoo.bench.report import compare
from zoo.bench.rows import SCHEMA
from zoo.bench.timing import NOISE_THRESHOLD, Measurement, measure
from zoo.cli import cli
from zoo.errors import UsageError
from zoo.runtime.threads import physical_cores

FAST = {"min_run_time": 0.02, "warmup": 0.0, "threads": 1}
MEMORY_TOLERANCE = 0.01  # the same row's peak memory in any order: equal within 1%
MB = 1_000_000


def _adam_floor(row):
    """Bytes a training step must hold at least: the weights, plus a gradient and Adam's two
    moments for every (fp32) parameter."""
    return row["weights_bytes"] + 3 * 4 * row["params"]


# -- memory ------------------------------------------------------------------------------------


def test_the_cpu_probe_counts_the_blocks_own_allocations_exactly():
    before = torch.ones(2 * MB, dtype=torch.uint8)  # exists before the block
    with MemoryProbe(torch.device("cpu")) as probe:
        del before  # freeing it must not lower the block's figure
        a = torch.empty(3 * MB, dtype=torch.uint8)
        b = torch.empty(1 * MB, dtype=torch.uint8)  # a + b: the peak, 4 MB
        del a
        c = torch.empty(2 * MB + MB // 2, dtype=torch.uint8)  # b + c: 3.5 MB
        del b, c
    assert probe.kind == "cpu_allocated_peak"
    assert probe.peak() == 4 * MB


def test_peak_of_allocations_counts_only_frees_of_what_it_saw_allocated():
    events = [
        (1, 100, 0xA),
        (2, -100, 0xA),
        (3, 50, 0xB),
        (4, -999, 0xC),  # allocated before: ignored
        (5, 70, 0xD),  # 120 live: the peak
        (6, -50, 0xB),
        (7, 30, 0xD),  # address reused without a reported free: replaces 70
    ]
    assert peak_of_allocations(events) == 120
    assert peak_of_allocations(list(reversed(events))) == 120  # ordered by time, not by list
    assert peak_of_allocations([]) == 0


def test_peak_memory_per_loss_is_the_same_in_either_order():
    def peaks(order):
        result = bench("mlp", "breast-cancer", order, devices="cpu", modes="train,fit",
                       epochs=1, **FAST)  # fmt: skip
        assert not result.errors
        for row in result.rows:
            assert row["memory_kind"] == "cpu_allocated_peak"
            assert row["peak_memory_bytes"] >= _adam_floor(row)
        return {(r["loss"], r["mode"]): r["peak_memory_bytes"] for r in result.rows}

    forward, backward = peaks("bce,bce-with-logits"), peaks("bce-with-logits,bce")
    assert set(forward) == set(backward) and len(forward) == 4
    for key, value in forward.items():
        assert value == pytest.approx(backward[key], rel=MEMORY_TOLERANCE), key


@pytest.fixture
def cifar10(tmp_path, monkeypatch):
    """A few CIFAR-10 records in the real binary format, every split's file present."""
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ["test_batch.bin"] + [f"data_batch_{i}.bin" for i in range(1, 6)]:
        records = rng.integers(0, 256, size=(4, 3073), dtype=np.uint8)
        records[:, 0] = np.arange(4) % 10
        records.tofile(folder / name)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))


def test_mobilenet_v3_small_train_memory_is_at_least_its_weights(cifar10):
    """The second row reuses the heap the first one grew: RSS growth called it 10 MiB."""
    result = bench("mobilenet-v3-small", "cifar10", devices="cpu", modes="train",
                   batch_sizes="8,2", **FAST)  # fmt: skip
    assert [r["batch_size"] for r in result.rows] == [8, 2]
    for row in result.rows:
        assert row["error"] is None, row["error"]
        assert row["weights_bytes"] > 5 * 2**20  # the 5.88 MiB model
        assert row["peak_memory_bytes"] >= _adam_floor(row) > row["weights_bytes"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_is_max_allocated_and_the_same_in_either_order():
    def peaks(order):
        result = bench("mlp", "breast-cancer", order, devices="cuda", modes="train", **FAST)
        assert not result.errors
        assert {r["memory_kind"] for r in result.rows} == {"cuda_max_allocated"}
        assert all(r["peak_memory_bytes"] >= _adam_floor(r) for r in result.rows)
        return {r["loss"]: r["peak_memory_bytes"] for r in result.rows}

    forward, backward = peaks("bce,bce-with-logits"), peaks("bce-with-logits,bce")
    for loss, value in forward.items():
        assert value == pytest.approx(backward[loss], rel=MEMORY_TOLERANCE), loss


# -- fit without warm-up -----------------------------------------------------------------------


def test_fit_speed_leaves_out_the_first_epoch():
    history = [{"samples_per_s": s} for s in (10.0, 50.0, 60.0, 55.0)]
    assert fit_speed(history) == [50.0, 60.0, 55.0]
    assert fit_speed(history[:1]) == [10.0]
    assert fit_speed([]) == fit_speed(None) == []


def test_a_fit_row_is_warmed_up_and_its_speed_is_the_epochs_after_the_first():
    result = bench("mlp", "circles", devices="cpu", modes="fit", epochs=3, **FAST)
    (row,) = result.rows
    assert row["error"] is None, row["error"]
    speeds = row["epoch_samples_per_s"]
    assert len(speeds) == 2
    assert row["samples_per_s"] == pytest.approx(float(np.median(speeds)))
    # the warm-up steps ran under the memory probe before the trainer
    assert row["peak_memory_bytes"] >= _adam_floor(row)
    assert row["noisy"] == (max(speeds) / min(speeds) - 1 > NOISE_THRESHOLD)


# -- threads -----------------------------------------------------------------------------------


def test_each_row_runs_with_the_one_thread_rule_and_torch_is_restored(monkeypatch):
    torch.set_num_threads(3)
    run = {"devices": "cpu", "modes": "infer", "min_run_time": 0.02, "warmup": 0.0}

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    result = bench("linear", "circles", **run)
    assert result.rows[0]["threads"] == result.config["threads"] == 2
    assert result.environment["threads"] == 2
    assert torch.get_num_threads() == 3

    assert bench("linear", "circles", threads=1, **run).rows[0]["threads"] == 1  # --threads wins
    isolated = bench("linear", "circles", isolate=True, **run).rows[0]
    assert isolated["error"] is None and isolated["threads"] == 2

    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    result = bench("linear", "circles", **run)
    assert result.rows[0]["threads"] == max(1, physical_cores() // 2)
    assert torch.get_num_threads() == 3


SPY = {
    "spy_zoo/__init__.py": (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('thread-spy', 'spy_zoo.models:ThreadSpy', tasks=['binary'],\n"
        "             input_kind='features', summary='Records torch threads in forward')\n"
    ),
    "spy_zoo/models.py": (
        "import torch\nfrom torch import nn\n\nSEEN = []\n\n"
        "class ThreadSpy(nn.Module):\n"
        "    def __init__(self, in_features, num_classes=1):\n"
        "        super().__init__()\n"
        "        self.linear = nn.Linear(in_features, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        SEEN.append(torch.get_num_threads())\n"
        "        return self.linear(x)\n"
    ),
}


def test_a_fit_row_trains_with_the_rows_thread_count(make_plugin):
    """The trainer applies its own thread default; a fit row must train with the row's."""
    make_plugin("spy-zoo", SPY, entry_points={"spy": "spy_zoo"})
    result = bench("thread-spy", "circles", devices="cpu", modes="fit", epochs=1,
                   min_run_time=0.02, warmup=0.0, threads=2)  # fmt: skip
    (row,) = result.rows
    assert row["error"] is None, row["error"]
    from spy_zoo.models import SEEN

    assert row["threads"] == 2 and len(SEEN) > 10 and set(SEEN) == {2}


def test_a_bad_thread_setting_fails_before_any_work(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    lines = []
    with pytest.raises(UsageError, match="OMP_NUM_THREADS must be a positive integer"):
        bench("linear", "circles", devices="cpu", modes="infer", progress=lines.append)
    assert lines == []


# -- noise -------------------------------------------------------------------------------------


def test_rounds_that_disagree_flag_a_measurement_that_iqr_passes():
    times = (1.0,) * 15 + (1.3,) * 5  # the machine got busy for the last of four rounds
    m = Measurement(times=times, block=1, rounds=(5, 5, 5, 5))
    assert m.relative_iqr == pytest.approx(0.075)  # the old rule: quiet
    assert m.round_medians == (1.0, 1.0, 1.0, 1.3)
    assert m.round_spread == pytest.approx(0.3)
    assert m.noisy and m.noise == "rounds disagree by 30%"
    steady = Measurement(times=(1.0, 1.01) * 10, block=1, rounds=(5, 5, 5, 5))
    assert not steady.noisy and steady.noise is None
    with pytest.raises(ValueError):
        Measurement(times=(1.0, 1.0), block=1, rounds=(3,))


def test_measure_times_separated_rounds():
    m = measure(lambda: sum(range(100)), min_run_time=0.02, warmup=0.0, rounds=4)
    assert len(m.rounds) == 4 and sum(m.rounds) == len(m.times) and min(m.rounds) >= 2
    start = np.cumsum((0, *m.rounds))
    expected = [np.median(m.times[a:b]) for a, b in zip(start[:-1], start[1:], strict=True)]
    assert m.round_medians == pytest.approx(expected)


def _independent_noise_flag(times, rounds):
    """The noise rule recomputed with numpy from the recorded block times."""
    q75, q25 = np.quantile(times, [0.75, 0.25])
    iqr_rule = (q75 - q25) / np.median(times) > NOISE_THRESHOLD
    edges = np.cumsum((0, *rounds))
    medians = [np.median(times[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return bool(iqr_rule or max(medians) / min(medians) - 1 > NOISE_THRESHOLD)


def test_the_noise_flag_beside_a_cpu_hog_follows_the_recorded_rounds():
    """A real busy machine: the flag must be what the recorded block times say (whether this
    run was spoiled is up to the scheduler, so only the logic is asserted)."""
    x = torch.randn(64, 64)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.1)
        before = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            m = measure(lambda: x @ x, min_run_time=0.1, warmup=0.01)
        finally:
            torch.set_num_threads(before)
        assert hog.poll() is None  # the hog ran for the whole measurement
    finally:
        hog.kill()
        hog.wait()
    # a spoiled run can be cut short by max_run_time: fewer rounds, never a missing flag
    assert 1 <= len(m.rounds) <= 4 and sum(m.rounds) == len(m.times)
    assert m.noisy == _independent_noise_flag(m.times, m.rounds)


# -- compare -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline():
    """A real result (infer + train), every row unflagged."""
    data = bench("linear,mlp", "circles", devices="cpu", modes="infer,train", **FAST).to_dict()
    for row in data["rows"]:
        row["noisy"] = False
    return data


def _compare_cli(tmp_path, old, new, *args):
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    return CliRunner().invoke(
        cli,
        ["bench", "compare", str(tmp_path / "old.json"), str(tmp_path / "new.json"), *args],
        catch_exceptions=False,
    )


def test_compare_matches_like_with_like_and_says_which_fields_differ(baseline, tmp_path):
    new = copy.deepcopy(baseline)
    new["rows"][0]["threads"] = 2
    new["rows"][1]["device_name"] = "Some Other CPU"
    new["rows"][1]["torch_version"] = "9.9.9"
    for row in new["rows"][:2]:
        row["latency_ms_median"] *= 1.5  # slower, but on another machine / setting
    cmp = compare(baseline, new)
    assert [r["status"] for r in cmp.rows[:2]] == ["unlike", "unlike"]
    assert cmp.rows[0]["differs"] == ["threads 1 -> 2"]
    assert cmp.rows[1]["differs"] == [
        f"device_name {baseline['rows'][1]['device_name']} -> Some Other CPU",
        f"torch_version {torch.__version__} -> 9.9.9",
    ]
    assert not cmp.regressed and len(cmp.unlike) == 2
    assert all(r["status"] == "same" and not r["differs"] for r in cmp.rows[2:])

    result = _compare_cli(tmp_path, baseline, new)
    assert result.exit_code == 0, result.output
    assert "threads 1 -> 2" in result.stdout
    assert "2 matching row(s) not compared: they ran with a different device_name, threads, " \
        "torch_version" in result.stdout  # fmt: skip


def test_a_row_measured_both_ways_pairs_with_its_like(baseline):
    old = copy.deepcopy(baseline)
    other = copy.deepcopy(old["rows"][0])
    other["threads"], other["latency_ms_median"] = 2, 1e-6
    old["rows"].insert(0, other)  # the same grid point, measured with 2 threads too
    cmp = compare(old, baseline)
    assert cmp.rows[0]["status"] == "same" and not cmp.rows[0]["differs"]
    assert [r["threads"] for r in cmp.only_old] == [2]


def test_noisy_slower_rows_count_only_with_strict(baseline, tmp_path):
    new = copy.deepcopy(baseline)
    new["rows"][0]["latency_ms_median"] *= 1.5
    new["rows"][0]["noisy"] = True
    cmp = compare(baseline, new)
    assert cmp.rows[0]["status"] == "slower" and cmp.rows[0]["noisy"]
    assert not cmp.regressed and cmp.noisy_slower == [cmp.rows[0]]
    assert compare(baseline, new, strict=True).regressed == [cmp.rows[0]]

    lenient = _compare_cli(tmp_path, baseline, new)
    assert lenient.exit_code == 0, lenient.output
    assert "SLOWER (noisy)" in lenient.stdout
    assert "1 more slower row(s) flagged noisy: not counted (--strict" in lenient.stdout
    strict = _compare_cli(tmp_path, baseline, new, "--strict")
    assert strict.exit_code == 1
    assert "regression: 1 row(s) slower by more than 7%" in strict.stderr


def test_a_schema_1_baseline_compares_and_unknown_fields_are_reported(baseline, tmp_path):
    old = copy.deepcopy(baseline)
    old["schema"] = 1
    for row in old["rows"]:  # what a baseline from before this change lacks
        for name in ("threads", "noise", "round_spread", "process_peak_rss_bytes",
                     "round_medians_ms", "epoch_samples_per_s"):  # fmt: skip
            row.pop(name, None)
    same = _compare_cli(tmp_path, old, baseline)
    assert same.exit_code == 0, same.output
    n = len(old["rows"])
    assert f"identity unknown (old is schema 1): old threads ({n} rows)" in same.stdout
    assert f"0 of {n} matching rows slower" in same.stdout

    slower = copy.deepcopy(baseline)
    slower["rows"][0]["latency_ms_median"] *= 1.5
    result = _compare_cli(tmp_path, old, slower, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["schemas"] == [1, SCHEMA] and data["regressed"] == 1
    assert data["rows"][0]["unknown"] == ["old threads"]


# -- CLI ---------------------------------------------------------------------------------------


def test_help_says_what_the_memory_column_measures():
    text = " ".join(CliRunner().invoke(cli, ["bench", "--help"]).output.split())
    assert "peak alloc is the peak bytes torch allocated" in text
    assert "torch.profiler's memory accounting" in text
    assert "torch.cuda.max_memory_allocated" in text
    assert "--isolate adds proc rss, the whole process's peak resident set" in text
    compare_help = CliRunner().invoke(cli, ["bench", "compare", "--help"]).output
    assert "--strict" in compare_help


def test_the_real_command_keeps_profiler_chatter_off_stderr(run_zoo):
    proc = run_zoo("bench", "-m", "linear", "-d", "circles", "--device", "cpu", "--mode",
                   "infer", "--min-run-time", "0.02")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert all(line.startswith("[") for line in proc.stderr.splitlines()), proc.stderr
    assert "peak alloc (cpu): peak bytes torch's allocator held" in proc.stdout
