"""Run one benchmark combination and return its row.

A combination is one (model, dataset, loss, device, batch size, precision, mode). ``infer``
times a forward pass under ``eval()`` + ``inference_mode()``; ``train`` times the trainer's own
step (:func:`zoo.runtime.step.train_step`: forward, loss, zero_grad, backward, optimizer step);
``fit`` trains with :class:`zoo.train.Trainer` and reports the test metric and the time to it.
Synthetic rows (``input_shape`` set) build the model for random input of that shape
(:mod:`zoo.bench.synthetic`); every infer/train row counts its FLOPs on the eager model first
(:mod:`zoo.bench.flops`; a forward that fails names the layer), then applies the knobs
(:mod:`zoo.bench.knobs`); an ``onnxruntime`` row times zoo's ONNX export (:mod:`zoo.bench.ort`).
Any failure becomes the row's ``error``; an out-of-memory on an accelerator halves the batch
size until it fits and records the size that ran.

Each row runs with the thread count of :func:`zoo.runtime.threads.use_threads` (recorded in the
row; torch's count is restored after it). Its peak memory is that of building the model and
the batch and running the first :data:`MEMORY_STEPS` steps, under a
:class:`~zoo.bench.environment.MemoryProbe` (allocator-level, so the same whatever ran
before); the timing runs after, outside the probe. A ``fit`` row first runs those steps as a
warm-up, and its samples/s is the median over the epochs after the first, so neither the
process's nor the model's one-time costs count.

``python -m zoo.bench.combo SPEC_JSON`` runs one combination in a fresh process (``--isolate``)
and prints its row as one JSON line prefixed with ``ROW_MARKER``.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo import api
from zoo._util.jsonio import loads
from zoo.bench.environment import MemoryProbe, process_peak_rss, synchronizer
from zoo.bench.flops import count_flops, layer_errors, peak_dtype, peak_fraction
from zoo.bench.knobs import apply_knobs, compile_errors
from zoo.bench.rows import ROW_MARKER, Combo, Settings, empty_row
from zoo.bench.synthetic import synthetic_batch, synthetic_entry
from zoo.bench.timing import Measurement, measure, noise_reason, spread
from zoo.errors import ZooError, one_line
from zoo.models import build_model, model_kwargs
from zoo.runtime.device import device_name, resolve_device
from zoo.runtime.precision import Precision
from zoo.runtime.step import train_step
from zoo.runtime.threads import use_threads
from zoo.tasks import contracts as tasks
from zoo.train.optim import create_optimizer
from zoo.train.trainer import Trainer
from zoo.weights.files import export, tensor_identity

__all__ = [
    "MEMORY_STEPS",
    "SPEC_MAX_BYTES",
    "decay_on_oom",
    "fit_curve",
    "fit_speed",
    "is_oom",
    "main",
    "run_combo",
    "time_infer",
    "time_train",
]

SPEC_MAX_BYTES = 2**16  # the combination and settings an ``--isolate`` parent passes

MEMORY_STEPS = 2  # steps inside the memory probe: the first allocates Adam's state, the second
# runs with it (the steady state of training)


def run_combo(combo: Combo, settings: Settings, cache: dict | None = None) -> dict[str, Any]:
    """Measure one combination; never raises for a failure of the work (it goes in ``error``).

    ``cache`` keeps loaded datasets between the combinations of one run.
    """
    row = empty_row(combo)
    row["torch_version"] = torch.__version__
    row["host"] = platform.node()
    cache = {} if cache is None else cache
    with use_threads(settings.threads) as threads:
        row["threads"] = threads
        _run_row(combo, settings, cache, row)
    return row


def _run_row(combo: Combo, settings: Settings, cache: dict, row: dict[str, Any]) -> None:
    """Fill ``row``; a failure of the work goes in its ``error``."""
    device = None
    try:
        device = resolve_device(combo.device)  # "cuda" -> "cuda:N": the CUDA calls need an index
        row["device_name"] = device_name(device)
        row["task"] = combo.task or api.get_entry("dataset", combo.dataset).tasks[0]
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
        # zoo's own row errors (layer, compile) read as they are; others name their type
        row["error"] = one_line(exc, typed=type(exc) is not ZooError)
    finally:
        _release(device)


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
    synthetic = combo.input_shape is not None
    data = None if synthetic else _load(combo.dataset, split, cache)  # outside the probe
    if combo.runtime == "onnxruntime":
        _run_onnxruntime(combo, settings, device, data, batch, row)
        return
    work = _probe_memory(combo, settings, device, data, batch, row)
    if combo.mode == "fit":
        del work  # the warm-up's model and optimizer state go before the trainer builds its own
        _fit(combo, settings, device, batch, row)
        return
    _describe_model(work.model, row)
    with work.context():
        m = measure(
            work.step,
            min_run_time=settings.min_run_time,
            warmup=settings.warmup,
            sync=synchronizer(device),
        )
    _fill_timing(row, m, batch)
    _fill_work(row, device)


@dataclass
class _Work:
    """What one timed call runs (``step``), inside a fresh ``context()``, on ``model``."""

    model: torch.nn.Module
    step: Callable[[], Any]
    context: Callable[[], AbstractContextManager[Any]]


def _probe_memory(
    combo: Combo,
    settings: Settings,
    device: torch.device,
    data: Any,
    batch: int,
    row: dict[str, Any],
) -> _Work:
    """Build the model and one batch on ``device`` (moved once) and run :data:`MEMORY_STEPS`
    steps of the row's work (a ``fit`` row: training steps) under a memory probe; record the
    peak in ``row``. Returns the work, ready to be timed."""
    sync = synchronizer(device)
    with MemoryProbe(device) as probe:
        torch.manual_seed(settings.seed)
        model, x, y = _model_and_batch(combo, settings, device, data, batch)
        if combo.mode != "fit":
            row["flops"] = _count_flops(combo, model, x, y, row["task"], device, batch)
        model, x = apply_knobs(model, x, combo)
        if combo.mode == "infer":
            work = _infer_work(model, x, device, combo.precision)
        else:
            work = _train_work(
                model, x, y, loss=combo.loss or "", task=row["task"], device=device,
                precision=combo.precision, lr=settings.lr,
            )  # fmt: skip
        with work.context(), compile_errors(combo):
            for _ in range(MEMORY_STEPS):
                work.step()
            sync()
    row["peak_memory_bytes"] = probe.peak()
    row["memory_kind"] = probe.kind
    return work


def _run_onnxruntime(
    combo: Combo, settings: Settings, device: torch.device, data: Any, batch: int, row: dict
) -> None:
    """An ONNX Runtime row: the model exported, checked against torch, then timed (its
    memory is ONNX Runtime's own, outside torch's allocator: not measured)."""
    from zoo.bench.ort import ort_session_step

    torch.manual_seed(settings.seed)
    model, x, y = _model_and_batch(combo, settings, device, data, batch)
    row["flops"] = _count_flops(combo, model, x, y, row["task"], device, batch)
    _describe_model(model, row)
    step = ort_session_step(model, x, device, torch.get_num_threads())
    m = measure(
        step, min_run_time=settings.min_run_time, warmup=settings.warmup, sync=synchronizer(device)
    )
    _fill_timing(row, m, batch)
    _fill_work(row, device)


def _model_and_batch(
    combo: Combo, settings: Settings, device: torch.device, data: Any, batch: int
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The row's model on ``device`` and one batch: the dataset's first samples, or synthetic
    ones (seeded) of the combination's shape with labels of its task."""
    if combo.input_shape is None:
        model = api.create_model(combo.model, dataset=combo.dataset).to(device)
        return (model, *_batch(data, batch, device))
    entry = synthetic_entry(combo.input_shape, combo.task or "multiclass", combo.num_classes)
    m_entry = api.get_entry("model", combo.model)
    model = build_model(m_entry, model_kwargs(m_entry, entry, {}), entry).to(device)
    return (model, *synthetic_batch(entry, batch, seed=settings.seed, device=device))


