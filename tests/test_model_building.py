"""Building a model for a dataset: input kinds inferred from the target's signature, and a
features model on image data with the flatten built in (training, export, zoo.load, ONNX and
predict all run the same function)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import accuracy_score

import zoo
from zoo import api, testing
from zoo.cli import cli
from zoo.errors import WeightsError
from zoo.models import FlattenInputs, build_model
from zoo.tasks import contracts
from zoo.weights import files as weights

OUTSIDE = {
    "outside_zoo/__init__.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):  # no input_kind anywhere: the contract's default
            register("feat-net", "outside_zoo.models:FeatNet", task="multiclass")
            register("self-flat", "outside_zoo.models:SelfFlat", task="multiclass")
            register("conv-net", "outside_zoo.models:ConvNet", task="multiclass")
            register("sized-net", "outside_zoo.models:SizedNet", task="multiclass")
            register("both-net", "outside_zoo.models:BothNet", task="multiclass")
            register("plain-net", "outside_zoo.models:PlainNet", task="multiclass")
            register("kw-net", "outside_zoo.models:kw_net", task="multiclass")
            register("said-any", "outside_zoo.models:FeatNet", task="multiclass",
                     input_kind="any")
            register("gone-net", "outside_zoo.nowhere:Net", task="multiclass")
    """,
    "outside_zoo/models.py": """
        from torch import nn


        class FeatNet(nn.Module):
            def __init__(self, in_features, num_classes, hidden=16):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                         nn.Linear(hidden, num_classes))

            def forward(self, x):
                return self.net(x)


        class SelfFlat(FeatNet):
            def forward(self, x):
                return self.net(x.flatten(1))


        class ConvNet(nn.Module):
            def __init__(self, in_channels, num_classes):
                super().__init__()
                self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
                self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                          nn.Linear(4, num_classes))

            def forward(self, x):
                return self.head(self.conv(x))


        class SizedNet(nn.Module):
            def __init__(self, image_size, num_classes):
                super().__init__()
                self.linear = nn.Linear(image_size[0] * image_size[1], num_classes)

            def forward(self, x):
                return self.linear(x.flatten(1))


        class BothNet(FeatNet):
            def __init__(self, in_features, in_channels, num_classes):
                super().__init__(in_features, num_classes)


        class PlainNet(nn.Module):
            def __init__(self, num_classes=3):
                super().__init__()
                self.linear = nn.LazyLinear(num_classes)

            def forward(self, x):
                return self.linear(x.flatten(1))


        def kw_net(**kwargs):
            return FeatNet(kwargs["in_features"], kwargs["num_classes"])
    """,
}


@pytest.fixture
def outside(make_plugin):
    """A third party's contract-following models, registered without ``input_kind``."""
    return make_plugin("outside-zoo", OUTSIDE, {"outside": "outside_zoo"})


