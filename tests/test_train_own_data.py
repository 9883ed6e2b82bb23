"""Training on your own data without a plugin: CSV, .npz, .npy + labels, an image folder,
(X, y) arrays and a torch Dataset; the splits, the recorded statistics, evaluate, resume and
one-line errors for bad data. Checked against sklearn on the same split."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, zoo_cli
from PIL import Image
from safetensors.torch import load_file
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score

import zoo
from zoo.errors import UsageError
from zoo.runtime import owndata
from zoo.train.trainer import Trainer

NAMES = np.array(["benign", "malignant"])


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory):
    """Breast cancer with text labels in the *first* column (so --target is needed)."""
    X, y = load_breast_cancer(return_X_y=True)
    header = ["diagnosis", *[f"f{i}" for i in range(X.shape[1])]]
    path = tmp_path_factory.mktemp("csv") / "cancer.csv"
    return (
        write_csv(path, header, [[NAMES[label], *row] for row, label in zip(X, y, strict=True)]),
        X,
        y,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An ImageFolder of small PNGs: three classes told apart by their dominant colour."""
    root = tmp_path_factory.mktemp("img") / "shapes"
    rng = np.random.default_rng(0)
    for k, name in enumerate(["blue", "green", "red"][::-1]):
        (root / name).mkdir(parents=True)
        for i in range(10):
            a = rng.integers(0, 60, (12, 10, 3), dtype=np.uint8)
            a[..., k] += 150
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


def test_csv_with_text_labels_trains_binary_and_matches_sklearn(cancer_csv, run_zoo, tmp_path):
    path, X, y = cancer_csv
    out = tmp_path / "run"
    r = run_zoo("train", "-m", "linear", "-d", path, "--target", "diagnosis", "--epochs", "30",
                "--lr", "0.01", "--device", "cpu", "--out", out, "--quiet", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)["metrics"]
    info = json.loads((out / "run.json").read_text())
    data = info["settings"]["data"]
    assert info["settings"]["task"] == "binary" and info["settings"]["target"] == "diagnosis"
    assert data["classes"] == ["benign", "malignant"] and data["source"] == str(path)
    assert data["split"]["sizes"] == {"train": 456, "test": 113}  # 20% of each class
    assert "dataset" not in info["settings"]["entries"]
    weights = zoo.weights.read_metadata(out / "model.safetensors")
    assert weights["extra"]["train"]["data"]["preprocessing"] == data["preprocessing"]

    # the same split in Python: rows of the file, disjoint, statistics from train only
    trainer = Trainer("linear", str(path), target="diagnosis", epochs=30, lr=0.01, quiet=True)
    (Xtr, ytr), (Xte, yte) = trainer._local.load("train"), trainer._local.load("test")
    mean, std = (np.array(data["preprocessing"][k]) for k in ("mean", "std"))
    raw_train = Xtr.double().numpy() * std + mean
    raw_test = Xte.double().numpy() * std + mean
    np.testing.assert_allclose(raw_train.mean(0), mean, rtol=1e-5)
    assert not np.allclose(X.mean(0), mean, rtol=1e-3)  # not the whole file's
    seen = np.vstack([raw_train, raw_test])
    gaps = np.abs((seen[:, None, :] - X[None, :, :]) / std).max(axis=2)
    assert gaps.min(axis=1).max() < 1e-4  # every row is a row of the file
    assert sorted(gaps.argmin(axis=1)) == list(range(len(X)))  # each exactly once
    assert ytr.dtype == torch.float32 and yte.mean().item() == pytest.approx(y.mean(), abs=0.02)

    # an independent reference on the same split
    ref = LogisticRegression(max_iter=2000).fit(Xtr.numpy(), ytr.numpy())
    assert metrics["accuracy"] == pytest.approx(ref.score(Xte.numpy(), yte.numpy()), abs=0.04)

    # evaluate: the file must be given again; then the recorded split and statistics
    line = one_line_error(zoo_cli("evaluate", out))
    assert "does not record its dataset" in line
    again = zoo_cli("evaluate", out, "--dataset", path, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])

    # resume: never re-reads the file by itself
    line = one_line_error(zoo_cli("train", "--resume", out, "--epochs", "31"))
    assert "give it again to resume (--dataset PATH)" in line


def test_npz_float_labels_are_a_regression_close_to_least_squares(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=300)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    trainer = Trainer("linear", str(tmp_path / "d.npz"), epochs=40, lr=0.05, quiet=True)
    result = trainer.fit()
    assert trainer.task == "regression" and trainer.settings()["data"]["classes"] is None
    (Xtr, ytr), (Xte, yte) = trainer._local.load("train"), trainer._local.load("test")
    ref = LinearRegression().fit(Xtr.numpy(), ytr.numpy())
    assert result.metrics["r2"] == pytest.approx(r2_score(yte, ref.predict(Xte.numpy())), abs=0.02)


