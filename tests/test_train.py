"""The trainer's Python API: the canonical loop, data, metrics, early stopping, the NaN guard."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.api import evaluate_model
from zoo.errors import ZooError
from zoo.runtime.batches import TensorBatches, make_batches, shard_bounds
from zoo.train.trainer import Trainer


def fast(model="mlp", dataset="circles", **kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("quiet", True)
    return Trainer(model, dataset, **kw)


def test_final_weights_equal_a_hand_written_loop():
    torch.manual_seed(0)
    model = zoo.create_model("mlp", dataset="circles")
    X, y = zoo.load_dataset("circles", "train")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _epoch in range(3):
        for i in range(0, len(X), 32):
            model.train()
            output = model(X[i : i + 32]).squeeze(-1)
            loss = loss_fn(output, y[i : i + 32])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    result = fast(optimizer="sgd", lr=0.1, epochs=3, batch_size=32, shuffle=False, seed=0).fit()

    mine, theirs = result.model.state_dict(), model.state_dict()
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key


def test_shuffle_is_one_seeded_permutation_per_epoch():
    torch.manual_seed(0)
    model = zoo.create_model("linear", dataset="circles")
    X, y = zoo.load_dataset("circles", "train")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)  # as zoo builds it
    generator = torch.Generator().manual_seed(0)
    for _epoch in range(2):
        perm = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), 50):
            idx = perm[i : i + 50]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(X[idx]).squeeze(-1), y[idx]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    result = fast("linear", lr=0.01, epochs=2, batch_size=50, seed=0).fit()
    for key, value in model.state_dict().items():
        assert torch.equal(result.model.state_dict()[key], value)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_fused_is_torch_fused_kernel_and_no_fused_torch_default_step(optimizer):
    """--fused (the default) steps with torch's fused kernel where it has one, --no-fused
    with torch's default for-loop step; both bit for bit as the hand-written loop builds
    them, and equal to each other to float rounding."""
    X, y = zoo.load_dataset("circles", "train")
    cls = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}

    def hand(**options):
        torch.manual_seed(0)
        model = zoo.create_model("mlp", dataset="circles")
        opt = cls[optimizer](model.parameters(), lr=0.01, weight_decay=0.0, **options)
        for i in range(0, len(X), 64):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(X[i : i + 64]).squeeze(-1), y[i : i + 64]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.state_dict()

    runs = {}
    for fused in (True, False):
        trainer = fast(optimizer=optimizer, lr=0.01, epochs=1, batch_size=64, shuffle=False,
                       seed=0, fused=fused)  # fmt: skip
        runs[fused] = trainer.fit().model.state_dict()
        assert bool(trainer.optimizer.defaults.get("fused")) == (fused and optimizer != "rmsprop")
    expected = {True: hand(fused=True) if optimizer != "rmsprop" else hand(), False: hand()}
    for fused, state in runs.items():
        for key, value in expected[fused].items():
            assert torch.equal(state[key], value), (fused, key)
        torch.testing.assert_close(state, runs[not fused], rtol=1e-5, atol=1e-6)
    if optimizer != "rmsprop":  # the kernels differ in rounding: the test sees which ran
        assert any(not torch.equal(runs[True][k], runs[False][k]) for k in runs[True])


def test_slicing_batches_cover_the_data_once_without_collation():
    X = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    batches = TensorBatches(X, y, 4, shuffle=True, generator=torch.Generator().manual_seed(1))
    got = list(batches)
    assert [len(b[0]) for b in got] == [4, 4, 2] == batches.sizes
    seen = torch.cat([b[1] for b in got])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in got)
    # each batch is a view of one gathered copy: no per-sample tensors were built
    assert got[0][0]._base is got[1][0]._base


def test_distributed_shards_make_up_the_global_batches():
    n, per_rank, world = 23, 3, 2
    single = shard_bounds(n, per_rank * world)
    ranks = [shard_bounds(n, per_rank, r, world) for r in range(world)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for k, (start, end) in enumerate(single):
        assert ranks[0][k][0] == start
        assert ranks[1][k][1] == end
        assert ranks[0][k][1] == ranks[1][k][0]


def test_dataset_objects_go_through_a_dataloader():
    from torch.utils.data import TensorDataset

    X, y = torch.randn(20, 2), torch.arange(20)
    loader = make_batches(TensorDataset(X, y), 8, device=torch.device("cpu"))
    got = list(loader)
    assert [len(b[1]) for b in got] == [8, 8, 4]
    assert torch.equal(torch.cat([b[1] for b in got]), y)


def test_history_has_train_and_test_metrics_per_epoch():
    result = fast(epochs=2, lr=0.01).fit()
    assert [row["epoch"] for row in result.history] == [1, 2]
    row = result.history[-1]
    for key in (
        "train_loss",
        "train_accuracy",
        "train_f1",
        "test_loss",
        "test_accuracy",
        "test_f1",
    ):
        assert math.isfinite(row[key]), key
    assert set(result.metrics) == {"loss", "accuracy", "f1"}
    assert result.metrics["accuracy"] == row["test_accuracy"]
    assert result.run_dir is None  # out=None writes nothing


def test_regression_metrics_and_evaluate_model():
    result = fast("linear", "diabetes", epochs=3, lr=0.05).fit()
    assert {"loss", "mae", "mse", "r2"} <= set(result.metrics)
    again = evaluate_model(result.model, "diabetes", "test")
    assert again["mse"] == pytest.approx(result.metrics["mse"], rel=1e-5)
    assert again["r2"] > 0.3


def test_done_when_mlp_on_circles():
    result = fast(epochs=10).fit()
    assert result.metrics["accuracy"] >= 0.95


def test_done_when_tinyvgg_on_digits():
    result = fast("tinyvgg", "digits", epochs=5).fit()
    assert result.metrics["accuracy"] >= 0.95


def test_done_when_linear_regression_recovers_the_line():
    result = fast(
        "linear-regression", "line", optimizer="sgd", lr=0.1, momentum=0.9, epochs=100
    ).fit()
    weight, bias = result.model.weight.item(), result.model.bias.item()
    assert abs(weight - 0.7) < 0.02 and abs(bias - 0.3) < 0.02


def test_bce_on_probabilities_trains_the_same_logit_model():
    torch.manual_seed(0)
    model = zoo.create_model("linear", dataset="circles")
    with_logits = fast(model, "circles", loss="bce-with-logits").evaluate()
    on_probs = fast(model, "circles", loss="bce").evaluate()
    assert on_probs["loss"] == pytest.approx(with_logits["loss"], rel=1e-5)
    result = fast("mlp", "moons", loss="bce", epochs=3, lr=0.01).fit()
    assert result.metrics["accuracy"] > 0.8


def test_nll_gets_log_probabilities():
    result = fast("mlp", "blobs", loss="nll", epochs=2, lr=0.01).fit()
    assert result.metrics["loss"] > 0 and result.metrics["accuracy"] > 0.5


def test_early_stopping_stops_when_the_monitor_stalls():
    # an lr too small to change any weight: the test loss never improves after epoch 1
    result = fast(optimizer="sgd", lr=1e-30, epochs=10, patience=2).fit()
    assert result.stopped_early
    assert len(result.history) == 3
    assert result.best_epoch == 1


def test_early_stopping_can_monitor_a_metric():
    trainer = fast(epochs=1, patience=3, monitor="accuracy")
    assert trainer.monitor == "test_accuracy"
    assert fast(epochs=1, monitor="train-loss").monitor == "train_loss"


def test_nan_guard_names_epoch_and_step():
    trainer = fast("linear-regression", "line", optimizer="sgd", lr=1e12, epochs=5, batch_size=4)
    with pytest.raises(
        ZooError, match=r"loss is (nan|inf) at epoch 1, step \d+/10: training diverged"
    ):
        trainer.fit()


def test_bf16_autocast_trains_on_cpu():
    result = fast(epochs=2, lr=0.01, precision="bf16").fit()
    assert math.isfinite(result.metrics["loss"])
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


def test_predict_gives_labels_or_values():
    trainer = fast(epochs=3, lr=0.01)
    trainer.fit()
    X, y = zoo.load_dataset("circles", "test")
    labels = trainer.predict(X)
    assert labels.shape == y.shape and labels.dtype == torch.int64
    assert (labels == y).float().mean().item() == pytest.approx(trainer.evaluate()["accuracy"])
    assert trainer.predict(X, raw=True).shape == (len(X), 1)


def test_compile_wraps_the_training_module():
    result = fast("linear", epochs=1, compile="eager").fit()
    assert math.isfinite(result.metrics["loss"])
    assert not any(k.startswith("_orig_mod") for k in result.model.state_dict())


def test_other_torch_optimizers_by_name():
    result = fast("linear", optimizer="RMSprop", momentum=0.5, lr=0.01, epochs=1).fit()
    assert math.isfinite(result.metrics["loss"])


def test_recipe_holds_the_same_settings(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'model = "mlp"\ndataset = "circles"\nepochs = 2\nlr = 0.01\nbatch-size = 64\n'
        'description = "informational"\n[model_kwargs]\nhidden = [8]\n[expect]\naccuracy = 0.5\n'
    )
    trainer = Trainer.from_recipe(recipe, device="cpu", quiet=True)
    assert (trainer.epochs, trainer.batch_size, trainer.lr) == (2, 64, 0.01)
    result = trainer.fit()
    assert result.model.zoo_spec.kwargs["hidden"] == [8]


def test_dataset_objects_train_through_the_dataloader_path(tmp_path, monkeypatch):
    """CIFAR-10 in its real binary on-disk format, read lazily as a Dataset."""
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    for name, n in [*((f"data_batch_{i}.bin", 8) for i in range(1, 6)), ("test_batch.bin", 10)]:
        labels = torch.randint(0, 10, (n, 1), generator=rng, dtype=torch.uint8)
        pixels = torch.randint(0, 256, (n, 3072), generator=rng, dtype=torch.uint8)
        (folder / name).write_bytes(torch.cat([labels, pixels], dim=1).numpy().tobytes())
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    trainer = fast("tinyvgg", "cifar10", epochs=2, batch_size=16, model_kwargs={"hidden": 4})
    result = trainer.fit()
    assert type(trainer.train_batches).__name__ == "LoaderBatches"
    assert trainer.train_batches.sizes == [16, 16, 8]
    assert math.isfinite(result.metrics["loss"]) and len(result.history) == 2


def test_progress_bar_on_a_terminal_plain_lines_otherwise():
    import io

    from zoo.train.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        progress = Progress(1, stream=stream)
        progress.start_epoch(1, 4)
        progress.step(2, 0.5, 64)
        progress.end_epoch({"epoch": 1, "test_loss": 0.25, "seconds": 0.1}, ["test_loss"])
    assert Progress(1, stream=tty).mode == "bar" and Progress(1, stream=pipe).mode == "lines"
    assert "\r" in tty.getvalue() and "epoch 1/1" in tty.getvalue()
    assert pipe.getvalue() == "epoch 1/1  test_loss 0.2500  0.10s\n"
    assert Progress(1, quiet=True, stream=tty).mode == "off"
