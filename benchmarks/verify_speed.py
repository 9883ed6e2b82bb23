"""What does verifying a cache hit cost? A verified hit against the size-only hit and ``zoo.load``.

A ResNet-50-sized weights file (torchvision's resnet50 with random weights, exported as
safetensors: about 100 MB, no download) is fetched into a fresh cache, then timed side by side
in one process, interleaved round by round so machine noise hits all alike:

- size-only hit:  what a hit cost before (``stat`` of the blob, size compared)
- verified hit:   ``zoo.hub.cache.fetch_file`` on an unchanged blob (its fingerprint vouches)
- full hit:       the same with ``ZOO_VERIFY=full`` (a full sha256 of the file)
- zoo.load:       a ready model from that file

Printed: the median time of each and the ratios. Goal: the verified hit costs under 5% of
``zoo.load``'s time. The script checks that no verified hit re-hashed.

    python benchmarks/verify_speed.py [--model resnet50] [--rounds 7] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="zoo model entry [resnet50]")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds of each path [7]")
    parser.add_argument("--hits", type=int, default=200, help="cheap hits timed per round [200]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [torch's]")
    args = parser.parse_args(argv)

    import torch

    import zoo
    from zoo.hub import cache
    from zoo.hub.entries import FileRef

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        old_home, os.environ["ZOO_HOME"] = os.environ.get("ZOO_HOME"), str(Path(tmp) / "home")
        try:
            return _run(args, torch, zoo, cache, FileRef, Path(tmp))
        finally:
            os.environ.pop("ZOO_HOME")
            if old_home is not None:
                os.environ["ZOO_HOME"] = old_home


def _run(args, torch, zoo, cache, FileRef, tmp: Path) -> int:  # noqa: N803 - a class
    source = zoo.export(zoo.create_model(args.model).eval(), tmp / "weights.safetensors")
    data = source.read_bytes()
    ref = FileRef(str(source), hashlib.sha256(data).hexdigest(), len(data))
    del data
    blob = cache.fetch_file(ref, name=f"{args.model}.bench")
    _wait_for_next_tick(blob, tmp)
    cache.fetch_file(ref)  # records the fingerprint afresh if it was written in the same tick

    def size_only_hit() -> Path:  # the hit as it was: the blob's size, nothing more
        target = cache.blob_path(ref)
        if target.stat().st_size != ref.size:
            raise AssertionError("not a hit")
        return target

    def verified_hit() -> Path:
        return cache.fetch_file(ref)

    def full_hit() -> Path:
        os.environ["ZOO_VERIFY"] = "full"
        try:
            return cache.fetch_file(ref)
        finally:
            del os.environ["ZOO_VERIFY"]

    cheap = {"size-only hit": size_only_hit, "verified hit": verified_hit}
    costly = {"full hit (ZOO_VERIFY=full)": full_hit, "zoo.load": lambda: zoo.load(blob)}
    times: dict[str, list[float]] = {name: [] for name in [*cheap, *costly]}
    with _counting_rehashes() as rehashes:
        for fn in [*cheap.values(), *costly.values()]:  # warm-up
            fn()
        verified_rehashes = 0
        for _ in range(args.rounds):
            for name, fn in cheap.items():
                before = rehashes.count
                start = time.perf_counter()
                for _ in range(args.hits):
                    fn()
                times[name].append((time.perf_counter() - start) / args.hits)
                if name == "verified hit":
                    verified_rehashes += rehashes.count - before
            for name, fn in costly.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    if verified_rehashes:
        print(f"FAIL: {verified_rehashes} verified hits re-hashed", file=sys.stderr)
        return 1

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    load = medians["zoo.load"]
    print(
        f"{args.model}: {ref.size / 1e6:.1f} MB safetensors, median of {args.rounds} rounds "
        f"({args.hits} cheap hits per round; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)"
    )
    print(f"{'path':<28}{'median ms':>12}{'min ms':>10}{'vs zoo.load':>13}")
    for name, med in medians.items():
        print(f"{name:<28}{med * 1e3:>12.4f}{min(times[name]) * 1e3:>10.4f}{med / load:>12.2%}")
    share = medians["verified hit"] / load
    verdict = "PASS" if share < 0.05 else "MISS"
    extra = medians["verified hit"] - medians["size-only hit"]
    print(
        f"goal: verified hit < 5% of zoo.load: {share:.3%} {verdict}; it adds {extra * 1e6:.1f} us "
        f"to the size-only hit ({medians['verified hit'] / medians['size-only hit']:.1f}x)"
    )
    return 0


class _RehashCounter(logging.Handler):
    """Counts the cache's ``re-hashing ...`` debug records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("re-hashing ")


@contextlib.contextmanager
def _counting_rehashes() -> Iterator[_RehashCounter]:
    """Count the cache's re-hashes (its debug records) instead of printing them."""
    logger = logging.getLogger("zoo.hub.cache")
    counter, level, propagate = _RehashCounter(), logger.level, logger.propagate
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
        logger.propagate = propagate


def _wait_for_next_tick(path: Path, scratch: Path) -> None:
    """Until the filesystem clock is past ``path``'s last change (a fingerprint recorded in the
    same tick is re-hashed on the next hit)."""
    probe = scratch / ".tick"
    while True:
        probe.write_bytes(b"x")
        if probe.stat().st_mtime_ns > path.stat().st_ctime_ns:
            return
        time.sleep(0.001)


if __name__ == "__main__":
    sys.exit(main())
