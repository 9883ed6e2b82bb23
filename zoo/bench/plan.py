"""``zoo.bench``: benchmark every compatible combination of models, datasets and losses.

The grid is models x datasets x losses x devices x batch sizes x precisions x modes.
Everything is validated before any work starts (unknown names, patterns that match nothing,
bad devices, precisions, batch sizes, modes and settings are one-line usage errors);
incompatible (model, dataset, loss) combinations, devices this machine lacks and precisions a
device cannot run are listed once in ``skipped`` with the reason (so one ``--device cpu,cuda``
command serves every machine), and a request that leaves nothing to run is an error. Each
remaining combination becomes one row (see :mod:`zoo.bench.combo`); a combination that fails
is a row with its ``error``. Interrupted (Ctrl-C), :func:`bench` raises
:class:`BenchInterrupted` holding the rows that finished.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from zoo import api
from zoo._util.jsonio import JSONLimitError, loads
from zoo._util.values import positive_int, seed_int
from zoo.bench.environment import environment
from zoo.bench.ort import RUNTIMES, check_installed
from zoo.bench.progress import BenchProgress
from zoo.bench.report import BenchResult
from zoo.bench.rows import MODES, ROW_MARKER, Combo, Settings, empty_row
from zoo.bench.synthetic import (
    SYNTHETIC,
    default_shape,
    parse_input_shape,
    synthetic_entry,
    synthetic_task,
)
from zoo.errors import IncompatibleError, UsageError
from zoo.registry.entries import normalize_name
from zoo.registry.plugins import get_registry
from zoo.runtime.device import best_device, parse_device, parse_precision, unavailable_reason
from zoo.tasks import contracts as tasks

__all__ = [
    "ROW_MAX_BYTES",
    "BenchInterrupted",
    "BenchResult",
    "COMPILE_MODES",
    "Grid",
    "Plan",
    "bench",
    "make_plan",
    "run_isolated",
]

#: Largest row an ``--isolate`` child may print (a fit row's curve grows with its epochs).
ROW_MAX_BYTES = 16 * 2**20

#: ``torch.compile`` modes (``--compile-mode``)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_LISTERS = {"model": api.list_models, "dataset": api.list_datasets, "loss": api.list_losses}
_PATTERN_CHARS = "*?["


@dataclass(frozen=True)
class Grid:
    """What to benchmark, as given: each field a list or a comma-separated string."""

    models: str | Sequence[str]
    datasets: str | Sequence[str]
    losses: str | Sequence[str]
    devices: str | Sequence[str]
    batch_sizes: int | str | Sequence[int | str]
    precisions: str | Sequence[str]
    modes: str | Sequence[str]
    input_shape: str | Sequence[int] | None = None  # synthetic input (no datasets)
    num_classes: int | None = None
    compile: bool = False
    compile_mode: str | None = None
    channels_last: bool = False
    runtimes: str | Sequence[str] = "torch"


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or whatever raised ``KeyboardInterrupt``) during a run: ``result`` holds the rows
    that finished, with ``result.interrupted`` set; the row being measured is dropped."""

    def __init__(self, result: BenchResult):
        super().__init__(f"interrupted after {len(result.rows)} of {result.planned} combinations")
        self.result = result


@dataclass
class Plan:
    """The combinations to run, the ones skipped (with reasons) and the resolved grid."""

    combos: list[Combo]
    skipped: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)


