"""zoo.testing and `zoo check`: first-party entries pass, planted faults are caught by name.

The faulty entries live in a real distribution (dist-info + entry point) that zoo discovers
exactly as it discovers a third party's plugin.
"""

from __future__ import annotations

import json
import struct
import textwrap

import pytest
from click.testing import CliRunner

import zoo
from zoo import testing
from zoo.cli import cli
from zoo.errors import IncompatibleError, UnknownNameError
from zoo.registry import plugins

FAULTY = {
    "faulty_zoo/__init__.py": """
        import zoo

        FEATURES = {"task": "multiclass", "input_kind": "features"}

        @zoo.hookimpl
        def register_models(register):
            register("fine-net", "faulty_zoo.impl:FineNet", summary="Honest MLP", **FEATURES)
            register("wrong-shape", "faulty_zoo.impl:WrongShape", summary="One output too many",
                     **FEATURES)
            register("dead-param", "faulty_zoo.impl:DeadParam", summary="Unused layer",
                     **FEATURES)
            register("always-dropout", "faulty_zoo.impl:AlwaysDropout",
                     summary="Dropout even in eval()", **FEATURES)
            register("forgetful", "faulty_zoo.impl:Forgetful",
                     summary="State outside the state_dict", **FEATURES)
            register("frozen-extra", "faulty_zoo.impl:FrozenExtra",
                     summary="An unused but frozen layer: fine", **FEATURES)

        @zoo.hookimpl
        def register_losses(register):
            register("vector-loss", "faulty_zoo.impl:VectorLoss", tasks=["multiclass"],
                     summary="Forgot the reduction")

        @zoo.hookimpl
        def register_datasets(register):
            register("shifty", "faulty_zoo.impl:shifty", task="multiclass", input_shape=(2,),
                     num_classes=3, summary="Unseeded test split")
            register("bad-labels", "faulty_zoo.impl:bad_labels", task="multiclass",
                     input_shape=(2,), num_classes=3, summary="Labels up to 3 of 3 classes")
            register("wrong-dtype", "faulty_zoo.impl:wrong_dtype", task="multiclass",
                     input_shape=(2,), num_classes=3, summary="Float labels")
    """,
    "faulty_zoo/impl.py": """
        import torch
        from torch import nn
        from torch.nn import functional as F


        class FineNet(nn.Module):
            def __init__(self, in_features, num_classes, hidden=8):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                         nn.Linear(hidden, num_classes))

            def forward(self, x):
                return self.net(x)


        class WrongShape(FineNet):
            def __init__(self, in_features, num_classes):
                super().__init__(in_features, num_classes + 1)


        class DeadParam(FineNet):
            def __init__(self, in_features, num_classes):
                super().__init__(in_features, num_classes)
                self.unused = nn.Linear(3, 3)


        class FrozenExtra(DeadParam):
            def __init__(self, in_features, num_classes):
                super().__init__(in_features, num_classes)
                self.unused.requires_grad_(False)


        class AlwaysDropout(FineNet):
            def forward(self, x):
                return F.dropout(self.net(x), p=0.5, training=True)


        class Forgetful(FineNet):
            def __init__(self, in_features, num_classes):
                super().__init__(in_features, num_classes)
                self.register_buffer("offset", torch.randn(num_classes), persistent=False)

            def forward(self, x):
                return self.net(x) + self.offset


        class VectorLoss(nn.Module):
            def forward(self, output, target):
                return F.cross_entropy(output, target, reduction="none")


        def _data(n, seed):
            g = torch.Generator().manual_seed(seed)
            return torch.randn(n, 2, generator=g), torch.randint(0, 3, (n,), generator=g)


        def shifty(split):
            if split == "train":
                return _data(30, 0)
            return torch.randn(10, 2), torch.randint(0, 3, (10,))


        def bad_labels(split):
            X, y = _data(30, 1)
            y[::4] = 3
            return X, y


        def wrong_dtype(split):
            X, y = _data(30, 2)
            return X, y.float()
    """,
}
FAULTY = {path: textwrap.dedent(src) for path, src in FAULTY.items()}


