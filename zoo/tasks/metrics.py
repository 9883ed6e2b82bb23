"""Task arithmetic on tensors: output/target alignment, loss inputs, predictions, metrics."""

from __future__ import annotations

import torch

__all__ = ["align", "compute_metrics", "predictions", "to_loss_input"]


def align(task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Drop a trailing size-1 output dim when the target has none: (N, 1) logits vs (N,) labels."""
    if task != "multiclass" and output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        return output.squeeze(-1)
    return output


def to_loss_input(expects: str, task: str, output: torch.Tensor) -> torch.Tensor:
    """Turn logits into what a loss declared it takes (BCELoss: probabilities, NLL: log-probs)."""
    if expects == "probabilities":
        return torch.sigmoid(output) if task == "binary" else torch.softmax(output, dim=-1)
    if expects == "log-probabilities":
        return torch.log_softmax(output, dim=-1)
    return output


def predictions(task: str, output: torch.Tensor) -> torch.Tensor:
    """Class labels (classification) or values (regression) from aligned model outputs."""
    if task == "multiclass":
        return output.argmax(dim=-1)
    if task == "binary":
        return (output > 0).long()
    return output


def compute_metrics(
    task: str, output: torch.Tensor, target: torch.Tensor, num_classes: int | None = None
) -> dict[str, float]:
    """Regression MAE/MSE/R²; classification accuracy and F1, from aligned outputs.

    ``f1`` is what scikit-learn and torchmetrics report under that name: for ``binary`` the F1
    of the positive class (``f1_score(average="binary")``), for ``multiclass`` the unweighted
    mean over the classes that occur in the target or the predictions (``average="macro"``).
    """
    output = output.detach().float()
    if task == "regression":
        target = target.float().reshape(output.shape)
        err = output - target
        mse = err.pow(2).mean().item()
        var = (target - target.mean(dim=0)).pow(2).mean().item()
        return {
            "mae": err.abs().mean().item(),
            "mse": mse,
            "r2": 1.0 - mse / var if var > 0 else float("nan"),
        }
    pred = predictions(task, output).long().cpu()
    target = target.long().reshape(pred.shape).cpu()
    k = num_classes or int(max(pred.max().item(), target.max().item()) + 1)
    k = max(k, 2)
    confusion = torch.bincount(target * k + pred, minlength=k * k).reshape(k, k).double()
    tp = confusion.diag()
    precision_den = confusion.sum(dim=0)
    recall_den = confusion.sum(dim=1)
    f1_den = precision_den + recall_den
    f1 = torch.where(f1_den > 0, 2 * tp / f1_den.clamp(min=1), torch.zeros_like(tp))
    present = (recall_den + precision_den) > 0
    if task == "binary":
        score = f1[1].item()  # the positive class; 0 when it is neither predicted nor present
    else:
        score = f1[present].mean().item() if present.any() else 0.0
    return {"accuracy": (pred == target).double().mean().item(), "f1": score}