def bench(
    models: str | Sequence[str],
    datasets: str | Sequence[str] | None = None,
    losses: str | Sequence[str] = "auto",
    *,
    devices: str | Sequence[str] = "auto",
    batch_sizes: int | str | Sequence[int | str] = 32,
    precisions: str | Sequence[str] = "fp32",
    modes: str | Sequence[str] = ("infer", "train"),
    epochs: int = 5,
    lr: float = 1e-3,
    seed: int = 0,
    export_dir: str | os.PathLike | None = None,
    isolate: bool = False,
    min_run_time: float = 0.2,
    warmup: float | None = None,
    threads: int | None = None,
    progress: bool | Callable[[str], Any] = False,
    input_shape: str | Sequence[int] | None = None,
    num_classes: int | None = None,
    compile: bool = False,
    compile_mode: str | None = None,
    channels_last: bool = False,
    runtimes: str | Sequence[str] = "torch",
) -> BenchResult:
    """Benchmark every compatible combination; returns a :class:`BenchResult`.

    List arguments take a list or a comma-separated string. ``models`` and ``datasets`` may
    hold fnmatch patterns (``"fashion-*"``); ``losses`` may say ``"auto"`` (the task's default
    loss). ``modes``: ``infer`` (latency and samples/s), ``train`` (one optimisation step),
    ``fit`` (train ``epochs`` with the trainer, then the test metric and the time to it;
    with ``export_dir`` the weights of each fitted model are exported). ``isolate`` runs each
    combination in its own process. ``min_run_time`` is the seconds spent timing each
    measurement after ``warmup``. ``threads``: torch's intra-op threads for every row (see
    :func:`zoo.runtime.threads.resolve_threads`: given, else ``$OMP_NUM_THREADS``, else
    physical cores / processes on the node); torch's own count is restored afterwards.
    ``progress``: ``True`` reports on stderr (:mod:`zoo.bench.progress`: a bar naming the row
    being measured on a terminal, one line per finished row elsewhere); a function is called
    with each line instead.

    Without ``datasets`` the input is synthetic (:mod:`zoo.bench.synthetic`): random samples
    of ``input_shape`` (``"3x224x224"``), else of each model's declared ``input_size`` (a
    model declaring none is skipped), with labels of the model's task (multiclass where it
    serves it, ``num_classes`` classes, else the model's ``num_classes``, else 1000).
    ``compile`` runs each model through ``torch.compile`` (``compile_mode``; giving a mode
    implies ``compile``); ``channels_last`` converts the model and 4-D inputs to channels-last.
    ``runtimes``: ``torch`` and/or ``onnxruntime`` (:mod:`zoo.bench.ort`: fp32 infer rows of
    the exported model, checked against torch's output first).

    Raises:
        UsageError: for a bad request, before any work.
        BenchInterrupted: on ``KeyboardInterrupt``, with the rows that finished.
    """
    settings = Settings(
        epochs=positive_int(epochs, "epochs"),
        lr=_positive_float(lr, "learning rate"),
        seed=seed_int(seed),
        min_run_time=_positive_float(min_run_time, "min_run_time"),
        warmup=None if warmup is None else _positive_float(warmup, "warmup", zero=True),
        export_dir=None if export_dir is None else str(export_dir),
        threads=None if threads is None else positive_int(threads, "threads"),
    )
    grid = Grid(
        models, datasets or [], losses, devices, batch_sizes, precisions, modes,
        input_shape, num_classes, compile, compile_mode, channels_last, runtimes,
    )  # fmt: skip
    plan = make_plan(grid)
    from zoo.runtime.threads import resolve_threads, use_threads  # torch: work is planned

    # the one thread rule, resolved once (a bad $OMP_NUM_THREADS fails before any work); every
    # row, isolated ones too, runs with and records this count
    settings = replace(settings, threads=resolve_threads(settings.threads))
    report = _reporter(progress, len(plan.combos))
    config = {**plan.config, "isolate": bool(isolate), **asdict(settings)}
    rows: list[dict[str, Any]] = []
    with use_threads(settings.threads):  # torch's own count is restored after the run
        result = BenchResult(rows, plan.skipped, environment(), config, planned=len(plan.combos))
        try:
            _run_plan(plan, settings, isolate, report, rows)
        except KeyboardInterrupt:
            result.interrupted = True
            raise BenchInterrupted(result) from None
        finally:
            report.close()
    return result


def _run_plan(
    plan: Plan,
    settings: Settings,
    isolate: bool,
    report: BenchProgress,
    rows: list[dict[str, Any]],
) -> None:
    """Run each combination, appending its row to ``rows`` as soon as it is finished."""
    from zoo.bench.combo import run_combo  # torch: imported once there is work to do

    for skip in plan.skipped:
        report.message(f"skipped {_skip_label(skip)}: {skip['reason']}")
    cache: dict = {}
    for i, combo in enumerate(plan.combos, 1):
        report.start(i, combo)
        row = run_isolated(combo, settings) if isolate else run_combo(combo, settings, cache)
        rows.append(row)
        report.finish(i, combo, row)


