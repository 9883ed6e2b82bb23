"""Dataset conformance checks (:func:`check_dataset`), once per split:

``load``           the split loads as ``(X, y)`` tensors of equal, non-zero length or as a
                   non-empty ``Dataset`` of ``(x, y)`` pairs (missing files: *skipped*)
``shape``          ``X`` is ``(N, *input_shape)`` and ``y`` is ``(N,)`` (``(N, num_targets)``)
``dtype``          ``X`` float32; labels of a type the task takes (:data:`LABEL_TYPES`):
                   binary 0/1 ints, bools or floats, multiclass integers, regression ints or
                   floats; one zoo converts (int labels to float32 for binary) passes with a note
``labels``         finite inputs and targets; class labels are integers in ``[0, num_classes)``
``deterministic``  a second load gives identical data
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zoo.checks.report import (
    FAIL,
    SKIP,
    EntryReport,
    Failed,
    Note,
    begin,
    judged_alone,
    raised,
    shape_of,
)
from zoo.registry.entries import Entry
from zoo.tasks import contracts as tasks

if TYPE_CHECKING:
    import torch

__all__ = ["LABEL_DTYPE", "LABEL_TYPES", "MAX_LABELS", "SPLITS", "check_dataset"]

SPLITS = ("train", "test")
MAX_LABELS = 5_000  # a Dataset longer than this has every k-th label read, not all of them

#: What each task computes with, and the label types zoo converts to it (docs/plugins.md):
#: binary 0/1 as ints, bools or floats; multiclass integer class indices (floats are refused:
#: 1.5 has no class); regression ints or floats.
LABEL_DTYPE = {"binary": "float32", "multiclass": "int64", "regression": "float32"}
LABEL_TYPES = {
    "binary": ("int", "bool", "float"),
    "multiclass": ("int",),
    "regression": ("int", "float"),
}
LABELS = {
    "binary": "0/1 labels (ints, bools or floats)",
    "multiclass": "integer class labels",
    "regression": "int or float targets",
}


@judged_alone
def check_dataset(
    dataset: str | Entry,
    *,
    splits: Sequence[str] = SPLITS,
    data_dir: str | None = None,
    dataset_kwargs: dict[str, Any] | None = None,
) -> EntryReport:
    """Both splits load with the declared input shape, dtypes and class range, identically
    twice. Missing files (``FileNotFoundError``) make the dataset *skipped*, with the reason.

    ``data_dir`` is passed as ``root=`` to datasets whose loader takes a ``root``.
    """
    entry, report, target = begin("dataset", dataset)
    if target is None:
        return report
    kwargs = dict(dataset_kwargs or {})
    if data_dir is not None:
        kwargs.update(tasks.accepted_kwargs(target, {"root": str(data_dir)}))
    for split in splits:
        try:
            data = target(split, **kwargs)
        except FileNotFoundError as exc:
            report.add("load", split, SKIP, str(exc).splitlines()[0] if str(exc) else "missing")
            continue
        except Exception as exc:
            report.add(
                "load", split, FAIL, f"expected split {split!r} to load, found it {raised(exc)}"
            )
            continue
        ok, _ = report.run("load", split, _structure, data)
        if ok:
            report.run("shape", split, _shapes, entry, data)
            report.run("dtype", split, _dtypes, entry, data)
            report.run("labels", split, _labels, entry, data)
            report.run("deterministic", split, _again, target, split, kwargs, data)
    return report


def _is_pair(data: Any) -> bool:
    import torch

    return (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    )


def _item(data: Any, i: int) -> tuple[Any, Any]:
    item = data[i]
    if not (isinstance(item, tuple | list) and len(item) == 2):
        raise Failed(f"expected item {i} to be an (x, y) pair, found {type(item).__name__}")
    return item[0], item[1]


def _dtype(value: Any) -> str:
    """``float32`` for a tensor (or a ``torch.dtype``), else the value's type name."""
    import torch

    dtype = value if isinstance(value, torch.dtype) else getattr(value, "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else type(value).__name__


def _structure(data: Any) -> None:
    if _is_pair(data):
        X, y = data
        if len(X) != len(y):
            raise Failed(
                f"expected as many targets as inputs, found {len(X)} inputs, {len(y)} targets"
            )
    elif not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise Failed(f"expected (X, y) tensors or a Dataset, found {type(data).__name__}")
    if len(data[0] if _is_pair(data) else data) == 0:
        raise Failed("expected at least one sample, found none")


def _shapes(entry: Entry, data: Any) -> None:
    declared = tuple(entry.meta["input_shape"])
    if not _is_pair(data):
        for i in sorted({0, len(data) - 1}):
            x, _ = _item(data, i)
            if tuple(getattr(x, "shape", ())) != declared:
                raise Failed(f"expected item {i} input of shape {declared}, found {shape_of(x)}")
        return
    X, y = data
    k = tasks.output_size(entry) if entry.tasks[0] == "regression" else 1
    want_y = (k,) if k > 1 else ()
    if tuple(X.shape[1:]) != declared:
        raise Failed(
            f"expected X of shape (N, {', '.join(map(str, declared))}), found {shape_of(X)}"
        )
    if tuple(y.shape[1:]) != want_y:
        raise Failed(
            f"expected y of shape (N{''.join(f', {d}' for d in want_y)}), found {shape_of(y)}"
        )


def _dtypes(entry: Entry, data: Any) -> Note | None:
    """Inputs float32; labels of a type the task takes (:data:`LABEL_TYPES`). A label type zoo
    converts without changing its meaning passes with a note saying so."""
    import torch

    task = entry.tasks[0]
    if _is_pair(data):
        X, y = data
        found = f"found X {_dtype(X)} and y {_dtype(y)}"
        if X.dtype != torch.float32 or _label_type(y) not in LABEL_TYPES[task]:
            raise Failed(f"expected X float32 and y {LABEL_DTYPE[task]}, {found}")
        return _conversion(task, y)
    x, y = _item(data, 0)
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        raise Failed(f"expected item inputs as float32 tensors, found {_dtype(x)}")
    if _label_type(y) not in LABEL_TYPES[task]:
        raise Failed(f"expected {LABELS[task]}, found {_dtype(y)} labels")
    return _conversion(task, y)


def _label_type(y: Any) -> str:
    """``int``, ``float`` or ``bool`` for a numeric label (a tensor, a Python or NumPy number);
    else the value's type name."""
    dtype = getattr(y, "dtype", None)
    if isinstance(y, bool) or str(dtype) in ("torch.bool", "bool"):
        return "bool"
    if isinstance(y, int) or getattr(dtype, "kind", "") in ("i", "u"):
        return "int"
    if isinstance(y, float) or getattr(dtype, "kind", "") == "f":
        return "float"
    if dtype is not None and str(dtype).startswith("torch."):
        if dtype.is_complex:
            return "complex"
        return "float" if dtype.is_floating_point else "int"
    return type(y).__name__


def _conversion(task: str, y: Any) -> Note | None:
    """What zoo converts the labels to for ``task``, as a note; ``None`` when they are already
    what the task computes with."""
    want = LABEL_DTYPE[task]
    if _dtype(y) == want:
        return None
    if task == "multiclass" and isinstance(y, int):  # collated as int64
        return None
    return Note(f"{_dtype(y)} labels: zoo converts them to {want} for {task}")


def _labels_of(data: Any) -> torch.Tensor:
    """Every target of ``(X, y)``; a Dataset's ``targets``/``labels``, else (some of) its items'."""
    import torch

    if _is_pair(data):
        return data[1]
    for attr in ("targets", "labels"):
        value = getattr(data, attr, None)
        if value is not None and len(value) == len(data):
            return torch.as_tensor(value)
    step = math.ceil(len(data) / MAX_LABELS)
    return torch.as_tensor([float(_item(data, i)[1]) for i in range(0, len(data), step)])


def _labels(entry: Entry, data: Any) -> None:
    import torch

    if _is_pair(data) and not torch.isfinite(data[0]).all():
        raise Failed("expected finite inputs, found NaN or inf in X")
    y = _labels_of(data).double()
    if entry.tasks[0] == "regression":
        if not torch.isfinite(y).all():
            raise Failed("expected finite regression targets, found NaN or inf")
        return
    k = int(entry.meta["num_classes"])
    bad = (y < 0) | (y >= k) | (y != y.round())
    if bad.any():
        raise Failed(
            f"expected integer labels in [0, {k}) (num_classes={k}), found range "
            f"[{y.min().item():g}, {y.max().item():g}] with {int(bad.sum())} of {len(y)} outside"
        )


def _again(target: Callable[..., Any], split: str, kwargs: dict[str, Any], first: Any) -> None:
    import torch

    second = target(split, **kwargs)
    differs = f"expected two loads of split {split!r} to be identical, found"
    if _is_pair(first):
        if not _is_pair(second):
            raise Failed(f"expected the same (X, y) pair twice, found {type(second).__name__}")
        for label, a, b in zip(("X", "y"), first, second, strict=True):
            if a.shape != b.shape:
                raise Failed(f"{differs} {label} shape {shape_of(a)} then {shape_of(b)}")
            if not torch.equal(a, b):
                diff = (a.double() - b.double()).abs()
                raise Failed(
                    f"{differs} {label} differs in {int((diff > 0).sum())} values "
                    f"(max abs difference {diff.max().item():.3g})"
                )
        return
    if len(first) != len(second):
        raise Failed(f"{differs} {len(first)} then {len(second)} samples")
    for i in sorted({0, len(first) // 2, len(first) - 1}):
        pairs = zip(_item(first, i), _item(second, i), strict=True)
        if not all(torch.equal(torch.as_tensor(u), torch.as_tensor(v)) for u, v in pairs):
            raise Failed(f"{differs} item {i} differs")
