"""Conformance checks for plugin entries, for plugin authors' own pytest suites.

In the spirit of scikit-learn's ``check_estimator``: each registered model, loss and dataset
is exercised against the contracts zoo relies on, and every failure names the entry, the
check and what was expected versus what was found.

- A **model** is built with the standard kwargs for each shape of compatible registered
  dataset (synthetic inputs of that shape, no data is loaded); its output must have the shape
  the task needs; under ``eval()`` + ``inference_mode()`` two forward passes agree; one training
  step reaches every parameter that requires grad; a safetensors export/load round trip gives
  identical outputs.
- A **loss** accepts each of its tasks' output/target pairs (after the probabilities or
  log-probabilities its ``expects`` asks for) and returns a finite scalar with gradients.
- A **dataset** loads both splits with the declared shape, dtypes and class range, the same
  way twice. A dataset whose files are missing is *skipped* (with the reason), not failed.

Use from pytest::

    from zoo.testing import assert_plugin_ok, check_model

    def test_my_plugin():
        assert_plugin_ok("my-plugin")          # raises AssertionError listing every failure

    def test_my_model():
        report = check_model("my-mlp")
        assert report.ok, report.format()
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import api, tasks
from zoo.errors import IncompatibleError, UnknownNameError, UsageError
from zoo.plugins import get_registry, plugin_records
from zoo.registry import KINDS, Entry, make_entry, normalize_name

if TYPE_CHECKING:
    import torch

PASS, FAIL, SKIP = "pass", "fail", "skip"
SPLITS = ("train", "test")
PROBE_PLUGIN = "zoo.testing"
_MAX_ITEMS = 20_000  # a Dataset longer than this has its labels sampled, not read in full
_SAMPLE = 1_000


# --------------------------------------------------------------------------- results


@dataclass
class CheckResult:
    """One check of one entry: ``status`` is ``pass``, ``fail`` or ``skip``."""

    kind: str
    name: str
    plugin: str
    check: str
    where: str = ""
    status: str = PASS
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.check} [{self.where}]" if self.where else self.check

    @property
    def message(self) -> str:
        """``model 'x' (plugin p) forward [circles]: expected ..., found ...``."""
        text = f"{self.kind} {self.name!r} (plugin {self.plugin}) {self.label}"
        if self.status == SKIP:
            return f"{text}: skipped: {self.detail}"
        return f"{text}: {self.detail}" if self.detail else f"{text}: {self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "where": self.where,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class EntryReport:
    """Every check run on one entry (or on one plugin, ``kind="plugin"``)."""

    kind: str
    name: str
    plugin: str
    summary: str = ""
    results: list[CheckResult] = field(default_factory=list)

    @classmethod
    def for_entry(cls, entry: Entry) -> EntryReport:
        return cls(entry.kind, entry.name, entry.plugin, entry.summary)

    @property
    def status(self) -> str:
        """``fail`` if any check failed, ``skip`` if nothing beyond the import passed (say, a
        dataset whose files are missing), else ``pass``."""
        if any(r.status == FAIL for r in self.results):
            return FAIL
        passed = any(r.status == PASS and r.check != "import" for r in self.results)
        return PASS if passed else SKIP

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def add(self, check: str, where: str, status: str, detail: str = "") -> CheckResult:
        result = CheckResult(self.kind, self.name, self.plugin, check, where, status, detail)
        self.results.append(result)
        return result

    def run(self, check: str, where: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """Run one check function; record pass, fail (with its detail) or skip."""
        try:
            value = fn(*args)
        except _Skip as exc:
            self.add(check, where, SKIP, str(exc))
            return False, None
        except _Fail as exc:
            self.add(check, where, FAIL, str(exc))
            return False, None
        except Exception as exc:  # the entry's own code raised: that is the finding
            self.add(check, where, FAIL, _raised(exc))
            return False, None
        self.add(check, where, PASS)
        return True, value

    def format(self) -> str:
        """One line per failure (or the status when nothing failed)."""
        if self.failures:
            return "\n".join(r.message for r in self.failures)
        return f"{self.kind} {self.name!r} (plugin {self.plugin}): {self.status}"

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` listing every failed check."""
        if not self.ok:
            raise AssertionError(f"{len(self.failures)} check(s) failed:\n{self.format()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "summary": self.summary,
            "status": self.status,
            "passed": self.count(PASS),
            "failed": self.count(FAIL),
            "skipped": self.count(SKIP),
            "checks": [r.to_dict() for r in self.results],
        }


