"""Hostile input, class "Plugins cannot break the tool": real dist-info plugins on sys.path and
real ``zoo`` processes. Each case plants one misbehaving plugin next to the first-party ones
and asserts that the tool still works, that the plugin is named as the failure (or marked),
and that errors are one ``error: ...`` line with the documented exit code."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HOOK = "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
GOOD_MODEL = "    register('{name}', 'zoo_workflow.models:MLP', task='multiclass'{meta})\n"

# A plugin that also ships a dataset (targets live in a submodule, imported only when used).
DATA_SOURCE = """
import torch


class Items(torch.utils.data.Dataset):
    def __init__(self, labels):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(len(labels), 2, generator=g)
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]


def binary_ints(split):
    return Items([0, 1] * 6)


def multiclass_floats(split):
    return Items([0.0, 1.0, 2.0] * 4)


def binary_strings(split):
    return Items(["yes", "no"] * 6)


def regression_ints(split):
    return Items(list(range(12)))


def missing(split):
    raise FileNotFoundError(f"no files for split {split} under /nowhere")
"""


def _plugin(make_plugin, dist: str, source: str, **files: str) -> Path:
    """A one-module plugin ``<dist>_mod`` (entry point ``dist``) plus extra modules."""
    module = dist.replace("-", "_") + "_mod"
    extra = {f"{module}_{k}.py": v for k, v in files.items()}
    return make_plugin(dist, {f"{module}.py": source, **extra}, entry_points={dist: module})


def _record(run_zoo, site: Path, name: str, env: dict[str, str] | None = None) -> dict:
    shown = run_zoo("plugins", "--json", pythonpath=[site], env=env)
    assert shown.returncode == 0, shown.stderr
    return next(r for r in json.loads(shown.stdout) if r["name"] == name)


def _one_error(result, code: int, *words: str) -> str:
    """Exit ``code`` and one ``error:`` line on stderr (warnings aside) holding ``words``."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _listing_works(run_zoo, site: Path, env: dict[str, str] | None = None) -> list[dict]:
    """``zoo list --json`` exits 0 with parseable JSON that still lists first-party entries."""
    listed = run_zoo("list", "--json", pythonpath=[site], env=env)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    rows = json.loads(listed.stdout)
    assert {"mlp", "iris", "cross-entropy"} <= {row["name"] for row in rows}
    return rows


# --------------------------------------------------------------------------- the cases


def case_prints_at_import(make_plugin, run_zoo, tmp_path, **_):
    source = "print('hello from chatty')\n" + HOOK + "    print('registering')\n"
    source += GOOD_MODEL.format(name="chatty-net", meta="")
    site = _plugin(make_plugin, "chatty", source)
    rows = _listing_works(run_zoo, site)  # stdout is JSON, nothing else
    assert "chatty-net" in {r["name"] for r in rows}
    record = _record(run_zoo, site, "chatty")
    assert record["status"] == "ok"
    assert record["output"] == "hello from chatty\nregistering\n"
    traced = run_zoo("list", "models", pythonpath=[site], env={"ZOO_TRACE_PLUGINS": "1"})
    assert "zoo: plugin chatty printed: hello from chatty registering" in traced.stderr
    assert "hello" not in traced.stdout


def case_sys_exit_at_import(make_plugin, run_zoo, tmp_path, **_):
    site = _plugin(make_plugin, "quitter", "import sys\nsys.exit(0)\n")
    _listing_works(run_zoo, site)
    record = _record(run_zoo, site, "quitter")
    assert record["status"] == "failed" and "sys.exit(0)" in record["error"]


def case_sys_exit_in_hook(make_plugin, run_zoo, tmp_path, **_):
    source = HOOK + GOOD_MODEL.format(name="half-net", meta="") + "    raise SystemExit(3)\n"
    site = _plugin(make_plugin, "hookquit", source)
    rows = _listing_works(run_zoo, site)
    assert "half-net" not in {r["name"] for r in rows}  # a failed plugin contributes nothing
    record = _record(run_zoo, site, "hookquit")
    assert record["error"] == "register_models raised SystemExit: the plugin called sys.exit(3)"


def case_meta_holds_itself(make_plugin, run_zoo, tmp_path, **_):
    source = HOOK + "    meta = {}\n    meta['self'] = meta\n"
    source += GOOD_MODEL.format(name="loop-net", meta=", info=meta")
    site = _plugin(make_plugin, "loopy", source)
    rows = _listing_works(run_zoo, site)
    assert "loop-net" not in {r["name"] for r in rows}
    record = _record(run_zoo, site, "loopy")
    assert record["status"] == "failed"
    assert "model 'loop-net': meta 'info.self.self" in record["error"]
    assert "nested deeper than 64 levels" in record["error"]


