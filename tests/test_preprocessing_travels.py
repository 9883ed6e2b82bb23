"""Preprocessing and labels travel with the weights (issue 12, item 4): shipped datasets declare
the transform they applied and their class names, export records them, ``zoo predict`` takes raw
inputs and prints class names; checked against scikit-learn's own split, scaler and accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn import datasets as skdata
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import zoo
from zoo.errors import WeightsError
from zoo.weights import read_metadata
from zoo.weights.preprocess import MAX_STATS, Transform

RAW = {  # name: (raw X, y) exactly as the shipped loader draws them, before its split
    "breast-cancer": lambda: skdata.load_breast_cancer(return_X_y=True),
    "iris": lambda: skdata.load_iris(return_X_y=True),
    "wine": lambda: skdata.load_wine(return_X_y=True),
    "diabetes": lambda: skdata.load_diabetes(return_X_y=True),
    "circles": lambda: skdata.make_circles(n_samples=1000, noise=0.03, factor=0.8, random_state=42),
    "digits": lambda: skdata.load_digits(return_X_y=True),
}
NAMES = {"breast-cancer": skdata.load_breast_cancer, "iris": skdata.load_iris,
         "wine": skdata.load_wine}  # fmt: skip


def _raw_split(name: str):
    X, y = RAW[name]()
    stratify = None if name == "diabetes" else y
    return train_test_split(X, y, test_size=0.2, random_state=42, stratify=stratify)


def _zoo(*args, home):
    env = {**os.environ, "ZOO_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


@pytest.mark.parametrize("name", sorted(RAW))
def test_the_declared_transform_is_sklearns_scaler_and_turns_raw_rows_into_load_dataset(name):
    X_train, X_test, _, _ = _raw_split(name)
    meta = zoo.info(name)
    transform = Transform.from_record(meta["transform"], meta.get("classes"))
    if name == "digits":  # one mean/std over all pixels of the train images: one channel
        assert meta["transform"]["standardise"] == "per channel"
        assert meta["transform"]["mean"] == pytest.approx([X_train.mean()], rel=1e-12)
        assert meta["transform"]["std"] == pytest.approx([X_train.std()], rel=1e-12)
        X_test = X_test.reshape(-1, 1, 8, 8)
    else:
        scaler = StandardScaler().fit(X_train)
        assert meta["transform"]["standardise"] == "per column"
        assert meta["transform"]["mean"] == pytest.approx(scaler.mean_.tolist(), rel=1e-12)
        assert meta["transform"]["std"] == pytest.approx(scaler.scale_.tolist(), rel=1e-12)
    want, _ = zoo.load_dataset(name, "test")
    torch.testing.assert_close(transform(X_test), want, rtol=0, atol=1e-5)
    if name in NAMES:
        assert meta["classes"] == NAMES[name]().target_names.tolist()


@pytest.fixture(scope="module")
def cancer_run(tmp_path_factory):
    """``zoo train --model mlp --dataset breast-cancer`` (1 epoch) and sklearn's raw test rows."""
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("runs") / "cancer"
    result = _zoo("train", "--model", "mlp", "--dataset", "breast-cancer", "--epochs", "1",
                  "--out", out, "--quiet", home=home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    _, X_test, _, y_test = _raw_split("breast-cancer")
    raw = out.parent / "raw.csv"
    header = ",".join(n.replace(" ", "_") for n in skdata.load_breast_cancer().feature_names)
    np.savetxt(raw, X_test, delimiter=",", header=header, comments="")
    return out, raw, X_test, y_test, home


def test_predict_on_raw_rows_prints_class_names_at_the_recorded_accuracy(cancer_run):
    run, raw, X_test, y_test, home = cancer_run
    recorded = json.loads((run / "run.json").read_text())["result"]["metrics"]["accuracy"]
    result = _zoo("predict", run, "--input", raw, home=home)
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert len(names) == len(y_test) and set(names) <= {"malignant", "benign"}
    labels = [["malignant", "benign"].index(n) for n in names]  # sklearn: 0 malignant, 1 benign
    assert accuracy_score(y_test, labels) == pytest.approx(recorded, abs=1e-12)

    proba = _zoo("predict", run, "--input", raw, "--proba", home=home)
    assert proba.returncode == 0, proba.stderr
    p = np.array([float(v) for v in proba.stdout.split()])
    assert p.shape == (len(y_test),) and ((p >= 0) & (p <= 1)).all()
    assert ((p > 0.5).astype(int) == labels).all()  # the positive class's probability


def test_the_file_the_loaded_model_and_a_re_export_carry_the_transform(cancer_run, tmp_path):
    run, _, X_test, _, home = cancer_run
    path = run / "model.safetensors"
    meta = read_metadata(path)
    assert meta["transform"] == zoo.info("breast-cancer")["transform"]
    assert meta["classes"] == ["malignant", "benign"]
    want, _ = zoo.load_dataset("breast-cancer", "test")
    model = zoo.load(path)
    assert model.zoo_spec.extra["preprocessing"]["transform"] == meta["transform"]
    for source in (path, run, model):
        transform = zoo.transforms(source)
        assert transform.recorded and transform.classes == ("malignant", "benign")
        torch.testing.assert_close(transform(X_test), want, rtol=0, atol=1e-5)
    assert transform.names(torch.tensor([1, 0])) == ["benign", "malignant"]
    # inputs as load_dataset returns them: --no-transform / transform=False
    labels = zoo.predict(path, X_test)
    assert torch.equal(zoo.predict(path, want, transform=False), labels)
    copy = tmp_path / "copy.safetensors"  # zoo export re-writes the file from the loaded model
    result = _zoo("export", path, "-o", copy, home=home)
    assert result.returncode == 0, result.stderr
    again = read_metadata(copy)
    assert (again["transform"], again["classes"]) == (meta["transform"], meta["classes"])


def test_multiclass_probabilities_sum_to_one_and_names_come_from_the_dataset(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("mlp", dataset="iris")
    path = zoo.export(model, tmp_path / "iris.safetensors")
    _, X_test, _, _ = _raw_split("iris")
    proba = zoo.predict(path, X_test, proba=True)
    assert proba.shape == (len(X_test), 3)
    torch.testing.assert_close(proba.sum(1), torch.ones(len(X_test)))
    labels = zoo.predict(path, X_test)
    assert torch.equal(proba.argmax(1), labels)
    assert zoo.transforms(model).classes == ("setosa", "versicolor", "virginica")


def _rewrite(src, dst, **changes):
    """``src`` with its metadata fields changed (``None`` drops one): a file zoo did not write."""
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for key, value in changes.items():
        meta.pop(key, None)
        if value is not None:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_an_older_file_predicts_as_before_with_a_one_line_warning(cancer_run, tmp_path):
    run, raw, X_raw, _, home = cancer_run
    old = _rewrite(run / "model.safetensors", tmp_path / "old.safetensors",
                   transform=None, classes=None)  # fmt: skip
    result = _zoo("predict", old, "--input", raw, home=home)
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.strip().splitlines()  # one line
    assert "records no input transform" in warning and "taken as already transformed" in warning
    same = zoo.predict(run, X_raw, transform=False)  # what it predicted before: no transform
    assert result.stdout.split() == [str(v) for v in same.tolist()]
    assert not zoo.transforms(old).recorded


def test_a_pretrained_entry_name_predicts_from_a_csv(tmp_path, run_zoo):
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    result = run_zoo("predict", "mlp.iris", "--input", str(tmp_path / "x.csv"), "--proba")
    assert result.returncode == 0, result.stderr
    rows = np.array([[float(v) for v in line.split(",")] for line in result.stdout.split()])
    assert rows.shape == (5, 3)
    np.testing.assert_allclose(rows.sum(1), 1, atol=1e-6)
    from zoo.api import resolve_weights

    transform = zoo.transforms("mlp.iris")  # the bundled file records iris's transform
    assert transform.recorded and transform.classes == ("setosa", "versicolor", "virginica")
    model = zoo.load(resolve_weights("mlp.iris"))
    with torch.inference_mode():
        want = model(transform(torch.tensor(X, dtype=torch.float32))).softmax(1).numpy()
    np.testing.assert_allclose(rows, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("transform", {"standardise": "per column", "mean": "x", "std": [1.0]}, "'mean' must be"),
        ("transform", {"standardise": "log", "mean": [0.0], "std": [1.0]}, "'standardise'"),
        ("transform", '{"standardise": "per column", "mean": [NaN], "std": [1.0]}', "finite"),
        ("transform", {"standardise": "per column", "mean": [0.0], "std": [0.0]}, "positive"),
        (
            "transform",
            {
                "standardise": "per column",
                "mean": [0.0] * (MAX_STATS + 1),
                "std": [1.0] * (MAX_STATS + 1),
            },
            "list of 1 to",
        ),  # fmt: skip
        ("classes", {"0": "a"}, "list of 2 to"),
        ("classes", ["a", "b" * 1000], "characters"),
    ],
)
def test_recorded_transforms_and_classes_are_checked_as_data(cancer_run, tmp_path, field, value,
                                                             why):  # fmt: skip
    bad = _rewrite(cancer_run[0] / "model.safetensors", tmp_path / "bad.safetensors",
                   **{field: value})  # fmt: skip
    with pytest.raises(WeightsError, match=why) as info:
        read_metadata(bad)
    assert f"metadata field {field!r}" in str(info.value) and "\n" not in str(info.value)
    if why == "finite":  # and through the command: exit 1, one line (one case: a process each)
        result = _zoo("predict", bad, "--input", cancer_run[1], home=cancer_run[4])
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1


def test_a_run_on_your_own_csv_carries_its_statistics_and_label_names(tmp_path):
    from click.testing import CliRunner

    from zoo.cli import cli

    rng = np.random.default_rng(0)
    X = rng.normal(50.0, 20.0, size=(120, 3))
    y = np.where(X[:, 0] > 50.0, "high", "low")
    rows = "".join(f"{a},{b},{c},{t}\n" for (a, b, c), t in zip(X, y, strict=True))
    (tmp_path / "own.csv").write_text("a,b,c,label\n" + rows)
    np.savetxt(tmp_path / "x.csv", X[:20], delimiter=",", header="a,b,c", comments="")
    run = tmp_path / "run"
    own = str(tmp_path / "own.csv")
    result = CliRunner().invoke(cli, ["train", "--model", "mlp", "--dataset", own, "--epochs", "1",
                                      "--out", str(run), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    recorded = json.loads((run / "run.json").read_text())["settings"]["data"]["preprocessing"]
    transform = zoo.transforms(run)
    assert transform.to_record() == recorded and transform.classes == ("high", "low")
    want = (X[:20] - np.array(recorded["mean"])) / np.array(recorded["std"])
    torch.testing.assert_close(transform(X[:20]), torch.tensor(want, dtype=torch.float32))
    result = CliRunner().invoke(cli, ["predict", str(run), "-i", str(tmp_path / "x.csv")])
    assert result.exit_code == 0, result.output
    labels = zoo.predict(run, X[:20])
    assert result.stdout.split() == transform.names(labels)


def test_probabilities_need_classification_and_exclude_raw(tmp_path):
    from click.testing import CliRunner

    from zoo.cli import cli
    from zoo.errors import UsageError

    path = zoo.export(zoo.create_model("mlp", dataset="diabetes"), tmp_path / "d.safetensors")
    _, X_test, _, _ = _raw_split("diabetes")
    with pytest.raises(UsageError, match="probabilities need a classification task"):
        zoo.predict(path, X_test, proba=True)
    np.savetxt(tmp_path / "x.csv", X_test[:3], delimiter=",")
    result = CliRunner().invoke(cli, ["predict", str(path), "-i", str(tmp_path / "x.csv"),
                                      "--raw", "--proba"])  # fmt: skip
    assert result.exit_code == 2 and "give one" in result.output
    with pytest.raises(UsageError, match="give one"):
        zoo.predict(path, X_test, raw=True, proba=True)
    assert zoo.predict(path, X_test).shape == (len(X_test),)  # values, as before
