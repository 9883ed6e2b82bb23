"""Optional ONNX export (``pip install zoo[onnx]``), checked against onnxruntime when installed."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import UsageError, ZooError

if TYPE_CHECKING:
    import torch

__all__ = ["OPSET", "check_opset", "example_shape", "export_onnx", "opsets", "parse_shape"]

OPSET = 17


def opsets() -> tuple[int, int]:
    """The lowest and highest opset torch's ONNX exporter (the TorchScript one zoo uses)
    writes; ``(7, OPSET)`` where this torch does not say."""
    try:
        from torch.onnx import _constants as known

        return known.ONNX_MIN_OPSET, known.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):
        return 7, OPSET


def check_opset(opset: int) -> None:
    """Refuse an opset the exporter cannot write, before any work (one-line UsageError)."""
    low, high = opsets()
    if not low <= opset <= high:
        raise UsageError(f"ONNX opset {opset} is not supported: use {low} to {high}")


def example_shape(model: torch.nn.Module, dataset: str | None = None) -> tuple[int, ...]:
    """One sample's input shape: from the dataset the model was built for, else its entry."""
    from zoo.registry.plugins import get_registry

    spec = getattr(model, "zoo_spec", None)
    registry = get_registry()
    dataset = dataset or getattr(spec, "dataset", None)
    if dataset:
        return tuple(registry.get("dataset", dataset).meta["input_shape"])
    if spec is not None:
        entry = registry.get("model", f"{spec.plugin}/{spec.model}")
        size = entry.meta.get("input_size")
        if size:
            return tuple(size)
        if "in_features" in spec.kwargs:
            return (int(spec.kwargs["in_features"]),)
    raise UsageError("cannot tell the model's input shape; pass --input-shape (e.g. 1,8,8)")


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[int] | None = None,
    opset: int = OPSET,
    check: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Export ``model`` to ONNX with a dynamic batch axis (atomically).

    With ``check`` and onnxruntime installed, the exported graph is run on a random batch and
    must match the PyTorch output within ``atol``; otherwise a :class:`ZooError` is raised.
    """
    import torch

    from zoo._util.atomic import atomic_path

    if importlib.util.find_spec("onnx") is None:
        raise UsageError("ONNX export needs the onnx package: pip install 'zoo[onnx]'")
    check_opset(opset)
    shape = tuple(input_shape) if input_shape else example_shape(model)
    model = model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.randn(2, *shape, device=device)
    path = Path(path)
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model, (x,), str(tmp), dynamo=False, opset_version=opset,
                    input_names=["input"], output_names=["output"],
                    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                )  # fmt: skip
            except OSError:
                raise  # writing the file failed: named below
            except Exception as exc:  # exporter failures are many and varied
                raise ZooError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
            if check and importlib.util.find_spec("onnxruntime") is not None:
                _check(model, tmp, x, atol)
    except OSError as exc:
        from zoo._util.atomic import os_reason

        raise ZooError(f"cannot write {path}: {os_reason(exc, path)}") from None
    return path


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,8,8"`` -> ``(1, 8, 8)``: one sample's input shape (positive integers)."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(n <= 0 for n in shape):
        raise UsageError(
            f"--input-shape {text!r} must be positive integers separated by commas, e.g. 1,8,8"
        )
    return shape


def _check(model: torch.nn.Module, path: Path, x: torch.Tensor, atol: float) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.cpu().numpy()})[0]
    with torch.inference_mode():
        want = model(x).float().cpu().numpy()
    if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=1e-4):
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
        raise ZooError(f"ONNX output differs from PyTorch (max abs diff {diff:.3g} > {atol})")