def case_meta_reserved_keys(make_plugin, run_zoo, tmp_path, **_):
    source = HOOK + GOOD_MODEL.format(name="fake-net", meta=", kind='dataset', plugin='zoo'")
    site = _plugin(make_plugin, "faker", source)
    rows = _listing_works(run_zoo, site)
    assert not [r for r in rows if r["name"] == "fake-net" or r["plugin"] == "faker"]
    record = _record(run_zoo, site, "faker")
    assert "model 'fake-net': meta key 'kind' is reserved" in record["error"]


def case_meta_not_json(make_plugin, run_zoo, tmp_path, **_):
    source = HOOK + GOOD_MODEL.format(name="odd-net", meta=", hook=print, defaults={1: 2}")
    site = _plugin(make_plugin, "oddmeta", source)
    _listing_works(run_zoo, site)
    record = _record(run_zoo, site, "oddmeta")
    assert "model 'odd-net': meta" in record["error"]
    assert "not a JSON value" in record["error"] or "non-string key" in record["error"]


def case_imports_torch_at_top(make_plugin, run_zoo, tmp_path, **_):
    source = "import torch\n" + HOOK.replace("register_models", "register_losses")
    source += "    register('heavy-l1', 'torch.nn:L1Loss', tasks=['regression'])\n"
    site = _plugin(make_plugin, "heavy", source)
    strict = run_zoo("plugins", "--json", pythonpath=[site], env={"ZOO_STRICT_PLUGINS": "1"})
    record = next(r for r in json.loads(strict.stdout) if r["name"] == "heavy")  # table first
    assert record["status"] == "ok"  # it works: it is marked, not dropped
    assert record["heavy"] and "imported torch" in record["heavy"][0]
    _one_error(strict, 1, "plugin 'heavy'", "imported torch")  # then the failure
    checked = run_zoo("check", "heavy", pythonpath=[site])
    line = _one_error(checked, 1, "heavy")
    assert line == "error: 1 of 2 checked entries failed: heavy"
    assert "import them inside the targets' modules or functions" in checked.stdout


def case_slow_import(make_plugin, run_zoo, tmp_path, **_):
    source = "import time\ntime.sleep(0.4)\n" + HOOK + GOOD_MODEL.format(name="slow-net", meta="")
    site = _plugin(make_plugin, "sluggish", source)
    record = _record(run_zoo, site, "sluggish", env={"ZOO_PLUGIN_SLOW_S": "0.2"})
    assert record["status"] == "ok" and record["load_s"] >= 0.4
    assert "over ZOO_PLUGIN_SLOW_S=0.2 s" in record["heavy"][0]
    strict = run_zoo(
        "list", pythonpath=[site], env={"ZOO_PLUGIN_SLOW_S": "0.2", "ZOO_STRICT_PLUGINS": "1"}
    )
    _one_error(strict, 1, "plugin 'sluggish'", "ZOO_PLUGIN_SLOW_S")


def case_hook_raises(make_plugin, run_zoo, tmp_path, **_):
    source = HOOK + "    raise ValueError('no weights today')\n"
    site = _plugin(make_plugin, "raiser", source)
    _listing_works(run_zoo, site)
    record = _record(run_zoo, site, "raiser")
    assert record["error"] == "register_models raised ValueError: no weights today"


def case_strict_shows_the_table(make_plugin, run_zoo, tmp_path, **_):
    site = _plugin(make_plugin, "raiser", HOOK + "    raise ValueError('boom')\n")
    strict = run_zoo("plugins", pythonpath=[site], env={"ZOO_STRICT_PLUGINS": "1"})
    table = strict.stdout.splitlines()
    assert table[0].split()[:4] == ["plugin", "dist", "version", "status"]
    assert any(line.split()[:1] == ["workflow"] for line in table)
    assert any(line.split()[:4] == ["raiser", "raiser", "0.1.0", "failed"] for line in table)
    _one_error(strict, 1, "plugin 'raiser' (raiser): register_models raised ValueError: boom")


