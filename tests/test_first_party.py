"""Every first-party model, loss and dataset honours its declared contract."""

from __future__ import annotations

import struct

import pytest
import torch

import zoo
from zoo import tasks
from zoo.api import get_entry
from zoo.errors import UsageError, ZooError
from zoo.registry.plugins import get_registry

OFFLINE_DATASETS = [
    "line", "circles", "moons", "blobs", "spirals",
    "diabetes", "breast-cancer", "iris", "wine", "digits",
]  # fmt: skip
FIRST_PARTY_MODELS = ["linear-regression", "linear", "mlp", "fashion-v0", "fashion-v1", "tinyvgg"]


def test_every_first_party_entry_is_listed_with_its_plugin():
    listing = {(e.kind, e.name): e.plugin for e in _all_entries()}
    for name in FIRST_PARTY_MODELS:
        assert ("model", name) in listing
    for name in ["l1", "mse", "huber", "bce-with-logits", "bce", "cross-entropy", "nll"]:
        assert listing[("loss", name)] == "losses"
    for name in [*OFFLINE_DATASETS, "fashion-mnist", "mnist", "cifar10"]:
        assert ("dataset", name) in listing
    assert listing[("model", "tinyvgg")] == "vision"
    assert listing[("model", "resnet50")] == "torchvision"


def _all_entries():
    reg = get_registry()
    return [e for kind in ("model", "loss", "dataset") for e in reg.entries(kind)]


@pytest.mark.parametrize("name", OFFLINE_DATASETS)
def test_dataset_splits_have_declared_shapes_and_are_deterministic(name):
    entry = get_entry("dataset", name)
    task = entry.tasks[0]
    sizes = []
    for split in ("train", "test"):
        X, y = zoo.load_dataset(name, split)
        assert X.dtype == torch.float32
        assert tuple(X.shape[1:]) == entry.meta["input_shape"]
        assert y.shape == (len(X),)
        assert y.dtype == (torch.int64 if task == "multiclass" else torch.float32)
        if task != "regression":
            assert set(y.unique().tolist()) == set(range(entry.meta["num_classes"]))
        again = zoo.load_dataset(name, split)
        assert torch.equal(X, again[0]) and torch.equal(y, again[1])
        sizes.append(len(X))
    assert sizes[0] > sizes[1] > 0