@dataclass
class Report:
    """The reports of several entries (a plugin, or everything a CLI call named)."""

    entries: list[EntryReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for e in self.entries for r in e.failures]

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str, kind: str | None = None) -> EntryReport:
        """The report of one entry by name (and kind)."""
        for e in self.entries:
            if e.name == name and (kind is None or e.kind == kind):
                return e
        raise KeyError(name)

    def format(self) -> str:
        if not self.failures:
            return f"{len(self.entries)} entries: all checks passed or skipped"
        return "\n".join(r.message for r in self.failures)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` listing every failed check of every entry."""
        if not self.ok:
            bad = sum(not e.ok for e in self.entries)
            raise AssertionError(
                f"{len(self.failures)} check(s) failed in {bad} of {len(self.entries)} "
                f"entries:\n{self.format()}"
            )

    def to_dicts(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries]


class _Fail(Exception):
    """A check found something other than what the contract expects."""


class _Skip(Exception):
    """A check cannot run here (e.g. a dataset's files are not on disk)."""


def _raised(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = f"raised {type(exc).__name__}" + (f": {lines[0]}" if lines else "")
    return text if len(text) <= 300 else text[:297] + "..."


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) if hasattr(t, "shape") else type(t).__name__


# --------------------------------------------------------------------------- resolving


def _resolve(kind: str, entry: str | Entry) -> Entry:
    if isinstance(entry, Entry):
        if entry.kind != kind:
            raise UsageError(f"{entry.name!r} is a {entry.kind}, not a {kind}")
        return entry
    return api.get_entry(kind, entry)


def check_entry(entry: str | Entry, kind: str | None = None, **options: Any) -> EntryReport:
    """Check one entry of any kind (``kind`` settles a name shared by a model and a dataset).

    ``options`` go to the checker of the entry's kind: ``datasets``, ``batch_size``, ``seed``
    (models), ``batch_size``, ``seed`` (losses), ``splits``, ``data_dir``, ``dataset_kwargs``
    (datasets); the others are ignored.
    """
    if isinstance(entry, str):
        found = [e for e in get_registry().find(entry) if kind is None or e.kind == kind]
        if not found:
            if kind is not None:
                get_registry().get(kind, entry)  # raises with close matches
            raise UnknownNameError(_unknown(entry))
        if len({e.kind for e in found}) > 1:
            kinds = ", ".join(sorted({e.kind for e in found}))
            raise UsageError(f"{entry!r} names a {kinds}; pass kind= to choose")
        entry = get_registry().get(found[0].kind, entry) if len(found) > 1 else found[0]
    checker = {"model": check_model, "loss": check_loss, "dataset": check_dataset}[entry.kind]
    return checker(entry, **{k: v for k, v in options.items() if k in _OPTIONS[entry.kind]})


# which of check()'s options each kind's checker takes (others are ignored for that kind)
_OPTIONS = {
    "model": {"datasets", "batch_size", "seed"},
    "loss": {"batch_size", "seed"},
    "dataset": {"splits", "data_dir", "dataset_kwargs"},
}


def check_plugin(plugin: str, **options: Any) -> Report:
    """Check a plugin (entry-point or distribution name): that it loaded, then every entry."""
    key = normalize_name(plugin)
    records = [
        r for r in plugin_records() if key in (normalize_name(r.name), normalize_name(r.dist))
    ]
    if not records:
        raise UnknownNameError(_unknown(plugin))
    return Report([rep for record in records for rep in _check_record(record, options)])


def _check_record(record: Any, options: dict[str, Any]) -> list[EntryReport]:
    reports = [_plugin_report(record)]
    for kind in KINDS:
        for entry in get_registry().entries(kind):
            if entry.plugin == record.name:
                reports.append(check_entry(entry, **options))
    return reports


def _plugin_report(record: Any) -> EntryReport:
    rep = EntryReport("plugin", record.name, record.name, record.value)
    if record.status == "failed":
        rep.add("load", record.dist, FAIL, f"expected the plugin to load, found {record.error}")
    elif record.status in ("blocked", "skipped"):
        why = "ZOO_DISABLE_PLUGINS" if record.status == "blocked" else "ZOO_PLUGINS"
        rep.add("load", record.dist, SKIP, f"{record.status} by {why}")
    elif not record.entries:
        rep.add("load", record.dist, FAIL, "expected at least one registered entry, found none")
    else:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(record.entries.items()))
        rep.add("load", record.dist, PASS, f"registered {counts}")
    return rep


def check(names: str | Iterable[str], **options: Any) -> Report:
    """Check everything each name denotes: entries of that name (any kind) and, when it names
    a plugin, that plugin and all its entries. Every name (and every dataset in ``datasets``)
    is resolved before any check runs; an unknown one raises with close matches."""
    if isinstance(names, str):
        names = [names]
    registry = get_registry()
    for dataset in options.get("datasets") or ():
        registry.get("dataset", dataset)
    planned: dict[tuple[str, str, str], Entry | Any] = {}
    named: set[tuple[str, str, str]] = set()  # entries named directly, not through a plugin
    for name in names:
        for target, direct in _targets(name):
            key = (
                (target.kind, target.plugin, target.name)
                if isinstance(target, Entry)
                else ("plugin", target.name, target.name)
            )
            planned.setdefault(key, target)
            if direct:
                named.add(key)
    reports = []
    for key, target in planned.items():
        if not isinstance(target, Entry):
            reports.append(_plugin_report(target))
        elif key in named:
            reports.append(check_entry(target, **options))
        else:
            reports.append(_check_leniently(target, options))
    return Report(reports)


def _check_leniently(entry: Entry, options: dict[str, Any]) -> EntryReport:
    """A plugin's entry: a ``datasets`` filter that fits none of its shapes skips it."""
    try:
        return check_entry(entry, **options)
    except IncompatibleError as exc:
        report = EntryReport.for_entry(entry)
        report.add("build", ",".join(options.get("datasets") or ()), SKIP, str(exc))
        return report


def _targets(name: str) -> list[tuple[Entry | Any, bool]]:
    """``(target, named directly)``: entries called ``name`` (a bare name must be unambiguous
    per kind), then any plugin record called ``name`` followed by all of its entries."""
    registry = get_registry()
    key = normalize_name(name)
    records = [
        r for r in plugin_records() if key in (normalize_name(r.name), normalize_name(r.dist))
    ]
    entries = registry.find(name)
    if not entries and not records:
        raise UnknownNameError(_unknown(name))
    for kind in {e.kind for e in entries}:
        if sum(e.kind == kind for e in entries) > 1 and "/" not in name:
            registry.get(kind, name)  # raises the ambiguity error listing plugin/name
    targets: list[tuple[Entry | Any, bool]] = [(e, True) for e in entries]
    for record in records:
        targets.append((record, True))
        targets.extend(
            (e, False) for kind in KINDS for e in registry.entries(kind) if e.plugin == record.name
        )
    return targets


def check_all(**options: Any) -> Report:
    """Every plugin zoo discovered and every entry it registered."""
    return Report([rep for record in plugin_records() for rep in _check_record(record, options)])


def run_checks(*names: str, **options: Any) -> Report:
    """:func:`check` the names, then raise ``AssertionError`` listing every failure."""
    report = check(list(names), **options)
    report.assert_ok()
    return report


def assert_model_ok(name: str | Entry, **options: Any) -> EntryReport:
    """:func:`check_model`, raising ``AssertionError`` with every failure."""
    report = check_model(name, **options)
    report.assert_ok()
    return report


def assert_loss_ok(name: str | Entry, **options: Any) -> EntryReport:
    """:func:`check_loss`, raising ``AssertionError`` with every failure."""
    report = check_loss(name, **options)
    report.assert_ok()
    return report


def assert_dataset_ok(name: str | Entry, **options: Any) -> EntryReport:
    """:func:`check_dataset`, raising ``AssertionError`` with every failure."""
    report = check_dataset(name, **options)
    report.assert_ok()
    return report


def assert_plugin_ok(plugin: str, **options: Any) -> Report:
    """:func:`check_plugin`, raising ``AssertionError`` with every failure."""
    report = check_plugin(plugin, **options)
    report.assert_ok()
    return report


def _unknown(name: str) -> str:
    registry = get_registry()
    known = {e.name for kind in KINDS for e in registry.entries(kind)}
    known |= {r.name for r in plugin_records()} | {r.dist for r in plugin_records()}
    close = difflib.get_close_matches(normalize_name(name), sorted(known), n=3, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else "; see `zoo list` and `zoo plugins`"
    return f"unknown entry or plugin {name!r}{hint}"


# --------------------------------------------------------------------------- models


def probe_datasets(model: Entry, datasets: Sequence[str] | None = None) -> list[Entry]:
    """One dataset entry per distinct (task, input shape, outputs) the model is compatible with.

    With ``datasets`` given, the compatible ones among those (raises
    :class:`~zoo.errors.IncompatibleError` when none is). With no compatible registered
    dataset, synthetic probes of a typical shape for each of the model's tasks.
    """
    registry = get_registry()
    if datasets is not None:
        chosen = [registry.get("dataset", d) for d in datasets]
        fit = [d for d in chosen if tasks.incompatibility(model, d) is None]
        if not fit:
            tasks.check_compatible(model, chosen[0])  # raises with the reason
        return fit
    probes: dict[tuple[Any, ...], Entry] = {}
    for d in registry.entries("dataset"):
        if tasks.incompatibility(model, d) is None:
            key = (d.tasks[0], tuple(d.meta["input_shape"]), tasks.output_size(d))
            probes.setdefault(key, d)
    return list(probes.values()) or _synthetic_probes(model)


def _synthetic_probes(model: Entry) -> list[Entry]:
    kinds = ["features", "image"] if model.input_kind == "any" else [model.input_kind]
    channels = int(model.meta.get("in_channels", 3))
    shapes = {"features": (8,), "image": (channels, 32, 32)}
    return [
        _probe_entry(f"synthetic-{kind}-{task}", task, shapes[kind])
        for task in model.tasks
        for kind in kinds
    ]


def _probe_entry(name: str, task: str, input_shape: tuple[int, ...]) -> Entry:
    """A shape-only dataset entry (never loaded): 3 classes for multiclass, 2 for binary."""
    meta: dict[str, Any] = {"task": task, "input_shape": input_shape}
    if task != "regression":
        meta["num_classes"] = 2 if task == "binary" else 3
    return make_entry(
        "dataset", name, "zoo.testing:_no_data", meta, plugin=PROBE_PLUGIN, dist="zoo", version="0"
    )


def _describe_probe(d: Entry) -> str:
    shape = "x".join(map(str, d.meta["input_shape"]))
    return f"{d.name} ({d.tasks[0]}, {shape} -> {tasks.output_size(d)})"


def check_model(
    model: str | Entry,
    *,
    datasets: Sequence[str] | None = None,
    batch_size: int = 4,
    seed: int = 0,
) -> EntryReport:
    """Build, forward, eval determinism, one training step and an export/load round trip,
    for each dataset shape the model is compatible with (synthetic inputs of that shape)."""
    import torch

    entry = _resolve("model", model)
    report = EntryReport.for_entry(entry)
    ok, _ = report.run("import", "", entry.load)
    if not ok:
        return report
    probes = probe_datasets(entry, datasets)
    for name in datasets or ():
        reason = tasks.incompatibility(entry, get_registry().get("dataset", name))
        if reason:
            report.add("build", name, SKIP, f"incompatible: {reason}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only add contention on a busy machine
    try:
        with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
            for probe in probes:
                torch.manual_seed(seed)
                _check_model_on(report, entry, probe, batch_size, seed, Path(tmp))
    finally:
        torch.set_num_threads(threads)
    return report


def _synthetic_batch(dataset: Entry, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal inputs of the dataset's shape and targets of the task's dtype and range."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *dataset.meta["input_shape"]), generator=gen)
    task, k = dataset.tasks[0], tasks.output_size(dataset)
    if task == "multiclass":
        y = torch.randint(0, k, (n,), generator=gen)
    elif task == "binary":
        y = torch.randint(0, 2, (n,), generator=gen).float()
    else:
        y = torch.randn((n, k) if k > 1 else (n,), generator=gen)
    return x, y


def _check_model_on(
    report: EntryReport, entry: Entry, probe: Entry, n: int, seed: int, tmp: Path
) -> None:
    where = _describe_probe(probe)
    ok, model = report.run("build", where, _build, entry, probe)
    if not ok:
        return
    x, y = _synthetic_batch(probe, n, seed)
    expected = (n, tasks.output_size(probe))
    ok, out = report.run("forward", where, _forward, model, x, expected)
    if not ok:
        for name in ("eval-deterministic", "train-step", "export-roundtrip"):
            report.add(name, where, SKIP, "forward failed")
        return
    same, _ = report.run("eval-deterministic", where, _eval_twice, model, x, out)
    report.run("train-step", where, _train_step, model, x, y, probe.tasks[0])
    if same:
        path = tmp / f"{entry.name}.safetensors"
        report.run("export-roundtrip", where, _roundtrip, model, x, path)
    else:
        report.add("export-roundtrip", where, SKIP, "outputs in eval() are not deterministic")


def _build(entry: Entry, probe: Entry) -> Any:
    """The model as ``zoo.create_model(name, dataset=...)`` builds it (standard kwargs the
    target accepts, then its defaults)."""
    kwargs = api.model_kwargs(entry, probe, {})
    dataset = probe.name if probe.plugin != PROBE_PLUGIN else None
    try:
        return api.build_model(entry, kwargs, dataset=dataset)
    except Exception as exc:
        raise _Fail(f"building with {kwargs} {_raised(exc)}") from exc


def _forward(model: Any, x: torch.Tensor, expected: tuple[int, ...]) -> torch.Tensor:
    import torch

    model.eval()
    with torch.inference_mode():
        out = model(x)
    if not isinstance(out, torch.Tensor):
        raise _Fail(f"expected a Tensor of shape {expected}, found {type(out).__name__}")
    if tuple(out.shape) != expected:
        raise _Fail(f"expected output shape {expected} for input {_shape(x)}, found {_shape(out)}")
    if not out.is_floating_point():
        raise _Fail(f"expected floating-point output, found {out.dtype}")
    if not torch.isfinite(out).all():
        raise _Fail("expected finite outputs, found NaN or inf")
    return out


def _eval_twice(model: Any, x: torch.Tensor, first: torch.Tensor) -> None:
    import torch

    model.eval()
    with torch.inference_mode():
        second = model(x)
    if not torch.equal(first, second):
        diff = (first.float() - second.float()).abs().max().item()
        raise _Fail(
            "expected identical outputs from two passes under eval() + inference_mode(), "
            f"found max abs difference {diff:.3g}"
        )


def _task_loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from torch.nn import functional as F

    out = tasks.align(task, out, y)
    if task == "multiclass":
        return F.cross_entropy(out, y)
    if task == "binary":
        return F.binary_cross_entropy_with_logits(out, y)
    return F.mse_loss(out, y)


def _train_step(model: Any, x: torch.Tensor, y: torch.Tensor, task: str) -> None:
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise _Fail("expected at least one parameter that requires grad, found none")
    model.train()
    model.zero_grad(set_to_none=True)
    loss = _task_loss(task, model(x), y)
    if not torch.isfinite(loss):
        raise _Fail(f"expected a finite training loss, found {loss.item()}")
    loss.backward()
    missing = [n for n, p in params if p.grad is None]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        raise _Fail(
            f"expected a gradient for every parameter that requires grad, found none for "
            f"{len(missing)} of {len(params)}: {shown}"
        )
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    if bad:
        raise _Fail(f"expected finite gradients, found NaN or inf in {', '.join(bad[:5])}")
    with torch.no_grad():  # a plain SGD step (torch.optim would import torch._dynamo: seconds)
        for _, p in params:
            p.add_(p.grad, alpha=-1e-3)


def _roundtrip(model: Any, x: torch.Tensor, path: Path) -> None:
    """Export, rebuild with ``zoo.weights.load``; every tensor of the state_dict must come back
    bit for bit, and the outputs must agree (exactly, or to float rounding: kernels may take
    another SIMD path for tensors at another memory alignment)."""
    import torch

    try:
        from zoo import weights
    except ImportError as exc:
        raise _Skip(f"zoo.weights is not available ({exc})") from exc
    model.eval()
    with torch.inference_mode():
        before = model(x)
    try:
        weights.export(model, path)
        loaded = weights.load(path)
    except Exception as exc:
        raise _Fail(f"expected export + load to succeed, found it {_raised(exc)}") from exc
    saved, back = model.state_dict(), loaded.state_dict()
    if set(saved) != set(back):
        lost, extra = sorted(set(saved) - set(back)), sorted(set(back) - set(saved))
        raise _Fail(
            f"expected the same state_dict keys after export/load, found missing {lost[:5]}, "
            f"unexpected {extra[:5]}"
        )
    for key, tensor in saved.items():
        if tensor.dtype != back[key].dtype or not torch.equal(tensor, back[key].to(tensor.device)):
            raise _Fail(f"expected {key!r} identical after export/load, found it changed")
    loaded.eval()
    with torch.inference_mode():
        after = loaded(x)
    if tuple(after.shape) != tuple(before.shape):
        raise _Fail(
            f"expected output shape {_shape(before)} after export/load, found {_shape(after)}"
        )
    diff = (before.double() - after.double()).abs().max().item()
    scale = max(1.0, before.double().abs().max().item())
    if diff > 1e-5 * scale:
        raise _Fail(
            "expected identical outputs after a safetensors export/load round trip, "
            f"found max abs difference {diff:.3g}"
        )


# --------------------------------------------------------------------------- losses


def check_loss(loss: str | Entry, *, batch_size: int = 4, seed: int = 0) -> EntryReport:
    """For each task the loss serves: called on that task's model output (after what its
    ``expects`` asks for) and target, it returns a finite scalar that has gradients."""
    entry = _resolve("loss", loss)
    report = EntryReport.for_entry(entry)
    ok, factory = report.run("import", "", entry.load)
    if not ok:
        return report
    ok, fn = report.run("build", "", _build_loss, factory)
    if not ok:
        return report
    expects = entry.meta.get("expects", "logits")
    for task in entry.tasks:
        ok, value = report.run("call", task, _call_loss, fn, task, expects, batch_size, seed)
        if not ok:
            report.add("scalar", task, SKIP, "call failed")
            continue
        logits, out = value
        ok, _ = report.run("scalar", task, _scalar, out)
        if ok:
            report.run("gradient", task, _loss_gradient, logits, out)
        else:
            report.add("gradient", task, SKIP, "not a scalar")
    return report


def _build_loss(factory: Callable[..., Any]) -> Callable[..., Any]:
    fn = factory()
    if not callable(fn):
        raise _Fail(f"expected a callable (an nn.Module), found {type(fn).__name__}")
    return fn


def _call_loss(
    fn: Callable[..., Any], task: str, expects: str, n: int, seed: int
) -> tuple[torch.Tensor, Any]:
    import torch

    probe = _probe_entry("probe", task, (1,))
    _, y = _synthetic_batch(probe, n, seed)
    logits = torch.randn(
        (n, tasks.output_size(probe)), generator=torch.Generator().manual_seed(seed)
    )
    logits.requires_grad_(True)
    inputs = tasks.to_loss_input(expects, task, tasks.align(task, logits, y))
    try:
        return logits, fn(inputs, y)
    except Exception as exc:
        raise _Fail(
            f"expected it to accept output {_shape(inputs)} {inputs.dtype} ({expects}) and "
            f"target {_shape(y)} {y.dtype}, found it {_raised(exc)}"
        ) from exc


def _scalar(out: Any) -> None:
    import torch

    if not isinstance(out, torch.Tensor):
        raise _Fail(f"expected a scalar Tensor, found {type(out).__name__}")
    if out.dim() != 0:
        raise _Fail(f"expected a scalar loss (shape ()), found shape {_shape(out)}")
    if not out.is_floating_point() or not torch.isfinite(out):
        raise _Fail(f"expected a finite floating-point value, found {out.item()} ({out.dtype})")


def _loss_gradient(logits: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    if not out.requires_grad:
        raise _Fail("expected the loss to carry gradients to the model output, found none")
    out.backward()
    if logits.grad is None:
        raise _Fail("expected a gradient on the model output, found none")
    if not torch.isfinite(logits.grad).all():
        raise _Fail("expected finite gradients on the model output, found NaN or inf")


# --------------------------------------------------------------------------- datasets


def check_dataset(
    dataset: str | Entry,
    *,
    splits: Sequence[str] = SPLITS,
    data_dir: str | None = None,
    dataset_kwargs: dict[str, Any] | None = None,
) -> EntryReport:
    """Both splits load with the declared input shape, dtypes and class range, identically
    twice. Missing files (``FileNotFoundError``) make the dataset *skipped*, with the reason.

    ``data_dir`` is passed as ``root=`` to datasets whose loader takes a ``root``.
    """
    entry = _resolve("dataset", dataset)
    report = EntryReport.for_entry(entry)
    ok, target = report.run("import", "", entry.load)
    if not ok:
        return report
    dataset_kwargs = dict(dataset_kwargs or {})
    if data_dir is not None:
        dataset_kwargs.update(tasks.accepted_kwargs(target, {"root": str(data_dir)}))
    for split in splits:
        try:
            first = target(split, **dataset_kwargs)
        except FileNotFoundError as exc:
            report.add("load", split, SKIP, str(exc).splitlines()[0] if str(exc) else "missing")
            continue
        except Exception as exc:
            report.add(
                "load", split, FAIL, f"expected split {split!r} to load, found it {_raised(exc)}"
            )
            continue
        ok, _ = report.run("load", split, _structure, first)
        if not ok:
            continue
        report.run("shape", split, _data_shapes, entry, first)
        report.run("dtype", split, _data_dtypes, entry, first)
        report.run("labels", split, _data_labels, entry, first)
        report.run("deterministic", split, _data_again, target, split, dataset_kwargs, first)
    return report


def _is_pair(data: Any) -> bool:
    import torch

    return (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    )


def _structure(data: Any) -> None:
    if _is_pair(data):
        X, y = data
        if len(X) == 0:
            raise _Fail("expected at least one sample, found none")
        if len(X) != len(y):
            raise _Fail(
                f"expected as many targets as inputs, found {len(X)} inputs, {len(y)} targets"
            )
        return
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise _Fail(f"expected (X, y) tensors or a Dataset, found {type(data).__name__}")
    if len(data) == 0:
        raise _Fail("expected at least one sample, found an empty Dataset")


def _sample_indices(n: int) -> list[int]:
    if n <= _SAMPLE:
        return list(range(n))
    return sorted({round(i * (n - 1) / (_SAMPLE - 1)) for i in range(_SAMPLE)})


def _items(data: Any, indices: Iterable[int]) -> list[tuple[Any, Any]]:
    out = []
    for i in indices:
        item = data[i]
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise _Fail(f"expected item {i} to be an (x, y) pair, found {type(item).__name__}")
        out.append((item[0], item[1]))
    return out


def _target_shape(entry: Entry) -> tuple[int, ...]:
    k = int(entry.meta.get("num_targets", 1)) if entry.tasks[0] == "regression" else 1
    return (k,) if k > 1 else ()


def _data_shapes(entry: Entry, data: Any) -> None:
    declared = tuple(entry.meta["input_shape"])
    ty = _target_shape(entry)
    if _is_pair(data):
        X, y = data
        if tuple(X.shape[1:]) != declared:
            raise _Fail(
                f"expected X of shape (N, {', '.join(map(str, declared))}), found {_shape(X)}"
            )
        if tuple(y.shape[1:]) != ty:
            raise _Fail(
                f"expected y of shape (N{''.join(f', {d}' for d in ty)}), found {_shape(y)}"
            )
        return
    for i, (x, _y) in zip([0, len(data) - 1], _items(data, [0, len(data) - 1]), strict=True):
        if tuple(getattr(x, "shape", ())) != declared:
            raise _Fail(f"expected item {i} input of shape {declared}, found {_shape(x)}")


def _data_dtypes(entry: Entry, data: Any) -> None:
    import torch

    want_y = torch.int64 if entry.tasks[0] == "multiclass" else torch.float32
    if _is_pair(data):
        X, y = data
        if X.dtype != torch.float32 or y.dtype != want_y:
            raise _Fail(
                f"expected X float32 and y {str(want_y).removeprefix('torch.')}, "
                f"found X {str(X.dtype).removeprefix('torch.')} and "
                f"y {str(y.dtype).removeprefix('torch.')}"
            )
        return
    x, y = _items(data, [0])[0]
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        raise _Fail(
            f"expected item inputs as float32 tensors, found {getattr(x, 'dtype', type(x))}"
        )
    is_int = isinstance(y, int) or (isinstance(y, torch.Tensor) and not y.is_floating_point())
    if entry.tasks[0] == "multiclass" and not is_int:
        raise _Fail(f"expected integer class labels, found {getattr(y, 'dtype', type(y).__name__)}")


def _labels_of(data: Any) -> torch.Tensor:
    import torch

    if _is_pair(data):
        return data[1]
    for attr in ("targets", "labels"):
        value = getattr(data, attr, None)
        if value is not None and len(value) == len(data):
            return torch.as_tensor(value)
    n = len(data)
    indices = range(n) if n <= _MAX_ITEMS else _sample_indices(n)
    return torch.as_tensor([float(y) for _, y in _items(data, indices)])


def _data_labels(entry: Entry, data: Any) -> None:
    import torch

    if _is_pair(data) and not torch.isfinite(data[0]).all():
        raise _Fail("expected finite inputs, found NaN or inf in X")
    y = _labels_of(data).double()
    task = entry.tasks[0]
    if task == "regression":
        if not torch.isfinite(y).all():
            raise _Fail("expected finite regression targets, found NaN or inf")
        return
    k = int(entry.meta["num_classes"])
    bad = (y < 0) | (y >= k) | (y != y.round())
    if bad.any():
        lo, hi = y.min().item(), y.max().item()
        raise _Fail(
            f"expected integer labels in [0, {k}) (num_classes={k}), found range "
            f"[{lo:g}, {hi:g}] with {int(bad.sum())} of {len(y)} outside"
        )


def _data_again(target: Callable[..., Any], split: str, kwargs: dict[str, Any], first: Any) -> None:
    import torch

    second = target(split, **kwargs)
    if _is_pair(first):
        if not _is_pair(second):
            raise _Fail(f"expected the same (X, y) pair twice, found {type(second).__name__}")
        for label, a, b in zip(("X", "y"), first, second, strict=True):
            if a.shape != b.shape:
                raise _Fail(
                    f"expected two loads of split {split!r} to be identical, found {label} "
                    f"shape {_shape(a)} then {_shape(b)}"
                )
            if not torch.equal(a, b):
                diff = (a.double() - b.double()).abs()
                raise _Fail(
                    f"expected two loads of split {split!r} to be identical, found {label} "
                    f"differs in {int((diff > 0).sum())} values (max abs difference "
                    f"{diff.max().item():.3g})"
                )
        return
    if len(first) != len(second):
        raise _Fail(
            f"expected two loads of split {split!r} to be identical, found {len(first)} then "
            f"{len(second)} samples"
        )
    indices = sorted({0, len(first) // 2, len(first) - 1})
    for i, (a, b) in zip(
        indices, zip(_items(first, indices), _items(second, indices), strict=True), strict=True
    ):
        if not all(
            torch.equal(torch.as_tensor(u), torch.as_tensor(v)) for u, v in zip(a, b, strict=True)
        ):
            raise _Fail(
                f"expected two loads of split {split!r} to be identical, found item {i} differs"
            )


def _no_data(split: str, **kwargs: Any) -> None:
    """Target of the synthetic probe datasets: they are shapes only, never loaded."""
    raise FileNotFoundError("synthetic probe datasets hold no data")


__all__ = [
    "CheckResult",
    "EntryReport",
    "Report",
    "assert_dataset_ok",
    "assert_loss_ok",
    "assert_model_ok",
    "assert_plugin_ok",
    "check",
    "check_all",
    "check_dataset",
    "check_entry",
    "check_loss",
    "check_model",
    "check_plugin",
    "probe_datasets",
    "run_checks",
]
