"""Model conformance checks (:func:`check_model`), run once per compatible dataset shape on
synthetic inputs of that shape (no data is loaded):

``build``               the target builds with the standard kwargs, then its ``defaults``
``forward``             under ``eval()`` + ``inference_mode()``: a finite float Tensor of shape
                        ``(N, tasks.output_size(dataset))``
``eval-deterministic``  a second such pass gives bit-identical outputs
``train-step``          zoo's own training step (:func:`zoo.runtime.step.train_step`) in
                        ``train()``: the same output shape, a finite task loss, and a finite
                        gradient on every parameter that requires grad; then one SGD update
``export-roundtrip``    ``zoo.export`` + ``zoo.load`` give back every state_dict tensor and the
                        outputs bit for bit
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.checks.report import SKIP, EntryReport, Failed, begin, judged_alone, raised, shape_of
from zoo.models import build_model, model_kwargs
from zoo.registry.entries import Entry, make_entry
from zoo.registry.plugins import get_registry
from zoo.tasks import contracts as tasks

if TYPE_CHECKING:
    import torch

__all__ = ["PROBE_PLUGIN", "check_model", "probe_datasets", "probe_entry", "synthetic_batch"]

PROBE_PLUGIN = "zoo.testing"  # the plugin name of synthetic probe datasets
AFTER_FORWARD = ("eval-deterministic", "train-step", "export-roundtrip")


@judged_alone
def check_model(
    model: str | Entry,
    *,
    datasets: Sequence[str] | None = None,
    batch_size: int = 4,
    seed: int = 0,
) -> EntryReport:
    """Build, forward, eval determinism, one training step and an export/load round trip,
    for each dataset shape the model is compatible with (``datasets``: only those datasets;
    raises :class:`~zoo.errors.IncompatibleError` when none of them fits)."""
    import torch

    entry, report, target = begin("model", model)
    if target is None:
        return report
    datasets = [datasets] if isinstance(datasets, str) else datasets
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
                with torch.random.fork_rng(devices=[]):  # leave the caller's RNG as it was
                    torch.manual_seed(seed)
                    _check_on(report, entry, probe, batch_size, seed, Path(tmp))
    finally:
        torch.set_num_threads(threads)
    return report


def probe_datasets(model: Entry, datasets: Sequence[str] | None = None) -> list[Entry]:
    """One dataset entry per distinct (task, input shape, outputs) the model is compatible with.

    With ``datasets`` named, the compatible ones among those (raises
    :class:`~zoo.errors.IncompatibleError` when none is). With no compatible registered
    dataset, synthetic probes of a typical shape for each of the model's tasks.
    """
    registry = get_registry()
    if datasets:
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
    shapes = {"features": (8,), "image": (int(model.meta.get("in_channels", 3)), 32, 32)}
    return [
        probe_entry(f"synthetic-{kind}-{task}", task, shapes[kind])
        for task in model.tasks
        for kind in kinds
    ]


def probe_entry(name: str, task: str, input_shape: tuple[int, ...]) -> Entry:
    """A shape-only dataset entry (never loaded): 3 classes for multiclass, 2 for binary."""
    meta: dict[str, Any] = {"task": task, "input_shape": input_shape}
    if task != "regression":
        meta["num_classes"] = 2 if task == "binary" else 3
    return make_entry("dataset", name, _no_data, meta, plugin=PROBE_PLUGIN, dist="zoo", version="0")


def _no_data(split: str, **kwargs: Any) -> None:
    """Target of the synthetic probe datasets: they are shapes only, never loaded."""
    raise FileNotFoundError("synthetic probe datasets hold no data")


def synthetic_batch(dataset: Entry, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal inputs of the dataset's shape; targets of the task's dtype, shape and
    range (int64 classes, float32 0/1, float32 values)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *dataset.meta["input_shape"]), generator=gen)
    task, k = dataset.tasks[0], tasks.output_size(dataset)
    if task == "multiclass":
        return x, torch.randint(0, k, (n,), generator=gen)
    if task == "binary":
        return x, torch.randint(0, 2, (n,), generator=gen).float()
    return x, torch.randn((n, k) if k > 1 else (n,), generator=gen)


def _check_on(
    report: EntryReport, entry: Entry, probe: Entry, n: int, seed: int, tmp: Path
) -> None:
    """Every model check on one dataset shape; a check others depend on skips them."""
    shape = "x".join(map(str, probe.meta["input_shape"]))
    where = f"{probe.name} ({probe.tasks[0]}, {shape} -> {tasks.output_size(probe)})"
    ok, model = report.run("build", where, _build, entry, probe)
    if not ok:
        return
    x, y = synthetic_batch(probe, n, seed)
    expected = (n, tasks.output_size(probe))
    ok, out = report.run("forward", where, _forward, model, x, expected)
    if not ok:
        report.skip(where, "forward failed", *AFTER_FORWARD)
        return
    same, _ = report.run("eval-deterministic", where, _eval_again, model, x, out)
    report.run("train-step", where, _train_step, model, x, y, probe.tasks[0], expected)
    if same:
        report.run("export-roundtrip", where, _roundtrip, model, x, tmp / "model.safetensors")
    else:
        report.skip(where, "outputs in eval() are not deterministic", "export-roundtrip")


def _build(entry: Entry, probe: Entry) -> Any:
    """The model as ``zoo.create_model(name, dataset=...)`` builds it."""
    kwargs = model_kwargs(entry, probe, {})
    dataset = probe.name if probe.plugin != PROBE_PLUGIN else None
    try:
        return build_model(entry, kwargs, dataset=dataset)
    except Exception as exc:
        raise Failed(f"expected it to build with {kwargs}, found it {raised(exc)}") from exc


def _infer(model: Any, x: torch.Tensor) -> Any:
    import torch

    model.eval()
    with torch.inference_mode():
        return model(x)


def _forward(model: Any, x: torch.Tensor, expected: tuple[int, ...]) -> torch.Tensor:
    import torch

    out = _infer(model, x)
    if not isinstance(out, torch.Tensor):
        raise Failed(f"expected a Tensor of shape {expected}, found {type(out).__name__}")
    if tuple(out.shape) != expected:
        raise Failed(
            f"expected output shape {expected} for input {shape_of(x)}, found {shape_of(out)}"
        )
    if not out.is_floating_point():
        raise Failed(f"expected floating-point output, found {out.dtype}")
    if not torch.isfinite(out).all():
        raise Failed("expected finite outputs, found NaN or inf")
    return out


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaN where the other has NaN (the state may have diverged: the round trip
    is what is checked here)."""
    import torch

    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"{(a.double() - b.double()).abs().max().item():.3g}"


