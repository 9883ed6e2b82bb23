"""Optional ONNX export (``pip install zoo[onnx]``), checked against onnxruntime when installed.

The graph is the model alone: it takes inputs as the model was trained on them (standardised),
and the file's metadata (``metadata_props``, see :data:`META_KEYS`) carries the recorded
transform, target transform and class names as JSON, as the weights file does. With
``include_transform`` the standardisation is baked into the graph instead - ``(x - mean) / std``
before the model and, where the targets were standardised, ``y * std + mean`` after it - so the
graph takes raw inputs (``zoo.inputs`` says which). Resizing or cropping images cannot live in
a fixed-shape graph: only the per-channel normalisation is baked, and images must already have
the graph's input shape (a warning and ``zoo.note`` say so).
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zoo._util.log import get_logger
from zoo.errors import UsageError, ZooError
from zoo.weights.preprocess import Transform

if TYPE_CHECKING:
    import torch

__all__ = [
    "META_KEYS",
    "OPSET",
    "check_opset",
    "example_shape",
    "export_onnx",
    "opsets",
    "parse_shape",
    "read_onnx_metadata",
]

OPSET = 17
META_KEYS = (  # the ONNX metadata_props zoo writes (values are strings; records are JSON)
    "zoo.model", "zoo.dataset", "zoo.inputs", "zoo.transform", "zoo.target_transform",
    "zoo.classes", "zoo.note",
)  # fmt: skip
RAW, TRANSFORMED = "raw", "transformed"  # what the graph's input is (zoo.inputs)


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
    transform: Transform | None = None,
    include_transform: bool = False,
) -> Path:
    """Export ``model`` to ONNX with a dynamic batch axis (atomically).

    With ``check`` and onnxruntime installed, the exported graph is run on a random batch and
    must match the PyTorch output within ``atol``; otherwise a :class:`ZooError` is raised.

    Args:
        transform: the transform recorded with the model (``zoo.transforms(model)``); default
            what ``zoo.load`` kept on ``model.zoo_spec``. Written to the file's metadata.
        include_transform: bake it into the graph, which then takes raw inputs (and returns
            regression values in the target's own units); a model that records none is a
            :class:`UsageError`.
    """
    import torch

    from zoo._util.atomic import atomic_path

    if importlib.util.find_spec("onnx") is None:
        raise UsageError("ONNX export needs the onnx package: pip install 'zoo[onnx]'")
    check_opset(opset)
    shape = tuple(input_shape) if input_shape else example_shape(model)
    if transform is None:
        kept = getattr(getattr(model, "zoo_spec", None), "extra", {}).get("preprocessing")
        transform = Transform.from_meta(kept or {})
    metadata = _metadata(model, transform, include_transform, shape)
    model = model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if include_transform:
        model = _with_transform(model, transform, shape).to(device)
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
            _write_metadata(tmp, metadata)
            if check and importlib.util.find_spec("onnxruntime") is not None:
                _check(model, tmp, x, atol)
    except OSError as exc:
        from zoo._util.atomic import os_reason

        raise ZooError(f"cannot write {path}: {os_reason(exc, path)}") from None
    return path


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``zoo.*`` metadata of an ONNX file zoo wrote (strings; records are JSON)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a file onnx cannot parse: its errors vary by version
        raise ZooError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props if p.key in META_KEYS}


def _metadata(
    model: torch.nn.Module, transform: Transform, baked: bool, shape: tuple[int, ...]
) -> dict[str, str]:
    """The ``zoo.*`` metadata of the export (see the module doc)."""
    spec = getattr(model, "zoo_spec", None)
    meta = {"zoo.inputs": RAW if baked else TRANSFORMED}
    if spec is not None:
        meta["zoo.model"] = f"{spec.plugin}/{spec.model}" if spec.plugin else spec.model
        if spec.dataset:
            meta["zoo.dataset"] = spec.dataset
    records = {
        "zoo.transform": transform.to_record(),
        "zoo.target_transform": transform.target_record(),
        "zoo.classes": list(transform.classes) if transform.classes else None,
    }
    meta.update({k: json.dumps(v, sort_keys=True) for k, v in records.items() if v is not None})
    if baked and transform.standardise == "per channel":
        meta["zoo.note"] = (
            "the graph normalises each channel only: resize and crop images to "
            f"{'x'.join(map(str, shape))} before"
        )
    elif transform.recorded and not baked:
        meta["zoo.note"] = "inputs are standardised: apply zoo.transform first"
    return meta


def _with_transform(
    model: torch.nn.Module, transform: Transform, shape: tuple[int, ...]
) -> torch.nn.Module:
    """``model`` with the recorded standardisation around it (raw inputs in, and regression
    values out in the target's own units), checked against the input ``shape``."""
    if not transform.recorded:
        raise UsageError(
            "--include-transform: the model records no input transform to bake; export it "
            "without, its graph takes the inputs as they are"
        )
    n = len(transform.mean)
    if transform.standardise == "per column":
        fits, stats = bool(shape) and shape[-1] == n, (n,)
    else:
        fits, stats = len(shape) == 3 and shape[0] == n, (n, 1, 1)
    if not fits:
        raise UsageError(
            f"--include-transform: the recorded transform ({transform.standardise}, {n} "
            f"values) does not fit inputs of shape {list(shape)}"
        )
    if transform.standardise == "per channel":
        get_logger(__name__).warning(
            "the ONNX graph normalises each channel only: resizing and cropping cannot be "
            "baked into it, so images must already be %s", "x".join(map(str, shape)),
        )  # fmt: skip
    from zoo.weights.baked import Standardised

    return Standardised(model, transform, stats).eval()


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Add ``metadata`` to the ONNX file at ``path`` as ``metadata_props``."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)  # tensors past 2 GB stay where they are
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


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
