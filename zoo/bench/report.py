"""Benchmark output: the result object, the terminal table, CSV, the PNG plot, and comparing
two JSON results. Light at import (matplotlib is imported by the plot alone)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo._util.atomic import atomic_path, os_reason, write_json, write_text
from zoo._util.jsonio import JSONLimitError, read_json
from zoo._util.table import format_table
from zoo.bench.rows import (
    IDENTITY_FIELDS,
    KEY_FIELDS,
    READ_SCHEMAS,
    ROW_FIELDS,
    SCHEMA,
    row_key,
)
from zoo.errors import UsageError

__all__ = [
    "BEST",
    "COLUMNS",
    "IDENTITY_FIELDS",
    "KEY_FIELDS",
    "MEMORY_LEGEND",
    "RESULT_MAX_BYTES",
    "BenchResult",
    "Column",
    "Comparison",
    "compare",
    "format_comparison",
    "format_result",
    "format_rows",
    "identity_differences",
    "identity_unknown",
    "load_result",
    "write_csv",
    "write_plot",
]

BEST = "*"

#: Largest ``zoo bench --json`` file :func:`load_result` reads (thousands of rows fit in a few MiB).
RESULT_MAX_BYTES = 64 * 2**20


@dataclass
class BenchResult:
    """Rows, skipped combinations, the run's environment and the request that made them.

    ``planned`` counts the combinations the run set out to measure; ``interrupted`` says the
    run stopped early (Ctrl-C), so ``rows`` holds only those that finished.
    """

    rows: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    environment: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    planned: int | None = None
    interrupted: bool = False

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Rows whose combination failed."""
        return [r for r in self.rows if r.get("error")]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: schema, environment, config, rows, skipped; an interrupted
        run adds ``interrupted``: ``{"rows": finished, "planned": combinations}``."""
        data = {
            "schema": SCHEMA,
            "environment": self.environment,
            "config": self.config,
            "rows": self.rows,
            "skipped": self.skipped,
        }
        if self.interrupted:
            data["interrupted"] = {"rows": len(self.rows), "planned": self.planned}
        return data

    def table(self) -> str:
        """An aligned text table, best value per column (within a mode and dataset) marked."""
        return format_result(self)

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON (atomic)."""
        return write_json(path, self.to_dict())

    def write_csv(self, path: str | os.PathLike) -> Path:
        """One CSV line per row (atomic)."""
        return write_csv(path, self.rows)

    def plot(self, path: str | os.PathLike) -> Path:
        """PNG: throughput per model and device; metric vs time for ``fit`` rows."""
        return write_plot(path, self.rows)


# -- number formatting -----------------------------------------------------------------------


def _si(value: float, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def _bytes(value: float) -> str:
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}"
    return f"{int(value)} B"


def _num(value: float) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True)
class Column:
    """One table column: where its value comes from, how it prints, which way is best."""

    header: str
    field: str | None  # row key, or None for a computed value
    fmt: Callable[[Any], str] = str
    best: str | None = None  # "min" / "max": mark the best value within a (mode, dataset) group
    numeric: bool = False
    get: Callable[[dict[str, Any]], Any] | None = None
    per_batch: bool = False  # best among rows of the same batch size only (latencies)

    def value(self, row: dict[str, Any]) -> Any:
        """What the cell shows (``get`` if given, else the row's ``field``)."""
        return self.get(row) if self.get else row.get(self.field or "")


def _iqr_pct(row: dict[str, Any]) -> float | None:
    med, iqr = row.get("latency_ms_median"), row.get("latency_ms_iqr")
    return 100 * iqr / med if med and iqr is not None else None


def _flags(row: dict[str, Any]) -> str:
    flags = []
    if row.get("error"):
        flags.append("error")
    if row.get("noisy"):
        flags.append("noisy")
    if row.get("note"):
        flags.append("oom" if "out of memory" in row["note"] else "note")
    return ",".join(flags)


