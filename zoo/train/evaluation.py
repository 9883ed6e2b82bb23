"""Evaluation and prediction of a model on a dataset, shared by the trainer, ``zoo evaluate``,
``zoo predict``, the benchmark harness and the registry reproduction tests.

They live in :mod:`zoo.api` (below the trainer, so ``zoo.evaluate`` and ``zoo.predict`` use
them too). The loops themselves are :func:`zoo.runtime.step.evaluate_batches` and
:func:`zoo.runtime.step.predict_outputs` (under ``model.eval()`` and
``torch.inference_mode()``); these find the dataset, the loss and the device for them.
"""

from __future__ import annotations

from zoo.api import (
    EVAL_BATCH_SIZE,
    check_batch_size,
    check_model_fits,
    evaluate_model,
    num_classes_of,
    predict_model,
)

__all__ = [
    "EVAL_BATCH_SIZE",
    "check_batch_size",
    "check_model_fits",
    "evaluate_model",
    "num_classes_of",
    "predict_model",
]
