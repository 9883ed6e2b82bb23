"""Data the user hands the trainer instead of a registered name: a path, arrays or a Dataset.

:func:`local_dataset` turns ``Trainer(model, dataset)``'s ``dataset`` into a
:class:`LocalDataset` when it is not a registered name: an existing file or folder (read by
:func:`zoo.runtime.owndata.read_data`), an ``(X, y)`` pair of arrays or tensors, or a
``torch.utils.data.Dataset`` of ``(x, y)`` samples. Its :attr:`LocalDataset.entry` stands in for
a registered dataset entry (task, input shape, class count), so model building and the
compatibility checks treat it like one; :attr:`LocalDataset.record` is what the run records of
it (``run.json``'s ``settings["data"]`` and the weights' training record): the source as
description only, the split, the train split's standardisation statistics and the class names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import UsageError
from zoo.registry.entries import Entry
from zoo.runtime import owndata

__all__ = ["LocalDataset", "local_dataset"]


@dataclass
class LocalDataset:
    """The user's data, split: ``splits[name]`` is ``(X, y)`` tensors or a ``Dataset``."""

    name: str  # what the run records as its dataset (a path, ``arrays``, ``dataset``)
    entry: Entry
    splits: dict[str, Any]
    record: dict[str, Any]

    def load(self, split: str) -> Any:
        """One split; a split the data does not have is a one-line error."""
        if split not in self.splits:
            raise UsageError(
                f"{self.name}: has no {split!r} split (it has {', '.join(self.splits)})"
            )
        return self.splits[split]


def local_dataset(dataset: Any, config: Any) -> LocalDataset | None:
    """``dataset`` as a :class:`LocalDataset`, or ``None`` for a registered name.

    Args:
        dataset: what ``Trainer`` was given: a name or path (a ``str`` naming an existing file
            or folder is data), ``(X, y)``, or a ``torch.utils.data.Dataset``.
        config: the :class:`~zoo.train.config.TrainConfig` (``target``, ``labels``, ``task``,
            ``image_size``, ``test_fraction``, ``val_fraction``, ``seed``).
    """
    fractions = dict(
        test_fraction=config.test_fraction, val_fraction=config.val_fraction, seed=config.seed
    )
    if isinstance(dataset, tuple | list):
        if len(dataset) != 2:
            raise UsageError(f"dataset as arrays is a pair (X, y), got {len(dataset)} items")
        data = owndata.from_arrays(dataset[0], dataset[1], task=config.task)
        return _split(data, "arrays", fractions)
    if isinstance(dataset, str | os.PathLike):
        if not owndata.is_data_path(dataset):
            if any(getattr(config, k) is not None for k in ("target", "labels")):
                raise UsageError(f"--target and --labels go with a data file; {dataset} is none")
            return None
        path = str(Path(dataset).expanduser().resolve())
        data = owndata.read_data(
            path, target=config.target, labels=config.labels, task=config.task,
            image_size=config.image_size,
        )  # fmt: skip
        return _split(data, path, fractions)
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return _torch_dataset(dataset, config, fractions)
    raise UsageError(
        f"dataset must be a registered name, a path, (X, y) or a torch Dataset, "
        f"got {type(dataset).__name__}"
    )


def _split(data: owndata.OwnData, name: str, fractions: dict[str, Any]) -> LocalDataset:
    splits, record = owndata.split_data(data, **fractions)
    stats = record["preprocessing"]
    how = (
        f"standardised {stats['standardise']} with the train split's mean/std "
        f"(recorded with the run); raw inputs need the same before predict"
    )
    if data.kind == "images":
        how = "RGB resized to the image size, pixels scaled to [0, 1], then " + how
    return LocalDataset(name, _entry(name, data.task, data.input_shape, data.classes, how),
                        splits, record)  # fmt: skip


def _torch_dataset(dataset: Any, config: Any, fractions: dict[str, Any]) -> LocalDataset:
    """A ``Dataset`` of ``(x, y)``: seeded random splits (no standardisation: its own)."""
    import torch
    from torch.utils.data import Subset

    n = len(dataset)
    if n < 2:
        raise UsageError(f"dataset has {n} samples; it needs at least 2")
    first = dataset[0]
    if not isinstance(first, tuple | list) or len(first) != 2:
        raise UsageError("a torch Dataset for zoo.Trainer yields (x, y) pairs")
    labels = np.asarray([_scalar(dataset[i][1]) for i in range(n)])
    task = owndata.infer_task(labels, config.task, "dataset labels")
    classes = None if task == "regression" else [str(c) for c in np.unique(labels)]
    if task != "regression" and labels.dtype.kind in "iub":
        expected = set(range(len(classes))) if task == "multiclass" else {0, 1}
        if set(labels.tolist()) - expected:
            raise UsageError(
                f"dataset labels must be class indices {min(expected)}..{max(expected)} "
                f"for a {task} task, got {sorted(set(labels.tolist()))[:5]}"
            )
    test, val = fractions["test_fraction"], fractions["val_fraction"]
    owndata._check_fractions(test, val)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(fractions["seed"])).tolist()
    n_test = max(1, round(n * test))
    n_val = round(n * val) if val > 0 else 0
    if n - n_test - n_val < 1 or (val > 0 and n_val < 1):
        raise UsageError(f"dataset: {n} samples are too few for these split fractions")
    splits: dict[str, Any] = {
        "train": Subset(dataset, sorted(order[n_test + n_val :])),
        "test": Subset(dataset, sorted(order[:n_test])),
    }
    if n_val:
        splits["val"] = Subset(dataset, sorted(order[n_test : n_test + n_val]))
    shape = tuple(torch.as_tensor(first[0]).shape)
    record = {
        "source": type(dataset).__name__, "format": "dataset", "target": None,
        "classes": classes, "input_shape": list(shape),
        "split": {**{k: v for k, v in fractions.items()},
                  "sizes": {k: len(v) for k, v in splits.items()}},
        "preprocessing": None,
    }  # fmt: skip
    how = "as the Dataset yields it"
    return LocalDataset("dataset", _entry("dataset", task, shape, classes, how), splits, record)


def _scalar(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _entry(
    name: str, task: str, shape: tuple[int, ...], classes: list[str] | None, how: str
) -> Entry:
    """A dataset entry that is no plugin's: what model building and the checks read."""
    meta: dict[str, Any] = {"input_shape": tuple(shape), "preprocessing": how}
    if classes is not None:
        meta["num_classes"] = len(classes)
    return Entry(
        kind="dataset", name=Path(name).name or name, target=_no_loader, plugin="local",
        dist="local", version="0", summary=f"your data ({name})", tasks=(task,), meta=meta,
    )  # fmt: skip


def _no_loader(split: str) -> Any:
    """Local data is loaded through :meth:`LocalDataset.load`, never by the entry."""
    raise UsageError("local data is not a registered dataset")
