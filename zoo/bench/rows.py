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
    "KEY_FIELDS",
    "MODES",
    "READ_SCHEMAS",
    "ROW_FIELDS",
    "ROW_MARKER",
    "SCHEMA",
    "Combo",
    "Settings",
    "empty_row",
]

SCHEMA = 2  # version of the ``--json`` document (2: allocator memory, rounds, identity)
READ_SCHEMAS = (1, 2)  # what ``zoo bench compare`` reads
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
    "noise",
    "round_spread",
    "metric_name",
    "metric",
    "fit_seconds",
    "epochs",
    "params",
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
KEY_FIELDS = ("model", "dataset", "loss", "device", "batch_size", "precision", "mode")
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
    row["dtype"] = PRECISION_DTYPES[combo.precision]
    return row
