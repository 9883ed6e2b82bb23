"""Loss conformance checks (:func:`check_loss`), once per task the loss serves:

``build``     the target builds with no arguments and returns an ``nn.Module`` (zoo moves it
              to the training device with ``.to()``)
``call``      it accepts that task's model output, turned into what its ``expects`` asks for
              (``zoo.tasks.to_loss_input``), and target
``scalar``    it returns a finite floating-point scalar Tensor
``gradient``  that scalar carries a finite gradient back to the model output
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.checks.model import probe_entry, synthetic_batch
from zoo.checks.report import EntryReport, Failed, begin, judged_alone, raised, shape_of
from zoo.registry.entries import Entry
from zoo.tasks import contracts as tasks

if TYPE_CHECKING:
    import torch

__all__ = ["check_loss"]


@judged_alone
def check_loss(loss: str | Entry, *, batch_size: int = 4, seed: int = 0) -> EntryReport:
    """For each task the loss serves: called on that task's model output (after what its
    ``expects`` asks for) and target, it returns a finite scalar that has gradients."""
    entry, report, factory = begin("loss", loss)
    if factory is None:
        return report
    ok, fn = report.run("build", "", _build, factory)
    if not ok:
        return report
    expects = entry.meta.get("expects", "logits")
    for task in entry.tasks:
        ok, value = report.run("call", task, _call, fn, task, expects, batch_size, seed)
        if not ok:
            report.skip(task, "call failed", "scalar", "gradient")
            continue
        logits, out = value
        ok, _ = report.run("scalar", task, _scalar, out)
        if ok:
            report.run("gradient", task, _gradient, logits, out)
        else:
            report.skip(task, "not a scalar", "gradient")
    return report


def _build(factory: Any) -> Any:
    from torch import nn

    fn = factory()
    if not isinstance(fn, nn.Module):
        raise Failed(f"expected an nn.Module, found {type(fn).__name__}")
    return fn


def _call(fn: Any, task: str, expects: str, n: int, seed: int) -> tuple[torch.Tensor, Any]:
    """``(logits, loss value)`` for a batch of ``n`` random logits and targets of ``task``."""
    import torch

    probe = probe_entry(f"synthetic-{task}", task, (1,))
    _, y = synthetic_batch(probe, n, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    logits = torch.randn((n, tasks.output_size(probe)), generator=gen, requires_grad=True)
    from zoo.tasks import metrics

    inputs = metrics.to_loss_input(expects, task, metrics.align(task, logits, y))
    try:
        return logits, fn(inputs, y)
    except Exception as exc:
        raise Failed(
            f"expected it to accept output {shape_of(inputs)} {inputs.dtype} ({expects}) and "
            f"target {shape_of(y)} {y.dtype}, found it {raised(exc)}"
        ) from exc


def _scalar(out: Any) -> None:
    import torch

    if not isinstance(out, torch.Tensor):
        raise Failed(f"expected a scalar Tensor, found {type(out).__name__}")
    if out.dim() != 0:
        raise Failed(f"expected a scalar loss (shape ()), found shape {shape_of(out)}")
    if not out.is_floating_point() or not torch.isfinite(out):
        raise Failed(f"expected a finite floating-point value, found {out.item()} ({out.dtype})")


def _gradient(logits: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    if not out.requires_grad:
        raise Failed("expected the loss to carry gradients to the model output, found none")
    (grad,) = torch.autograd.grad(out, logits, allow_unused=True)
    if grad is None:
        raise Failed("expected a gradient on the model output, found none")
    if not torch.isfinite(grad).all():
        raise Failed("expected finite gradients on the model output, found NaN or inf")
