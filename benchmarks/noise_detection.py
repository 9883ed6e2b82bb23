"""Does the bench harness flag a measurement that a busy machine spoiled? Run it beside a CPU hog.

The same model and batch are timed with the harness (``zoo.bench.combo.time_infer``) in three
scenes, interleaved trial by trial so all see the same background:

- **quiet**: nothing started beside it (its median is the reference time);
- **hog**: ``python -c "while True: pass"`` children running for the whole measurement;
- **hog-midway**: the same children started at a random moment inside the measurement.

A loaded trial is *spoiled* when its median is more than 10% off the quiet trials' median.
Printed per scene: trials, spoiled, and how many were flagged noisy by the old rule (IQR /
median > 10%) and by the harness's rule (that, or its separated rounds disagree by > 10%); the
detection rate is flagged / spoiled, the false-alarm rate flagged / not spoiled.

    python benchmarks/noise_detection.py [--trials 10 --hogs 1 --threads 2 --json out.json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

HOG = "while True: pass"
SCENES = ("quiet", "hog", "hog-midway")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the trials with the given torch threads, restore them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinyvgg")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=10, help="trials per scene [10]")
    parser.add_argument("--hogs", type=int, default=1, help="CPU hog processes [1]")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads [the bench's rule]"
    )
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    from zoo.runtime.threads import use_threads

    with use_threads(args.threads) as threads:
        args.threads = threads
        return run(args)


def _start_hogs(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]


def _stop(hogs: list[subprocess.Popen]) -> None:
    for proc in hogs:
        proc.kill()
    for proc in hogs:
        proc.wait()


def run(args: argparse.Namespace) -> int:
    """Time the model in each scene, trial by trial; print and optionally write the figures."""
    import torch

    import zoo
    from zoo.bench.combo import time_infer
    from zoo.bench.timing import NOISE_THRESHOLD
    from zoo.runtime.device import resolve_device

    device = resolve_device("cpu")
    torch.manual_seed(0)
    model = zoo.create_model(args.model, dataset=args.dataset).to(device)
    X, _ = zoo.load_dataset(args.dataset, "test")
    x = X[torch.arange(args.batch_size) % len(X)].to(device)
    rng = random.Random(args.seed)
    trials: dict[str, list[dict[str, Any]]] = {scene: [] for scene in SCENES}

    def timed(scene: str) -> dict[str, Any]:
        hogs: list[subprocess.Popen] = []
        timer = None
        if scene == "hog":
            hogs = _start_hogs(args.hogs)
            time.sleep(0.1)  # the children are past interpreter start-up and spinning
        elif scene == "hog-midway":
            delay = rng.uniform(0.0, args.min_run_time)
            timer = threading.Timer(delay, lambda: hogs.extend(_start_hogs(args.hogs)))
            timer.start()
        try:
            m = time_infer(model, x, device, min_run_time=args.min_run_time)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
            _stop(hogs)
        return {
            "median_s": m.median,
            "relative_iqr": m.relative_iqr,
            "round_spread": m.round_spread,
            "noisy": m.noisy,
            "noisy_iqr_only": m.relative_iqr > NOISE_THRESHOLD,
        }

    order = list(SCENES)
    for _ in range(args.trials):
        rng.shuffle(order)
        for scene in order:
            trials[scene].append(timed(scene))
            time.sleep(0.05)

    reference = statistics.median(t["median_s"] for t in trials["quiet"])
    print(
        f"{args.model} on {args.dataset}, batch {args.batch_size}, {args.threads} thread(s), "
        f"{args.hogs} hog(s), {args.trials} trials per scene, torch {torch.__version__}; "
        f"quiet median {reference * 1e3:.4g} ms"
    )
    print(
        f"{'scene':<11} {'trials':>6} {'spoiled':>7} {'old rule':>15} {'harness rule':>15} "
        f"{'false alarms':>12}  median ms (min-max)"
    )
    summary: dict[str, Any] = {}
    for scene in SCENES:
        rows = trials[scene]
        for t in rows:
            t["spoiled"] = abs(t["median_s"] / reference - 1) > NOISE_THRESHOLD
        spoiled = [t for t in rows if t["spoiled"]]
        clean = [t for t in rows if not t["spoiled"]]
        old = sum(t["noisy_iqr_only"] for t in spoiled)
        new = sum(t["noisy"] for t in spoiled)
        alarms = sum(t["noisy"] for t in clean)
        medians = [t["median_s"] * 1e3 for t in rows]
        summary[scene] = {
            "trials": len(rows),
            "spoiled": len(spoiled),
            "flagged_old_rule": old,
            "flagged_harness_rule": new,
            "false_alarms": alarms,
            "clean": len(clean),
            "runs": rows,
        }
        print(
            f"{scene:<11} {len(rows):>6} {len(spoiled):>7} {f'{old}/{len(spoiled)}':>15} "
            f"{f'{new}/{len(spoiled)}':>15} {f'{alarms}/{len(clean)}':>12}  "
            f"{statistics.median(medians):.4g} ({min(medians):.4g}-{max(medians):.4g})"
        )
    if args.json:
        from zoo._util.atomic import write_json

        write_json(
            args.json,
            {
                "model": args.model,
                "dataset": args.dataset,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "hogs": args.hogs,
                "reference_s": reference,
                "scenes": summary,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
