"""Download a torchvision ``.pth`` checked against its published sha256 prefix, and convert it.

The one place zoo reads a pickle container: torchvision's own weight files, through
``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors and plain containers
only, never a class or a call). The result must be a flat ``{name: tensor}`` state dict; it is
written as safetensors, and the ``.pth`` is deleted. Called by :mod:`zoo.hub.cache`, which
keeps the converted blob and its record; imports torch on call only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
from pathlib import Path

from zoo.errors import FetchError, one_line
from zoo.hub.transfer import Deadline, chunks, fetch_deadline, open_source

__all__ = ["download_checked", "to_safetensors"]


def download_checked(
    url: str, prefix: str, limit: int, folder: Path, expect: tuple[str, int] | None = None
) -> tuple[Path, str, int]:
    """Stream ``url`` (at most ``limit`` bytes, within the fetch deadline) into a temp file in
    ``folder``; return it with its full sha256 and size.

    Its sha256 must start with ``prefix`` (the hex its file name publishes), and, when
    ``expect`` gives the ``(sha256, size)`` recorded at its first download, be exactly that.
    Either mismatch is a one-line :class:`FetchError` naming the file, the URL and what was
    expected; the temp file is removed on any error.
    """
    file = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    fd, name = tempfile.mkstemp(prefix=f".{file}.", suffix=".part", dir=folder)
    tmp = Path(name)
    digest, got = hashlib.sha256(), 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            Deadline(fetch_deadline(), f"fetching {url}") as deadline,
            open_source(url, deadline) as (stream, length),
        ):
            for chunk in chunks(stream, url, length, limit, deadline):
                out.write(chunk)
                digest.update(chunk)
                got += len(chunk)
        if got > limit:
            raise FetchError(f"{file} from {url} is larger than its {limit:,}-byte cap")
        sha = digest.hexdigest()
        if not sha.startswith(prefix):
            raise FetchError(
                f"sha256 prefix mismatch for {file} from {url}: expected {prefix}..., got "
                f"{sha[: len(prefix)]}... (nothing was cached)"
            )
        if expect is not None and (sha, got) != expect:
            raise FetchError(
                f"{file} from {url} changed since its first download: expected sha256 "
                f"{expect[0]} ({expect[1]} bytes), got {sha} ({got} bytes)"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, sha, got


def to_safetensors(pth: Path, out: Path, source: str) -> None:
    """Convert the torch checkpoint ``pth`` (a flat state dict) into safetensors at ``out``.

    ``torch.load(weights_only=True)`` refuses anything but tensors and plain containers (a
    pickle that would import or call something); that, or a checkpoint that is not a flat
    ``{name: tensor}`` dict, is a one-line :class:`FetchError` naming ``source``.
    """
    import pickle

    import torch
    from safetensors.torch import save_file

    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:
        raise FetchError(
            f"refusing {source}: torch.load(weights_only=True) rejected it ({one_line(exc)}); "
            "nothing was cached"
        ) from None
    bad = (
        "it is not a dict"
        if not isinstance(state, dict)
        else next(
            (
                f"{k!r} is not a tensor"
                for k, v in state.items()
                if not isinstance(k, str) or not isinstance(v, torch.Tensor)
            ),
            "",
        )
    )
    if bad:
        raise FetchError(f"refusing {source}: not a flat state dict ({bad}); nothing was cached")
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(out), metadata={"converted_from": source})
