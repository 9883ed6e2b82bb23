"""Distributed data parallel under ``torchrun``: process group setup and a few collectives.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the trainer then joins a process
group (gloo on CPU, nccl on CUDA), each rank trains on its shard of every global batch and
global rank 0 alone writes files and prints progress. Across machines (``--nnodes N`` with a
c10d rendezvous) each machine has its own ``LOCAL_RANK`` 0, which only picks the GPU; what
writes is ``RANK`` 0, wherever the rendezvous put it. :func:`run_id` names the torchrun job,
which its restarts (``--max-restarts``) keep.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from zoo._util.log import get_logger
from zoo.errors import ZooError, one_line

log = get_logger(__name__)

__all__ = [
    "DistInfo",
    "all_max",
    "all_min",
    "all_sum",
    "barrier",
    "env_world",
    "peer_failure",
    "run_id",
    "setup",
    "teardown",
]


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


def run_id() -> str | None:
    """The torchrun job this process belongs to (``--rdzv-id``; ``--standalone`` draws one per
    launch), the same on every node and across restarts; ``None`` outside torchrun."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or None


def setup(device: torch.device) -> DistInfo:
    """Join (or reuse) the process group when launched with more than one process."""
    rank, world, local_rank = env_world()
    if world <= 1:
        return DistInfo()
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())
    backend = "nccl" if device.type == "cuda" else "gloo"
    if rank == 0:
        _warn_shared_store()
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, backend, owned=True)


def _warn_shared_store() -> None:
    """torchrun (torch 2.5+) hands the workers its rendezvous store and keeps it across
    restarts: a restarted group can read the previous attempt's addresses and fail to connect
    (pytorch/pytorch#135712). Say so when restarts are asked for with the store shared."""
    restarts = os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and restarts not in ("", "0"):
        log.warning(
            "torchrun --max-restarts shares its rendezvous store with the workers across "
            "restarts, so a restarted group may fail to connect (pytorch/pytorch#135712); "
            "set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for torchrun"
        )


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


def all_max(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The maximum of a tensor over ranks, in place (a no-op in one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def peer_failure(exc: BaseException, info: DistInfo) -> BaseException:
    """``exc`` as one :class:`~zoo.errors.ZooError` line when it is a collective that failed
    under torchrun (another process died or was killed: its own output says why); any other
    exception as it is."""
    lost = isinstance(exc, dist.DistError) or any(
        mark in str(exc) for mark in ("Connection closed by peer", "Connection reset", "NCCL")
    )
    if not info.enabled or not isinstance(exc, RuntimeError) or not lost:
        return exc
    return ZooError(
        f"process {info.rank} of {info.world} lost the others ({one_line(exc, typed=True)}); "
        f"another process failed or was killed, and its output says why"
    )


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op in one process)."""
    if info.enabled:
        dist.barrier()
