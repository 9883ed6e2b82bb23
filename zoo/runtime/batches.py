"""Batches for the trainer: slicing for in-memory tensors, ``DataLoader`` for everything else.

In-memory ``(X, y)`` tensors are moved to the device once. Each epoch draws one permutation
from a dedicated ``torch.Generator`` (so its state can be checkpointed), gathers the data in
that order with one ``index_select`` and hands out views from one ``split`` call: no
per-sample indexing, no collation.

Distributed runs share the permutation: global batch ``k`` is the same set of samples a
single process with ``batch_size * world`` would see, and rank ``r`` takes the ``r``-th
``batch_size`` slice of it. Every rank runs the same number of steps (a rank whose slice of
the last, short batch is empty gets an empty batch).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from zoo._util.values import positive_int
from zoo.errors import UsageError

__all__ = [
    "LoaderBatches",
    "ShardedBatchSampler",
    "TensorBatches",
    "default_workers",
    "make_batches",
    "shard_bounds",
]


def shard_bounds(n: int, batch_size: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
    """``(start, end)`` in permutation order of this rank's slice of every global batch."""
    positive_int(batch_size, "batch size")
    global_batch = batch_size * world
    bounds = []
    for k in range(math.ceil(n / global_batch)):
        batch_end = min((k + 1) * global_batch, n)
        start = min(k * global_batch + rank * batch_size, batch_end)
        bounds.append((start, min(start + batch_size, batch_end)))
    return bounds


class TensorBatches:
    """In-memory ``(X, y)`` on ``device``, batched by slicing a (sharded) permutation.

    Iterating yields ``(x, y)`` views; ``generator`` (CPU) drives the shuffle and is the only
    random state this consumes, so checkpointing its state makes epochs reproducible.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
    ):
        if len(X) != len(y):
            raise UsageError(f"dataset has {len(X)} inputs but {len(y)} targets")
        self.X = X.to(device)
        self.y = y.to(device)
        self.device = self.X.device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.rank, self.world = rank, world
        self.num_samples = len(X)
        self.global_batch_size = batch_size * world
        self._bounds = shard_bounds(self.num_samples, batch_size, rank, world)
        self.sizes = [end - start for start, end in self._bounds]  # this rank's, step by step

    def __len__(self) -> int:
        return len(self._bounds)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        X, y = self.X, self.y
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self.generator)
        if self.world > 1:
            base = order if order is not None else torch.arange(self.num_samples)
            order = torch.cat([base[s:e] for s, e in self._bounds])
        if order is not None:
            order = order.to(self.device)
            X, y = X.index_select(0, order), y.index_select(0, order)
        if self.world > 1:
            return zip(X.split(self.sizes), y.split(self.sizes), strict=True)
        return zip(X.split(self.batch_size), y.split(self.batch_size), strict=True)


class ShardedBatchSampler:
    """Index lists with :class:`TensorBatches`' semantics, for a ``DataLoader``."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None,
        rank: int = 0,
        world: int = 1,
    ):
        self.n, self.shuffle, self.generator = n, shuffle, generator
        self._bounds = shard_bounds(n, batch_size, rank, world)
        self.sizes = [end - start for start, end in self._bounds]

    def __len__(self) -> int:
        return len(self._bounds)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator).tolist()
        else:
            order = range(self.n)
        for start, end in self._bounds:
            yield list(order[start:end])


class LoaderBatches:
    """A ``Dataset`` through a ``DataLoader`` (workers; pinned memory on CUDA), moved per batch."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        device: torch.device,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
        workers: int | None = None,
    ):
        self.device = device
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.global_batch_size = batch_size * world
        if workers is None:
            workers = default_workers(device)
        pin = device.type == "cuda"
        sampler = ShardedBatchSampler(
            self.num_samples,
            batch_size,
            shuffle=shuffle,
            generator=generator,
            rank=rank,
            world=world,
        )
        self.sizes = sampler.sizes
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=workers > 0,
            generator=generator if generator is not None else torch.Generator().manual_seed(0),
        )
        self._non_blocking = pin

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        nb = self._non_blocking
        for batch in self.loader:
            x, y = _pair(batch)
            yield x.to(self.device, non_blocking=nb), y.to(self.device, non_blocking=nb)


def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, list | tuple) and len(batch) == 2:
        return batch[0], batch[1]
    raise UsageError("a Dataset for training must yield (input, target) pairs")


def default_workers(device: torch.device) -> int:
    """DataLoader workers: none on CPU (they would compete with the model), a few on GPUs."""
    if device.type != "cuda":
        return 0
    return min(4, os.cpu_count() or 1)


def make_batches(
    data: Any,
    batch_size: int,
    *,
    device: torch.device,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    rank: int = 0,
    world: int = 1,
    workers: int | None = None,
) -> TensorBatches | LoaderBatches:
    """Batches for ``(X, y)`` tensors (slicing) or a ``Dataset`` (``DataLoader``).

    ``rank``/``world`` shard every global batch (see the module docstring); ``generator``
    drives the shuffle; ``workers`` are the ``DataLoader``'s (default :func:`default_workers`).
    """
    placement = dict(device=device, shuffle=shuffle, generator=generator, rank=rank, world=world)
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        return TensorBatches(data[0], data[1], batch_size, **placement)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return LoaderBatches(data, batch_size, workers=workers, **placement)
    raise UsageError(
        f"dataset returned {type(data).__name__}; expected (X, y) tensors or a torch Dataset"
    )