@pytest.fixture
def faulty(make_plugin):
    """The planted-fault plugin: distribution ``faulty-zoo``, entry point ``faulty``."""
    return make_plugin("faulty-zoo", FAULTY, entry_points={"faulty": "faulty_zoo"})


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def _write_image_data(root):
    """Tiny MNIST / FashionMNIST (idx) and CIFAR-10 (binary batches) in their real formats."""
    import numpy as np

    rng = np.random.default_rng(0)

    def idx(path, array, magic):
        header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
        path.write_bytes(header + array.astype("uint8").tobytes())

    for folder in ("MNIST", "FashionMNIST"):
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, n in (("train", 12), ("t10k", 6)):
            idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051)
            idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), 2049)
    cifar = root / "cifar-10-batches-bin"
    cifar.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = rng.integers(0, 256, (2, 3073)).astype("uint8")
        records[:, 0] %= 10
        (cifar / name).write_bytes(records.tobytes())


# --------------------------------------------------------------------------- first party


@pytest.mark.slow
def test_every_first_party_entry_passes_zoo_check(run_zoo, tmp_path):
    _write_image_data(tmp_path)
    result = run_zoo("check", "--all", "--json", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    rows = json.loads(result.stdout)
    assert {row["status"] for row in rows} == {"pass"}, [r for r in rows if r["status"] != "pass"]
    checked = {(r["kind"], r["name"]) for r in rows}
    listed = json.loads(run_zoo("list", "all", "--json").stdout)
    assert {(r["kind"], r["name"]) for r in listed if r["kind"] != "pretrained"} <= checked
    assert {r["name"] for r in rows if r["kind"] == "plugin"} == {
        "workflow", "losses", "datasets", "vision", "torchvision", "tensorboard", "mlflow",
    }  # fmt: skip
    mlp = next(r for r in rows if r["name"] == "mlp")
    done = {(c["check"], c["where"].split(" ")[0]) for c in mlp["checks"]}
    for check in ("build", "forward", "eval-deterministic", "train-step", "export-roundtrip"):
        for dataset in ("diabetes", "circles", "iris", "blobs", "breast-cancer"):
            assert (check, dataset) in done  # every compatible shape of every task
    resnet = next(r for r in rows if r["name"] == "resnet18")
    assert {c["where"] for c in resnet["checks"] if c["where"]} == {
        "cifar10 (multiclass, 3x32x32 -> 10)",  # the first conv adapts to other channels
        "fashion-mnist (multiclass, 1x28x28 -> 10)",
        "digits (multiclass, 1x8x8 -> 10)",
    }
    convnext = next(r for r in rows if r["name"] == "convnext-tiny")  # at least 32x32
    assert {c["where"] for c in convnext["checks"] if c["where"]} == {
        "cifar10 (multiclass, 3x32x32 -> 10)"
    }
    cifar = next(r for r in rows if r["name"] == "cifar10")  # a Dataset, not (X, y)
    assert {c["check"] for c in cifar["checks"]} >= {"shape", "dtype", "labels", "deterministic"}


def test_datasets_without_their_files_are_skipped_not_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "empty"))
    result = invoke("check", "mnist", "cifar10", "iris")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines()[2:5]}
    assert rows["mnist"][-1] == "skip" and rows["cifar10"][-1] == "skip"
    assert rows["iris"][-1] == "pass"
    assert "\nskipped:\n" in result.stdout
    assert "\n  dataset 'cifar10': CIFAR-10 (binary version) is not under" in result.stdout
    report = testing.check_dataset("fashion-mnist", data_dir=str(tmp_path))
    assert report.status == "skip" and report.ok
    assert report.results[-1].message.startswith(
        "dataset 'fashion-mnist' (plugin vision) load [test]: skipped: FashionMNIST is not under"
    )


def test_a_plugin_name_checks_the_plugin_and_all_its_entries():
    report = testing.check_plugin("workflow")
    assert [(e.kind, e.name) for e in report] == [
        ("plugin", "workflow"),
        ("model", "linear"),
        ("model", "linear-regression"),
        ("model", "mlp"),
        ("dataset", "line"),
    ]
    assert report.ok
    assert report.get("workflow").results[0].detail == "registered 1 dataset, 3 models"
    line = report.get("linear-regression")
    assert {r.where for r in line.results if r.where} == {
        "diabetes (regression, 10 -> 1)",
        "line (regression, 1 -> 1)",
    }


def test_every_first_party_loss_passes_on_each_of_its_tasks():
    report = testing.check("losses")
    assert report.ok, report.format()
    bce = report.get("bce")  # expects probabilities: zoo applies the sigmoid before the call
    assert [(r.check, r.where, r.status) for r in bce.results] == [
        ("import", "", "pass"),
        ("build", "", "pass"),
        ("call", "binary", "pass"),
        ("scalar", "binary", "pass"),
        ("gradient", "binary", "pass"),
    ]


