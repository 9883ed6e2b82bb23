"""Trainer overhead, side by side in one process: the raw loop, DataLoader, zoo, Lightning.

Every contender trains the same model (same initial weights) on the same data with the same
optimizer, loss and batch size; what differs is what sits around the step:

- ``limit``      a hand-written loop over batches sliced once up front (the floor), with
                 ``torch.optim.Adam``'s default step (``limit_fused``: ``fused=True``, as zoo
                 builds it by default),
- ``dataloader`` the classic ``DataLoader(TensorDataset(X, y), shuffle=True)`` loop,
- ``zoo``        ``zoo.Trainer`` (its per-epoch training-loop time, from its history),
- ``lightning``  ``pytorch_lightning.Trainer`` (per-epoch time from a callback), with the
                 ``Adam`` a user writes in ``configure_optimizers`` (``lightning_fused``: the
                 same with ``fused=True``),

for a small MLP on 20k x 2 points (batch 32) and TinyVGG on 28x28 images (MNIST's on-disk
format, written to a temp dir and read by zoo's real ``mnist`` dataset). Epoch 1 of each run
is warm-up; the headline figure is the best (fastest) epoch over the rest and over
``--rounds`` interleaved rounds, which filters out noise from other processes (as ``timeit``
does); the median is printed beside it. Also: batches/s of zoo's slicing loader vs
``DataLoader(TensorDataset)``.

    python benchmarks/trainer_overhead.py [--epochs 3] [--rounds 3] [--threads 1] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo import tasks
from zoo.runtime.batches import TensorBatches

BATCH = 32


# -- data ---------------------------------------------------------------------------------------


def write_mnist_like(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """Structured 28x28 images (a class-dependent bar + noise) as real MNIST idx files."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 + 2 * k : 5 + 2 * k, 4:24] = 255  # one horizontal bar per class
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes()
        )


# -- contenders ---------------------------------------------------------------------------------


