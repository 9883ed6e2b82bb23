"""Your own data, without a plugin: a CSV, ``.npz``/``.npy`` arrays, an image folder, or arrays.

:func:`read_data` reads a file or folder into :class:`OwnData` (features, encoded labels, the
task and the class names); :func:`split_data` cuts it into deterministic, seeded train / val /
test splits (stratified for classification) and standardises the features with statistics of
the train split only, which it returns for the run to record (as a registered dataset records
its preprocessing). Every problem with the data is one line naming the file, column and row.

The task rule (``task=None``): float labels are a regression; integer or string labels with
two distinct values are binary, with more multiclass, up to :data:`MAX_CLASSES` classes, beyond
which the task must be given. Nothing is unpickled (``np.load(allow_pickle=False)``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import UsageError, ZooError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_CLASSES",
    "OwnData",
    "from_arrays",
    "infer_task",
    "is_data_path",
    "read_data",
    "recorded_split",
    "split_data",
]

MAX_CLASSES = 1000  # integer/string labels with more distinct values need an explicit task
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_TASKS = ("regression", "binary", "multiclass")
_NAN_WORDS = {"", "nan", "na", "n/a", "null", "none", "?"}


@dataclass
class OwnData:
    """Data read from the user: features ``X`` (float32), labels ``y`` encoded for the task
    (float32 for regression/binary, int64 class indices for multiclass), the ``task`` and the
    ``classes`` (class names in index order; ``None`` for a regression)."""

    X: np.ndarray
    y: np.ndarray
    task: str
    classes: list[str] | None
    source: str  # description only: where the data came from
    kind: str  # csv, npz, npy, images, arrays
    target: str | None = None  # the CSV column of the labels
    columns: list[str] | None = None  # the CSV feature columns

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample."""
        return tuple(int(n) for n in self.X.shape[1:])


def is_data_path(value: Any) -> bool:
    """Whether a ``--dataset`` value names data on disk (an existing file or folder)."""
    return isinstance(value, str | os.PathLike) and Path(value).expanduser().exists()


def read_data(
    path: str | os.PathLike,
    *,
    target: str | None = None,
    labels: str | os.PathLike | None = None,
    task: str | None = None,
    image_size: int = 32,
) -> OwnData:
    """Read ``path``: a ``.csv`` (labels in column ``target``, default the last), a ``.npz``
    with arrays ``X`` and ``y``, a ``.npy`` of features with ``labels`` a ``.npy`` of labels, or
    a folder with one sub-folder of images per class (resized to ``image_size`` squared, RGB,
    scaled to [0, 1]).

    Raises:
        UsageError: bad usage or bad data, one line naming the file (column, row).
    """
    _check_task(task)
    p = Path(path).expanduser()
    if p.is_dir():
        if target is not None or labels is not None:
            raise UsageError(f"{p}: an image folder takes its labels from its sub-folders")
        return _read_images(p, task, image_size)
    suffix = p.suffix.lower()
    if suffix != ".npy" and labels is not None:
        raise UsageError(f"--labels goes with a .npy file of features, not {p.name}")
    if suffix != ".csv" and target is not None:
        raise UsageError(f"--target names a CSV column; {p.name} is not a .csv")
    if suffix == ".csv":
        return _read_csv(p, target, task)
    if suffix == ".npz":
        arrays = _load_npz(p)
        return _from_raw(arrays["X"], arrays["y"], task, str(p), "npz")
    if suffix == ".npy":
        if labels is None:
            raise UsageError(f"{p.name} holds features only: give the labels with --labels y.npy")
        label_file = Path(labels).expanduser()
        if not label_file.is_file():
            raise UsageError(f"--labels {labels}: no such file")
        return _from_raw(_load_npy(p), _load_npy(label_file), task, str(p), "npy")
    raise UsageError(
        f"{p}: not data zoo reads (a .csv, .npz, .npy or a folder of class folders of images)"
    )


def from_arrays(X: Any, y: Any, task: str | None = None, source: str = "arrays") -> OwnData:
    """:class:`OwnData` from in-memory features and labels (numpy arrays or tensors)."""
    _check_task(task)
    return _from_raw(_numpy(X, "X"), _numpy(y, "y"), task, source, "arrays")