# --------------------------------------------------------------------------- planted faults


def _failures(report):
    return [(r.check, r.message) for r in report.failures]


def test_wrong_output_shape_is_caught(faulty):
    report = testing.check_model("wrong-shape")
    assert not report.ok
    checks = {check for check, _ in _failures(report)}
    assert checks == {"forward"}
    message = report.failures[0].message
    assert message.startswith("model 'wrong-shape' (plugin faulty) forward [")
    assert "expected output shape (4, 3) for input (4, 2), found (4, 4)" in message
    skipped = {r.check for r in report.results if r.status == "skip"}
    assert skipped == {"eval-deterministic", "train-step", "export-roundtrip"}


def test_parameter_without_gradient_is_caught(faulty):
    report = testing.check_model("dead-param", datasets=["iris"])
    assert [check for check, _ in _failures(report)] == ["train-step"]
    assert report.failures[0].message == (
        "model 'dead-param' (plugin faulty) train-step [iris (multiclass, 4 -> 3)]: expected a "
        "gradient for every parameter that requires grad, found none for 2 of 6: "
        "unused.weight, unused.bias"
    )


def test_frozen_parameters_need_no_gradient(faulty):
    report = testing.check_model("frozen-extra", datasets=["iris"])
    assert report.status == "pass", report.format()


def test_randomness_in_eval_and_state_lost_in_export_are_caught(faulty):
    dropout = testing.check_model("always-dropout", datasets=["iris"])
    assert [check for check, _ in _failures(dropout)] == ["eval-deterministic"]
    assert dropout.results[-1].detail == "outputs in eval() are not deterministic"  # skipped
    assert "expected identical outputs from two passes under eval() + inference_mode()" in (
        dropout.failures[0].message
    )
    forgetful = testing.check_model("forgetful", datasets=["iris"])
    assert [check for check, _ in _failures(forgetful)] == ["export-roundtrip"]
    assert "expected identical outputs after a safetensors export/load round trip" in (
        forgetful.failures[0].message
    )


def test_loss_returning_a_vector_is_caught(faulty):
    report = testing.check_loss("vector-loss")
    assert _failures(report) == [
        (
            "scalar",
            "loss 'vector-loss' (plugin faulty) scalar [multiclass]: expected a scalar loss "
            "(shape ()), found shape (4,)",
        )
    ]


def test_test_split_that_differs_between_loads_is_caught(faulty):
    report = testing.check_dataset("shifty")
    assert [(r.check, r.where) for r in report.failures] == [("deterministic", "test")]
    message = report.failures[0].message
    assert message.startswith(
        "dataset 'shifty' (plugin faulty) deterministic [test]: expected two loads of split "
        "'test' to be identical, found X differs in 20 values"
    )


def test_labels_outside_num_classes_are_caught(faulty):
    report = testing.check_dataset("bad-labels")
    assert [(r.check, r.where) for r in report.failures] == [
        ("labels", "train"),
        ("labels", "test"),
    ]
    assert report.failures[0].message == (
        "dataset 'bad-labels' (plugin faulty) labels [train]: expected integer labels in "
        "[0, 3) (num_classes=3), found range [0, 3] with 8 of 30 outside"
    )


def test_wrong_label_dtype_is_caught(faulty):
    report = testing.check_dataset("wrong-dtype", splits=["train"])
    assert report.failures[0].message == (
        "dataset 'wrong-dtype' (plugin faulty) dtype [train]: expected X float32 and y int64, "
        "found X float32 and y float32"
    )


