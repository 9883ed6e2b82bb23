"""Is ``zoo bench`` within 5% of timm's benchmark loop on the same model? Run them side by side.

For each model x batch size x mode (224x224 synthetic input, fp32, one thread by default),
interleaved round by round in one process so all see the same machine load:

- **zoo** — the harness the ``zoo bench`` row runs (``zoo.bench.combo.time_infer`` /
  ``time_train``: ``eval()`` + ``inference_mode()``, or the trainer's step with Adam; warm-up,
  blocks, rounds; the median) on model M, built as ``zoo bench`` builds it;
- **timm loop** — the essence of timm's ``benchmark.py`` (``InferenceBenchmarkRunner`` /
  ``TrainBenchmarkRunner``) on the same object M: ``eval()`` + ``no_grad()``, warm-up steps,
  then each step timed alone (train: ``zero_grad`` untimed, then forward, cross-entropy on a
  fresh random target, backward, optimizer step), with the optimizer zoo's train row uses
  (Adam, lr 1e-3, through timm's ``create_optimizer_v2``);
- **timm model** — for context, the timm loop on ``timm.create_model(...)``'s own model
  (``resnet18``, ``mobilenetv3_small_100``);
- **zoo.bench()** (with ``--api``) — the whole public API call the CLI makes: its own model
  from the registry, FLOP count and memory probe first, then the row's median.

The headline is zoo / timm loop (the harness, same model: goal 0.95-1.05): the median over the
rounds of each round's ratio of medians (timm's own script prints the mean step time; the
median is steadier on a shared machine). The defaults are small, for a 2-core box with one
thread (resnet18 at batch 8 trains at seconds a step there); use more ``--rounds`` and
``--steps`` on a quiet machine.

    python benchmarks/bench_vs_timm.py [--rounds 1 --steps 3 --threads 1] [--api] [--json F]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

#: zoo's model name -> timm's name for the same architecture
TIMM_NAMES = {"resnet18": "resnet18", "mobilenet-v3-small": "mobilenetv3_small_100"}
CONTENDERS = ("zoo", "timm loop", "zoo.bench()", "timm model")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run :func:`compare` with the given torch threads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet-v3-small")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--modes", default="infer,train")
    parser.add_argument("--image-size", type=int, default=224, help="H = W of the input [224]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds [1]")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of the timm loop [3]")
    parser.add_argument("--warmup-steps", type=int, default=1, help="timm loop warm-up steps [1]")
    parser.add_argument(
        "--min-run-time", type=float, default=0.3, help="zoo's timed seconds per row [0.3]"
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads [1]")
    parser.add_argument(
        "--api", action="store_true", help="add the whole zoo.bench() call (its own model)"
    )
    parser.add_argument("--no-timm-model", action="store_true", help="leave out timm's models")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    from zoo.runtime.threads import use_threads

    with use_threads(args.threads):
        return compare(args)


def compare(args: argparse.Namespace) -> int:
    """Time every point round by round and print the table (see the module docstring)."""
    import torch

    from zoo.runtime.device import resolve_device

    device = resolve_device(args.device)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    shape = (3, args.image_size, args.image_size)
    built = {name: _zoo_model(name, shape, device) for name in models}
    theirs = {} if args.no_timm_model else {n: _timm_model(n, device) for n in models}
    points = [(m, b, mode) for m in models for b in sizes for mode in modes]
    samples: dict[tuple, dict[str, list[float]]] = {p: {} for p in points}
    contenders = [
        c
        for c in CONTENDERS
        if not (c == "zoo.bench()" and not args.api)
        and not (c == "timm model" and args.no_timm_model)
    ]

    print(
        f"{', '.join(models)}; batch {args.batch_sizes}; {'x'.join(map(str, shape))}; "
        f"{device}; fp32; {torch.get_num_threads()} thread(s); torch {torch.__version__}; "
        f"{args.rounds} round(s); timm loop {args.warmup_steps}+{args.steps} steps; "
        f"zoo {args.min_run_time}s",
        flush=True,
    )
    started = time.perf_counter()
    for r in range(args.rounds):
        order = contenders if r % 2 == 0 else contenders[::-1]  # no contender always first
        for point in points:
            for name in order:
                if name == "timm model" and theirs.get(point[0]) is None:
                    continue
                seconds = _time_one(name, point, built, theirs, shape, device, args)
                samples[point].setdefault(name, []).append(seconds)
        print(f"round {r + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)")

    figures = [_figures(point, samples[point]) for point in points]
    _print_table(figures)
    goal = [f["zoo / timm loop"] for f in figures]
    print(
        f"zoo / timm loop (same model): {min(goal):.3f} to {max(goal):.3f} "
        f"(goal within 5%: 0.95-1.05); wall {time.perf_counter() - started:.0f} s"
    )
    if args.json:
        from zoo._util.atomic import write_json

        write_json(
            args.json,
            {
                "device": str(device),
                "threads": torch.get_num_threads(),
                "torch_version": torch.__version__,
                "input_shape": list(shape),
                "rounds": args.rounds,
                "steps": args.steps,
                "warmup_steps": args.warmup_steps,
                "min_run_time": args.min_run_time,
                "points": figures,
            },
        )
    return 0


def _time_one(
    name: str,
    point: tuple[str, int, str],
    built: dict[str, Any],
    theirs: dict[str, Any],
    shape: tuple[int, ...],
    device: Any,
    args: argparse.Namespace,
) -> float:
    """One contender's median seconds per step at one point."""
    model, batch, mode = point
    if name == "zoo.bench()":
        return _zoo_api(model, shape, batch, mode, args)
    x, y = _batch(built[model][1], batch, device)
    if name == "zoo":
        return _zoo(built[model][0], x, y, mode, device, args)
    return _timm_loop(
        built[model][0] if name == "timm loop" else theirs[model], x, mode, device, args
    )


