"""Run one benchmark combination and return its row.

A combination is one (model, dataset, loss, device, batch size, precision, mode). ``infer``
times a forward pass under ``eval()`` + ``inference_mode()``; ``train`` times the trainer's own
step (:func:`zoo.runtime.step.train_step`: forward, loss, zero_grad, backward, optimizer step);
``fit`` trains with :class:`zoo.train.Trainer` and reports the test metric and the time to it.
Any failure becomes the row's ``error``; an out-of-memory on an accelerator halves the batch
size until it fits and records the size that ran.

``python -m zoo.bench.combo SPEC_JSON`` runs one combination in a fresh process (``--isolate``)
and prints its row as one JSON line prefixed with ``ROW_MARKER``.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

from zoo import api
from zoo.bench.environment import MemoryProbe, synchronizer
from zoo.bench.rows import ROW_MARKER, Combo, Settings, empty_row
from zoo.bench.timing import Measurement, measure
from zoo.runtime.device import device_name, resolve_device
from zoo.runtime.precision import Precision
from zoo.runtime.step import train_step
from zoo.tasks import contracts as tasks
from zoo.train.optim import create_optimizer
from zoo.train.trainer import Trainer
from zoo.weights.files import export

__all__ = [
    "decay_on_oom",
    "fit_curve",
    "is_oom",
    "main",
    "run_combo",
    "time_infer",
    "time_train",
]


def run_combo(combo: Combo, settings: Settings, cache: dict | None = None) -> dict[str, Any]:
    """Measure one combination; never raises for a failure of the work (it goes in ``error``).

    ``cache`` keeps loaded datasets between the combinations of one run.
    """
    row = empty_row(combo)
    row["torch_version"] = torch.__version__
    if settings.threads:
        torch.set_num_threads(settings.threads)
    row["threads"] = torch.get_num_threads()
    cache = {} if cache is None else cache
    device = None
    try:
        device = resolve_device(combo.device)  # "cuda" -> "cuda:N": the CUDA calls need an index
        row["device_name"] = device_name(device)
        row["task"] = api.get_entry("dataset", combo.dataset).tasks[0]
        with _current_device(device):
            _cap_cuda_memory(device)
            _, batch = decay_on_oom(
                lambda b: _run_mode(combo, settings, device, b, row, cache),
                combo.batch_size,
                cleanup=lambda: _release(device),
            )
        row["effective_batch_size"] = batch
        if batch != combo.batch_size:
            row["note"] = f"out of memory at batch size {combo.batch_size}; ran with {batch}"
    except Exception as exc:  # a failing combination is a row, not a crash
        row["error"] = _one_line(exc)
    finally:
        _release(device)
    return row


def _current_device(device: torch.device) -> AbstractContextManager[Any]:
    """Make a CUDA ``device`` the current one for the run (``cuda:1`` work stays on GPU 1)."""
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


def _run_mode(
    combo: Combo,
    settings: Settings,
    device: torch.device,
    batch: int,
    row: dict[str, Any],
    cache: dict,
) -> None:
    """One attempt at ``batch``: fill ``row`` with the measurements and the peak memory."""
    _initialise_torch_once()
    split = "test" if combo.mode == "infer" else "train"
    data = _load(combo.dataset, split, cache)  # loading stays outside the memory probe
    with MemoryProbe(device) as probe:
        if combo.mode == "fit":
            _fit(combo, settings, device, batch, row)
        else:
            _fill_timing(row, _time_step(combo, settings, device, data, batch, row), batch)
    row["peak_memory_bytes"] = probe.peak()
    row["memory_kind"] = probe.kind


def _time_step(
    combo: Combo,
    settings: Settings,
    device: torch.device,
    data: Any,
    batch: int,
    row: dict[str, Any],
) -> Measurement:
    """Build the model and one batch on ``device`` (moved once), then time infer or train."""
    torch.manual_seed(settings.seed)
    model = api.create_model(combo.model, dataset=combo.dataset).to(device)
    _describe_model(model, row)
    x, y = _batch(data, batch, device)
    if combo.mode == "infer":
        return time_infer(
            model,
            x,
            device,
            combo.precision,
            min_run_time=settings.min_run_time,
            warmup=settings.warmup,
        )
    return time_train(
        model,
        x,
        y,
        loss=combo.loss,
        task=row["task"],
        device=device,
        precision=combo.precision,
        lr=settings.lr,
        min_run_time=settings.min_run_time,
        warmup=settings.warmup,
    )


def _cap_cuda_memory(device: torch.device) -> None:
    """``ZOO_BENCH_CUDA_MEMORY_FRACTION=0.01`` caps this process's share of the GPU, so a
    big card behaves like a small one (how ``benchmarks/gpu_check.sh`` exercises OOM decay)."""
    fraction = os.environ.get("ZOO_BENCH_CUDA_MEMORY_FRACTION")
    if device.type == "cuda" and fraction:
        torch.cuda.set_per_process_memory_fraction(float(fraction), device)


_INITIALISED = False


def _initialise_torch_once() -> None:
    """Pay torch's one-time lazy imports (the optimizer's pull in ~150 MiB) before any memory
    probe, so a row's peak memory is its own work, not the first row's library loading."""
    global _INITIALISED
    if _INITIALISED:
        return
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([weight])
    (weight.grad,) = torch.autograd.grad((weight * 2).sum(), weight)
    optimizer.step()
    _INITIALISED = True


def time_infer(
    model: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    precision: str = "fp32",
    *,
    min_run_time: float = 0.2,
    warmup: float | None = None,
) -> Measurement:
    """Latency of ``model(x)`` under ``eval()`` + ``inference_mode()`` (+ the precision's
    autocast), synchronised on ``device``."""
    model.eval()
    with torch.inference_mode(), Precision(precision, device).forward_context():
        return measure(
            lambda: model(x),
            min_run_time=min_run_time,
            warmup=warmup,
            sync=synchronizer(device),
        )


def time_train(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str,
    task: str,
    device: torch.device,
    precision: str = "fp32",
    lr: float = 1e-3,
    min_run_time: float = 0.2,
    warmup: float | None = None,
) -> Measurement:
    """Time the trainer's own step, :func:`zoo.runtime.step.train_step`, on one batch.

    The model (in ``train()`` mode), the loss entry ``loss``, Adam at ``lr`` (what ``zoo train``
    uses by default) and the precision are set up once, as the trainer sets them up; each
    timed call is one step: forward (autocast), loss, ``zero_grad``, backward, optimizer step.
    """
    entry = api.get_entry("loss", loss)
    expects = entry.meta.get("expects", "logits")
    loss_fn = api.create_loss(entry.qualname).to(device)
    optimizer = create_optimizer("adam", model.parameters(), lr=lr)
    amp = Precision(precision, device)
    model.train()

    def step() -> None:
        train_step(
            model,
            x,
            y,
            loss_fn=loss_fn,
            optimizer=optimizer,
            precision=amp,
            task=task,
            expects=expects,
        )

    return measure(step, min_run_time=min_run_time, warmup=warmup, sync=synchronizer(device))


def _fit(
    combo: Combo, settings: Settings, device: torch.device, batch: int, row: dict[str, Any]
) -> None:
    """Train with the trainer; record the test metrics, the time, the curve, the export."""
    result = Trainer(
        combo.model,
        combo.dataset,
        combo.loss,
        epochs=settings.epochs,
        batch_size=batch,
        device=str(device),
        precision=combo.precision,
        seed=settings.seed,
        lr=settings.lr,
        quiet=True,
    ).fit()
    primary = tasks.TASKS[row["task"]].primary_metric
    metrics = {k: float(v) for k, v in result.metrics.items()}
    row["metrics"] = metrics
    row["metric_name"] = primary
    row["metric"] = metrics.get(primary)
    row["fit_seconds"] = float(result.seconds)
    row["epochs"] = settings.epochs
    row["curve"] = fit_curve(result.history, primary, row["metric"], row["fit_seconds"])
    speeds = [r["samples_per_s"] for r in result.history if r.get("samples_per_s")]
    row["samples_per_s"] = float(statistics.median(speeds)) if speeds else None
    _describe_model(result.model, row)
    if settings.export_dir:
        name = "-".join(
            str(p)
            for p in (
                combo.model,
                combo.dataset,
                combo.loss,
                combo.device,
                combo.precision,
                f"b{combo.batch_size}",
            )
        )
        filename = name.replace("/", "_").replace(":", "_") + ".safetensors"
        path = Path(settings.export_dir) / filename
        row["export"] = str(export(result.model, path, dataset=combo.dataset, metrics=metrics))


def fit_curve(
    history: list[dict[str, Any]] | None, primary: str, final: float | None, seconds: float
) -> list[list[float]]:
    """``[[seconds, metric], ...]``: the test metric after each epoch against the fit's clock.

    Epoch times are the history's ``seconds`` (+ ``eval_seconds``) summed; the time outside
    epochs (setup, data) is added up front so the last point lands on the fit's total
    ``seconds``. Without a usable history the curve is the single final point.
    """
    rows = [r for r in history or [] if isinstance(r.get(f"test_{primary}"), int | float)]
    epoch_times = [float(r.get("seconds", 0.0)) + float(r.get("eval_seconds", 0.0)) for r in rows]
    if not rows or not all(t > 0 for t in epoch_times):
        return [] if final is None else [[seconds, float(final)]]
    clock = max(0.0, seconds - sum(epoch_times))
    points = []
    for row, t in zip(rows, epoch_times, strict=True):
        clock += t
        points.append([clock, float(row[f"test_{primary}"])])
    return points


def _describe_model(model: torch.nn.Module, row: dict[str, Any]) -> None:
    row["params"] = sum(p.numel() for p in model.parameters())
    seen: set[tuple[int, int]] = set()
    size = 0
    for tensor in model.state_dict().values():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if key in seen:  # tied / shared weights are stored once
            continue
        seen.add(key)
        size += tensor.numel() * tensor.element_size()
    row["weights_bytes"] = size


def _fill_timing(row: dict[str, Any], m: Measurement, batch: int) -> None:
    row["latency_ms_median"] = m.median * 1e3
    row["latency_ms_iqr"] = m.iqr * 1e3
    row["latency_ms_p90"] = m.p90 * 1e3
    row["latency_ms_p99"] = m.p99 * 1e3
    row["samples_per_s"] = batch / m.median if m.median > 0 else None
    row["timing_samples"] = len(m.times)
    row["timing_block"] = m.block
    row["noisy"] = m.noisy


def _load(name: str, split: str, cache: dict) -> Any:
    key = (name, split)
    if key not in cache:
        cache[key] = api.load_dataset(name, split)
    return cache[key]


def _batch(data: Any, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples of a split (wrapping around a smaller split), on ``device``."""
    if isinstance(data, tuple | list) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        X, y = data
        idx = torch.arange(n) % len(X)
        return X[idx].to(device), y[idx].to(device)
    items = [data[i % len(data)] for i in range(n)]
    X = torch.stack([torch.as_tensor(a) for a, _ in items])
    y = torch.stack([torch.as_tensor(b) for _, b in items])  # keeps int64 labels, float targets
    return X.to(device), y.to(device)