def test_zoo_check_on_the_faulty_plugin_names_every_fault(faulty, run_zoo):
    result = run_zoo("check", "faulty", pythonpath=[faulty])
    assert result.returncode == 1
    table = {
        line.split()[1]: line.split()[-1]
        for line in result.stdout.split("\n\n")[0].splitlines()[2:]
    }
    assert table == {
        "faulty": "pass",
        "always-dropout": "fail",
        "dead-param": "fail",
        "fine-net": "pass",
        "forgetful": "fail",
        "frozen-extra": "pass",
        "wrong-shape": "fail",
        "vector-loss": "fail",
        "bad-labels": "fail",
        "shifty": "fail",
        "wrong-dtype": "fail",
    }
    failures = result.stdout.split("failures:\n")[1]
    for needle in (
        "model 'wrong-shape' (plugin faulty) forward [",
        "model 'dead-param' (plugin faulty) train-step [",
        "loss 'vector-loss' (plugin faulty) scalar [multiclass]: expected a scalar loss",
        "dataset 'shifty' (plugin faulty) deterministic [test]: expected two loads",
        "dataset 'bad-labels' (plugin faulty) labels [train]: expected integer labels in [0, 3)",
    ):
        assert needle in failures
    assert result.stderr.strip().startswith("error: 8 of 11 checked entries failed: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_zoo_check_json_and_verbose(faulty):
    result = invoke("check", "fine-net", "vector-loss", "--json")
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [(r["name"], r["kind"], r["plugin"], r["status"]) for r in rows] == [
        ("fine-net", "model", "faulty", "pass"),
        ("vector-loss", "loss", "faulty", "fail"),
    ]
    assert rows[0]["summary"] == "Honest MLP"
    assert {"check": "scalar", "where": "multiclass", "status": "fail"}.items() <= rows[1][
        "checks"
    ][3].items()
    verbose = invoke("check", "fine-net", "--dataset", "iris,wine", "-v")
    assert verbose.exit_code == 0, verbose.output
    lines = verbose.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "check", "on", "result", "detail"]
    assert len(lines) == 2 + 1 + 2 * 5  # import, then five checks on each dataset
    assert "train-step          wine (multiclass, 13 -> 3)" in verbose.stdout


def test_assert_helpers_raise_with_every_failure(faulty):
    with pytest.raises(AssertionError) as err:
        testing.run_checks("wrong-shape", "vector-loss", "shifty", "fine-net")
    text = str(err.value)
    assert text.startswith("9 check(s) failed in 3 of 4 entries:")  # wrong-shape: images too
    assert "model 'wrong-shape'" in text and "loss 'vector-loss'" in text
    assert "dataset 'shifty'" in text and "fine-net" not in text
    with pytest.raises(AssertionError, match="dead-param.*train-step"):
        testing.assert_model_ok("dead-param", datasets=["iris"])
    with pytest.raises(AssertionError, match="vector-loss"):
        testing.assert_loss_ok("vector-loss")
    with pytest.raises(AssertionError, match="bad-labels"):
        testing.assert_dataset_ok("bad-labels")
    with pytest.raises(AssertionError, match="wrong-shape"):
        testing.assert_plugin_ok("faulty-zoo")  # the distribution name works too
    assert testing.assert_model_ok("fine-net").status == "pass"
    assert testing.check_entry("fine-net").kind == "model"


# --------------------------------------------------------------------------- other plugins


def test_plugin_that_failed_to_load_fails_its_check(make_plugin):
    source = "import zoo\nraise ImportError('no module named acme_missing_dep')\n"
    make_plugin("broken-zoo", {"broken_zoo.py": source}, entry_points={"broken": "broken_zoo"})
    report = testing.check_plugin("broken")
    assert [e.kind for e in report] == ["plugin"]
    assert report.failures[0].message == (
        "plugin 'broken' (plugin broken) load [broken-zoo]: expected the plugin to load, "
        "found ImportError: no module named acme_missing_dep"
    )


def test_plugin_that_registers_nothing_fails_and_bad_target_fails_import(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('ghost', 'ghost_pkg.models:Ghost', task='binary')\n\n"
        "@zoo.hookimpl\ndef register_losses(register):\n    pass\n"
    )
    make_plugin("ghost-zoo", {"ghost_zoo.py": source}, entry_points={"ghost": "ghost_zoo"})
    make_plugin("empty-zoo", {"empty_zoo.py": "x = 1\n"}, entry_points={"empty": "empty_zoo"})
    ghost = testing.check_model("ghost")
    assert [(r.check, r.status) for r in ghost.results] == [("import", "fail")]
    assert ghost.results[0].detail.startswith(
        "expected no exception, found it raised PluginError: model 'ghost' (plugin 'ghost'): "
        "cannot import target 'ghost_pkg.models:Ghost'"
    )
    empty = testing.check_plugin("empty")
    assert empty.failures[0].detail == "expected at least one registered entry, found none"


