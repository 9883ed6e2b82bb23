"""What a benchmark row is: the grid point (:class:`Combo`), how it is measured
(:class:`Settings`) and the fields every row has. Light (no torch): the planner, the report and
the CLI read it before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from zoo.runtime.device import PRECISION_DTYPES

__all__ = [
    "EXTRA_FIELDS",
    "IDENTITY_FIELDS",
    "KEY_DEFAULTS",
    "KEY_FIELDS",
    "MODES",
    "READ_SCHEMAS",
    "ROW_FIELDS",
    "ROW_MARKER",
    "SCHEMA",
    "Combo",
    "Settings",
    "empty_row",
    "row_key",
]

SCHEMA = 3  # version of the ``--json`` document (2: allocator memory, rounds, identity;
# 3: synthetic input, FLOPs, host; input shape, runtime, compile, channels-last in the key)
READ_SCHEMAS = (1, 2, 3)  # what ``zoo bench compare`` reads
MODES = ("infer", "train", "fit")
ROW_MARKER = "ZOO_BENCH_ROW "  # prefixes the row an ``--isolate`` child prints

# Every row has every field (``None`` where it does not apply); CSV columns follow this order.
ROW_FIELDS = (
    "model",
    "dataset",
    "loss",
    "task",
    "mode",
    "device",
    "device_name",
    "host",
    "precision",
    "dtype",
    "batch_size",
    "effective_batch_size",
    "input",
    "input_shape",
    "num_classes",
    "runtime",
    "compile",
    "compile_mode",
    "channels_last",
    "latency_ms_median",
    "latency_ms_iqr",
    "latency_ms_p90",
    "latency_ms_p99",
    "samples_per_s",
    "timing_samples",
    "timing_block",
    "noisy",
    "noise",
    "round_spread",
    "metric_name",
    "metric",
    "fit_seconds",
    "epochs",
    "params",
    "params_m",
    "flops",
    "macs",
    "gmacs",
    "flops_per_s",
    "peak_dtype",
    "peak_fraction",
    "weights_bytes",
    "peak_memory_bytes",
    "memory_kind",
    "process_peak_rss_bytes",
    "torch_version",
    "threads",
    "export",
    "note",
    "error",
)
# JSON only: the fit's test metrics and metric-vs-time curve; the median of each timing round
# (infer/train) or the samples/s of each epoch after the first (fit)
EXTRA_FIELDS = ("metrics", "curve", "round_medians_ms", "epoch_samples_per_s")
KEY_FIELDS = (
    "model",
    "dataset",
    "input_shape",
    "loss",
    "device",
    "batch_size",
    "precision",
    "mode",
    "runtime",
    "compile",
    "compile_mode",
    "channels_last",
)
# What a key field means when a row lacks it (rows of older schemas): compare and merge match
# an old row with a new one that ran the same way.
KEY_DEFAULTS: dict[str, Any] = {"runtime": "torch", "compile": False, "channels_last": False}
# Where a row ran: ``zoo bench compare`` compares two rows only when these agree too.
IDENTITY_FIELDS = ("device_name", "torch_version", "threads")


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
    #: one sample's shape for synthetic input (``dataset`` is then ``"synthetic"``)
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None  # synthetic input: outputs of the model (its task's)
    task: str | None = None  # synthetic input: the task of its labels
    compile: bool = False
    compile_mode: str | None = None
    channels_last: bool = False
    runtime: str = "torch"  # or "onnxruntime" (zoo's ONNX export, fp32 infer)

    def __post_init__(self) -> None:
        if self.input_shape is not None:  # a list when read back from JSON
            object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))

    def label(self) -> str:
        """``mlp circles bce-with-logits cpu b32 fp32 train``: for progress and messages."""
        loss = f" {self.loss}" if self.loss else ""
        data = self.dataset
        if self.input_shape is not None:
            data += " " + "x".join(map(str, self.input_shape))
        knobs = "".join(
            (
                f" compile({self.compile_mode or 'default'})" if self.compile else "",
                " channels-last" if self.channels_last else "",
                f" {self.runtime}" if self.runtime != "torch" else "",
            )
        )
        return (
            f"{self.model} {data}{loss} {self.device} b{self.batch_size} "
            f"{self.precision} {self.mode}{knobs}"
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
    row["input"] = "synthetic" if combo.input_shape is not None else "dataset"
    row["input_shape"] = list(combo.input_shape) if combo.input_shape is not None else None
    row["dtype"] = PRECISION_DTYPES[combo.precision]
    return row


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's identity as a hashable tuple (missing fields of older schemas at their default)."""
    values = []
    for name in KEY_FIELDS:
        value = row.get(name)
        if value is None:
            value = KEY_DEFAULTS.get(name)
        values.append(tuple(value) if isinstance(value, list) else value)
    return tuple(values)