def _digits(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    X, y = zoo.load_dataset("digits", split)
    return X, y


def _mlp_reference(state: dict[str, torch.Tensor], images: torch.Tensor) -> np.ndarray:
    """The MLP's logits written out by hand in float64: flatten, (x W^T + b, ReLU)*, x W^T + b."""
    h = images.reshape(len(images), -1).double().numpy()
    layers = sorted({int(k.split(".")[1]) for k in state}, key=int)
    for i, index in enumerate(layers):
        w = state[f"layers.{index}.weight"].double().numpy()
        b = state[f"layers.{index}.bias"].double().numpy()
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


# ---------------------------------------------------------------- input kinds


def test_an_undeclared_input_kind_is_inferred_from_the_signature_when_used(outside):
    assert "feat-net" in zoo.list_models()
    assert "outside_zoo.models" not in sys.modules  # listing never imports a target
    kinds = {
        name: api.get_entry("model", name).input_kind
        for name in ("feat-net", "conv-net", "sized-net", "both-net", "plain-net", "kw-net")
    }
    assert kinds == {
        "feat-net": "features",  # in_features only
        "conv-net": "image",  # in_channels
        "sized-net": "image",  # image_size
        "both-net": "image",  # in_channels wins over in_features
        "plain-net": "any",  # neither
        "kw-net": "any",  # **kwargs says nothing about the inputs
    }
    assert api.get_entry("model", "said-any").input_kind == "any"  # declared wins
    assert api.get_entry("model", "gone-net").input_kind == "any"  # fails when built instead
    assert zoo.info("feat-net")["input_kind"] == "features"
    assert "digits" in zoo.info("feat-net")["datasets"]
    assert api.get_entry("model", "mlp").input_kind == "features"  # first-party: declared


def test_listing_shows_the_declared_input_kind_only(outside, run_zoo):
    import json

    result = run_zoo("list", "models", "--json", pythonpath=[outside])
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert "input_kind" not in rows["feat-net"] and rows["said-any"]["input_kind"] == "any"
    assert rows["mlp"]["input_kind"] == "features"


def test_a_features_model_fits_image_data_and_an_image_model_does_not_fit_features():
    get = api.get_entry
    mlp, tinyvgg, digits, circles = (
        get("model", "mlp"), get("model", "tinyvgg"), get("dataset", "digits"),
        get("dataset", "circles"),
    )  # fmt: skip
    assert contracts.incompatibility(mlp, digits) is None and contracts.flattens(mlp, digits)
    assert contracts.incompatibility(mlp, circles) is None and not contracts.flattens(mlp, circles)
    assert not contracts.flattens(tinyvgg, digits)
    reason = contracts.incompatibility(tinyvgg, circles)
    assert reason == "model 'tinyvgg' takes image inputs but dataset 'circles' gives features (2)"


# ---------------------------------------------------------------- the built model


def test_the_flatten_is_part_of_the_built_model_and_its_keys_are_the_inner_models():
    torch.manual_seed(0)
    model = zoo.create_model("mlp", dataset="digits")
    assert isinstance(model, FlattenInputs) and model.zoo_spec.flatten
    assert model.zoo_spec.kwargs["in_features"] == 64
    X, _ = _digits()
    with torch.inference_mode():
        out = model.eval()(X).double().numpy()
    np.testing.assert_allclose(out, _mlp_reference(model.state_dict(), X), rtol=1e-5, atol=1e-5)

    bare = zoo.create_model("mlp", in_features=64, num_classes=10)
    assert not isinstance(bare, FlattenInputs) and not bare.zoo_spec.flatten
    assert list(model.state_dict()) == list(bare.state_dict())  # same keys, same order
    bare.load_state_dict(model.state_dict())  # wrapped -> bare
    again = zoo.create_model("mlp", dataset="digits")
    again.load_state_dict(bare.state_dict())  # bare -> wrapped
    with torch.inference_mode():
        assert torch.equal(bare(X.reshape(len(X), -1)), model(X))
        assert torch.equal(again.eval()(X), model(X))

    outer = torch.nn.Sequential(model)  # inside another module (as under DDP): keys prefixed
    assert list(outer.state_dict()) == [f"0.{k}" for k in bare.state_dict()]
    other = torch.nn.Sequential(zoo.create_model("mlp", dataset="digits"))
    other.load_state_dict(outer.state_dict())
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), other[0]):
        with torch.inference_mode():
            assert torch.equal(clone.eval()(X), model(X))
    with pytest.raises(RuntimeError, match="Missing key"):
        again.load_state_dict({})


def test_flatten_can_be_forced_and_an_unregistered_dataset_gives_none():
    entry = api.get_entry("model", "mlp")
    kwargs = {"in_features": 64, "num_classes": 10}
    unflat = build_model(entry, kwargs, dataset="digits", flatten=False)
    assert not isinstance(unflat, FlattenInputs)
    assert isinstance(build_model(entry, kwargs, flatten=True), FlattenInputs)
    assert isinstance(build_model(entry, kwargs, dataset=api.get_entry("dataset", "digits")),
                      FlattenInputs)  # fmt: skip
    assert not isinstance(build_model(entry, kwargs, dataset="not-installed"), FlattenInputs)