def case_strict_check_judges_only_the_named(make_plugin, run_zoo, tmp_path, **_):
    broken = _plugin(make_plugin, "raiser", HOOK + "    raise ValueError('boom')\n")
    source = (
        HOOK.replace("models", "losses")
        + "    register('fine-l1', 'torch.nn:L1Loss', tasks=['regression'])\n"
    )
    good = _plugin(make_plugin, "fine", source)
    env = {"ZOO_STRICT_PLUGINS": "1"}
    checked = run_zoo("check", "fine", pythonpath=[good, broken], env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "raiser" not in checked.stdout + checked.stderr
    other = run_zoo("check", "raiser", pythonpath=[good, broken], env=env)
    _one_error(other, 1, "1 of 1 checked entries failed: raiser")
    assert "register_models raised ValueError: boom" in other.stdout


def case_hangs_at_import(make_plugin, run_zoo, tmp_path, **_):
    # one sleeps at import and swallows Exception (the deadline is not one); one spins in a hook
    source = "import time\ntry:\n    time.sleep(60)\nexcept Exception:\n    pass\n"
    sleeper = _plugin(make_plugin, "hanger", source)
    spinner = _plugin(make_plugin, "spinner", HOOK + "    while True:\n        pass\n")
    env = {"ZOO_PLUGIN_TIMEOUT": "0.5"}
    start = time.monotonic()
    shown = run_zoo("plugins", "--json", pythonpath=[sleeper, spinner], env=env)
    assert time.monotonic() - start < 20 and shown.returncode == 0, shown.stderr
    records = {r["name"]: r for r in json.loads(shown.stdout)}
    deadline = "longer than the 0.5 s deadline (ZOO_PLUGIN_TIMEOUT)"
    assert records["hanger"]["status"] == "failed" and deadline in records["hanger"]["error"]
    assert records["spinner"]["status"] == "failed" and deadline in records["spinner"]["error"]
    assert records["workflow"]["status"] == "ok"
    bad = run_zoo("list", pythonpath=[sleeper], env={"ZOO_PLUGIN_TIMEOUT": "soon"})
    _one_error(bad, 2, "$ZOO_PLUGIN_TIMEOUT must be a number of seconds (0 or more), got 'soon'")


def case_meta_too_large(make_plugin, run_zoo, tmp_path, **_):
    meta = ", notes='x' * 300_000, defaults={'hidden': list(range(10**6))}"
    site = _plugin(make_plugin, "bulky", HOOK + GOOD_MODEL.format(name="bulky-net", meta=meta))
    _listing_works(run_zoo, site)
    record = _record(run_zoo, site, "bulky")
    assert "model 'bulky-net': meta" in record["error"]
    assert "larger than the 262,144-character limit" in record["error"]


def case_deadline_is_cli_only(make_plugin, run_zoo, tmp_path, monkeypatch, **_):
    # The Python API sets no alarm: a slow plugin loads whatever ZOO_PLUGIN_TIMEOUT says.
    source = (
        "import time\ntime.sleep(0.3)\n" + HOOK + GOOD_MODEL.format(name="patient-net", meta="")
    )
    _plugin(make_plugin, "patient", source)
    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "0.05")
    import zoo

    assert "patient-net" in zoo.list_models()


def case_pretrained_malformed(make_plugin, run_zoo, tmp_path, **_):
    decl = "[{'tag': 'broken', 'files': [{'url': 'x'}]}]"
    site = _plugin(
        make_plugin, "decl", HOOK + GOOD_MODEL.format(name="decl-net", meta=f", pretrained={decl}")
    )
    listed = run_zoo("list", "pretrained", pythonpath=[site])
    assert listed.returncode == 0 and "registry index" not in listed.stderr
    assert listed.stderr == "zoo: warning: plugins failed to load: decl (see `zoo plugins`)\n"
    record = _record(run_zoo, site, "decl")
    assert record["error"] == (
        "register_models: model 'decl-net': its pretrained declaration, item 0: broken: file url "
        "'x' must be absolute (https://, http://, file:// or /path) (see docs/plugins.md)"
    )
    strict = run_zoo("list", pythonpath=[site], env={"ZOO_STRICT_PLUGINS": "1"})
    _one_error(strict, 1, "plugin 'decl'", "pretrained declaration")
    _one_error(run_zoo("check", "decl", pythonpath=[site]), 1, "failed: decl")


