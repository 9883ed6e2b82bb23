"""ONNX export carries the recorded transform (issue 12, item 4): by default the graph is the
model alone, taking standardised inputs, with the transform in its metadata; with
``--include-transform`` it takes raw inputs. Checked in ONNX Runtime on scikit-learn's raw rows
against sklearn's own scaler and the torch model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, zoo_cli
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import zoo
from zoo.weights.onnx_export import read_onnx_metadata

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ATOL, RTOL = 1e-4, 1e-5  # float32 graph vs torch: outputs agree within ATOL + RTOL * |output|


def _run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.asarray(X, dtype=np.float32)})[0]


def _export(tmp_path, entry, *flags):
    out = tmp_path / f"{entry}{'-baked' if flags else ''}.onnx"
    result = zoo_cli("export", entry, "-o", out, *flags)
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def cancer():
    """sklearn's raw breast-cancer rows, split as the shipped loader splits them."""
    X, y = skdata.load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)


def test_default_export_takes_standardised_inputs_and_carries_the_transform(tmp_path, cancer):
    X_train, X_test, _, _ = cancer
    path, _ = _export(tmp_path, "mlp.breast-cancer")
    meta = read_onnx_metadata(path)
    assert meta["zoo.inputs"] == "transformed"
    assert meta["zoo.model"] == "workflow/mlp" and meta["zoo.dataset"] == "breast-cancer"
    assert json.loads(meta["zoo.transform"]) == zoo.info("breast-cancer")["transform"]
    assert json.loads(meta["zoo.classes"]) == ["malignant", "benign"]
    assert "zoo.target_transform" not in meta
    scaled = StandardScaler().fit(X_train).transform(X_test)  # an independent standardisation
    model = zoo.load(zoo.api.resolve_weights("mlp.breast-cancer"))
    with torch.inference_mode():
        want = model(torch.as_tensor(scaled, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(_run(path, scaled), want, atol=ATOL, rtol=RTOL)


def test_include_transform_takes_raw_rows(tmp_path, cancer):
    X_train, X_test, _, y_test = cancer
    path, _ = _export(tmp_path, "mlp.breast-cancer", "--include-transform")
    meta = read_onnx_metadata(path)
    assert meta["zoo.inputs"] == "raw"
    assert json.loads(meta["zoo.transform"]) == zoo.info("breast-cancer")["transform"]
    got = _run(path, X_test)
    np.testing.assert_allclose(
        got, zoo.predict("mlp.breast-cancer", X_test, raw=True).numpy(), atol=ATOL, rtol=RTOL
    )
    model = zoo.load(zoo.api.resolve_weights("mlp.breast-cancer"))
    with torch.inference_mode():
        scaled = StandardScaler().fit(X_train).transform(X_test)
        want = model(torch.as_tensor(scaled, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    accuracy = float(((got[:, 0] > 0) == y_test).mean())  # one logit: benign when positive
    assert accuracy == pytest.approx(zoo.info("mlp.breast-cancer")["metrics"]["accuracy"])


def test_a_baked_regression_graph_returns_the_targets_units(tmp_path):
    X, y = skdata.load_diabetes(return_X_y=True)
    path, _ = _export(tmp_path, "linear.diabetes", "--include-transform")
    meta = read_onnx_metadata(path)
    assert json.loads(meta["zoo.target_transform"]) == zoo.info("diabetes")["target_transform"]
    got = _run(path, X[:50])[:, 0]
    np.testing.assert_allclose(got, zoo.predict("linear.diabetes", X[:50]).numpy(), rtol=RTOL)
    assert 20 < got.mean() < 350  # disease progression, as sklearn's y (25 to 346)


def test_images_bake_only_the_normalisation_and_say_so(tmp_path, caplog):
    X, _ = skdata.load_digits(return_X_y=True)
    images = X[:40].reshape(-1, 1, 8, 8)
    path, _ = _export(tmp_path, "tinyvgg.digits", "--include-transform")
    assert "images must already be 1x8x8" in caplog.text
    assert "resize and crop images to 1x8x8" in read_onnx_metadata(path)["zoo.note"]
    np.testing.assert_allclose(
        _run(path, images), zoo.predict("tinyvgg.digits", images, raw=True).numpy(),
        atol=ATOL, rtol=RTOL,
    )  # fmt: skip


def test_include_transform_refusals_are_one_line(tmp_path):
    assert "only applies to --format onnx" in one_line_error(
        zoo_cli("export", "mlp.circles", "-o", tmp_path / "m.safetensors", "--include-transform")
    )
    bare = zoo.export(zoo.create_model("mlp", in_features=3, num_classes=2), tmp_path / "b.st")
    error = one_line_error(
        zoo_cli(
            "export", bare, "-o", tmp_path / "b.onnx", "--input-shape", "3", "--include-transform"
        )  # fmt: skip
    )
    assert "records no input transform to bake" in error
    assert not (tmp_path / "b.onnx").exists()