def test_importing_zoo_models_does_not_import_torch():
    code = "import sys, zoo.models; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- train, export, load, predict


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """``zoo train -m mlp -d digits --epochs 1``, the issue's command."""
    out = tmp_path_factory.mktemp("runs") / "mlp-digits"
    result = CliRunner().invoke(
        cli, ["train", "-m", "mlp", "-d", "digits", "--epochs", "1", "--out", str(out), "-q",
              "--device", "cpu", "--seed", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_zoo_train_mlp_on_digits_records_the_flatten_and_its_metric_is_the_hand_computed_one(
    digits_run,
):
    meta = weights.read_metadata(digits_run / "model.safetensors")
    assert meta["flatten"] == "true" and meta["dataset"] == "digits"
    assert meta["kwargs"]["in_features"] == 64
    X, y = _digits()
    state = weights._read_tensors(digits_run / "model.safetensors")[0]
    want = accuracy_score(y.numpy(), _mlp_reference(state, X).argmax(1))
    assert meta["metrics"]["accuracy"] == pytest.approx(want, abs=1e-9)
    assert zoo.evaluate(digits_run)["accuracy"] == pytest.approx(want, abs=1e-9)


def test_load_and_predict_give_the_trained_models_outputs_on_images_and_on_flat_rows(digits_run):
    X, _ = _digits()
    loaded = zoo.load(digits_run / "model.safetensors")
    assert isinstance(loaded, FlattenInputs) and loaded.zoo_spec.flatten
    state = weights._read_tensors(digits_run / "model.safetensors")[0]
    reference = _mlp_reference(state, X)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(X).double().numpy(), reference, rtol=1e-5, atol=1e-5)
    labels = reference.argmax(1)
    flat = X.reshape(len(X), -1).numpy()  # digits as scikit-learn users know it: 64 features
    # X is load_dataset's (already transformed): transform=False
    assert np.array_equal(zoo.predict(digits_run, flat, transform=False).numpy(), labels)
    assert np.array_equal(zoo.predict(digits_run, X, transform=False).numpy(), labels)
    bare = zoo.create_model("mlp", in_features=64, num_classes=10)
    weights.load_weights(bare, digits_run / "model.safetensors")  # the keys fit the bare model
    with torch.inference_mode():
        assert torch.equal(bare(torch.from_numpy(flat)), loaded(X))


def test_onnx_export_of_the_flattening_model_takes_images(digits_run, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from zoo.weights.onnx_export import export_onnx

    X, _ = _digits()
    path = export_onnx(zoo.load(digits_run / "model.safetensors"), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": X.numpy()})[0]
    state = weights._read_tensors(digits_run / "model.safetensors")[0]
    np.testing.assert_allclose(got, _mlp_reference(state, X), rtol=1e-4, atol=1e-4)


def test_a_file_exported_before_the_flatten_loads_as_it_was_built(outside, tmp_path):
    entry = api.get_entry("model", "self-flat")
    kwargs = {"in_features": 64, "num_classes": 10}
    old = build_model(entry, kwargs, dataset="digits", flatten=False)  # as zoo 0.1 built it
    path = zoo.export(old, tmp_path / "old.safetensors")
    assert "flatten" not in weights.read_metadata(path)
    loaded = zoo.load(path)
    assert type(loaded).__name__ == "SelfFlat" and not loaded.zoo_spec.flatten
    X, _ = _digits()
    with torch.inference_mode():
        assert torch.equal(loaded(X), old.eval()(X))

    header = weights.read_header(path)
    tensors = {k: torch.zeros(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={**header["__metadata__"], "flatten": "yes"})
    with pytest.raises(WeightsError, match="metadata field 'flatten' must be 'true', not 'yes'"):
        zoo.load(path)


# ---------------------------------------------------------------- check and bench


def test_an_outside_model_without_input_kind_passes_zoo_check_on_image_data(outside):
    report = testing.check_model("feat-net", datasets=["digits"])
    assert report.status == "pass", [(r.check, r.status, r.detail) for r in report.results]
    checks = {r.check for r in report.results if r.status == "pass"}
    assert {"build", "forward", "train-step", "export-roundtrip"} <= checks
    result = CliRunner().invoke(cli, ["check", "feat-net", "--dataset", "digits"])
    assert result.exit_code == 0, result.output
    # with no dataset named, it is probed on every shape it fits, images included
    everywhere = testing.check_model("feat-net")
    assert everywhere.status == "pass"
    assert any(r.where.startswith("digits") for r in everywhere.results)


def test_zoo_bench_runs_mlp_on_digits():
    result = CliRunner().invoke(
        cli, ["bench", "--model", "mlp,linear,tinyvgg", "--dataset", "digits,circles",
              "--mode", "infer", "--threads", "1", "--device", "cpu", "--min-run-time", "0.02",
              "--warmup", "0", "--json", "-", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    pairs = {(r["model"], r["dataset"]) for r in data["rows"]}
    assert pairs == {
        ("mlp", "digits"), ("mlp", "circles"), ("linear", "digits"), ("linear", "circles"),
        ("tinyvgg", "digits"),
    }  # fmt: skip
    assert all(r["error"] is None for r in data["rows"])
    skipped = {(s["model"], s["dataset"]) for s in data["skipped"] if s.get("model")}
    assert skipped == {("tinyvgg", "circles")}
