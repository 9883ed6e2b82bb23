"""Optimizers by name from ``torch.optim`` (``sgd``, ``adam``, ``adamw``, ``rmsprop``, ...)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from zoo._util.names import close_matches
from zoo.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "UNSUPPORTED",
    "create_optimizer",
    "optimizer_classes",
    "optimizer_kwargs",
    "resolve_optimizer",
]

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


def create_optimizer(
    name: str,
    params: Any,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
) -> torch.optim.Optimizer:
    """``torch.optim.<Name>(params, lr=..., [weight_decay=...], [momentum=...])``."""
    cls = resolve_optimizer(name)
    kwargs = optimizer_kwargs(cls, lr=lr, weight_decay=weight_decay, momentum=momentum)
    try:
        return cls(params, **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UsageError(f"optimizer {name!r}: {exc}") from exc