def infer_task(y: np.ndarray, task: str | None = None, where: str = "labels") -> str:
    """The task of labels ``y`` (see the module's rule); ``task`` given wins (checked)."""
    _check_task(task)
    if task is not None:
        if task == "regression" and y.dtype.kind not in "biuf":
            raise UsageError(f"{where}: a regression needs numeric labels, got text")
        if task == "binary" and len(np.unique(y)) > 2:
            raise UsageError(f"{where}: --task binary needs 2 distinct labels, got {_count(y)}")
        return task
    if y.dtype.kind == "f":
        return "regression"
    n = len(np.unique(y))
    if n < 2:
        raise UsageError(f"{where}: all labels are the same ({y[0]!r}); nothing to learn")
    if n == 2:
        return "binary"
    if n > MAX_CLASSES:
        raise UsageError(
            f"{where}: {n} distinct labels (more than {MAX_CLASSES}); give --task multiclass "
            f"or --task regression"
        )
    return "multiclass"


def split_data(
    data: OwnData,
    *,
    test_fraction: float,
    val_fraction: float,
    seed: int,
    stats: tuple[list[float], list[float]] | None = None,
) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]]:
    """Deterministic splits of ``data`` (seeded; stratified for classification), features
    standardised with the train split's mean/std (per column; per channel for images), or with
    ``stats`` (a recorded ``(mean, std)``) where given.

    Returns:
        ``({split: (X, y) tensors}, record)``: ``val`` is there only for ``val_fraction > 0``;
        ``record`` says what was done (sizes, preprocessing statistics, classes, source).
    """
    import torch

    _check_fractions(test_fraction, val_fraction)
    n = len(data.y)
    rng = np.random.default_rng(seed)
    if data.task == "regression":
        groups = [np.arange(n)]
    else:
        groups = [np.flatnonzero(data.y == c) for c in np.unique(data.y)]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for group in groups:
        order = rng.permutation(group)
        n_test = _share(len(order), test_fraction)
        n_val = _share(len(order), val_fraction)
        parts["test"].append(order[:n_test])
        parts["val"].append(order[n_test : n_test + n_val])
        parts["train"].append(order[n_test + n_val :])
    index = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    for name in ("train", "test") + (("val",) if val_fraction > 0 else ()):
        if len(index[name]) == 0:
            raise UsageError(f"{data.source}: {n} samples leave the {name} split empty")
    image = data.X.ndim == 4
    axes = (0, 2, 3) if image else 0
    train_X = data.X[index["train"]]
    if stats is None:
        mean = train_X.mean(axis=axes, dtype=np.float64)
        std = train_X.std(axis=axes, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
    else:
        mean, std = (np.asarray(v, dtype=np.float64) for v in stats)
        if mean.shape != (data.X.shape[1],) or std.shape != mean.shape:
            raise UsageError(
                f"{data.source}: has {data.X.shape[1]} feature columns or channels, the run "
                f"recorded statistics of {mean.size}"
            )
    shape = (1, -1, 1, 1) if image else (1, -1)
    m, s = mean.reshape(shape).astype(np.float32), std.reshape(shape).astype(np.float32)
    splits: dict[str, tuple[Any, Any]] = {}
    for name, idx in index.items():
        if name == "val" and val_fraction <= 0:
            continue
        X = torch.from_numpy(np.ascontiguousarray((data.X[idx] - m) / s, dtype=np.float32))
        y = torch.from_numpy(np.ascontiguousarray(data.y[idx]))
        splits[name] = (X, y)
    record = {
        "source": data.source,
        "format": data.kind,
        "target": data.target,
        "classes": data.classes,
        "input_shape": list(data.input_shape),
        "split": {
            "seed": seed,
            "test_fraction": test_fraction,
            "val_fraction": val_fraction,
            "sizes": {k: int(len(v[1])) for k, v in splits.items()},
        },  # fmt: skip
        "preprocessing": {
            "standardise": "per channel" if image else "per column",
            "mean": [float(v) for v in np.atleast_1d(mean)],
            "std": [float(v) for v in np.atleast_1d(std)],
        },
    }
    if data.columns is not None:
        record["columns"] = data.columns
    return splits, record


def recorded_split(
    path: str | os.PathLike, record: Mapping[str, Any], task: str, split: str
) -> tuple[Any, Any]:
    """Split ``split`` of the data at ``path`` as a run that recorded ``record`` (its
    ``settings["data"]``) made it: the same target, task, image size, seed and fractions, and
    the run's own train statistics (not recomputed). ``path`` is read because the user gave it;
    the recorded source is description only.
    """
    try:
        shape = list(record["input_shape"])
        fractions = record["split"]
        image_size = int(shape[-1]) if len(shape) == 3 else 32
        data = read_data(path, target=record.get("target"), task=task, image_size=image_size)
        if data.classes is not None and record.get("classes") not in (None, data.classes):
            raise UsageError(
                f"{path}: its classes {data.classes[:5]} are not the run's {record['classes'][:5]}"
            )
        prep = record.get("preprocessing") or {}
        stats = (prep["mean"], prep["std"]) if prep else None
        splits, _ = split_data(
            data, test_fraction=float(fractions["test_fraction"]),
            val_fraction=float(fractions["val_fraction"]), seed=int(fractions["seed"]),
            stats=stats,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"the run's record of its data is incomplete ({_reason(exc)})") from None
    if split not in splits:
        raise UsageError(f"{path}: the run made no {split!r} split (it has {', '.join(splits)})")
    return splits[split]


# -- readers -------------------------------------------------------------------------------------


def _read_csv(path: Path, target: str | None, task: str | None) -> OwnData:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"{path}: cannot read it as CSV ({exc})") from None
    if len(rows) < 2:
        raise UsageError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    width = len(header)
    for i, row in enumerate(body, 2):
        if len(row) != width:
            raise UsageError(f"{path}: row {i} has {len(row)} fields, the header {width}")
    col = width - 1 if target is None else _column(path, header, target)
    if width < 2:
        raise UsageError(f"{path}: needs at least one feature column and a target column")
    columns = [h for j, h in enumerate(header) if j != col]
    X = np.empty((len(body), width - 1), dtype=np.float32)
    k = 0
    for j, name in enumerate(header):
        if j == col:
            continue
        X[:, k] = _numeric_column(path, name, [r[j] for r in body])
        k += 1
    y_raw = _label_column(path, header[col], [r[col] for r in body])
    where = f"{path}: column {header[col]!r}"
    data = _from_raw(X, y_raw, task, str(path), "csv", where=where)
    data.target, data.columns = header[col], columns
    return data