def test_model_without_a_compatible_dataset_is_checked_on_synthetic_shapes(make_plugin):
    source = """
        import torch
        from torch import nn
        import zoo

        class Head(nn.Module):
            def __init__(self, in_channels, num_classes):
                super().__init__()
                self.conv = nn.Conv2d(in_channels, num_classes, 3)

            def forward(self, x):
                return self.conv(x).mean(dim=(2, 3))

        @zoo.hookimpl
        def register_models(register):
            register("grey-regressor", Head, task="regression", input_kind="image",
                     in_channels=1)
    """
    make_plugin("grey-zoo", {"grey_zoo.py": source}, entry_points={"grey": "grey_zoo"})
    report = testing.check_model("grey-regressor")
    assert report.ok, report.format()
    assert {r.where for r in report.results if r.where} == {
        "synthetic-image-regression (regression, 1x32x32 -> 1)"
    }
    assert report.count("pass") == 6


def test_train_mode_output_and_a_loss_that_is_no_module_are_caught(make_plugin):
    source = """
        import torch
        from torch import nn
        from torch.nn import functional as F
        import zoo

        class AuxHead(nn.Module):  # like Inception: an extra output in train() only
            def __init__(self, in_features, num_classes):
                super().__init__()
                self.fc = nn.Linear(in_features, num_classes)

            def forward(self, x):
                out = self.fc(x)
                return (out, out.detach()) if self.training else out

        def plain_mse():
            return F.mse_loss  # a function: zoo moves losses with .to(device)

        @zoo.hookimpl
        def register_models(register):
            register("aux-head", AuxHead, task="multiclass", input_kind="features")

        @zoo.hookimpl
        def register_losses(register):
            register("plain-mse", plain_mse, tasks=["regression"])
    """
    make_plugin("aux-zoo", {"aux_zoo.py": source}, entry_points={"aux": "aux_zoo"})
    aux = testing.check_model("aux-head", datasets=["iris"])
    assert [r.message for r in aux.failures] == [
        "model 'aux-head' (plugin aux) train-step [iris (multiclass, 4 -> 3)]: expected output "
        "shape (4, 3) in train(), found tuple"
    ]
    loss = testing.check_loss("plain-mse")
    assert [(r.check, r.status) for r in loss.results] == [("import", "pass"), ("build", "fail")]
    assert loss.failures[0].detail == "expected an nn.Module, found function"


def test_checks_leave_the_callers_random_state_alone():
    import torch

    torch.manual_seed(123)
    state = torch.get_rng_state()
    testing.check_model("mlp", datasets=["iris"], seed=7)
    assert torch.equal(torch.get_rng_state(), state)


def test_a_dataset_object_is_checked_item_by_item(make_plugin):
    source = """
        import torch
        from torch.utils.data import Dataset
        import zoo

        class Squares(Dataset):
            def __init__(self, n, top):
                self.n, self.top = n, top

            def __len__(self):
                return self.n

            def __getitem__(self, i):
                return torch.full((1, 4, 4), float(i)), min(i, self.top)

        def good(split):
            return Squares(30, 4)

        def bad(split):
            return Squares(30, 5 if split == "test" else 4)

        @zoo.hookimpl
        def register_datasets(register):
            register("squares", good, task="multiclass", input_shape=(1, 4, 4), num_classes=5)
            register("bad-squares", bad, task="multiclass", input_shape=(1, 4, 4), num_classes=5)
    """
    make_plugin("squares-zoo", {"squares_zoo.py": source}, entry_points={"sq": "squares_zoo"})
    assert testing.check_dataset("squares").status == "pass"
    bad = testing.check_dataset("bad-squares")
    assert [(r.check, r.where) for r in bad.failures] == [("labels", "test")]
    assert "found range [0, 5] with 25 of 30 outside" in bad.failures[0].detail


# --------------------------------------------------------------------------- tracing


def test_trace_plugins_prints_each_hook_its_plugin_and_what_it_registered(
    faulty, make_plugin, monkeypatch, capsys
):
    source = "import zoo\n\n@zoo.hookimpl\ndef register_losses(register):\n    pass\n"
    make_plugin("quiet-zoo", {"quiet_zoo.py": source}, entry_points={"quiet": "quiet_zoo"})
    capsys.readouterr()
    zoo.list_models()
    assert "zoo: plugin" not in capsys.readouterr().err  # off by default

    monkeypatch.setenv("ZOO_TRACE_PLUGINS", "1")
    plugins.reset()
    zoo.list_models()
    err = capsys.readouterr().err.splitlines()
    assert (
        "zoo: plugin faulty register_models -> fine-net, wrong-shape, dead-param, "
        "always-dropout, forgetful, frozen-extra"
    ) in err
    assert "zoo: plugin faulty register_losses -> vector-loss" in err
    assert "zoo: plugin faulty register_datasets -> shifty, bad-labels, wrong-dtype" in err
    assert "zoo: plugin quiet register_losses -> nothing" in err
    assert "zoo: plugin workflow register_models -> linear-regression, linear, mlp" in err
    zoo.list_losses()
    assert capsys.readouterr().err == ""  # hooks run once, so they are traced once


