"""The knobs that decide speed: ``torch.compile`` and channels-last memory format.

Both are part of a row's identity (:data:`zoo.bench.rows.KEY_FIELDS`). A compile that fails
(no C++ compiler, an op the compiler cannot handle) fails its row with one line; the other
rows run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from zoo.bench.rows import Combo
from zoo.errors import ZooError

__all__ = ["apply_knobs", "compile_errors"]


def apply_knobs(
    model: torch.nn.Module, x: torch.Tensor, combo: Combo
) -> tuple[torch.nn.Module, torch.Tensor]:
    """``model`` and ``x`` in channels-last (4-D inputs) and/or wrapped by ``torch.compile``."""
    if combo.channels_last:
        model = model.to(memory_format=torch.channels_last)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
    if combo.compile:
        mode = None if combo.compile_mode in (None, "default") else combo.compile_mode
        model = torch.compile(model, mode=mode)  # type: ignore[assignment]
    return model, x


@contextmanager
def compile_errors(combo: Combo) -> Iterator[None]:
    """Within the block (the first calls, where compiling happens), a failure of a compiled
    row reads ``torch.compile (mode) failed for MODEL: first line of the error``."""
    if not combo.compile:
        yield
        return
    try:
        yield
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = lines[0] if lines else type(exc).__name__
        mode = combo.compile_mode or "default"
        raise ZooError(
            f"torch.compile ({mode}) failed for {combo.model}: {type(exc).__name__}: {first}"
        ) from exc