def _shape(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _knobs(row: dict[str, Any]) -> str:
    """``compile(default),chlast``: the speed knobs a row ran with ('' for none)."""
    knobs = []
    if row.get("runtime") not in (None, "torch"):
        knobs.append(str(row["runtime"]))
    if row.get("compile"):
        knobs.append(f"compile({row.get('compile_mode') or 'default'})")
    if row.get("channels_last"):
        knobs.append("chlast")
    return ",".join(knobs)


COLUMNS = (
    Column("model", "model"),
    Column("dataset", "dataset"),
    Column("loss", "loss", lambda v: v or "-"),
    Column("device", "device"),
    Column("prec", "precision"),
    Column("batch", "effective_batch_size", str, numeric=True),
    Column("mode", "mode"),
    Column("input", "input_shape", _shape),
    Column("knobs", None, get=_knobs),
    Column("ms/batch", "latency_ms_median", _num, "min", True, per_batch=True),
    Column("iqr%", None, lambda v: f"{v:.1f}", numeric=True, get=_iqr_pct),
    Column("p90 ms", "latency_ms_p90", _num, "min", True, per_batch=True),
    Column("p99 ms", "latency_ms_p99", _num, "min", True, per_batch=True),
    Column("samples/s", "samples_per_s", _si, "max", True),
    # every task's primary metric is higher-is-better (see zoo.tasks.TASKS)
    Column("metric", "metric", str, "max", True, get=lambda r: _metric_cell(r)),
    Column("fit s", "fit_seconds", _num, "min", True),
    Column("params", "params", _si, numeric=True),
    Column("GMACs", "gmacs", _num, numeric=True),
    Column("GFLOP/s", "flops_per_s", lambda v: f"{v / 1e9:.3g}", "max", True),
    Column("%peak", "peak_fraction", lambda v: f"{100 * v:.1f}", numeric=True),
    Column("size", "weights_bytes", _bytes, numeric=True),
    Column("peak alloc", "peak_memory_bytes", _bytes, "min", True),
    Column("proc rss", "process_peak_rss_bytes", _bytes, numeric=True),
    Column("flags", None, get=_flags),
)

# What the memory columns mean, by the rows' ``memory_kind`` (and ``--isolate``'s RSS).
MEMORY_LEGEND = {
    "cpu_allocated_peak": "peak alloc (cpu): peak bytes torch's allocator held for the model, "
    "batch and first steps (torch.profiler memory accounting)",
    "cuda_max_allocated": "peak alloc (cuda): torch.cuda.max_memory_allocated over the model, "
    "batch and first steps",
    "rss_growth": "peak alloc (other devices): growth of the process's peak RSS over the row",
    "process_peak_rss_bytes": "proc rss: peak resident set of the row's whole process (--isolate)",
}


def _metric_cell(row: dict[str, Any]) -> str | None:
    if row.get("metric") is None:
        return None
    return f"{row['metric_name']} {row['metric']:.4f}"


def _best_keys(rows: Sequence[dict[str, Any]]) -> set[tuple[int, str]]:
    """(row index, header) of each best cell among comparable rows.

    Rows compare within one (mode, dataset); latency columns also within one batch size, since
    a bigger batch always takes longer per batch. Failed rows and lone rows get no mark.
    """
    marks: set[tuple[int, str]] = set()
    ok = [i for i, row in enumerate(rows) if not row.get("error")]
    for col in COLUMNS:
        if not col.best:
            continue
        groups: dict[tuple[Any, ...], list[tuple[float, int]]] = {}
        for i in ok:
            value = rows[i].get(col.field or "")
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            key = (rows[i]["mode"], rows[i]["dataset"])
            if col.per_batch:
                key += (rows[i].get("effective_batch_size"),)
            groups.setdefault(key, []).append((value, i))
        for values in groups.values():
            if len(values) < 2:
                continue
            top = (min if col.best == "min" else max)(v for v, _ in values)
            marks.update((i, col.header) for v, i in values if v == top)
    return marks


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The aligned table of benchmark rows; ``*`` marks the best value per column and group."""
    marks = _best_keys(rows)
    cells: list[list[str]] = []
    for i, row in enumerate(rows):
        line = []
        for col in COLUMNS:
            value = col.value(row)
            text = "" if value is None or value == "" else col.fmt(value)
            if (i, col.header) in marks:
                text += BEST
            elif col.best:
                text += " " if text else ""
            line.append(text)
        cells.append(line)
    shown = [
        j
        for j, col in enumerate(COLUMNS)
        if j < 7 or any(c[j].strip() for c in cells)  # drop columns empty in every row
    ]
    return format_table(
        [[c[j] for j in shown] for c in cells],
        [COLUMNS[j].header for j in shown],
        numeric=[COLUMNS[j].numeric for j in shown],
    )


def format_result(result: BenchResult) -> str:
    """Table, then a legend, the errors and the skipped combinations (one line each)."""
    parts = []
    if result.rows:
        parts.append(format_rows(result.rows))
        parts.append(
            f"{BEST} best in its column among rows of the same mode and dataset (for latencies, "
            "also the same batch size); noisy: IQR/median > 10% or the separated timing "
            "rounds (fit: epochs) disagree by > 10%"
        )
        kinds = {r.get("memory_kind") for r in result.rows}
        if any(r.get("process_peak_rss_bytes") is not None for r in result.rows):
            kinds.add("process_peak_rss_bytes")
        parts.extend(text for kind, text in MEMORY_LEGEND.items() if kind in kinds)
    else:
        parts.append("no combination ran")
    if result.interrupted:
        above = " (the rows above)" if result.rows else ""
        parts.append(
            f"interrupted: {len(result.rows)} of {result.planned} combinations finished{above}"
        )
    for row in result.errors:
        parts.append(f"error  {_label(row)}: {row['error']}")
    for row in result.rows:
        if row.get("note"):
            parts.append(f"note   {_label(row)}: {row['note']}")
    for row in result.rows:
        if row.get("noise"):
            parts.append(f"noisy  {_label(row)}: {row['noise']}")
    for skip in result.skipped:
        keys = ("model", "dataset", "loss", "device", "precision")
        where = "/".join(str(skip[k]) for k in keys if skip.get(k))
        parts.append(f"skipped  {where}: {skip['reason']}")
    return "\n".join(parts)


def _label(row: dict[str, Any]) -> str:
    """``resnet18 synthetic 3x224x224 cpu 1 fp32 infer compile(default)``: a row's key."""
    parts = []
    for k in KEY_FIELDS:
        value = row.get(k)
        if value is None or isinstance(value, bool) or k in ("compile_mode", "runtime"):
            continue
        parts.append(_shape(value) if k == "input_shape" else str(value))
    knobs = _knobs(row)
    return " ".join(parts + ([knobs] if knobs else []))


# -- CSV and plot ----------------------------------------------------------------------------


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """One line per row, columns in :data:`zoo.bench.rows.ROW_FIELDS` order (atomic write)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in ROW_FIELDS})
    return write_text(path, buf.getvalue())


def write_plot(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """PNG: samples/s per model and device (infer/train rows), metric vs time (fit rows)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [r for r in rows if not r.get("error")]
    speed = [r for r in ok if r["mode"] in ("infer", "train") and r.get("samples_per_s")]
    fits = [r for r in ok if r["mode"] == "fit" and r.get("curve")]
    panels = (1 if speed else 0) + (1 if fits else 0) or 1
    height = max(3.0, 0.3 * len(speed) + 1.5) if speed else 4.0
    fig = Figure(figsize=(7 * panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    if speed:
        _plot_throughput(axes[0], speed)
    if fits:
        _plot_fit_curves(axes[-1], fits)
    if not speed and not fits:
        axes[0].text(0.5, 0.5, "no successful rows to plot", ha="center", va="center")
        axes[0].set_axis_off()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _plot_throughput(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Horizontal bars of samples/s, one per row, coloured by device."""
    from matplotlib.patches import Patch

    devices = sorted({r["device"] for r in rows})
    colours = {d: f"C{i}" for i, d in enumerate(devices)}
    labels = [
        f"{r['model']}/{r['dataset']} {r['mode']} {r['precision']} b{r['effective_batch_size']}"
        + (f" {_knobs(r)}" if _knobs(r) else "")
        for r in rows
    ]
    ys = range(len(rows))
    ax.barh(ys, [r["samples_per_s"] for r in rows], color=[colours[r["device"]] for r in rows])
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("samples/s (log scale)")
    ax.set_title("Throughput per model and device")
    ax.legend(handles=[Patch(color=colours[d], label=d) for d in devices], fontsize=8)


def _plot_fit_curves(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Test metric against seconds of training, one line per fit row."""
    for i, r in enumerate(rows):
        xs, ys = zip(*r["curve"], strict=True)
        label = (
            f"{r['model']}/{r['dataset']}/{r['loss']} {r['device']} {r['precision']} "
            f"b{r['effective_batch_size']}"
        )
        style = ("-", "--", ":", "-.")[(i // 10) % 4]  # colours repeat after 10 lines
        ax.plot(xs, ys, marker="o", linestyle=style, label=label)
    ax.set_xlabel("seconds of training")
    ax.set_ylabel(", ".join(sorted({r["metric_name"] for r in rows})))
    ax.set_title("Test metric vs time (fit)")
    ax.legend(fontsize=8)


# -- compare ---------------------------------------------------------------------------------


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``zoo bench --json`` file of any schema this zoo reads, at most
    :data:`RESULT_MAX_BYTES` (one-line UsageError otherwise)."""
    try:
        data = read_json(path, max_bytes=RESULT_MAX_BYTES)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {os_reason(exc, path)}") from None
    except JSONLimitError as exc:
        raise UsageError(f"{path}: not a zoo bench result: {exc}") from None
    if not isinstance(data, dict) or "rows" not in data or not isinstance(data["rows"], list):
        raise UsageError(f"{path}: not a zoo bench result (no rows)")
    if data.get("schema") not in READ_SCHEMAS:
        readable = ", ".join(str(v) for v in READ_SCHEMAS)
        raise UsageError(
            f"{path}: zoo bench schema {data.get('schema')!r}, this zoo reads schema {readable}"
        )
    for i, row in enumerate(data["rows"], 1):
        problem = _row_problem(row)
        if problem:
            raise UsageError(f"{path}: not a zoo bench result: row {i}: {problem}")
    return data


# What :func:`compare` reads from a row: each field null/absent or of these JSON types.
_SCALAR = (str, int, float)
_NUMBER = (int, float)
_ROW_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(KEY_FIELDS, _SCALAR),
    "input_shape": (list,),
    **dict.fromkeys(IDENTITY_FIELDS, _SCALAR),
    "effective_batch_size": _SCALAR,
    "metric": _NUMBER,
    "error": (str,),
}
_TIMES = ("latency_ms_median", "fit_seconds")  # compared: finite numbers >= 0


def _row_problem(row: Any) -> str | None:
    """What makes ``row`` unreadable to :func:`compare` (``None`` when nothing does)."""
    if not isinstance(row, dict):
        return f"an object expected, got {type(row).__name__}"
    for name, types in _ROW_TYPES.items():
        value = row.get(name)
        if value is not None and not isinstance(value, types):
            what = {_NUMBER: "a number", (str,): "text", (list,): "a list"}.get(types, "a scalar")
            return f"{name} must be {what} or null, got {value!r:.40}"
    shape = row.get("input_shape")
    if shape is not None and not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        return f"input_shape must be a list of integers, got {shape!r:.40}"
    for name in _TIMES:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, _NUMBER) or not 0 <= value < math.inf:
            return f"{name} must be a finite number >= 0, got {value!r:.40}"
    return None


@dataclass
class Comparison:
    """Per matching row: old and new time, ratio new/old, its status and what differs.

    ``status``: ``slower`` / ``faster`` / ``same`` (compared), ``unlike`` (the rows ran where
    an identity field differs: not compared), ``broken`` (ran before, fails now), ``error``
    (fails in both), ``n/a`` (nothing to compare).
    """

    rows: list[dict[str, Any]]
    only_old: list[dict[str, Any]]
    only_new: list[dict[str, Any]]
    threshold: float
    strict: bool = False
    schemas: tuple[Any, Any] = (SCHEMA, SCHEMA)

    @property
    def regressed(self) -> list[dict[str, Any]]:
        """Rows slower by more than the threshold; noisy ones only when ``strict``."""
        return [r for r in self.rows if r["status"] == "slower" and (self.strict or not r["noisy"])]

    @property
    def noisy_slower(self) -> list[dict[str, Any]]:
        """Slower rows flagged noisy (in either result): regressions only when ``strict``."""
        return [r for r in self.rows if r["status"] == "slower" and r["noisy"]]

    @property
    def broken(self) -> list[dict[str, Any]]:
        """Rows that ran in the old result and fail in the new one."""
        return [r for r in self.rows if r["status"] == "broken"]

    @property
    def unlike(self) -> list[dict[str, Any]]:
        """Rows not compared because they ran where an identity field differs."""
        return [r for r in self.rows if r["status"] == "unlike"]

    @property
    def failed(self) -> bool:
        """Whether the comparison fails a CI gate: a counted regression or a broken row."""
        return bool(self.regressed or self.broken)


def _time_of(row: dict[str, Any]) -> tuple[str, float | None]:
    if row.get("mode") == "fit":
        return "fit_seconds", row.get("fit_seconds")
    return "latency_ms_median", row.get("latency_ms_median")


def _batch_differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Latencies of batches of different sizes (one run decayed after an OOM) don't compare."""
    return old.get("mode") != "fit" and (
        old.get("effective_batch_size") != new.get("effective_batch_size")
    )


def _known(value: Any) -> bool:
    return value is not None and value != ""


def identity_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["threads 1 -> 2", ...]``: the identity fields both rows record (and ``host``), with
    different values."""
    return [
        f"{name} {old[name]} -> {new[name]}"
        for name in (*IDENTITY_FIELDS, "host")  # host: schema 3 on, never reported unknown
        if _known(old.get(name)) and _known(new.get(name)) and old[name] != new[name]
    ]


def identity_unknown(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["old threads", ...]``: identity fields a row does not record (compared as unknown)."""
    return [
        f"{side} {name}"
        for name in IDENTITY_FIELDS
        for side, row in (("old", old), ("new", new))
        if not _known(row.get(name))
    ]


def compare(
    old: dict[str, Any], new: dict[str, Any], threshold: float = 0.07, *, strict: bool = False
) -> Comparison:
    """Match rows by (model, dataset, loss, device, batch size, precision, mode) and compare
    their time (median latency, or fit seconds): ``ratio = new / old``; above ``1 + threshold``
    the row is ``slower``, below ``1 / (1 + threshold)`` it is ``faster``.

    Like is compared with like: two rows whose device name, torch version or threads differ are
    ``unlike`` (with the differing fields in ``differs``), never slower or faster; a field a row
    does not record (a schema-1 baseline) is listed in ``unknown`` and does not prevent the
    comparison. A slower row flagged noisy in either result is a regression only when
    ``strict``. A row that ran before and has an error now is ``broken``.
    """
    if threshold < 0:
        raise UsageError(f"threshold must be >= 0, got {threshold}")

    old_rows: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in old["rows"]:
        old_rows.setdefault(row_key(r), []).append(r)
    used: set[int] = set()
    out = []
    only_new = []
    for n in new["rows"]:
        candidates = [o for o in old_rows.get(row_key(n), []) if id(o) not in used]
        if not candidates:
            only_new.append(n)
            continue
        o = next((c for c in candidates if not identity_differences(c, n)), candidates[0])
        used.add(id(o))
        out.append(_compare_rows(o, n, threshold))
    only_old = [r for r in old["rows"] if id(r) not in used]
    return Comparison(
        rows=out,
        only_old=only_old,
        only_new=only_new,
        threshold=threshold,
        strict=strict,
        schemas=(old.get("schema"), new.get("schema")),
    )


def _compare_rows(o: dict[str, Any], n: dict[str, Any], threshold: float) -> dict[str, Any]:
    field, t_new = _time_of(n)
    _, t_old = _time_of(o)
    entry: dict[str, Any] = {k: n.get(k) for k in KEY_FIELDS}
    entry.update(measure=field, old=t_old, new=t_new, ratio=None, noisy=False)
    entry["differs"] = identity_differences(o, n)
    entry["unknown"] = identity_unknown(o, n)
    if n.get("error"):
        entry["status"] = "error" if o.get("error") else "broken"
    elif o.get("error") or not t_old or t_new is None or _batch_differs(o, n):
        entry["status"] = "n/a"  # nothing to compare (a decayed batch's latency differs)
    else:
        ratio = t_new / t_old
        entry["ratio"] = ratio
        entry["noisy"] = bool(n.get("noisy") or o.get("noisy"))
        if entry["differs"]:
            entry["status"] = "unlike"
        elif ratio > 1 + threshold:
            entry["status"] = "slower"
        elif ratio < 1 / (1 + threshold):
            entry["status"] = "faster"
        else:
            entry["status"] = "same"
    if n.get("metric") is not None and o.get("metric") is not None:
        entry["metric_delta"] = n["metric"] - o["metric"]
    return entry


def format_comparison(cmp: Comparison) -> str:
    """A table of the compared rows, then what differs or is unknown, and a summary line."""
    headers = ["model", "dataset", "loss", "device", "prec", "batch", "mode", "old", "new"]
    headers += ["new/old", "status"]
    differs = any(r["differs"] for r in cmp.rows)
    if differs:
        headers.append("differs")
    table = []
    for r in cmp.rows:
        unit = "s" if r["measure"] == "fit_seconds" else "ms"
        old = f"{r['old']:.4g} {unit}" if r["old"] is not None else ""
        new = f"{r['new']:.4g} {unit}" if r["new"] is not None else ""
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else ""
        status = r["status"].upper() if r["status"] in ("slower", "broken") else r["status"]
        status += " (noisy)" if r.get("noisy") else ""
        dataset = r["dataset"]
        if r.get("input_shape"):
            dataset += " " + _shape(r["input_shape"])
        if _knobs(r):
            dataset += " " + _knobs(r)
        line = [
            r["model"],
            dataset,
            r["loss"] or "-",
            r["device"],
            r["precision"],
            r["batch_size"],
            r["mode"],
            old,
            new,
            ratio,
            status,
        ]
        if differs:
            line.append(", ".join(r["differs"]))
        table.append(line)
    lines = [format_table(table, headers)] if table else ["no matching rows"]
    for r in cmp.only_old:
        lines.append(f"only in old: {_label(r)}")
    for r in cmp.only_new:
        lines.append(f"only in new: {_label(r)}")
    lines.extend(_identity_notes(cmp))
    lines.append(
        f"{len(cmp.regressed)} of {len(cmp.rows)} matching rows slower by more than "
        f"{cmp.threshold:.0%}"
    )
    noisy = cmp.noisy_slower
    if noisy and not cmp.strict:
        lines.append(
            f"{len(noisy)} more slower row(s) flagged noisy: not counted (--strict counts them)"
        )
    if cmp.broken:
        lines.append(f"{len(cmp.broken)} matching row(s) ran before and fail now")
    return "\n".join(lines)


def _identity_notes(cmp: Comparison) -> list[str]:
    """Lines saying which rows were not compared (identity differs) and what was unknown."""
    lines = []
    if cmp.unlike:
        fields = sorted({d.split(" ", 1)[0] for r in cmp.unlike for d in r["differs"]})
        machines = " (a difference between machines, not a regression)" * bool(
            {"device_name", "host"} & set(fields)
        )
        lines.append(
            f"{len(cmp.unlike)} matching row(s) not compared: they ran with a different "
            f"{', '.join(fields)} (like is compared with like){machines}"
        )
    counts: dict[str, int] = {}
    for r in cmp.rows:
        for item in r["unknown"]:
            counts[item] = counts.get(item, 0) + 1
    if counts:
        listed = ", ".join(f"{item} ({n} rows)" for item, n in sorted(counts.items()))
        schemas = [
            f"{side} is schema {schema}"
            for side, schema in zip(("old", "new"), cmp.schemas, strict=True)
            if schema != SCHEMA
        ]
        why = f" ({'; '.join(schemas)})" if schemas else ""
        lines.append(
            f"identity unknown{why}: {listed}; compared as if it agreed, so these ratios may "
            "compare different machines or settings"
        )
    return lines