def _column(path: Path, header: list[str], target: str) -> int:
    if target in header:
        return header.index(target)
    raise UsageError(f"{path}: no column {target!r} (columns: {', '.join(header)})")


def _numeric_column(path: Path, name: str, cells: list[str]) -> np.ndarray:
    """A feature column as floats; a missing value or text is one line naming it."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        text = cell.strip()
        if text.lower() in _NAN_WORDS:
            raise UsageError(f"{path}: column {name!r}, row {i + 2}: missing value ({cell!r})")
        try:
            out[i] = float(text)
        except ValueError:
            raise UsageError(
                f"{path}: column {name!r}, row {i + 2}: {cell!r} is not a number "
                f"(feature columns must be numeric)"
            ) from None
        if not math.isfinite(out[i]):
            raise UsageError(f"{path}: column {name!r}, row {i + 2}: {cell!r} is not finite")
    return out


def _label_column(path: Path, name: str, cells: list[str]) -> np.ndarray:
    """Labels: all integers, all numbers (floats) or all text; a mix or a gap is one line."""
    texts = [c.strip() for c in cells]
    kinds = [_cell_kind(t) for t in texts]
    for i, (text, kind) in enumerate(zip(texts, kinds, strict=True)):
        if kind == "missing":
            raise UsageError(f"{path}: column {name!r}, row {i + 2}: missing label ({text!r})")
    numeric = [k != "text" for k in kinds]
    if any(numeric) and not all(numeric):
        first = numeric.index(not numeric[0])
        raise UsageError(
            f"{path}: column {name!r}, row {first + 2}: {texts[first]!r} mixes types with "
            f"row 2's {texts[0]!r} (labels must be all numbers or all text)"
        )
    if not all(numeric):
        return np.array(texts)
    if all(k == "int" for k in kinds):
        return np.array([int(t) for t in texts], dtype=np.int64)
    return np.array([float(t) for t in texts], dtype=np.float64)


def _cell_kind(text: str) -> str:
    if text.lower() in _NAN_WORDS:
        return "missing"
    try:
        int(text)
        return "int"
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return "text"
    return "float" if math.isfinite(value) else "missing"


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X", "y") if k not in z.files]
            if missing:
                raise UsageError(
                    f"{path}: no array {missing[0]!r} (a .npz holds arrays X and y; it has "
                    f"{', '.join(z.files) or 'none'})"
                )
            return {"X": z["X"], "y": z["y"]}
    except (OSError, ValueError, EOFError) as exc:
        raise ZooError(f"{path}: cannot read it as .npz ({_reason(exc)})") from None


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ZooError(f"{path}: cannot read it as .npy ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_images(root: Path, task: str | None, size: int) -> OwnData:
    """ImageFolder layout: ``root/<class>/<image>``; RGB, ``size`` x ``size``, in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UsageError(f"--image-size must be a positive integer, got {size!r}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise UsageError(
            f"{root}: an image folder needs a sub-folder per class, 2 or more ({found})"
        )
    if task == "regression":
        raise UsageError(f"{root}: an image folder's labels are classes, not a regression")
    images, labels = [], []
    for k, name in enumerate(classes):
        files = sorted(
            f for f in (root / name).iterdir() if f.is_file() and not f.name.startswith(".")
        )
        if not files:
            raise UsageError(f"{root / name}: no images in this class folder")
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise UsageError(f"{f}: not a readable image ({_reason(exc)})") from None
            labels.append(k)
    X = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = np.array(labels, dtype=np.int64)
    chosen = infer_task(y, task, str(root))
    data = OwnData(X, _encode(y, chosen), chosen, classes, str(root), "images")
    return data