def is_oom(exc: BaseException) -> bool:
    """``True`` for an accelerator out-of-memory error (also when wrapped by another error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.OutOfMemoryError):
            return True
        if isinstance(current, RuntimeError) and "out of memory" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def _release(device: torch.device | None) -> None:
    """Free what a finished or failed attempt left: Python garbage, then cached GPU memory."""
    gc.collect()
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decay_on_oom(
    run: Callable[[int], Any], batch_size: int, *, cleanup: Callable[[], Any] = gc.collect
) -> tuple[Any, int]:
    """Call ``run(batch)``, halving ``batch`` after each out-of-memory error: (result, batch).

    ``cleanup`` runs after the failed attempt's frames are released (so cached accelerator
    memory can be returned); any other error, or an OOM at batch size 1, propagates.
    """
    batch = batch_size
    while True:
        try:
            return run(batch), batch
        except Exception as exc:
            if not is_oom(exc) or batch <= 1:
                raise
        cleanup()
        batch //= 2


def main(argv: list[str] | None = None) -> int:
    """Child-process entry for ``--isolate``: SPEC_JSON -> one row on stdout."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    row = run_combo(Combo(**spec["combo"]), Settings(**spec["settings"]))
    sys.stdout.write(ROW_MARKER + json.dumps(row, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
