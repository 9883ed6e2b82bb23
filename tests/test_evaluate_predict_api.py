"""``zoo.evaluate`` / ``zoo.predict``: the Python API does what ``zoo evaluate`` / ``zoo predict``
do, on real runs trained by the real trainer, and the commands leave ``os.environ`` alone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo import hub
from zoo.cli import cli
from zoo.errors import UsageError


def zoo_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 1-epoch mlp/circles run trained with dataset kwargs and a loss other than the default."""
    out = tmp_path_factory.mktemp("runs") / "circles"
    result = zoo_cli("train", "-m", "mlp", "-d", "circles", "--dataset-arg", "n_samples=300",
                     "--loss", "bce", "--model-arg", "hidden=[8]", "--epochs", "1",
                     "--device", "cpu", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _cli_metrics(*args) -> dict:
    result = zoo_cli("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_evaluate_equals_the_cli_and_uses_the_run_s_own_settings(run):
    from_cli = _cli_metrics(run)
    assert from_cli["dataset"] == "circles" and from_cli["split"] == "test"
    assert zoo.evaluate(run) == from_cli["metrics"]
    assert zoo.evaluate(run / "model.safetensors") == from_cli["metrics"]
    # as trained: its dataset kwargs (300 samples) and its loss (bce), so the recorded result
    recorded = json.loads((run / "run.json").read_text())["result"]["metrics"]
    for key in ("loss", "accuracy"):
        assert from_cli["metrics"][key] == pytest.approx(recorded[key], rel=1e-5), key
    # other settings are passed the same way to both
    other = _cli_metrics(run, "--split", "train", "--loss", "bce-with-logits", "--dataset-arg",
                         "n_samples=200", "--batch-size", "7")  # fmt: skip
    got = zoo.evaluate(run, split="train", loss="bce-with-logits",
                       dataset_kwargs={"n_samples": 200}, batch_size=7)  # fmt: skip
    assert got == other["metrics"] != from_cli["metrics"]


def test_predict_equals_the_cli_on_the_same_file(run, tmp_path):
    X, _ = zoo.load_dataset("circles", "test", n_samples=300)
    np.save(tmp_path / "x.npy", X[:25].numpy())
    for flags in ([], ["--raw"]):
        out = tmp_path / f"pred{len(flags)}.npy"
        result = zoo_cli("predict", run, "-i", tmp_path / "x.npy", "-o", out, *flags)
        assert result.exit_code == 0, result.output
        got = zoo.predict(run / "model.safetensors", X[:25], raw=bool(flags))
        assert torch.equal(got, torch.from_numpy(np.load(out)))
    labels = zoo.predict(run, X[:25].numpy().astype(np.float64))  # arrays become float32
    assert labels.dtype == torch.long and set(labels.tolist()) <= {0, 1}


def test_the_commands_leave_os_environ_alone(run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2), dtype=np.float32))
    data = tmp_path / "data"
    data.mkdir()
    before = dict(os.environ)
    commands = [
        ("evaluate", run, "--data-dir", data),
        ("evaluate", run, "--json"),
        ("predict", run, "-i", tmp_path / "x.npy"),
    ]
    for args in commands:
        result = zoo_cli(*args)
        assert result.exit_code == 0, result.output
        assert dict(os.environ) == before, args


def test_data_dir_is_passed_down_as_the_dataset_root(make_plugin, tmp_path):
    source = """
import numpy as np
import torch
import zoo
from zoo import hub


def data(split, root=None):
    X = torch.from_numpy(np.load(f"{root}/{split}.npy"))
    return X, (X[:, 0] > 0).float()


@zoo.hookimpl
def register_datasets(register):
    register("rooted", "rooted:data", task="binary", input_shape=(2,), num_classes=2)
"""
    make_plugin("zoo-rooted", {"rooted.py": source}, entry_points={"rooted": "rooted"})
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.save(data / "test.npy", rng.normal(size=(30, 2)).astype(np.float32))
    model = zoo.create_model("linear", dataset="rooted")
    path = zoo.export(model, tmp_path / "w.safetensors", dataset="rooted")
    got = zoo.evaluate(path, data_dir=data)
    assert got == _cli_metrics(path, "--data-dir", data)["metrics"]
    assert set(got) == {"loss", "accuracy", "f1"}
    assert zoo.evaluate(model, data_dir=data) == got  # a model evaluates the same way


def test_a_pretrained_entry_is_fetched_and_evaluated_as_published():
    entry = hub.get_pretrained("tinyvgg.digits")
    got = zoo.evaluate("tinyvgg.digits")
    for key, value in entry.metrics.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    X, y = zoo.load_dataset("digits", "test")  # already transformed: transform=False
    images = zoo.predict("tinyvgg.digits", X[:40], transform=False)
    flat = zoo.predict("tinyvgg.digits", X[:40].reshape(40, 64), transform=False)  # to 1x8x8
    assert torch.equal(images, flat) and (images == y[:40]).float().mean() > 0.8
    assert zoo.predict("tinyvgg.digits", X[0], transform=False).shape == (1,)  # one sample


def test_bad_arguments_are_one_line_usage_errors(run):
    with pytest.raises(UsageError, match="batch size must be a positive integer, got 0"):
        zoo.evaluate(run, batch_size=0)
    with pytest.raises(UsageError, match="does not fit the model's input"):
        zoo.predict(run, torch.zeros(3, 5))
    with pytest.raises(UsageError, match="neither a run directory nor a weights file"):
        zoo.predict(run / "missing", torch.zeros(3, 2))
    with pytest.raises(
        UsageError, match="unknown pretrained entry .tinyvgg.digts.; did you mean: tinyvgg.digits"
    ):
        zoo.evaluate("tinyvgg.digts")
