"""The ``onnxruntime`` runtime of ``zoo bench --runtime torch,onnxruntime``.

The row's model (the model alone, as the torch row runs it) goes through zoo's ONNX export
(:func:`zoo.weights.onnx_export.export_onnx`) into a temporary file, then runs in an ONNX
Runtime session on the CPU provider (the CUDA provider where ``onnxruntime-gpu`` offers it)
with the row's thread count. Before any timing its output on the row's batch must match
torch's within :data:`ORT_ATOL` + :data:`ORT_RTOL` x |torch output| (``numpy.allclose``);
a mismatch fails the row. ONNX Runtime rows are fp32 inference only.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, ZooError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ORT_ATOL",
    "ORT_RTOL",
    "RUNTIMES",
    "check_installed",
    "ort_session_step",
    "provider_for",
]

RUNTIMES = ("torch", "onnxruntime")
ORT_ATOL = 1e-4  # outputs must agree within ORT_ATOL + ORT_RTOL * |torch output|
ORT_RTOL = 1e-3
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def check_installed() -> None:
    """One-line UsageError (before any work) when ONNX Runtime or onnx is missing."""
    missing = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"--runtime onnxruntime needs {' and '.join(missing)}: pip install "
            f"{' '.join(missing)} (onnxruntime-gpu for the CUDA provider)"
        )


def provider_for(device: str) -> tuple[str | None, str | None]:
    """(ONNX Runtime provider for a zoo device, or ``None`` and why it cannot run there)."""
    import onnxruntime as ort

    kind = device.split(":", 1)[0]
    provider = _PROVIDERS.get(kind)
    if provider is None:
        return None, f"onnxruntime has no provider for device {device}"
    if provider not in ort.get_available_providers():
        return None, f"onnxruntime lacks {provider} on this machine (pip install onnxruntime-gpu)"
    return provider, None


def ort_session_step(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, threads: int
) -> Callable[[], Any]:
    """Export ``model``, open a session on ``device``'s provider, check its output on ``x``
    against torch's, and return the call to time (one ``session.run`` on ``x``)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from zoo.weights.onnx_export import export_onnx

    provider, reason = provider_for(str(device))
    if provider is None:
        raise ZooError(reason)
    model = model.eval()
    with torch.inference_mode():
        want = model(x).float().cpu().numpy()
    with tempfile.TemporaryDirectory(prefix="zoo-bench-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, input_shape=tuple(x.shape[1:]), check=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=[provider])
    feed = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    got = session.run(None, feed)[0]
    if got.shape != want.shape or not np.allclose(got, want, atol=ORT_ATOL, rtol=ORT_RTOL):
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
        raise ZooError(
            f"onnxruntime output differs from torch: max abs diff {diff:.3g} "
            f"(tolerance {ORT_ATOL} + {ORT_RTOL} x |output|)"
        )
    return lambda: session.run(None, feed)