def test_npy_with_labels_infers_multiclass_and_task_overrides(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    y = np.digitize(X[:, 0], [-0.5, 0.5]) + 5  # 5, 6, 7: not indices, encoded in order
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    t = Trainer("mlp", str(tmp_path / "X.npy"), labels=str(tmp_path / "y.npy"), quiet=True)
    assert t.task == "multiclass" and t.settings()["data"]["classes"] == ["5", "6", "7"]
    assert set(t._local.load("train")[1].tolist()) == {0, 1, 2}
    t = Trainer("mlp", str(tmp_path / "X.npy"), labels=str(tmp_path / "y.npy"),
                task="regression", quiet=True)  # fmt: skip
    assert t.task == "regression" and t.loss == "mse"
    line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", tmp_path / "X.npy"))
    assert "give the labels with --labels y.npy" in line


def test_arrays_and_a_torch_dataset_from_python():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    result = zoo.Trainer("linear", (X, y), epochs=15, lr=0.05, quiet=True).fit()
    assert result.metrics["accuracy"] > 0.85
    result = zoo.Trainer("linear", (torch.tensor(X), torch.tensor(y)), epochs=15, lr=0.05,
                         quiet=True).fit()  # fmt: skip
    assert result.metrics["accuracy"] > 0.85
    ds = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
    trainer = zoo.Trainer("linear", dataset=ds, epochs=15, lr=0.05, quiet=True)
    assert trainer.task == "binary" and trainer.settings()["data"]["split"]["sizes"] == {
        "train": 160, "test": 40,
    }  # fmt: skip
    assert trainer.fit().metrics["accuracy"] > 0.85


def test_image_folder_trains_and_records_its_classes(images, run_zoo, tmp_path):
    out = tmp_path / "run"
    r = run_zoo("train", "-m", "mlp", "-d", images, "--image-size", "8", "--epochs", "8",
                "--device", "cpu", "--out", out, "--quiet", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "run.json").read_text())["settings"]["data"]
    assert data["classes"] == ["blue", "green", "red"] and data["input_shape"] == [3, 8, 8]
    assert data["preprocessing"]["standardise"] == "per channel"
    assert json.loads(r.stdout)["metrics"]["accuracy"] == 1.0
    again = zoo_cli("evaluate", out, "--dataset", images, "--json")
    assert json.loads(again.stdout)["metrics"]["accuracy"] == 1.0


def test_the_split_is_seeded_and_stratified(images):
    data = owndata.read_data(images, image_size=4)
    a, _ = owndata.split_data(data, test_fraction=0.2, val_fraction=0.2, seed=0)
    b, _ = owndata.split_data(data, test_fraction=0.2, val_fraction=0.2, seed=0)
    c, _ = owndata.split_data(data, test_fraction=0.2, val_fraction=0.2, seed=1)
    assert all(torch.equal(a[k][0], b[k][0]) for k in a)
    assert not torch.equal(a["test"][0], c["test"][0])
    assert sorted(a["test"][1].tolist()) == [0, 0, 1, 1, 2, 2]  # two of each class's ten
    assert len(a["val"][1]) == 6 and len(a["train"][1]) == 18


@pytest.mark.parametrize(
    "rows, args, expected",
    [
        ([["1", "2", "a"], ["3", "4", "b"]], ["--target", "label"], "no column 'label'"),
        ([["1", "x", "a"], ["3", "4", "b"]], [], "column 'g', row 2: 'x' is not a number"),
        ([["1", "2", "a"], ["3", "", "b"]], [], "column 'g', row 3: missing value"),
        ([["1", "2", "0"], ["3", "4", "b"]], [], "column 'y', row 3: 'b' mixes types"),
        ([["1", "2", "0"], ["3", "4", "nan"]], [], "column 'y', row 3: missing label"),
    ],
)
def test_bad_csv_is_one_line_naming_column_and_row(tmp_path, rows, args, expected):
    path = write_csv(tmp_path / "bad.csv", ["f", "g", "y"], rows * 3)
    line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", path, *args))
    assert str(path) in line and expected in line


def test_bad_image_folders_name_the_file(tmp_path):
    one = tmp_path / "one"
    (one / "cats").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(one / "cats" / "a.png")
    line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", one))
    assert f"{one}: an image folder needs a sub-folder per class" in line
    (one / "dogs").mkdir()
    (one / "dogs" / "b.png").write_bytes(b"not a png at all")
    line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", one))
    assert f"{one / 'dogs' / 'b.png'}: not a readable image" in line


def test_usage_errors_before_any_reading(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "y"], [[i, i % 2] for i in range(10)])
    for flags, expected in [
        (["--test-fraction", "1.5"], "test fraction must be between 0 and 1"),
        (["--val-fraction", "0.9"], "val fraction"),
        (["--task", "ranking"], "unknown task 'ranking'"),
    ]:
        line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", path, *flags))
        assert expected in line
    line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", "iris", "--target", "y"))
    assert "--target and --labels go with a data file" in line


def test_many_integer_labels_need_a_task():
    y = np.arange(owndata.MAX_CLASSES + 1)
    with pytest.raises(UsageError, match=r"1001 distinct labels .*give --task multiclass"):
        owndata.from_arrays(np.zeros((len(y), 1)), y)
    assert owndata.from_arrays(np.zeros((len(y), 1)), y, task="regression").task == "regression"


