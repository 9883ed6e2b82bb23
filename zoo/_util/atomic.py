"""Atomic file writes: everything a user keeps is written to a temp file, then renamed.

A reader never sees a half-written file, and a crash mid-write leaves the old file intact.
A failed write removes its temp file and raises an ``OSError`` (of the usual subclass) that
names the TARGET, never the temp file, in :func:`os_reason`'s words (a full disk says how
much space is free: :func:`free_space`). :func:`check_writable` asks before any work is done.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "check_writable",
    "disk_full",
    "free_space",
    "os_reason",
    "write_bytes",
    "write_json",
    "write_reason",
    "write_text",
]


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temp path beside ``path``; on success fsync and rename it into place.

    Raises:
        OSError: naming ``path`` (its reason from :func:`os_reason`) when it cannot be written;
            the temp file, and any directory made for it, are gone by then. An ``OSError`` the
            caller's block raises about another file passes through unchanged.
    """
    path = Path(path)
    made = [p for p in path.parents if not p.exists()]  # deepest first
    tmp_path: Path | None = None
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _FILE_MODE)  # mkstemp makes 0600; give the usual umask'd mode
        os.replace(tmp_path, path)
    except BaseException as exc:
        _remove(tmp_path, made)  # first, so the free space reported is what the disk has
        if isinstance(exc, OSError) and _about_target(exc, path):
            raise _target_error(exc, path) from None
        raise


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _about_target(exc: OSError, path: Path) -> bool:
    """Whether ``exc`` is about writing ``path`` (its temp file, its directories), not another
    file the caller's block touched."""
    temp = str(path.parent / _temp_prefix(path))
    named = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    return all(
        name.startswith(temp) or name == str(path) or Path(name) in path.parents for name in named
    )


def _target_error(exc: OSError, path: Path) -> OSError:
    """``exc`` again, naming ``path`` (an ``OSError`` built with an errno is of its subclass)."""
    if exc.errno is None:
        return OSError(f"cannot write {path}: {exc}")
    return OSError(exc.errno, os_reason(exc, path), str(path))


def _remove(tmp: Path | None, made: list[Path]) -> None:
    """Remove the temp file, then the directories made for it (deepest first), if empty."""
    for leftover in ([tmp] if tmp else []) + made:
        with suppress(OSError):
            if leftover.is_dir():
                leftover.rmdir()
            else:
                leftover.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, not after the work, if :func:`atomic_path` could not write ``path``.

    Missing parent directories are fine (the write creates them); the nearest existing one must
    be a directory in which a file can be created (tried with a temp file, removed at once).

    Raises:
        OSError: naming ``path``, as a failed write would.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    parent = next((p for p in path.parents if p.exists() or p.is_symlink()), Path("."))
    try:
        if not parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _target_error(exc, path) from None


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def os_reason(exc: OSError, path: str | os.PathLike) -> str:
    """Why writing ``path`` failed, in a few words: names an ancestor that is not a directory,
    and on a full disk says how much space is free there."""
    for parent in reversed(Path(path).parents):
        if parent.exists() and not parent.is_dir():
            return f"{parent} is not a directory"
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL and reason == os.strerror(exc.errno):  # not said already
        reason += f" ({free_space(path)})"
    return reason


def write_reason(exc: BaseException, path: str | os.PathLike) -> str:
    """:func:`os_reason` for any failed write, including writers that report the OS error only
    in their text (safetensors' Rust writer: ``... (os error 28)``, ``StorageFull``)."""
    if not isinstance(exc, OSError):
        code = _errno_in_text(str(exc))
        if code is None:
            from zoo.errors import one_line

            return one_line(exc)
        exc = OSError(code, os.strerror(code))
    return os_reason(exc, path)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the quota) is full, as an ``OSError`` or in its text."""
    code = exc.errno if isinstance(exc, OSError) else _errno_in_text(str(exc))
    return code in _DISK_FULL


def _errno_in_text(text: str) -> int | None:
    found = re.search(r"os error (\d+)", text)
    if found:
        return int(found[1])
    if "StorageFull" in text or "No space left" in text:
        return errno.ENOSPC
    if "QuotaExceeded" in text:
        return errno.EDQUOT
    return None


def free_space(path: str | os.PathLike) -> str:
    """``12.0 KiB free on /runs``: the space left on the file system that holds ``path``."""
    where = next((p for p in (Path(path), *Path(path).parents) if p.exists()), Path("."))
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return "free space unknown"
    amount = f"{free} bytes"
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if free >= factor:
            amount = f"{free / factor:.1f} {unit}"
            break
    return f"{amount} free on {where}"
