"""Regression targets standardised by the dataset come back in their own units (issue 12, item
4): ``diabetes`` declares its target's mean/std, weights record it, ``zoo predict`` on
scikit-learn's raw rows returns disease progression as sklearn gives it; checked against the
linear model computed by hand from the file's tensors and sklearn's own split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, zoo_cli
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_diabetes
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

import zoo
from zoo.errors import UsageError, WeightsError
from zoo.weights import read_metadata
from zoo.weights.preprocess import Transform


@pytest.fixture(scope="module")
def split():
    """sklearn's raw diabetes rows, split as the shipped loader splits them."""
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=42)


def _by_hand(path, X, y_train, X_train):
    """The linear model of ``path`` on raw rows: standardise with sklearn's train statistics,
    ``x @ W.T + b``, then de-standardise with the train targets' mean/std (float64)."""
    tensors = {k: v.double().numpy() for k, v in load_file(str(path)).items()}
    weight, bias = tensors["linear.weight"], tensors["linear.bias"]
    z = (X - X_train.mean(axis=0)) / X_train.std(axis=0)
    return (z @ weight.T + bias)[:, 0] * y_train.std() + y_train.mean()


def test_the_declared_target_transform_is_the_train_targets_mean_and_std(split):
    _, _, y_train, y_test = split
    record = zoo.info("diabetes")["target_transform"]
    assert record["standardise"] == "per column"
    assert record["mean"] == pytest.approx([y_train.mean()], rel=1e-12)
    assert record["std"] == pytest.approx([y_train.std()], rel=1e-12)
    _, y = zoo.load_dataset("diabetes", "test")  # standardised targets
    back = Transform.from_record(target_transform=record).inverse_target(y)
    np.testing.assert_allclose(back.numpy(), y_test, rtol=0, atol=1e-3)


def test_bundled_linear_diabetes_predicts_raw_rows_in_the_targets_units(split, tmp_path):
    X_train, X_test, y_train, y_test = split
    path = zoo.api.resolve_weights("linear.diabetes")
    assert read_metadata(path)["target_transform"]["mean"] == pytest.approx([y_train.mean()])
    want = _by_hand(path, X_test, y_train, X_train)
    got = zoo.predict("linear.diabetes", X_test)
    assert got.shape == (len(X_test),)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-3)
    published = zoo.info("linear.diabetes")["metrics"]
    assert r2_score(y_test, got.numpy()) == pytest.approx(published["r2"], abs=1e-6)
    assert zoo.evaluate("linear.diabetes") == pytest.approx(published, rel=1e-6)  # as published
    # the CLI prints the same values, one a line
    np.savetxt(tmp_path / "x.csv", X_test[:5], delimiter=",")
    result = zoo_cli("predict", "linear.diabetes", "-i", tmp_path / "x.csv")
    assert result.exit_code == 0, result.output
    printed = np.array([float(v) for v in result.stdout.split()])
    np.testing.assert_allclose(printed, want[:5], rtol=1e-4)


def test_raw_outputs_and_transformed_inputs_stay_in_the_models_units(split):
    X_train, X_test, y_train, _ = split
    X_std, _ = zoo.load_dataset("diabetes", "test")
    standardised = (_by_hand(zoo.api.resolve_weights("linear.diabetes"), X_test, y_train, X_train)
                    - y_train.mean()) / y_train.std()  # fmt: skip
    raw = zoo.predict("linear.diabetes", X_test, raw=True)
    np.testing.assert_allclose(raw.reshape(-1).numpy(), standardised, atol=1e-4)
    same = zoo.predict("linear.diabetes", X_std, transform=False)
    np.testing.assert_allclose(same.numpy(), standardised, atol=1e-4)


def test_a_file_without_the_target_record_warns_and_exporting_it_again_records_it(
    split, tmp_path, caplog
):
    X_train, X_test, y_train, _ = split
    model = zoo.create_model("linear", dataset="diabetes")
    path = zoo.export(model, tmp_path / "new.safetensors")
    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata())
    del meta["target_transform"]  # as zoo wrote it before recording the target's transform
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata=meta)
    values = zoo.predict(old, X_test)
    assert "records no target transform" in caplog.text
    z = _by_hand(old, X_test, y_train, X_train)
    np.testing.assert_allclose(values.numpy(), (z - y_train.mean()) / y_train.std(), atol=1e-4)
    again = tmp_path / "again.safetensors"
    assert zoo_cli("export", old, "-o", again).exit_code == 0
    assert read_metadata(again)["target_transform"] == json.loads(
        json.dumps(zoo.info("diabetes")["target_transform"])
    )
    np.testing.assert_allclose(zoo.predict(again, X_test).numpy(), z, atol=1e-3)


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"standardise": "per channel", "mean": [1.0], "std": [2.0]}, "must be 'per column'"),
        ({"standardise": "per column", "mean": [1.0], "std": [0.0]}, "'std' must be positive"),
        ([1, 2], "must be an object"),
    ],
)
def test_a_malformed_target_record_is_refused_in_one_line(tmp_path, record, why):
    path = zoo.export(zoo.create_model("linear", dataset="diabetes"), tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata())
    meta["target_transform"] = json.dumps(record)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata=meta)
    with pytest.raises(WeightsError) as error:
        read_metadata(bad)
    assert "metadata field 'target_transform'" in str(error.value) and why in str(error.value)
    np.savetxt(tmp_path / "x.csv", np.zeros((2, 10)), delimiter=",")
    assert why in one_line_error(zoo_cli("predict", bad, "-i", tmp_path / "x.csv"), 1)


def test_outputs_that_do_not_fit_the_target_record_are_a_usage_error():
    two = Transform(target_mean=(1.0, 2.0), target_std=(1.0, 1.0))
    torch.testing.assert_close(two.inverse_target(torch.ones(3, 2)), torch.tensor([[2.0, 3.0]] * 3))
    with pytest.raises(UsageError, match="do not fit the recorded target transform of 2 outputs"):
        two.inverse_target(torch.ones(3))
