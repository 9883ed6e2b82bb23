"""THE training step, evaluation loop and prediction loop.

:func:`train_step` is the one optimisation step of zoo: ``zoo train`` (the trainer, DDP
included), ``zoo bench --mode train`` and ``zoo check``'s train-step check all call it. It is
the canonical PyTorch loop, in its order::

    output = model(x)                      # under the precision's autocast
    loss = loss_fn(output, y)
    optimizer.zero_grad()
    loss.backward()                        # through a GradScaler for fp16
    optimizer.step()

The caller puts the model in ``train()`` mode once (not every step). :func:`evaluate_batches`
and :func:`predict_outputs` run under ``model.eval()`` and ``torch.inference_mode()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from zoo.errors import UsageError
from zoo.runtime.precision import Precision
from zoo.tasks import metrics

__all__ = [
    "evaluate_batches",
    "input_dtype",
    "predict_outputs",
    "smooth_targets",
    "task_targets",
    "train_step",
]


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    task: str,
    expects: str = "logits",
    loss_factor: float = 1.0,
    zero_grad: bool = True,
    step: bool = True,
    clip_grad: float | None = None,
    label_smoothing: float = 0.0,
    record: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """One optimisation step on the batch ``(x, y)``: forward, loss, zero_grad, backward, step.

    With gradient accumulation over N batches, the first of them zeroes the gradients, the
    last steps the optimizer (clipping first, with ``clip_grad``), and each weighs its loss by
    ``1/N`` (through ``loss_factor``).

    Args:
        model: the module to train, already in ``train()`` mode (may be wrapped in DDP).
        x, y: the batch, on the model's device.
        loss_fn: called as ``loss_fn(output, y)`` on the fp32, task-aligned output, turned into
            what the loss ``expects`` (``logits``, ``probabilities``, ``log-probabilities``).
        optimizer: anything with ``zero_grad()`` and ``step()``.
        precision: autocast around the forward pass, GradScaler for fp16.
        task: ``regression``, ``binary`` or ``multiclass`` (how outputs meet targets).
        loss_factor: the gradient is that of ``loss * loss_factor`` (DDP weighs each rank's
            loss by its share of the global batch; ``0`` still runs backward, so every rank
            takes part in the all-reduce).
        zero_grad, step: whether this batch starts (zeroes the gradients) and ends (steps the
            optimizer) an accumulation of gradients; both for a plain step.
        clip_grad: clip the gradients' total norm to this before stepping.
        label_smoothing: train on targets smoothed towards uniform (classification).
        record: where to append ``(output, target)`` of this batch, detached (the training
            pass's metrics are computed from them at the end of the epoch).

    Returns:
        The batch's loss, detached (on the device: no synchronisation here).
    """
    y = task_targets(task, y)
    with precision.forward_context():
        output = model(x)
    output = metrics.align(task, precision.convert_output(output), y)
    if record is not None:
        record.append((output.detach(), y))
    if label_smoothing:
        y = smooth_targets(task, y, output, label_smoothing)
    if expects != "logits":
        output = metrics.to_loss_input(expects, task, output)
    loss = loss_fn(output, y)
    objective = loss
    if loss_factor != 1.0:
        objective = output.sum() * 0.0 if loss_factor == 0.0 else loss * loss_factor
    if zero_grad:
        optimizer.zero_grad()
    precision.backward(objective)
    if step:
        if clip_grad is not None:
            precision.clip(optimizer, clip_grad)
        precision.step(optimizer)
    return loss.detach()


def smooth_targets(
    task: str, y: torch.Tensor, output: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """Targets smoothed towards uniform by ``epsilon``: binary ``y(1-e) + e/2``; multiclass
    class indices become rows of probabilities ``onehot(1-e) + e/K`` (``K`` the outputs)."""
    if task == "binary":
        return y * (1 - epsilon) + 0.5 * epsilon
    if task == "multiclass" and y.dim() == 1:
        k = output.shape[1]
        return torch.nn.functional.one_hot(y, k).to(output.dtype) * (1 - epsilon) + epsilon / k
    return y


def task_targets(task: str, y: torch.Tensor) -> torch.Tensor:
    """Targets in the dtype ``task``'s losses take, converted where the meaning is clear.

    ``binary``: 0/1 integer or bool labels become float (what ``BCEWithLogitsLoss`` takes);
    ``multiclass``: one class index per sample, integral floats, bools or other integer types
    become ``long`` (soft labels, one row of probabilities per sample, stay as they are);
    ``regression``: integers become float. Labels that have no such meaning (``0.5`` as a
    class index, ``2`` as a binary label) are a one-line :class:`~zoo.errors.UsageError`.
    Targets already of the right dtype are returned untouched (no check, no sync).
    """
    if task == "binary" and not y.is_floating_point():
        if y.dtype != torch.bool and bool(((y != 0) & (y != 1)).any()):
            bad = y[(y != 0) & (y != 1)][0].item()
            raise UsageError(f"binary labels must be 0 or 1, got {bad!r}")
        return y.float()
    if task == "multiclass" and y.dim() <= 1 and y.dtype != torch.long:
        if y.is_floating_point():
            bad = (y != y.round()) | (y < 0) | ~torch.isfinite(y)
            if bool(bad.any()):
                raise UsageError(
                    f"multiclass labels must be class indices (0, 1, ...), got {y[bad][0].item()!r}"
                )
        elif y.dtype != torch.bool and bool((y < 0).any()):
            raise UsageError(f"multiclass labels must be class indices, got {y.min().item()!r}")
        return y.long()
    if task == "regression" and not y.is_floating_point():
        return y.float()
    return y


def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    task: str,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    expects: str = "logits",
    num_classes: int | None = None,
    precision: Precision | None = None,
) -> dict[str, float]:
    """``{"loss", *task metrics}`` of ``model`` over ``batches``, under eval + inference mode.

    Outputs of every batch are gathered (as fp32) and the loss and metrics computed once over
    all of them. ``loss`` is left out without a ``loss_fn``; no batches give ``{}``.
    """
    model.eval()
    outputs, targets = [], []
    amp = precision
    dtype = input_dtype(model)
    with torch.inference_mode():
        for x, y in batches:
            if amp is None:
                amp = Precision("fp32", x.device)
            if dtype is not None and x.is_floating_point():
                x = x.to(dtype)
            y = task_targets(task, y)
            with amp.forward_context():
                out = model(x)
            outputs.append(metrics.align(task, amp.convert_output(out), y))
            targets.append(y)
        if not outputs:
            return {}
        output, target = torch.cat(outputs), torch.cat(targets)
        result: dict[str, float] = {}
        if loss_fn is not None:
            result["loss"] = loss_fn(
                metrics.to_loss_input(expects, task, output.float()), target
            ).item()
        result.update(metrics.compute_metrics(task, output, target, num_classes))
    return result


def predict_outputs(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    batch_size: int,
    precision: Precision | None = None,
) -> torch.Tensor:
    """The model's fp32 outputs for ``inputs``, ``batch_size`` rows at a time, under eval +
    inference mode, on the model's device (``inputs`` are moved there batch by batch).

    Returns:
        The outputs concatenated (an empty tensor for no inputs).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    amp = precision if precision is not None else Precision("fp32", device)
    dtype = input_dtype(model)
    model.eval()
    with torch.inference_mode():
        outs = []
        for x in inputs.split(batch_size) if len(inputs) else ():
            x = x.to(device, dtype if dtype is not None and x.is_floating_point() else None)
            with amp.forward_context():
                outs.append(model(x))
        if not outs:
            return torch.empty(0)
        return torch.cat(outs).float()


def input_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype floating-point inputs are cast to for ``model``: that of its floating-point
    parameters when they share one (a model loaded in float64, bfloat16 or float16 takes the
    float32 data zoo loads), else ``None`` (leave inputs as they are)."""
    found = {p.dtype for p in model.parameters() if p.is_floating_point()}
    return found.pop() if len(found) == 1 else None