class _Skips:
    """Skipped combinations, each reason listed once."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, reason: str, **where: Any) -> None:
        if all(item["reason"] != reason for item in self.items):
            where = {k: where.get(k) for k in ("model", "dataset", "loss", "device", "precision")}
            self.items.append({**where, "reason": reason})


def make_plan(grid: Grid) -> Plan:
    """Validate the request and expand it into combinations plus skipped ones (no work done)."""
    config = _validate(grid)
    skips = _Skips()
    triples = _compatible(config, skips)
    runnable = bool(triples) if "infer" in config["modes"] else any(t[2] for t in triples)
    if not runnable:
        raise IncompatibleError(f"no compatible combination to run: {_skip_summary(skips)}")
    runs_on = _usable(config["devices"], config["precisions"], skips)
    knobs = {k: config[k] for k in ("compile", "compile_mode", "channels_last")}
    off = dict.fromkeys(knobs, False) | {"compile_mode": None}  # torch's knobs: not for ORT
    combos = [
        Combo(
            model,
            dataset,
            loss,
            device,
            size,
            precision,
            mode,
            **synthetic,
            **(knobs if runtime == "torch" else off),
            runtime=runtime,
        )  # fmt: skip
        for model, dataset, pair_losses, synthetic in triples
        for device, device_precisions in runs_on.items()
        for size in config["batch_sizes"]
        for precision in device_precisions
        for mode in config["modes"]
        for loss in ([None] if mode == "infer" else pair_losses)
        for runtime in config["runtimes"]
        if _runtime_runs(runtime, mode, precision, device, skips)
    ]
    if not combos:
        raise IncompatibleError(f"no combination to run: {_skip_summary(skips)}")
    return Plan(combos=combos, skipped=skips.items, config=config)


def _runtime_runs(runtime: str, mode: str, precision: str, device: str, skips: _Skips) -> bool:
    """Whether ``runtime`` runs this point (ONNX Runtime: fp32 infer on a device it has a
    provider for); where it does not, the reason goes to ``skips``."""
    if runtime == "torch":
        return True
    from zoo.bench.ort import provider_for

    reason = None
    if mode != "infer":
        reason = f"onnxruntime runs inference only, not {mode} (that row runs on torch)"
    elif precision != "fp32":
        reason = f"onnxruntime runs the exported fp32 graph, not {precision}"
    else:
        reason = provider_for(device)[1]
    if reason:
        skips.add(reason, device=device, precision=precision)
    return reason is None


def _skip_summary(skips: _Skips) -> str:
    """The first skip reason, and how many more there are."""
    if not skips.items:
        return "nothing matched"
    more = f" (and {len(skips.items) - 1} more)" if len(skips.items) > 1 else ""
    return f"{skips.items[0]['reason']}{more}"


def _validate(grid: Grid) -> dict[str, Any]:
    """Each list of the grid checked and canonical (patterns expanded, ``auto`` device resolved)."""
    loss_items = _as_list(grid.losses) or ["auto"]
    config: dict[str, Any] = {
        "models": _resolve("model", _as_list(grid.models)),
        "datasets": _resolve("dataset", _as_list(grid.datasets), allow_empty=True),
        "losses": ["auto"] * ("auto" in loss_items)
        + _resolve("loss", [x for x in loss_items if x != "auto"], allow_empty=True),
        "devices": [parse_device(d) for d in _as_list(grid.devices) or ["auto"]],
        "batch_sizes": _unique(
            positive_int(b, "batch size", text=True) for b in _as_list(grid.batch_sizes)
        ),
        "precisions": _unique(parse_precision(p) for p in _as_list(grid.precisions) or ["fp32"]),
        "modes": _unique(_mode(m) for m in _as_list(grid.modes)),
    }
    if not config["batch_sizes"]:
        raise UsageError("give at least one batch size")
    if not config["modes"]:
        raise UsageError(f"give at least one mode: {', '.join(MODES)}")
    config["devices"] = _unique(best_device() if d == "auto" else d for d in config["devices"])
    config.update(_synthetic_settings(grid, config))
    return config


def _synthetic_settings(grid: Grid, config: dict[str, Any]) -> dict[str, Any]:
    """``input_shape``, ``num_classes`` and the compile / channels-last knobs, checked."""
    shape = None if grid.input_shape in (None, "") else parse_input_shape(grid.input_shape)
    synthetic = not config["datasets"]
    if not synthetic and (shape is not None or grid.num_classes is not None):
        raise UsageError(
            "--input-shape and --num-classes are for synthetic input: leave out --dataset"
        )
    if synthetic and "fit" in config["modes"]:
        raise UsageError("--mode fit trains on a dataset: give --dataset")
    mode = grid.compile_mode
    if mode is not None and mode not in COMPILE_MODES:
        raise UsageError(f"unknown compile mode {mode!r}; use one of {', '.join(COMPILE_MODES)}")
    compiled = bool(grid.compile) or mode is not None
    return {
        "input_shape": None if shape is None else list(shape),
        "num_classes": None
        if grid.num_classes is None
        else positive_int(grid.num_classes, "number of classes"),
        "compile": compiled,
        "compile_mode": (mode or "default") if compiled else None,
        "channels_last": bool(grid.channels_last),
        "runtimes": _runtimes(grid.runtimes),
    }


def _runtimes(value: str | Sequence[str]) -> list[str]:
    """The runtimes asked for, checked (ONNX Runtime installed before any work)."""
    runtimes = _unique(str(r).strip().lower() for r in _as_list(value)) or ["torch"]
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise UsageError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if "onnxruntime" in runtimes:
        check_installed()
    return runtimes


def _available_devices() -> list[str]:
    """The devices this machine has, in :func:`zoo.runtime.device.parse_device` spelling."""
    import torch

    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu", *cuda, *(["mps"] if best_device() == "mps" else [])]


def _inputs(
    config: dict[str, Any], model: str, m_entry: Any, skips: _Skips
) -> list[tuple[str, Any, dict[str, Any]]]:
    """(dataset, its entry, synthetic fields of the combination) for each input of a model: the
    datasets, or synthetic input of ``--input-shape`` / the model's ``input_size``."""
    registry = get_registry()
    if config["datasets"]:
        return [(d, registry.get("dataset", d), {}) for d in config["datasets"]]
    shape = config["input_shape"] or default_shape(m_entry)
    if shape is None:
        skips.add(
            f"model {model!r} declares no input_size: give --input-shape (such as 3x224x224) "
            "or --dataset",
            model=model,
            dataset=SYNTHETIC,
        )
        return []
    task = synthetic_task(m_entry)
    declared = m_entry.meta.get("num_classes")
    classes = config["num_classes"] or (declared if isinstance(declared, int) else None)
    entry = synthetic_entry(tuple(shape), task, classes)
    fields = {
        "input_shape": tuple(shape),
        "num_classes": entry.meta.get("num_classes"),
        "task": task,
    }
    return [(SYNTHETIC, entry, fields)]


