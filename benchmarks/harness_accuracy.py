"""How close is the bench harness to ``torch.utils.benchmark``? Run it side by side.

The same model and batch are timed with the harness (``zoo.bench.combo.time_infer``: eval() +
inference_mode(), warm-up, adaptive blocks) and with
``torch.utils.benchmark.Timer.blocked_autorange`` under ``inference_mode()``, interleaved
A B A B ... in one process so both see the same machine load. Printed:

- the median of the per-pair ratios harness / reference (goal: within 5% of 1.0);
- the spread (max / min of the per-run medians) of the harness runs beside the reference
  runs (goal: no worse than the reference's on the same machine at the same time);
- how many harness runs raised the noise flag (IQR / median, or the spread of its separated
  timing rounds, > 10%).

    python benchmarks/harness_accuracy.py [--model tinyvgg --dataset digits --batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run :func:`compare` with the given torch threads, restore them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinyvgg")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=5, help="A B pairs (runs of each) [5]")
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both timers [1: stable on a shared machine]",
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return compare(args)
    finally:
        torch.set_num_threads(threads_before)


def compare(args: argparse.Namespace) -> int:
    """Time the model A B A B ... and print the figures (see the module docstring)."""
    import torch
    from torch.utils import benchmark

    import zoo
    from zoo.bench.combo import time_infer
    from zoo.runtime.device import resolve_device

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = zoo.create_model(args.model, dataset=args.dataset).to(device).eval()
    X, _ = zoo.load_dataset(args.dataset, "test")
    x = X[torch.arange(args.batch_size) % len(X)].to(device)

    def harness() -> tuple[float, float, bool]:
        m = time_infer(model, x, device, min_run_time=args.min_run_time)
        return m.median, m.relative_iqr, m.noisy

    def reference() -> tuple[float, float]:
        timer = benchmark.Timer(
            "model(x)", globals={"model": model, "x": x}, num_threads=args.threads
        )
        with torch.inference_mode():
            m = timer.blocked_autorange(min_run_time=args.min_run_time)
        return m.median, m.iqr / m.median

    print(
        f"{args.model} on {args.dataset}, batch {args.batch_size}, {device}, "
        f"{args.threads} thread(s), torch {torch.__version__}, min_run_time {args.min_run_time}s"
    )
    print(f"{'pair':>4}  {'harness ms':>11}  {'iqr%':>5}  {'torch ms':>9}  {'iqr%':>5}  ratio")
    harness_runs, reference_runs, ratios, noisy = [], [], [], 0
    for i in range(args.pairs):
        a, a_iqr, a_noisy = harness()
        b, b_iqr = reference()
        harness_runs.append(a)
        reference_runs.append(b)
        ratios.append(a / b)
        noisy += a_noisy
        print(
            f"{i + 1:>4}  {a * 1e3:>11.4f}  {100 * a_iqr:>5.1f}  {b * 1e3:>9.4f}  "
            f"{100 * b_iqr:>5.1f}  {a / b:.3f}"
        )
    ratio = statistics.median(ratios)
    spread_h = max(harness_runs) / min(harness_runs)
    spread_r = max(reference_runs) / min(reference_runs)
    print(f"median ratio harness/torch.utils.benchmark: {ratio:.3f} (goal within 5%: 0.95-1.05)")
    print(
        f"spread (max/min of medians over {args.pairs} runs): harness {spread_h:.3f}, "
        f"torch.utils.benchmark {spread_r:.3f}"
    )
    print(f"harness runs flagged noisy (IQR/median or rounds > 10%): {noisy} of {args.pairs}")
    if args.json:
        from zoo._util.atomic import write_json

        write_json(
            args.json,
            {
                "model": args.model,
                "dataset": args.dataset,
                "batch_size": args.batch_size,
                "device": str(device),
                "threads": args.threads,
                "harness_s": harness_runs,
                "reference_s": reference_runs,
                "ratios": ratios,
                "median_ratio": ratio,
                "spread_harness": spread_h,
                "spread_reference": spread_r,
                "noisy_runs": noisy,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