def make_step(model, loss_fn, optimizer, task):
    def step(x, y):
        out = tasks.align(task, model(x), y)
        loss = loss_fn(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step


def fresh(spec, fused=False):
    torch.manual_seed(0)
    model = zoo.create_model(spec["model"], dataset=spec["dataset"], **spec["model_kwargs"])
    loss_fn = zoo.create_loss(tasks.TASKS[spec["task"]].default_loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    return model, loss_fn, optimizer


def run_limit(spec, X, y, epochs, fused=False):
    model, loss_fn, optimizer = fresh(spec, fused)
    step = make_step(model, loss_fn, optimizer, spec["task"])
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        batches = list(zip(X[perm].split(BATCH), y[perm].split(BATCH), strict=True))  # pre-sliced
        t0 = time.perf_counter()
        model.train()
        for xb, yb in batches:
            step(xb, yb)
        times.append(time.perf_counter() - t0)
    return times


def run_dataloader(spec, X, y, epochs):
    from torch.utils.data import DataLoader, TensorDataset

    model, loss_fn, optimizer = fresh(spec)
    step = make_step(model, loss_fn, optimizer, spec["task"])
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in loader:
            step(xb, yb)
        times.append(time.perf_counter() - t0)
    return times


def run_zoo(spec, X, y, epochs, exact=False):
    """``exact``: train metrics from a second pass after each epoch (zoo before issue 14)."""
    trainer = zoo.Trainer(
        spec["model"], spec["dataset"], epochs=epochs, batch_size=BATCH, optimizer="adam",
        lr=1e-3, device="cpu", quiet=True, seed=0, model_kwargs=spec["model_kwargs"],
        dataset_kwargs=spec["dataset_kwargs"], exact_train_metrics=exact,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - t0
    return [row["seconds"] for row in result.history], wall


def run_lightning(spec, X, y, epochs, val=None, fused=False):
    """``val``: ``(X, y)`` validated after every epoch (loss and accuracy logged per epoch, as
    zoo scores its test split), else no validation; ``fused``: Adam's fused step."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    model, loss_fn, _ = fresh(spec)
    task = spec["task"]

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            x, y = batch
            return loss_fn(tasks.align(task, self.model(x), y), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            out = tasks.align(task, self.model(x), y)
            hits = (out > 0).float() == y if task == "binary" else out.argmax(1) == y
            self.log("val_loss", loss_fn(out, y))
            self.log("val_accuracy", hits.float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=fused or None)

    class EpochTimer(pl.Callback):
        def __init__(self):
            self.times = []

        def on_train_epoch_start(self, trainer, module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.times.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0 if val is None else 1.0, callbacks=[timer],
    )  # fmt: skip
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)
    val_loader = None if val is None else DataLoader(TensorDataset(*val), batch_size=256)
    t0 = time.perf_counter()
    trainer.fit(Lit(), loader, val_loader)
    wall = time.perf_counter() - t0
    return timer.times, wall


def loader_rates(X, y, repeats=3):
    """Batches/s of one shuffled epoch: zoo's slicing loader vs DataLoader(TensorDataset)."""
    from torch.utils.data import DataLoader, TensorDataset

    slicing = TensorBatches(X, y, BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)
    out = {}
    for name, batches in (("slicing", slicing), ("dataloader", loader)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            n = sum(1 for _ in batches)
            best = min(best, time.perf_counter() - t0)
        out[name] = n / best
    return out


# -- driver -------------------------------------------------------------------------------------


def bench(spec, epochs, rounds):
    X, y = zoo.load_dataset(spec["dataset"], "train", **spec["dataset_kwargs"])
    test = zoo.load_dataset(spec["dataset"], "test", **spec["dataset_kwargs"])
    steps = -(-len(X) // BATCH)
    names = ("limit", "limit_fused", "dataloader", "zoo", "lightning", "lightning_fused")
    per_epoch = {k: [] for k in names}
    walls = {"zoo": [], "zoo_exact": [], "lightning": [], "lightning_val": []}
    for _ in range(rounds):
        per_epoch["limit"] += run_limit(spec, X, y, epochs)[1:]
        per_epoch["limit_fused"] += run_limit(spec, X, y, epochs, fused=True)[1:]
        per_epoch["dataloader"] += run_dataloader(spec, X, y, epochs)[1:]
        times, wall = run_zoo(spec, X, y, epochs)
        per_epoch["zoo"] += times[1:]
        walls["zoo"].append(wall)
        walls["zoo_exact"].append(run_zoo(spec, X, y, epochs, exact=True)[1])
        times, wall = run_lightning(spec, X, y, epochs)
        per_epoch["lightning"] += times[1:]
        walls["lightning"].append(wall)
        per_epoch["lightning_fused"] += run_lightning(spec, X, y, epochs, fused=True)[0][1:]
        walls["lightning_val"].append(run_lightning(spec, X, y, epochs, val=test)[1])
    rates = {k: steps / min(v) for k, v in per_epoch.items()}
    medians = {k: steps / statistics.median(v) for k, v in per_epoch.items()}
    return {
        "name": spec["name"],
        "train_samples": len(X),
        "steps_per_epoch": steps,
        "steps_per_s": rates,
        "steps_per_s_median": medians,
        "fit_wall_s": {k: statistics.median(v) for k, v in walls.items()},
        "ratios": {
            "zoo/limit": rates["zoo"] / rates["limit"],
            "dataloader/limit": rates["dataloader"] / rates["limit"],
            "lightning/limit": rates["lightning"] / rates["limit"],
            "zoo/lightning": rates["zoo"] / rates["lightning"],
            "zoo/limit_fused": rates["zoo"] / rates["limit_fused"],
            "zoo/lightning_fused": rates["zoo"] / rates["lightning_fused"],
            "zoo/lightning_median": medians["zoo"] / medians["lightning"],
        },
        "loader_batches_per_s": loader_rates(X, y),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="per run; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--images", type=int, default=2048, help="TinyVGG training images")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    results = []
    with tempfile.TemporaryDirectory() as data:
        write_mnist_like(Path(data), args.images, 256)
        import os

        os.environ["ZOO_DATA"] = data
        specs = [
            {"name": "mlp 20k x 2, batch 32", "model": "mlp", "dataset": "circles",
             "task": "binary", "model_kwargs": {}, "dataset_kwargs": {"n_samples": 25000}},
            {"name": f"tinyvgg 28x28 ({args.images} images), batch 32", "model": "tinyvgg",
             "dataset": "mnist", "task": "multiclass", "model_kwargs": {"hidden": 16},
             "dataset_kwargs": {}},
        ]  # fmt: skip
        for spec in specs:
            results.append(bench(spec, args.epochs, args.rounds))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), cpu", file=sys.stderr)
    for r in results:
        print(f"\n{r['name']}: {r['steps_per_epoch']} steps/epoch")
        print(f"  {'contender':<16}{'steps/s':>10}{'vs limit':>10}{'median':>10}{'vs limit':>10}")
        med = r["steps_per_s_median"]
        for name, rate in r["steps_per_s"].items():
            print(
                f"  {name:<16}{rate:>10.0f}{rate / r['steps_per_s']['limit']:>10.3f}"
                f"{med[name]:>10.0f}{med[name] / med['limit']:>10.3f}"
            )
        lo = r["loader_batches_per_s"]
        ratios = r["ratios"]
        print(
            f"  zoo / lightning: {ratios['zoo/lightning']:.2f}x best epoch, "
            f"{ratios['zoo/lightning_median']:.2f}x median; both fused: "
            f"{ratios['zoo/lightning_fused']:.2f}x; zoo / limit_fused "
            f"{ratios['zoo/limit_fused']:.3f}"
        )
        print(
            f"  loader only: slicing {lo['slicing']:.0f} batches/s, DataLoader "
            f"{lo['dataloader']:.0f} batches/s ({lo['slicing'] / lo['dataloader']:.0f}x)"
        )
        walls = r["fit_wall_s"]
        print(
            f"  whole fit() wall, median: zoo {walls['zoo']:.2f}s (running train metrics), "
            f"zoo {walls['zoo_exact']:.2f}s (--exact-train-metrics: a second pass), "
            f"lightning {walls['lightning']:.2f}s (no validation), "
            f"{walls['lightning_val']:.2f}s (validating the test split each epoch, as zoo does)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