def _eval_again(model: Any, x: torch.Tensor, first: torch.Tensor) -> None:
    import torch

    second = _infer(model, x)
    if not torch.equal(first, second):
        raise Failed(
            "expected identical outputs from two passes under eval() + inference_mode(), "
            f"found max abs difference {_max_diff(first, second)}"
        )


def _task_loss(task: str) -> torch.nn.Module:
    """The task's default loss (what zoo uses when none is named), on logits."""
    from zoo.api import create_loss

    return create_loss(tasks.TASKS[task].default_loss)


class _CheckedSGD:
    """Plain SGD whose ``step`` first checks the gradients: a parameter that requires grad
    and got none, or a non-finite gradient, fails the check before any weight changes.
    (``torch.optim`` would import ``torch._dynamo`` on some torch versions: seconds.)"""

    def __init__(self, params: list[tuple[str, torch.nn.Parameter]], lr: float = 1e-3):
        self.params, self.lr = params, lr

    def zero_grad(self) -> None:
        for _, p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        missing = [name for name, p in self.params if p.grad is None]
        if missing:
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            raise Failed(
                f"expected a gradient for every parameter that requires grad, found none for "
                f"{len(missing)} of {len(self.params)}: {', '.join(missing[:5])}{more}"
            )
        bad = [name for name, p in self.params if not torch.isfinite(p.grad).all()]
        if bad:
            raise Failed(f"expected finite gradients, found NaN or inf in {', '.join(bad[:5])}")
        with torch.no_grad():
            for _, p in self.params:
                p.add_(p.grad, alpha=-self.lr)


def _train_step(
    model: Any, x: torch.Tensor, y: torch.Tensor, task: str, expected: tuple[int, ...]
) -> None:
    """One step of zoo's own training step (:func:`zoo.runtime.step.train_step`), checked at
    each stage: the output's shape in ``train()``, a finite loss, a finite gradient on every
    parameter that requires grad; then the SGD update."""
    import torch

    from zoo.runtime.precision import Precision
    from zoo.runtime.step import train_step

    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise Failed("expected at least one parameter that requires grad, found none")
    loss_fn = _task_loss(task)

    def check_shape(module: Any, args: Any, out: Any) -> None:
        if tuple(getattr(out, "shape", ())) != expected:
            raise Failed(f"expected output shape {expected} in train(), found {shape_of(out)}")

    def checked_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(output, target)
        if not torch.isfinite(loss):
            raise Failed(f"expected a finite training loss, found {loss.item()}")
        return loss

    model.train()
    hook = model.register_forward_hook(check_shape)
    try:
        train_step(
            model,
            x,
            y,
            loss_fn=checked_loss,
            optimizer=_CheckedSGD(params),
            precision=Precision("fp32", x.device),
            task=task,
        )
    finally:
        hook.remove()


def _roundtrip(model: Any, x: torch.Tensor, path: Path) -> None:
    """Export, rebuild with ``zoo.load``: the state_dict and the outputs come back bit for bit."""
    import torch

    from zoo.weights import files as weights
    from zoo.weights import loading

    before = _infer(model, x)
    try:
        weights.export(model, path)
        loaded = loading.load(path)
    except Exception as exc:
        raise Failed(f"expected export + load to succeed, found it {raised(exc)}") from exc
    saved, back = model.state_dict(), loaded.state_dict()
    if set(saved) != set(back):
        lost, extra = sorted(set(saved) - set(back)), sorted(set(back) - set(saved))
        raise Failed(
            f"expected the same state_dict keys after export/load, found missing {lost[:5]}, "
            f"unexpected {extra[:5]}"
        )
    for key, tensor in saved.items():
        if tensor.dtype != back[key].dtype or not torch.equal(tensor, back[key].to(tensor.device)):
            raise Failed(f"expected {key!r} identical after export/load, found it changed")
    after = _infer(loaded, x)
    if tuple(after.shape) != tuple(before.shape):
        raise Failed(
            f"expected output shape {shape_of(before)} after export/load, found {shape_of(after)}"
        )
    if not _identical(before, after):
        raise Failed(
            "expected identical outputs after a safetensors export/load round trip, "
            f"found max abs difference {_max_diff(before, after)}"
        )