# -- validation: a val split drives the epochs, the test split is scored once -------------------


@pytest.fixture(scope="module")
def blobs_npz(tmp_path_factory):
    rng = np.random.default_rng(4)
    centers = np.array([[0, 0], [2, 2], [0, 3]])
    y = rng.integers(0, 3, 300)
    X = centers[y] + rng.normal(scale=0.9, size=(300, 2))
    path = tmp_path_factory.mktemp("npz") / "blobs.npz"
    np.savez(path, X=X, y=y)
    return path


def test_a_val_split_is_watched_and_the_test_split_scored_once(blobs_npz, tmp_path):
    out = tmp_path / "run"
    result = Trainer("mlp", str(blobs_npz), val_fraction=0.2, epochs=6, lr=0.02, save_best=True,
                     out=out, quiet=True).fit()  # fmt: skip
    history = result.history
    assert all("val_loss" in row and "test_loss" not in row for row in history)
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"]) + 1
    assert result.best_epoch == best
    info = json.loads((out / "run.json").read_text())
    assert info["result"]["monitor"] == "val_loss"
    assert info["result"]["metrics_from"] == f"test split, after training, best epoch {best}"
    assert info["dataset"]["val_size"] == 60
    # model.safetensors holds the best epoch's weights, last.safetensors the last's
    on_val = {
        name: zoo.evaluate(out / name, dataset=str(blobs_npz), split="val")["loss"]
        for name in ("model.safetensors", "last.safetensors")
    }
    assert on_val["model.safetensors"] == pytest.approx(history[best - 1]["val_loss"], rel=1e-5)
    assert on_val["last.safetensors"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)
    test = zoo.evaluate(out / "model.safetensors", dataset=str(blobs_npz), split="test")
    assert test == pytest.approx(result.metrics, rel=1e-5)


def test_save_best_resumes_exactly(blobs_npz, tmp_path):
    settings = dict(val_fraction=0.2, lr=0.05, save_best=True, quiet=True, patience=10)
    whole = Trainer("mlp", str(blobs_npz), epochs=4, out=tmp_path / "a", **settings).fit()
    Trainer("mlp", str(blobs_npz), epochs=2, out=tmp_path / "b", **settings).fit()
    line = one_line_error(zoo_cli("train", "--resume", tmp_path / "b", "--epochs", "4"))
    assert "give it again to resume" in line
    resumed = Trainer.resumed(tmp_path / "b", epochs=4, dataset=str(blobs_npz)).fit()

    def untimed(history):
        return [{k: v for k, v in r.items() if "seconds" not in k and "_s" not in k}
                for r in history]  # fmt: skip

    assert untimed(resumed.history) == untimed(whole.history)
    assert resumed.best_epoch == whole.best_epoch and resumed.metrics == whole.metrics
    for name in ("model.safetensors", "last.safetensors"):
        a = load_file(str(tmp_path / "a" / name))
        b = load_file(str(tmp_path / "b" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_patience_without_a_val_split_warns_once_that_it_watches_test(blobs_npz, tmp_path):
    r = zoo_cli("train", "-m", "mlp", "-d", blobs_npz, "--epochs", "2", "--patience", "1",
                "--out", tmp_path / "r", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stderr.count("watches the test split") == 1
    r = zoo_cli("train", "-m", "mlp", "-d", blobs_npz, "--epochs", "2", "--patience", "1",
                "--val-fraction", "0.2", "--out", tmp_path / "v", "--quiet")  # fmt: skip
    assert r.exit_code == 0 and "watches the test split" not in r.stderr
    line = one_line_error(zoo_cli("train", "-m", "mlp", "-d", blobs_npz, "--monitor",
                                  "test_loss", "--val-fraction", "0.2"))  # fmt: skip
    assert "use one of val_loss" in line


def test_a_registered_dataset_that_declares_a_val_split_is_watched(make_plugin):
    make_plugin(
        "val-zoo",
        {
            "val_zoo/__init__.py": """
                import zoo

                @zoo.hookimpl
                def register_datasets(register):
                    register("three-way", "val_zoo.sets:load", task="binary", input_shape=(2,),
                             num_classes=2, splits=["train", "val", "test"])
            """,
            "val_zoo/sets.py": """
                import torch

                def load(split):
                    n = {"train": 64, "val": 32, "test": 16}[split]
                    g = torch.Generator().manual_seed(len(split))
                    X = torch.randn(n, 2, generator=g)
                    return X, (X[:, 0] > 0).long()
            """,
        },
        entry_points={"val": "val_zoo"},
    )
    trainer = Trainer("linear", "three-way", epochs=2, patience=3, quiet=True)
    result = trainer.fit()
    assert trainer.monitor == "val_loss" and "val_loss" in result.history[-1]
    assert "test_loss" not in result.history[-1]
    assert result.metrics == pytest.approx(trainer.evaluate("test"))
    assert result.extra["metrics_from"] == "test split, after training"