def _compatible(
    config: dict[str, Any], skips: _Skips
) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    """(model, dataset, compatible losses, synthetic fields) for each compatible pair; the
    rest go to ``skips``."""
    registry = get_registry()
    models, losses = config["models"], config["losses"]
    triples = []
    for model in models:
        m_entry = registry.get("model", model)
        for dataset, d_entry, synthetic in _inputs(config, model, m_entry, skips):
            reason = tasks.incompatibility(m_entry, d_entry)
            if reason:
                skips.add(reason, model=model, dataset=dataset)
                continue
            default = tasks.TASKS[d_entry.tasks[0]].default_loss
            pair_losses = []
            for loss in _unique(default if name == "auto" else name for name in losses):
                reason = tasks.incompatibility(m_entry, d_entry, registry.get("loss", loss))
                if reason:
                    skips.add(reason, model=model, dataset=dataset, loss=loss)
                else:
                    pair_losses.append(loss)
            triples.append((model, dataset, pair_losses, synthetic))
    return triples


def _usable(devices: list[str], precisions: list[str], skips: _Skips) -> dict[str, list[str]]:
    """Device -> the precisions it runs, for the devices this machine has (others are skipped)."""
    from zoo.runtime.precision import Precision  # torch: the planner checks the machine

    runs_on: dict[str, list[str]] = {}
    for device in devices:
        reason = unavailable_reason(device)
        if reason:
            skips.add(
                f"{reason} (this machine has: {', '.join(_available_devices())})", device=device
            )
            continue
        runs_on[device] = []
        for precision in precisions:
            try:
                Precision(precision, device)  # the trainer's rules: fp16 needs CUDA, ...
            except UsageError as exc:
                skips.add(str(exc), device=device, precision=precision)
            else:
                runs_on[device].append(precision)
    return runs_on


