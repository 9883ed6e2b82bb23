"""Optimizers by name from ``torch.optim`` (``sgd``, ``adam``, ``adamw``, ``rmsprop``, ...).

With ``fused=True`` an optimizer that has a fused kernel for its parameters' device
(:data:`FUSED_DEVICES`: ``adam``, ``adamw``, ``sgd`` on CPU and CUDA, ``adagrad`` on CPU) is
built with it: one kernel per parameter group instead of about ten tensor operations per
parameter, the default of the Hugging Face Trainer (``adamw_torch_fused``). Its results match
torch's default for-loop implementation to float rounding (not bit for bit).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from zoo._util.names import close_matches
from zoo.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "FUSED_DEVICES",
    "UNSUPPORTED",
    "create_optimizer",
    "fusable",
    "optimizer_classes",
    "optimizer_kwargs",
    "resolve_optimizer",
    "set_fused",
    "sparse_gradients",
]

# The optimizers whose fused kernels zoo uses, and the device types each has them for in
# every torch zoo supports (adagrad's CUDA kernel is newer than torch 2.4).
FUSED_DEVICES = {"adam": ("cpu", "cuda"), "adamw": ("cpu", "cuda"), "sgd": ("cpu", "cuda"),
                 "adagrad": ("cpu",)}  # fmt: skip

# Optimizers whose step needs something the canonical loop does not give them.
UNSUPPORTED = {
    "lbfgs": "it needs a closure re-evaluating the loss, which the canonical loop does not pass",
    "sparseadam": "it needs sparse gradients",
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def optimizer_classes() -> dict[str, type]:
    """``{lower-case name: class}`` for every optimizer ``torch.optim`` exports."""
    import torch

    return {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    }


def resolve_optimizer(name: str) -> type:
    """The ``torch.optim`` class called ``name`` (case-insensitive); clear errors otherwise."""
    key = _key(name)
    classes = optimizer_classes()
    if key in UNSUPPORTED:
        raise UsageError(f"optimizer {name!r} is not supported: {UNSUPPORTED[key]}")
    cls = classes.get(key)
    if cls is None:
        known = sorted(k for k in classes if k not in UNSUPPORTED)
        close = close_matches(key, known, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise UsageError(f"unknown optimizer {name!r}; {hint}")
    return cls


def optimizer_kwargs(
    cls: type, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.0
) -> dict[str, Any]:
    """Constructor kwargs for ``cls``; a non-zero setting it does not take is an error."""
    if not lr > 0:
        raise UsageError(f"learning rate must be positive, got {lr}")
    if weight_decay < 0 or momentum < 0:
        raise UsageError("weight decay and momentum must not be negative")
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"lr": lr}
    for name, value in (("weight_decay", weight_decay), ("momentum", momentum)):
        if name in params:
            kwargs[name] = value
        elif value:
            raise UsageError(
                f"optimizer {cls.__name__.lower()!r} takes no {name.replace('_', ' ')} "
                f"(remove --{name.replace('_', '-')})"
            )
    return kwargs


def fusable(cls: type, params: list[Any]) -> bool:
    """Whether ``cls`` has a fused step for ``params`` (tensors or param-group dicts): it is
    one of :data:`FUSED_DEVICES` taking ``fused`` in this torch, and every parameter a real
    floating tensor on a device type listed there for it."""
    devices = FUSED_DEVICES.get(cls.__name__.lower(), ())
    if not devices or "fused" not in inspect.signature(cls.__init__).parameters:
        return False
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return bool(tensors) and all(
        t.is_floating_point() and t.device.type in devices for t in tensors
    )


def sparse_gradients(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a layer with sparse gradients (``nn.Embedding(sparse=True)``),
    which fused kernels refuse."""
    return any(getattr(m, "sparse", False) is True for m in model.modules())


def set_fused(optimizer: torch.optim.Optimizer, fused: bool) -> None:
    """Make ``optimizer``'s groups take ``fused`` after ``load_state_dict`` restored the
    checkpoint's choice, so a resumed run steps as its settings say. ``step`` counters go
    where that step keeps them (torch's rule): float32 on the parameter's device for a fused
    (or capturable) step, else on the CPU."""
    import torch

    for group in optimizer.param_groups:
        if "fused" not in group:
            continue
        group["fused"] = fused
        on_device = fused or bool(group.get("capturable"))
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if isinstance(step, torch.Tensor):
                where = p.device if on_device else torch.device("cpu")
                optimizer.state[p]["step"] = step.to(device=where, dtype=torch.float32)


def create_optimizer(
    name: str,
    params: Any,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """``torch.optim.<Name>(params, lr=..., [weight_decay=...], [momentum=...])``, with its
    fused kernel when ``fused`` and :func:`fusable` (else torch's default implementation)."""
    cls = resolve_optimizer(name)
    kwargs = optimizer_kwargs(cls, lr=lr, weight_decay=weight_decay, momentum=momentum)
    if fused:
        params = list(params)
        if fusable(cls, params):
            kwargs["fused"] = True
    try:
        return cls(params, **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UsageError(f"optimizer {name!r}: {exc}") from exc
