"""How many intra-op threads torch uses: one rule for train, evaluate, predict and bench.

``threads`` given (``--threads``) wins; else ``$OMP_NUM_THREADS``; else the machine's physical
cores divided by the processes on this node (torchrun's ``LOCAL_WORLD_SIZE``), at least 1.
torch's own default (every logical core, in every process) oversubscribes a shared machine or
a multi-process node, which makes timings unstable and training slower.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from zoo._util.values import positive_int

__all__ = ["default_threads", "physical_cores", "resolve_threads", "use_threads"]


def physical_cores() -> int:
    """Distinct (package, core) pairs in ``/proc/cpuinfo``; the logical count where unreadable."""
    cores: set[tuple[str, str]] = set()
    package = core = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    package = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((package or "0", core))
                    package = core = None
        if core is not None:
            cores.add((package or "0", core))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


def default_threads() -> int:
    """``$OMP_NUM_THREADS`` if set, else physical cores // processes on this node (>= 1)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        return positive_int(env, "$OMP_NUM_THREADS", text=True)
    local = positive_int(os.environ.get("LOCAL_WORLD_SIZE") or "1", "$LOCAL_WORLD_SIZE", text=True)
    return max(1, physical_cores() // local)


def resolve_threads(threads: int | None = None) -> int:
    """The thread count to use: ``threads`` when given, else :func:`default_threads`."""
    if threads is None:
        return default_threads()
    return positive_int(threads, "threads")


@contextmanager
def use_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with :func:`resolve_threads` intra-op threads; restore torch's count after."""
    before = torch.get_num_threads()
    count = resolve_threads(threads)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)