# --------------------------------------------------------------------------- bad input


def test_check_cli_bad_input_is_one_line(faulty, make_plugin):
    cases = [
        (["check"], 2, "error: give a NAME or PLUGIN to check (or --all); see `zoo list`"),
        (["check", "wrong-shap"], 2, "error: unknown entry or plugin 'wrong-shap'; did you mean:"),
        (["check", "tinyvgg", "--dataset", "iris"], 2, "error: incompatible combination: model"),
        (["check", "mlp", "--dataset", "nope"], 2, "error: unknown dataset 'nope'"),
        (["check", "fine-net", "nope"], 2, "error: unknown entry or plugin 'nope'"),
        (["check", "faulty", "--dataset", "no"], 2, "error: unknown dataset 'no'"),
        (["check", "--all", "--dataset", "no"], 2, "error: unknown dataset 'no'"),
        (["check", "mlp", "--all"], 2, "error: give NAMEs or --all, not both"),
    ]
    for args, code, start in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith(start), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stdout == ""  # refused before any check ran
    result = invoke("check", "mlp", "--batch-size", "1")
    assert result.exit_code == 2 and "--batch-size" in result.stderr


def test_a_shared_name_is_zoo_s_own_until_qualified(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('mlp', 'zoo_workflow.models:MLP', input_kind='features',"
        " task='multiclass')\n"
    )
    make_plugin("clash-zoo", {"clash_zoo.py": source}, entry_points={"clash": "clash_zoo"})
    # issue 10: the bare name stays zoo's own mlp; the plugin's is reachable as clash/mlp
    report = testing.check("mlp", datasets=["iris"])
    assert [(e.plugin, e.name, e.status) for e in report] == [("workflow", "mlp", "pass")]
    report = testing.check("clash/mlp", datasets=["iris"])
    assert [(e.plugin, e.name, e.status) for e in report] == [("clash", "mlp", "pass")]
    with pytest.raises(UnknownNameError):
        testing.check_entry("no-such-thing")
    with pytest.raises(IncompatibleError):
        testing.check_model("clash/mlp", datasets=["diabetes"])


def test_dataset_filter_keeps_compatible_shapes_and_skips_the_rest():
    report = testing.check_model("mlp", datasets=["digits", "iris"])  # digits: flattened
    assert report.status == "pass"
    assert {r.where for r in report.results if r.status == "pass" and r.where} == {
        "digits (multiclass, 1x8x8 -> 10)",
        "iris (multiclass, 4 -> 3)",
    }
    report = testing.check_model("tinyvgg", datasets=["digits", "iris"])
    assert report.status == "pass"
    assert ("build", "iris", "skip") in [(r.check, r.where, r.status) for r in report.results]
    # through a plugin, an entry that fits none of the datasets is skipped, not an error
    plugin = testing.check("workflow", datasets=["iris"])
    regression = plugin.get("linear-regression")
    assert regression.status == "skip"
    assert "serves regression but dataset 'iris' is multiclass" in regression.results[-1].detail
    assert plugin.get("mlp").status == "pass"
    with pytest.raises(IncompatibleError):  # named directly, it is refused
        testing.check("linear-regression", datasets=["iris"])
    whole = testing.check_plugin("workflow", datasets=["iris"])  # the same through check_plugin
    assert [(e.name, e.status) for e in whole] == [
        ("workflow", "pass"),
        ("linear", "pass"),
        ("linear-regression", "skip"),
        ("mlp", "pass"),
        ("line", "pass"),
    ]


def test_importing_zoo_testing_and_check_help_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, zoo.testing, zoo.cli.check\n"
        "from click.testing import CliRunner\n"
        "from zoo.cli import cli\n"
        "assert CliRunner().invoke(cli, ['check', '--help']).exit_code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
