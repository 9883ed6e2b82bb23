"""``zoo.load``: rebuild a model from a weights file or a Hugging Face style folder.

A folder holding ``config.json`` (``zoo export --format hf``) loads through
:func:`zoo.weights.hf.load_folder`; anything else is a weights file
(:func:`zoo.weights.files.load`).
"""

from __future__ import annotations

import os

import torch

from zoo.weights import files, hf

__all__ = ["load"]


def load(path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """The model ``path`` holds, in eval mode on ``device``: see :func:`zoo.weights.files.load`
    for a weights file and :func:`zoo.weights.hf.load_folder` for a folder."""
    if hf.is_hf_folder(path):
        return hf.load_folder(path, device)
    return files.load(path, device)