def _zoo_model(name: str, shape: tuple[int, ...], device: Any) -> tuple[Any, Any]:
    """Model M on ``device``, built as a synthetic ``zoo bench`` row builds it, and its
    synthetic dataset entry."""
    import torch

    import zoo
    from zoo.bench.synthetic import synthetic_entry, synthetic_task
    from zoo.models import build_model, model_kwargs

    m_entry = zoo.api.get_entry("model", name)
    entry = synthetic_entry(shape, synthetic_task(m_entry), 1000)
    torch.manual_seed(0)
    return build_model(m_entry, model_kwargs(m_entry, entry, {}), entry).to(device), entry


def _timm_model(name: str, device: Any) -> Any:
    """timm's own model of the same architecture (``None`` where there is none)."""
    import timm

    timm_name = TIMM_NAMES.get(name)
    return None if timm_name is None else timm.create_model(timm_name).to(device)


def _batch(entry: Any, batch: int, device: Any) -> tuple[Any, Any]:
    from zoo.bench.synthetic import synthetic_batch

    return synthetic_batch(entry, batch, seed=0, device=device)


def _zoo(model: Any, x: Any, y: Any, mode: str, device: Any, args: argparse.Namespace) -> float:
    """The median seconds per call of the harness the ``zoo bench`` row runs."""
    from zoo.bench.combo import time_infer, time_train
    from zoo.tasks.contracts import TASKS

    if mode == "infer":
        m = time_infer(model, x, device, min_run_time=args.min_run_time)
    else:
        loss = TASKS["multiclass"].default_loss
        m = time_train(
            model, x, y, loss=loss, task="multiclass", device=device, lr=args.lr,
            min_run_time=args.min_run_time,
        )  # fmt: skip
    return m.median


def _zoo_api(
    model: str, shape: tuple[int, ...], batch: int, mode: str, args: argparse.Namespace
) -> float:
    """The median seconds per call of the row ``zoo.bench(...)`` returns (its own model)."""
    import zoo

    result = zoo.bench(
        model,
        input_shape=list(shape),
        num_classes=1000,
        devices=args.device,
        batch_sizes=batch,
        modes=mode,
        min_run_time=args.min_run_time,
        threads=args.threads,
    )
    (row,) = result.rows
    if row.get("error"):
        raise SystemExit(f"zoo.bench({model}, {mode}, b{batch}): {row['error']}")
    return row["latency_ms_median"] / 1e3


def _timm_loop(model: Any, x: Any, mode: str, device: Any, args: argparse.Namespace) -> float:
    """The median seconds per step of timm's benchmark loop (see the module docstring)."""
    import torch
    from timm.optim import create_optimizer_v2

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = time.perf_counter
    if mode == "infer":
        model.eval()

        def step() -> float:
            t0 = clock()
            model(x)
            sync()
            return clock() - t0

        with torch.no_grad():
            return _steps(step, args)

    model.train()
    loss_fn = torch.nn.CrossEntropyLoss().to(device)
    optimizer = create_optimizer_v2(model, opt="adam", lr=args.lr)

    def train_step() -> float:
        optimizer.zero_grad()
        t0 = clock()
        output = model(x)
        if isinstance(output, tuple):
            output = output[0]
        target = torch.empty(output.shape[0], device=device, dtype=torch.long).random_(1000)
        loss_fn(output, target).backward()
        optimizer.step()
        sync()
        return clock() - t0

    return _steps(train_step, args)


def _steps(step: Callable[[], float], args: argparse.Namespace) -> float:
    for _ in range(args.warmup_steps):
        step()
    return statistics.median(step() for _ in range(args.steps))


def _figures(point: tuple[str, int, str], runs: dict[str, list[float]]) -> dict[str, Any]:
    """Each contender's median ms over the rounds and, per round, its ratio to the timm loop."""
    model, batch, mode = point
    out: dict[str, Any] = {"model": model, "batch_size": batch, "mode": mode}
    reference = runs["timm loop"]
    for name, seconds in runs.items():
        out[f"{name} ms"] = statistics.median(seconds) * 1e3
        out[f"{name} runs ms"] = [s * 1e3 for s in seconds]
        if name != "timm loop":
            ratios = [a / b for a, b in zip(seconds, reference, strict=True)]
            out[f"{name} / timm loop"] = statistics.median(ratios)
    return out


def _print_table(figures: list[dict[str, Any]]) -> None:
    names = [c for c in CONTENDERS if any(f"{c} ms" in f for f in figures)]
    head = f"{'model':<20} {'batch':>5} {'mode':<5} " + " ".join(f"{n + ' ms':>14}" for n in names)
    ratio_names = [n for n in names if n != "timm loop"]
    head += " " + " ".join(f"{n + '/loop':>16}" for n in ratio_names)
    print(head)
    for f in figures:
        line = f"{f['model']:<20} {f['batch_size']:>5} {f['mode']:<5} "
        line += " ".join(f"{f.get(n + ' ms', float('nan')):>14.2f}" for n in names)
        line += " " + " ".join(
            f"{f.get(n + ' / timm loop', float('nan')):>16.3f}" for n in ratio_names
        )
        print(line)


if __name__ == "__main__":
    sys.exit(main())
