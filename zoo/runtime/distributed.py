"""Distributed data parallel under ``torchrun``: process group setup and a few collectives.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the trainer then joins a process
group (gloo on CPU, nccl on CUDA), each rank trains on its shard of every global batch and
rank 0 alone writes files and prints progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_min", "all_sum", "barrier", "env_world", "setup", "teardown"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: rank, world size, local rank, backend."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    owned: bool = False  # True when this process group was created by the trainer

    @property
    def enabled(self) -> bool:
        """More than one process: collectives and DDP are on."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints progress."""
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from the environment torchrun sets."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def setup(device: torch.device) -> DistInfo:
    """Join (or reuse) the process group when launched with more than one process."""
    rank, world, local_rank = env_world()
    if world <= 1:
        return DistInfo()
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, backend, owned=True)


def teardown(info: DistInfo) -> None:
    """Leave the process group, if :func:`setup` created it."""
    if info.owned and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks, in place (a no-op in one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_min(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The minimum of a tensor over ranks, in place (a no-op in one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op in one process)."""
    if info.enabled:
        dist.barrier()
