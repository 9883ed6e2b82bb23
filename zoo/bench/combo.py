"""Run one benchmark combination and return its row.

A combination is one (model, dataset, loss, device, batch size, precision, mode). ``infer``
times a forward pass under ``eval()`` + ``inference_mode()``; ``train`` times forward +
backward + optimizer step; ``fit`` trains with :class:`zoo.train.Trainer` and reports the test
metric and the time to it. Any failure becomes the row's ``error``; an out-of-memory on an
accelerator halves the batch size until it fits and records the size that ran.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import api
from zoo.bench.environment import PRECISIONS, MemoryProbe, synchronizer
from zoo.bench.timing import Measurement, measure
from zoo.tasks import contracts as tasks

if TYPE_CHECKING:
    import torch

MODES = ("infer", "train", "fit")
ROW_MARKER = "ZOO_BENCH_ROW "

# Every row has every field (``None`` where it does not apply); CSV columns follow this order.
ROW_FIELDS = (
    "model",
    "dataset",
    "loss",
    "task",
    "mode",
    "device",
    "device_name",
    "precision",
    "dtype",
    "batch_size",
    "effective_batch_size",
    "latency_ms_median",
    "latency_ms_iqr",
    "latency_ms_p90",
    "latency_ms_p99",
    "samples_per_s",
    "timing_samples",
    "timing_block",
    "noisy",
    "metric_name",
    "metric",
    "fit_seconds",
    "epochs",
    "params",
    "weights_bytes",
    "peak_memory_bytes",
    "memory_kind",
    "torch_version",
    "threads",
    "export",
    "note",
    "error",
)
EXTRA_FIELDS = ("metrics", "curve")  # JSON only: the fit's test metrics and metric-vs-time curve


@dataclass(frozen=True)
class Combo:
    """One point of the benchmark grid (``loss`` is ``None`` for ``infer``)."""

    model: str
    dataset: str
    loss: str | None
    device: str
    batch_size: int
    precision: str
    mode: str

    def label(self) -> str:
        """``mlp circles bce-with-logits cpu b32 fp32 train``: for progress and messages."""
        loss = f" {self.loss}" if self.loss else ""
        return (
            f"{self.model} {self.dataset}{loss} {self.device} b{self.batch_size} "
            f"{self.precision} {self.mode}"
        )


@dataclass(frozen=True)
class Settings:
    """How every combination of a run is measured."""

    epochs: int = 5
    lr: float = 1e-3
    seed: int = 0
    min_run_time: float = 0.2
    warmup: float | None = None
    export_dir: str | None = None
    threads: int | None = None


def empty_row(combo: Combo) -> dict[str, Any]:
    """A row with the combination's identity filled in and every measurement ``None``."""
    row: dict[str, Any] = dict.fromkeys((*ROW_FIELDS, *EXTRA_FIELDS))
    row.update(asdict(combo))
    row["dtype"] = PRECISIONS[combo.precision]
    return row


def run_combo(combo: Combo, settings: Settings, cache: dict | None = None) -> dict[str, Any]:
    """Measure one combination; never raises for a failure of the work (it goes in ``error``)."""
    import torch

    from zoo.runtime.device import device_name, resolve_device

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
    import torch

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
    import torch

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
    return _time_train(model, x, y, combo, settings, device, row["task"])


def _cap_cuda_memory(device: torch.device) -> None:
    """``ZOO_BENCH_CUDA_MEMORY_FRACTION=0.01`` caps this process's share of the GPU, so a
    big card behaves like a small one (how ``benchmarks/gpu_check.sh`` exercises OOM decay)."""
    fraction = os.environ.get("ZOO_BENCH_CUDA_MEMORY_FRACTION")
    if device.type == "cuda" and fraction:
        import torch

        torch.cuda.set_per_process_memory_fraction(float(fraction), device)


_INITIALISED = False


def _initialise_torch_once() -> None:
    """Pay torch's one-time lazy imports (the optimizer's pull in ~150 MiB) before any memory
    probe, so a row's peak memory is its own work, not the first row's library loading."""
    global _INITIALISED
    if _INITIALISED:
        return
    import torch

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([weight])
    (weight * 2).sum().backward()
    optimizer.step()
    _INITIALISED = True


def _autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """Autocast for bf16/fp16 (as the trainer does), nothing for fp32."""
    import torch

    from zoo.runtime.device import resolve_precision

    dtype, _ = resolve_precision(precision, device)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def time_infer(
    model: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    precision: str = "fp32",
    *,
    min_run_time: float = 0.2,
    warmup: float | None = None,
) -> Measurement:
    """Latency of ``model(x)`` under ``eval()`` + ``inference_mode()`` (+ autocast), synced."""
    import torch

    model.eval()
    with torch.inference_mode(), _autocast(device, precision):
        return measure(
            lambda: model(x),
            min_run_time=min_run_time,
            warmup=warmup,
            sync=synchronizer(device),
        )


def _time_train(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    combo: Combo,
    settings: Settings,
    device: torch.device,
    task: str,
) -> Measurement:
    """Time one optimisation step: zero_grad, forward (autocast), loss, backward, step."""
    import torch

    from zoo.runtime.device import resolve_precision

    loss_entry = api.get_entry("loss", combo.loss)
    expects = loss_entry.meta.get("expects", "logits")
    loss_fn = api.create_loss(combo.loss).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    from zoo.tasks import metrics

    _, use_scaler = resolve_precision(combo.precision, device)
    scaler = torch.amp.GradScaler(device.type) if use_scaler else None
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, combo.precision):
            out = model(x)
        # The loss runs in fp32 outside autocast (BCELoss refuses to autocast).
        out = metrics.align(task, out.float(), y)
        loss = loss_fn(metrics.to_loss_input(expects, task, out), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    return measure(
        step,
        min_run_time=settings.min_run_time,
        warmup=settings.warmup,
        sync=synchronizer(device),
    )


def _fit(
    combo: Combo, settings: Settings, device: torch.device, batch: int, row: dict[str, Any]
) -> None:
    """Train with the trainer; record the test metrics, the time, the curve, the export."""
    from zoo.train.trainer import Trainer

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
        from zoo.weights.files import export

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
    import torch

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
    import torch

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
        import torch

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
