"""Task metrics agree with scikit-learn's; output alignment and loss inputs per task."""

from __future__ import annotations

import pytest
import torch
from sklearn import metrics as skm

from zoo import tasks


def test_regression_metrics_match_sklearn():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(50, generator=g)
    output = (target + 0.3 * torch.randn(50, generator=g)).unsqueeze(1)
    got = tasks.compute_metrics("regression", tasks.align("regression", output, target), target)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(target, output[:, 0]), rel=1e-5)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(target, output[:, 0]), rel=1e-5)
    assert got["r2"] == pytest.approx(skm.r2_score(target, output[:, 0]), rel=1e-5)


@pytest.mark.parametrize("task, k", [("binary", 2), ("multiclass", 5)])
def test_classification_metrics_match_sklearn(task, k):
    g = torch.Generator().manual_seed(1)
    if task == "binary":
        target = torch.randint(0, 2, (200,), generator=g).float()
        output = torch.randn(200, 1, generator=g) + (target.unsqueeze(1) - 0.5)
    else:
        target = torch.randint(0, k, (200,), generator=g)
        output = torch.randn(200, k, generator=g) + 1.5 * torch.nn.functional.one_hot(target, k)
    aligned = tasks.align(task, output, target)
    pred = tasks.predictions(task, aligned)
    got = tasks.compute_metrics(task, aligned, target, num_classes=k)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(target.long(), pred))
    average = "binary" if task == "binary" else "macro"  # what sklearn/torchmetrics call f1
    assert got["f1"] == pytest.approx(skm.f1_score(target.long(), pred, average=average))


@pytest.mark.parametrize(
    "target, pred",
    [
        ([0, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1, 1, 0]),  # imbalanced: macro != binary
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # no positive at all: sklearn says 0.0
        ([1, 1, 0, 0], [1, 1, 1, 1]),
    ],
)
def test_binary_f1_is_the_positive_class_f1(target, pred):
    y = torch.tensor(target, dtype=torch.float32)
    logits = torch.tensor([2.0 if p else -2.0 for p in pred])
    got = tasks.compute_metrics("binary", logits, y)
    want = skm.f1_score(target, pred, average="binary", zero_division=0.0)
    assert got["f1"] == pytest.approx(want)


def test_align_only_drops_a_trailing_singleton_for_binary_and_regression():
    assert tasks.align("binary", torch.zeros(4, 1), torch.zeros(4)).shape == (4,)
    assert tasks.align("regression", torch.zeros(4, 1), torch.zeros(4, 1)).shape == (4, 1)
    assert tasks.align("multiclass", torch.zeros(4, 1), torch.zeros(4)).shape == (4, 1)


def test_loss_inputs_follow_what_the_loss_expects():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    assert torch.equal(tasks.to_loss_input("logits", "multiclass", logits), logits)
    probs = tasks.to_loss_input("probabilities", "multiclass", logits)
    assert torch.allclose(probs.sum(), torch.tensor(1.0))
    log_probs = tasks.to_loss_input("log-probabilities", "multiclass", logits)
    assert torch.allclose(log_probs.exp(), probs)
    assert torch.allclose(
        tasks.to_loss_input("probabilities", "binary", torch.tensor([0.0])), torch.tensor([0.5])
    )
