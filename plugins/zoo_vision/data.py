"""torchvision's image datasets read from a local root; downloads only when asked.

MNIST and FashionMNIST are small enough to hold in memory and come back as ``(X, y)``
tensors in ``[0, 1]``. CIFAR-10 is read from its *binary* distribution (no pickle) and comes
back as a lazily converting ``Dataset``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$ZOO_DATA``, else ``$ZOO_HOME/data``, else ``~/.cache/zoo/data``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"]).expanduser()
    if os.environ.get("ZOO_HOME"):
        return Path(os.environ["ZOO_HOME"]).expanduser() / "data"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "zoo" / "data"


def _check_split(split: str) -> bool:
    if split not in ("train", "test"):
        raise ValueError(f"this dataset has splits train and test, not {split!r}")
    return split == "train"


def _idx_set(cls_name: str, split: str, root, download: bool):
    from torchvision import datasets

    base = data_root(root)
    raw = base / cls_name / "raw"
    if not download and not all((raw / f).exists() for f in MNIST_FILES):
        raise FileNotFoundError(
            f"{cls_name} is not under {raw}: put {', '.join(MNIST_FILES)} there "
            "(or .gz files, unpacked), set ZOO_DATA / --data-dir, or pass download=True online"
        )
    ds = getattr(datasets, cls_name)(str(base), train=_check_split(split), download=download)
    X = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return X, ds.targets.to(torch.int64)


def fashion_mnist(split: str, root: str | None = None, download: bool = False):
    return _idx_set("FashionMNIST", split, root, download)


def mnist(split: str, root: str | None = None, download: bool = False):
    return _idx_set("MNIST", split, root, download)


class CIFAR10Binary(Dataset):
    """CIFAR-10 records (1 label byte + 3072 pixel bytes, CHW) read from the .bin batches."""

    def __init__(self, files: list[Path]):
        records = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, 3073) for f in files])
        self.labels = torch.from_numpy(records[:, 0].astype(np.int64))
        self.images = torch.from_numpy(np.ascontiguousarray(records[:, 1:])).view(-1, 3, 32, 32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i].to(torch.float32).div_(255.0), self.labels[i]


def cifar10(split: str, root: str | None = None, download: bool = False) -> CIFAR10Binary:
    base = data_root(root)
    folder = base / "cifar-10-batches-bin"
    names = (
        [f"data_batch_{i}.bin" for i in range(1, 6)] if _check_split(split) else ["test_batch.bin"]
    )
    missing = [n for n in names if not (folder / n).exists()]
    if missing and download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CIFAR_URL, str(base))
        missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 (binary version) is not under {folder}: missing {', '.join(missing)}; "
            f"unpack {CIFAR_URL} there, set ZOO_DATA / --data-dir, or pass download=True online"
        )
    return CIFAR10Binary([folder / n for n in names])