def case_pretrained_entries_checked(make_plugin, run_zoo, tmp_path, **_):
    import zoo

    net = zoo.create_model("mlp", in_features=4, num_classes=3, hidden=8)
    weights = zoo.export(net, tmp_path / "w.safetensors")
    accuracy = zoo.evaluate(net, dataset="iris")["accuracy"]
    data = weights.read_bytes()
    ref = {"url": weights.as_uri(), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    kwargs = {"in_features": 4, "num_classes": 3, "hidden": 8}
    decls = [
        {"tag": "good", "kwargs": kwargs, "dataset": "iris", "metrics": {"accuracy": accuracy}},
        {"tag": "bad-hash", "kwargs": kwargs, "files": [{**ref, "sha256": "0" * 64}]},
        {
            "tag": "wrong-metric",
            "kwargs": kwargs,
            "dataset": "iris",
            "metrics": {"accuracy": accuracy + 0.3},
        },
        {
            "tag": "remote",
            "kwargs": kwargs,
            "files": [{**ref, "url": "http://127.0.0.1:9/w", "sha256": "1" * 64}],
        },
        {"tag": "no-data", "kwargs": kwargs, "dataset": "pt-missing", "metrics": {"accuracy": 0.5}},
    ]
    decls = [{"files": [ref], **d} for d in decls]
    source = HOOK + GOOD_MODEL.format(name="pt-net", meta=f", pretrained={decls!r}")
    source += (
        "\n@zoo.hookimpl\ndef register_datasets(register):\n"
        "    register('pt-missing', 'pt_mod_data:missing', task='multiclass', input_shape=(4,),"
        " num_classes=3)\n"
    )
    site = _plugin(make_plugin, "pt", source, data=DATA_SOURCE)
    checked = run_zoo(
        "check", "pt", "--dataset", "iris", "--json", pythonpath=[site], env={"ZOO_OFFLINE": "1"}
    )
    _one_error(checked, 1, "2 of 8 checked entries failed")  # bad-hash, wrong-metric
    reports = {(r["kind"], r["name"]): r for r in json.loads(checked.stdout)}
    status = {name: r["status"] for (kind, name), r in reports.items() if kind == "pretrained"}
    assert status == {
        "pt-net.good": "pass",
        "pt-net.bad-hash": "fail",
        "pt-net.wrong-metric": "fail",
        "pt-net.remote": "skip",
        "pt-net.no-data": "pass",  # fetched and loaded; only its metric is skipped
    }

    def detail(name: str, check: str) -> str:
        return next(c for c in reports[("pretrained", name)]["checks"] if c["check"] == check)[
            "detail"
        ]

    assert "sha256 mismatch" in detail("pt-net.bad-hash", "fetch")
    wrong = f"found accuracy {accuracy:.4g} (declared {accuracy + 0.3:.4g})"
    assert wrong in detail("pt-net.wrong-metric", "metric")
    assert "offline (ZOO_OFFLINE)" in detail("pt-net.remote", "fetch")
    assert "not on disk" in detail("pt-net.no-data", "metric")


def case_label_types(make_plugin, run_zoo, tmp_path, **_):
    source = "import zoo\n\n@zoo.hookimpl\ndef register_datasets(register):\n"
    for name, task, classes in (
        ("binary-ints", "binary", 2),
        ("multiclass-floats", "multiclass", 3),
        ("binary-strings", "binary", 2),
        ("regression-ints", "regression", None),
    ):
        extra = f", num_classes={classes}" if classes else ""
        target = f"labels_mod_data:{name.replace('-', '_')}"
        source += f"    register('{name}', '{target}', task='{task}', input_shape=(2,){extra})\n"
    site = _plugin(make_plugin, "labels", source, data=DATA_SOURCE)
    checked = run_zoo("check", "labels", pythonpath=[site])
    _one_error(checked, 1, "2 of 5 checked entries failed: binary-strings, multiclass-floats")
    lines = {line.strip() for line in checked.stdout.splitlines()}
    notes = "dtype [train]: int labels: zoo converts them to float32 for"
    assert f"dataset 'binary-ints' (plugin labels) {notes} binary" in lines
    assert f"dataset 'regression-ints' (plugin labels) {notes} regression" in lines
    failures = "dtype [train]: expected"
    assert (
        f"dataset 'multiclass-floats' (plugin labels) {failures} integer class labels, "
        "found float labels"
    ) in lines
    assert (
        f"dataset 'binary-strings' (plugin labels) {failures} 0/1 labels (ints, bools or "
        "floats), found str labels"
    ) in lines


CASES: dict[str, Callable[..., None]] = {
    name.removeprefix("case_").replace("_", "-"): fn
    for name, fn in dict(globals()).items()
    if name.startswith("case_")
}


@pytest.mark.parametrize("case", list(CASES))
def test_plugins_cannot_break_the_tool(case, make_plugin, run_zoo, tmp_path, monkeypatch):
    CASES[case](make_plugin, run_zoo, tmp_path, monkeypatch=monkeypatch)
    home = Path(os.environ["ZOO_HOME"])
    debris = [
        p for d in (tmp_path, home) for p in d.rglob("*") if ".tmp" in p.name or p.suffix == ".part"
    ]
    assert not debris, f"temp files left behind: {debris}"