def _count_flops(
    combo: Combo,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str,
    device: torch.device,
    batch: int,
) -> int:
    """FLOPs of one call of the row's work on the eager model: the forward pass (infer), or
    forward, loss and backward (train; an SGD at lr 0 stands in for the optimizer, so the
    weights stay as they are). A forward that fails is one line naming the layer."""
    shape = "x".join(map(str, x.shape[1:]))
    what = f"model {combo.model} on input {shape} (batch {batch})"
    amp = Precision(combo.precision, device)
    with layer_errors(model, what):
        if combo.mode == "infer":
            model.eval()
            with torch.inference_mode(), amp.forward_context():
                return count_flops(lambda: model(x))
        entry = api.get_entry("loss", combo.loss or "")
        loss_fn = api.create_loss(entry.qualname).to(device)
        still = torch.optim.SGD(model.parameters(), lr=0.0)
        model.train()
        flops = count_flops(
            lambda: train_step(
                model,
                x,
                y,
                loss_fn=loss_fn,
                optimizer=still,
                precision=amp,
                task=task,
                expects=entry.meta.get("expects", "logits"),
            )  # fmt: skip
        )
        model.zero_grad(set_to_none=True)
        return flops


def _fill_work(row: dict[str, Any], device: torch.device) -> None:
    """MACs, achieved FLOP/s and the fraction of the device's peak, from ``flops``."""
    flops, median_ms = row.get("flops"), row.get("latency_ms_median")
    if row.get("params") is not None:
        row["params_m"] = row["params"] / 1e6
    if flops is None:
        return
    row["macs"] = flops / 2
    row["gmacs"] = flops / 2e9
    if median_ms:
        row["flops_per_s"] = flops / (median_ms / 1e3)
    if device.type == "cuda":
        row["peak_dtype"] = peak_dtype(row["precision"], device.type)
        row["peak_fraction"] = peak_fraction(
            row.get("device_name"), row["peak_dtype"], row.get("flops_per_s")
        )


