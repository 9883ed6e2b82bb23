"""Loaders for the shipped datasets: ``loader(split, **kwargs) -> (X, y)`` tensors."""

from __future__ import annotations

import numpy as np
import torch

TEST_FRACTION = 0.2
SPLIT_SEED = 42


def _split(X, y, split: str, task: str, *, image: bool = False, seed: int = SPLIT_SEED):
    """Deterministic 80/20 split, standardised with train statistics, as tensors."""
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"this dataset has splits train and test, not {split!r}")
    stratify = y if task != "regression" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_FRACTION, random_state=seed, stratify=stratify
    )
    axis = None if image else 0  # one mean/std per image set, per column for features
    mean = X_train.mean(axis=axis)
    std = X_train.std(axis=axis)
    std = np.where(std > 0, std, 1.0)
    X_out = (X_train if split == "train" else X_test) - mean
    X_out = X_out / std
    y_out = y_train if split == "train" else y_test
    if task == "regression":
        y_out = (y_out - y_train.mean()) / y_train.std()
    y_dtype = torch.int64 if task == "multiclass" else torch.float32
    return (
        torch.as_tensor(np.asarray(X_out), dtype=torch.float32),
        torch.as_tensor(np.asarray(y_out), dtype=y_dtype),
    )


def circles(split: str, n_samples: int = 1000, noise: float = 0.03, seed: int = 42):
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=n_samples, noise=noise, factor=0.8, random_state=seed)
    return _split(X, y, split, "binary")


def moons(split: str, n_samples: int = 1000, noise: float = 0.1, seed: int = 42):
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _split(X, y, split, "binary")


def blobs(split: str, n_samples: int = 1000, cluster_std: float = 1.5, seed: int = 42):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(
        n_samples=n_samples, centers=4, n_features=2, cluster_std=cluster_std, random_state=seed
    )
    return _split(X, y, split, "multiclass")


def spirals(split: str, points_per_class: int = 300, noise: float = 0.2, seed: int = 42):
    """Three spiral arms (the CS231n toy set)."""
    rng = np.random.default_rng(seed)
    classes = 3
    X = np.zeros((points_per_class * classes, 2))
    y = np.zeros(points_per_class * classes, dtype=np.int64)
    for k in range(classes):
        idx = slice(points_per_class * k, points_per_class * (k + 1))
        r = np.linspace(0.0, 1, points_per_class)
        t = (
            np.linspace(k * 4, (k + 1) * 4, points_per_class)
            + rng.normal(size=points_per_class) * noise
        )
        X[idx] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[idx] = k
    return _split(X, y, split, "multiclass")


def diabetes(split: str):
    """Targets are standardised too (train statistics); R² is unaffected."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return _split(X, y, split, "regression")


def breast_cancer(split: str):
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return _split(X, y, split, "binary")


def iris(split: str):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return _split(X, y, split, "multiclass")


def wine(split: str):
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    return _split(X, y, split, "multiclass")


def digits(split: str):
    """8x8 grey images as ``(N, 1, 8, 8)``, normalised with the train set's pixel mean/std."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 1, 8, 8)
    return _split(X, y, split, "multiclass", image=True)