# -- labels --------------------------------------------------------------------------------------


def _from_raw(
    X: np.ndarray, y: np.ndarray, task: str | None, source: str, kind: str, where: str = ""
) -> OwnData:
    where = where or f"{source}: labels"
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf":
        raise UsageError(f"{source}: features must be numbers, got dtype {X.dtype}")
    if X.ndim < 2:
        X = X.reshape(-1, 1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"{source}: labels must be one per sample, got shape {tuple(y.shape)}")
    if len(X) != len(y):
        raise UsageError(f"{source}: {len(X)} samples of features but {len(y)} labels")
    if len(y) == 0:
        raise UsageError(f"{source}: no samples")
    bad = ~np.isfinite(X.reshape(len(X), -1))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        value = X.reshape(len(X), -1)[row, col]
        raise UsageError(f"{source}: features, row {row}, column {col}: {value} is not finite")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        row = int(np.flatnonzero(~np.isfinite(y))[0])
        raise UsageError(f"{where}, row {row}: label {y[row]} is not finite")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind not in "biufUS":
        raise UsageError(f"{source}: labels must be numbers or text, got dtype {y.dtype}")
    chosen = infer_task(y, task, where)
    classes = None if chosen == "regression" else [str(c) for c in np.unique(y)]
    return OwnData(X.astype(np.float32), _encode(y, chosen), chosen, classes, source, kind)


def _encode(y: np.ndarray, task: str) -> np.ndarray:
    if task == "regression":
        return y.astype(np.float32)
    _, index = np.unique(y, return_inverse=True)
    return index.astype(np.float32 if task == "binary" else np.int64)


def _numpy(value: Any, name: str) -> np.ndarray:
    if type(value).__name__ == "Tensor":
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise UsageError(f"{name} must be an array or tensor ({_reason(exc)})") from None


def _count(y: np.ndarray) -> int:
    return len(np.unique(y))


def _share(n: int, fraction: float) -> int:
    """Samples of a group of ``n`` a split of ``fraction`` takes (at least one when > 0)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def _check_task(task: str | None) -> None:
    if task is not None and task not in _TASKS:
        raise UsageError(f"unknown task {task!r}; use one of {', '.join(_TASKS)}")


def _check_fractions(test: float, val: float) -> None:
    if not 0 < test < 1:
        raise UsageError(f"--test-fraction must be between 0 and 1, got {test}")
    if not 0 <= val < 1:
        raise UsageError(f"--val-fraction must be 0 or more and below 1, got {val}")
    if test + val >= 1:
        raise UsageError(f"--test-fraction {test} and --val-fraction {val} leave no train split")