def _cap_cuda_memory(device: torch.device) -> None:
    """``ZOO_BENCH_CUDA_MEMORY_FRACTION=0.01`` caps this process's share of the GPU, so a
    big card behaves like a small one (how ``benchmarks/gpu_check.sh`` exercises OOM decay)."""
    fraction = os.environ.get("ZOO_BENCH_CUDA_MEMORY_FRACTION")
    if device.type == "cuda" and fraction:
        torch.cuda.set_per_process_memory_fraction(float(fraction), device)


_INITIALISED = False


def _initialise_torch_once() -> None:
    """Pay torch's one-time lazy imports (the optimizer's pull in ~150 MiB) before the first
    row, so that row's warm-up and time are its own work, not library loading."""
    global _INITIALISED
    if _INITIALISED:
        return
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([weight])
    (weight.grad,) = torch.autograd.grad((weight * 2).sum(), weight)
    optimizer.step()
    _INITIALISED = True


def _infer_work(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, precision: str
) -> _Work:
    """``model(x)`` under ``eval()`` + ``inference_mode()`` + the precision's autocast."""
    model.eval()
    amp = Precision(precision, device)

    def context() -> AbstractContextManager[Any]:
        stack = ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(amp.forward_context())
        return stack

    return _Work(model, lambda: model(x), context)


def _train_work(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str,
    task: str,
    device: torch.device,
    precision: str,
    lr: float,
) -> _Work:
    """One :func:`zoo.runtime.step.train_step` per call, set up as the trainer sets it up."""
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

    return _Work(model, step, nullcontext)


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
    work = _infer_work(model, x, device, precision)
    with work.context():
        return measure(
            work.step, min_run_time=min_run_time, warmup=warmup, sync=synchronizer(device)
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
    work = _train_work(model, x, y, loss=loss, task=task, device=device, precision=precision, lr=lr)
    return measure(work.step, min_run_time=min_run_time, warmup=warmup, sync=synchronizer(device))


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
        threads=torch.get_num_threads(),  # the row's count (the trainer would apply its default)
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
    speeds = fit_speed(result.history)
    row["epoch_samples_per_s"] = speeds
    row["samples_per_s"] = float(statistics.median(speeds)) if speeds else None
    row["round_spread"] = spread(speeds)
    row["noise"] = noise_reason(None, row["round_spread"])
    row["noisy"] = row["noise"] is not None
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


def fit_speed(history: list[dict[str, Any]] | None) -> list[float]:
    """The samples/s of each epoch after the first (the first alone for a one-epoch fit).

    The first epoch pays what only happens once per model (optimizer state, allocator growth
    for its activations, kernel selection), so it is left out of a fit's steady speed.
    """
    speeds = [float(r["samples_per_s"]) for r in history or [] if r.get("samples_per_s")]
    return speeds[1:] if len(speeds) > 1 else speeds


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
    unique = {tensor_identity(t): t for t in model.state_dict().values()}  # tied: stored once
    row["weights_bytes"] = sum(t.numel() * t.element_size() for t in unique.values())


def _fill_timing(row: dict[str, Any], m: Measurement, batch: int) -> None:
    row["latency_ms_median"] = m.median * 1e3
    row["latency_ms_iqr"] = m.iqr * 1e3
    row["latency_ms_p90"] = m.p90 * 1e3
    row["latency_ms_p99"] = m.p99 * 1e3
    row["samples_per_s"] = batch / m.median if m.median > 0 else None
    row["timing_samples"] = len(m.times)
    row["timing_block"] = m.block
    row["round_medians_ms"] = [t * 1e3 for t in m.round_medians]
    row["round_spread"] = m.round_spread
    row["noise"] = m.noise
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
    spec = loads(args[0], max_bytes=SPEC_MAX_BYTES)
    row = run_combo(Combo(**spec["combo"]), Settings(**spec["settings"]))
    row["process_peak_rss_bytes"] = process_peak_rss()  # the whole fresh process's peak
    sys.stdout.write(ROW_MARKER + json.dumps(row, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
