"""``zoo bench merge`` and ``zoo bench compare`` across machines, and older schemas read.

The second machine's file is a real run's JSON with its device name and host renamed.
"""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from zoo.bench.plan import bench
from zoo.bench.report import compare
from zoo.bench.rows import SCHEMA
from zoo.cli import cli

FAST = {"threads": 1, "min_run_time": 0.02, "warmup": 0, "devices": "cpu"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NEW_FIELDS = ("input", "input_shape", "num_classes", "compile", "compile_mode", "channels_last",
              "host", "params_m", "flops", "macs", "gmacs", "flops_per_s", "peak_dtype",
              "peak_fraction")  # fmt: skip


def invoke(*args: str):
    return CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def machines(tmp_path_factory):
    """A real synthetic run (machine A) and the same file renamed to another machine (B)."""
    out = tmp_path_factory.mktemp("merge")
    a = bench("linear,tinyvgg", input_shape="1x8x8", modes="infer", batch_sizes=1, **FAST)
    data_a = a.to_dict()
    data_b = copy.deepcopy(data_a)
    data_b["environment"]["host"] = "gpu-box-7"
    for row in data_b["rows"]:
        row["device_name"], row["host"] = "NVIDIA H100 80GB HBM3", "gpu-box-7"
        row["latency_ms_median"] *= 1.5  # slower, but another machine: not a regression
    (out / "a.json").write_text(json.dumps(data_a))
    (out / "b.json").write_text(json.dumps(data_b))
    return out, data_a, data_b


def test_merge_puts_each_machine_in_its_own_column(machines):
    out, data_a, data_b = machines
    result = invoke("merge", str(out / "a.json"), str(out / "b.json"),
                    "--json", str(out / "all.json"), "--csv", str(out / "all.csv"),
                    "--plot", str(out / "all.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "[1] ms/batch" in lines[0] and "[2] ms/batch" in lines[0]
    assert any(
        line.startswith("[2] cpu NVIDIA H100 80GB HBM3 @ gpu-box-7, torch") for line in lines
    )
    host_a = data_a["rows"][0]["host"]
    assert any(line.startswith(f"[1] cpu {data_a['rows'][0]['device_name']} @ {host_a}")
               for line in lines)  # fmt: skip
    for row_a, row_b in zip(data_a["rows"], data_b["rows"], strict=True):
        line = next(x for x in lines if x.startswith(row_a["model"] + " "))
        assert f"{row_a['latency_ms_median']:.4g}" in line
        assert f"{row_b['latency_ms_median']:.4g}" in line
        assert "1x8x8" in line and f"{row_a['gmacs']:.3g}" in line
    merged = json.loads((out / "all.json").read_text())
    assert merged["schema"] == SCHEMA and len(merged["rows"]) == 4
    assert len(merged["machines"]) == 2 and len({r["machine"] for r in merged["rows"]}) == 2
    csv_lines = (out / "all.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "ms/batch cpu NVIDIA H100" in csv_lines[0]
    assert (out / "all.png").read_bytes()[:8] == PNG_SIGNATURE
    again = invoke("merge", str(out / "all.json"))  # the merged file is a result itself
    assert again.exit_code == 0 and "[2] cpu NVIDIA H100" in again.stdout


def test_merge_of_different_schemas_is_one_line(machines, tmp_path):
    out, data_a, _ = machines
    old = copy.deepcopy(data_a)
    old["schema"] = 2
    (tmp_path / "old.json").write_text(json.dumps(old))
    result = invoke("merge", str(out / "a.json"), str(tmp_path / "old.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot merge ") and "(schema 2)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_compare_across_machines_is_a_difference_not_a_regression(machines):
    out, _, _ = machines
    result = invoke("compare", str(out / "a.json"), str(out / "b.json"))
    assert result.exit_code == 0, result.output
    assert "unlike" in result.stdout and "SLOWER" not in result.stdout
    assert "host " in result.stdout and "-> gpu-box-7" in result.stdout
    assert "device_name, host (like is compared with like) (a difference between machines, " \
        "not a regression)" in result.stdout  # fmt: skip
    assert "regression" not in result.stderr


def test_a_schema_2_file_still_compares_with_a_schema_3_one():
    new = bench("linear", "circles", modes="infer", batch_sizes=4, **FAST).to_dict()
    old = copy.deepcopy(new)
    old["schema"] = 2
    for row in old["rows"]:
        for name in NEW_FIELDS:
            row.pop(name, None)
    cmp = compare(old, new)
    assert len(cmp.rows) == 1 and not cmp.only_old and not cmp.only_new
    assert cmp.rows[0]["status"] == "same" and cmp.schemas == (2, SCHEMA)


def test_knobs_keep_rows_apart_in_compare(machines):
    _, data_a, _ = machines
    other = copy.deepcopy(data_a)
    for row in other["rows"]:
        row["channels_last"] = True
    cmp = compare(data_a, other)
    assert not cmp.rows and len(cmp.only_old) == len(cmp.only_new) == 2