def test_features_are_standardised_with_train_statistics_only():
    X_train, _ = zoo.load_dataset("wine", "train")
    X_test, _ = zoo.load_dataset("wine", "test")
    assert torch.allclose(X_train.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(X_train.std(0, unbiased=False), torch.ones(13), atol=1e-4)
    assert not torch.allclose(X_test.mean(0), torch.zeros(13), atol=1e-3)


def test_every_first_party_dataset_says_how_its_inputs_were_preprocessed():
    for entry in get_registry().entries("dataset"):
        assert entry.meta.get("preprocessing"), entry.name
    assert "standardised" in zoo.info("wine")["preprocessing"]


def test_line_is_the_workflow_straight_line():
    X, y = zoo.load_dataset("line", "train")
    assert X.shape == (40, 1)
    assert torch.allclose(y, 0.7 * X[:, 0] + 0.3)
    X_test, _ = zoo.load_dataset("line", "test")
    assert X_test.shape == (10, 1) and X_test.min() > X.max()


def _compatible_pairs():
    reg = get_registry()
    pairs = []
    for model in FIRST_PARTY_MODELS:
        for dataset in OFFLINE_DATASETS:
            if tasks.incompatibility(reg.get("model", model), reg.get("dataset", dataset)) is None:
                pairs.append((model, dataset))
    return pairs


@pytest.mark.parametrize("model_name, dataset", _compatible_pairs())
def test_model_forward_on_each_compatible_dataset(model_name, dataset):
    torch.manual_seed(0)
    model = zoo.create_model(model_name, dataset=dataset)
    X, y = zoo.load_dataset(dataset, "test")
    out = model(X[:8])
    ds = get_entry("dataset", dataset)
    assert out.shape == (min(8, len(X)), tasks.output_size(ds))
    assert model.zoo_spec.model == model_name and model.zoo_spec.dataset == dataset


def test_every_model_has_at_least_one_compatible_shipped_dataset():
    covered = {m for m, _ in _compatible_pairs()}
    assert covered == set(FIRST_PARTY_MODELS)


@pytest.mark.parametrize(
    "loss, task",
    [
        ("l1", "regression"), ("mse", "regression"), ("huber", "regression"),
        ("bce-with-logits", "binary"), ("bce", "binary"),
        ("cross-entropy", "multiclass"), ("nll", "multiclass"),
    ],
)  # fmt: skip
def test_every_loss_runs_on_a_matching_model_output(loss, task):
    dataset = {"regression": "diabetes", "binary": "breast-cancer", "multiclass": "iris"}[task]
    model = zoo.create_model("mlp", dataset=dataset)
    X, y = zoo.load_dataset(dataset, "train")
    entry = get_entry("loss", loss)
    out = tasks.align(task, model(X), y)
    value = zoo.create_loss(loss)(
        tasks.to_loss_input(entry.meta.get("expects", "logits"), task, out), y
    )
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_both_binary_cross_entropies_agree_on_the_same_logit_model():
    model = zoo.create_model("mlp", dataset="circles")
    X, y = zoo.load_dataset("circles", "train")
    logits = tasks.align("binary", model(X), y)
    with_logits = zoo.create_loss("bce-with-logits")(logits, y)
    probs = tasks.to_loss_input(get_entry("loss", "bce").meta["expects"], "binary", logits)
    plain = zoo.create_loss("bce")(probs, y)
    assert torch.allclose(with_logits, plain, atol=1e-5)


def test_cross_entropy_takes_label_smoothing():
    assert zoo.create_loss("cross-entropy", label_smoothing=0.1).label_smoothing == 0.1
    with pytest.raises(UsageError, match="loss 'mse'"):
        zoo.create_loss("mse", no_such_option=1)


def test_linear_regression_keeps_the_workflow_parameters():
    model = zoo.create_model("linear-regression", dataset="line")
    assert [n for n, _ in model.named_parameters()] == ["weight", "bias"]
    with torch.no_grad():
        model.weight.fill_(0.7)
        model.bias.fill_(0.3)
    X, y = zoo.load_dataset("line", "test")
    assert torch.allclose(model(X)[:, 0], y)


def test_tinyvgg_adapts_to_channels_size_and_classes():
    model = zoo.create_model("tinyvgg", in_channels=3, image_size=[32, 24], num_classes=5)
    assert model(torch.randn(2, 3, 32, 24)).shape == (2, 5)


def test_torchvision_names_match_upstream_and_build():
    from torchvision import models

    upstream = set(models.list_models(module=models))
    mine = [e for e in get_registry().entries("model") if e.plugin == "torchvision"]
    assert len(mine) >= 6
    for entry in mine:
        assert entry.meta["upstream"].rsplit(".", 1)[-1] in upstream
        assert entry.name == entry.meta["upstream"].rsplit(".", 1)[-1].replace("_", "-")
    for required in ["resnet18", "resnet50", "mobilenet-v3-small", "efficientnet-b0", "vit-b-16",
                     "convnext-tiny"]:  # fmt: skip
        assert required in zoo.list_models()
    model = zoo.create_model("mobilenet_v3_small", num_classes=7)  # upstream spelling works
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    vit = zoo.create_model("vit-b-16", num_classes=3, image_size=[32, 32]).eval()
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_torchvision_models_take_grey_images():
    # the builder adapts the first conv to in_channels (issue 12: fine-tuning onto digits)
    model = zoo.create_model("resnet18", dataset="digits").eval()
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_torchvision_models_declare_torchvisions_smallest_image_and_refuse_smaller():
    from torchvision.models import get_model_weights
    from zoo_torchvision import ARCHITECTURES

    from zoo.errors import IncompatibleError
    from zoo.registry.plugins import get_registry
    from zoo.tasks.contracts import check_compatible

    reg = get_registry()
    digits = reg.get("dataset", "digits")  # 1x8x8
    for upstream, *_, smallest in ARCHITECTURES:
        entry = reg.get("model", upstream.replace("_", "-"))
        assert entry.meta["min_image_size"] == smallest
        torchvision_min = get_model_weights(upstream).DEFAULT.meta["min_size"][0]
        # torchvision's own figure, except ViT: any multiple of 16 through ``image_size``
        assert smallest == (16 if upstream == "vit_b_16" else torchvision_min)
        if smallest > 8:
            with pytest.raises(IncompatibleError, match=f"at least {smallest}x{smallest} but "
                               "dataset 'digits' has 8x8"):  # fmt: skip
                check_compatible(entry, digits)
        else:
            check_compatible(entry, digits)
    vit = reg.get("model", "vit-b-16")
    with pytest.raises(IncompatibleError, match="multiples of 16 but dataset 'fashion-mnist' has"):
        check_compatible(vit, reg.get("dataset", "fashion-mnist"))
    check_compatible(vit, reg.get("dataset", "cifar10"))  # 32x32


def _write_idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype("uint8").tobytes())


@pytest.mark.parametrize("name, folder", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_idx_datasets_read_a_local_root_in_the_real_format(tmp_path, monkeypatch, name, folder):
    import numpy as np

    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), 2049)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    X, y = zoo.load_dataset(name, "train")
    assert X.shape == (12, 1, 28, 28) and X.dtype == torch.float32
    assert X.min() >= 0.0 and X.max() <= 1.0 and y.dtype == torch.int64
    X_test, _ = zoo.load_dataset(name, "test", root=str(tmp_path))
    assert X_test.shape == (5, 1, 28, 28)
    model = zoo.create_model("tinyvgg", dataset=name)
    assert model(X[:2]).shape == (2, 10)


def test_cifar10_reads_the_binary_batches_without_pickle(tmp_path):
    import numpy as np

    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = rng.integers(0, 256, (3, 3073)).astype("uint8")
        records[:, 0] %= 10
        (folder / name).write_bytes(records.tobytes())
    train = zoo.load_dataset("cifar10", "train", root=str(tmp_path))
    assert len(train) == 15
    image, label = train[4]
    raw = np.fromfile(folder / "data_batch_2.bin", dtype="uint8").reshape(-1, 3073)[1]
    assert image.shape == (3, 32, 32) and int(label) == raw[0]
    assert torch.equal((image * 255).round().to(torch.uint8).flatten(), torch.from_numpy(raw[1:]))


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "cifar10"])
def test_missing_image_files_say_where_to_put_them(tmp_path, name):
    with pytest.raises(ZooError) as err:
        zoo.load_dataset(name, "train", root=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path) in message and "download=True" in message
    assert "\n" not in message


def test_unknown_split_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown split 'dev'"):
        zoo.load_dataset("iris", "dev")
    with pytest.raises(UsageError, match="not 'val'"):
        zoo.load_dataset("iris", "val")