def run_isolated(combo: Combo, settings: Settings) -> dict[str, Any]:
    """Run one combination in a fresh Python process (``python -m zoo.bench.combo``)."""
    spec = json.dumps({"combo": asdict(combo), "settings": asdict(settings)})
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.bench.combo", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    row = empty_row(combo)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(ROW_MARKER):
            try:
                return loads(line[len(ROW_MARKER) :], max_bytes=ROW_MAX_BYTES)
            except JSONLimitError as exc:
                row["error"] = f"isolated run printed an unreadable row: {exc}"
                return row
    tail = [line for line in proc.stderr.splitlines() if line.strip()]
    last = tail[-1].strip() if tail else "no output"
    row["error"] = f"isolated run exited with code {proc.returncode}: {last}"
    return row


# -- validation helpers ----------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    """``"a,b"`` / ``["a", "b,c"]`` / ``3`` -> a flat list (empty parts dropped)."""
    if value is None:
        return []
    if isinstance(value, str | int | float):
        value = [value]
    out: list[Any] = []
    for item in value:
        if isinstance(item, str):
            out.extend(part.strip() for part in item.split(",") if part.strip())
        else:
            out.append(item)
    return out


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _resolve(kind: str, items: list[str], allow_empty: bool = False) -> list[str]:
    """Names (validated) and fnmatch patterns (expanded; matching nothing is an error)."""
    if not items and not allow_empty:
        raise UsageError(f"give at least one {kind} (--{kind})")
    registry = get_registry()
    names: list[str] = []
    for item in items:
        if any(c in item for c in _PATTERN_CHARS):
            found = _LISTERS[kind](item)
            if not found:
                raise UsageError(
                    f"{kind} pattern {item!r} matches no registered {kind}; "
                    f"see `zoo list {'losses' if kind == 'loss' else kind + 's'}`"
                )
            names.extend(found)
        else:
            registry.get(kind, item)  # unknown / ambiguous names raise here
            names.append(normalize_name(item))
    return _unique(names)


def _mode(value: str) -> str:
    mode = str(value).strip().lower()
    if mode not in MODES:
        raise UsageError(f"unknown mode {value!r}; use one of {', '.join(MODES)}")
    return mode


def _positive_float(value: Any, what: str, *, zero: bool = False) -> float:
    """``value`` as a finite float > 0 (``>= 0`` with ``zero``), else a one-line UsageError."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = -1.0
    if number < 0 or (number == 0 and not zero):
        kind = "a number >= 0" if zero else "a positive number"
        raise UsageError(f"{what} must be {kind}, got {value!r}")
    if not math.isfinite(number):
        raise UsageError(f"{what} must be a finite number, got {value!r}")
    return number


# -- progress --------------------------------------------------------------------------------


def _reporter(progress: bool | Callable[[str], Any], total: int) -> BenchProgress:
    """``True``: stderr (a bar on a terminal); a callable: its lines; ``False``: nothing."""
    if callable(progress):
        return BenchProgress(total, write=progress)
    return BenchProgress(total, quiet=not progress)


def _skip_label(skip: dict[str, Any]) -> str:
    parts = [skip.get(k) for k in ("model", "dataset", "loss", "device", "precision")]
    return "/".join(str(p) for p in parts if p)
