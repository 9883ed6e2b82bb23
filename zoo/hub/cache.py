"""The content-addressed download cache: where fetched files live and how they get there.

Files are cached under ``$ZOO_HOME/hub`` (else ``$XDG_CACHE_HOME/zoo/hub``) as
``blobs/<sha256><suffix>``: downloaded to a unique temp file in that directory, checked for full
sha256 and size, then renamed into place, under a per-file ``flock`` so concurrent fetches
download once. Copies of ``http(s)://`` registry indexes are kept under ``indexes/`` for offline
use. ``ZOO_OFFLINE=1`` never touches the network. This module does not import torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._util.log import get_logger, warn_once
from zoo.errors import FetchError
from zoo.hub.entries import local_path

if TYPE_CHECKING:
    from zoo.hub.entries import FileRef, PretrainedEntry

__all__ = [
    "CachedFile",
    "blob_path",
    "cache_dir",
    "cached_files",
    "clear_cache",
    "fetch_entry",
    "fetch_file",
    "fetch_index",
    "is_cached",
    "is_offline",
    "locked",
    "verify_cache",
]

TIMEOUT = 30.0
CHUNK = 1 << 20
PROGRESS_MIN = 4 << 20  # show a progress bar for files of at least 4 MiB


# ---------------------------------------------------------------- locations and indexes


def cache_dir() -> Path:
    """The hub cache root: ``$ZOO_HOME/hub``, else ``$XDG_CACHE_HOME/zoo/hub`` (~/.cache)."""
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "zoo" / "hub"


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else ``$ZOO_OFFLINE`` (any value but empty/0)."""
    if offline is not None:
        return offline
    return os.environ.get("ZOO_OFFLINE", "") not in ("", "0", "false", "no")


def fetch_index(url: str, offline: bool | None = None) -> bytes:
    """An ``http(s)://`` registry index, kept in the cache for offline use and outages."""
    copy = cache_dir() / "indexes" / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")
    if is_offline(offline):
        if copy.is_file():
            return copy.read_bytes()
        raise FetchError(f"offline (ZOO_OFFLINE) and the registry index {url} was never fetched")
    try:
        with _open_url(url) as resp:
            data = resp.read()
    except FetchError:
        if copy.is_file():
            warn_once(get_logger(__name__), f"registry {url} unreachable; using the cached index")
            return copy.read_bytes()
        raise
    from zoo._util.atomic import write_bytes

    _make_cache_dir(copy.parent)
    try:
        write_bytes(copy, data)
    except OSError as exc:
        raise FetchError(f"cannot write to the cache ({copy}): {exc.strerror or exc}") from None
    return data


# ---------------------------------------------------------------- fetch


def fetch_entry(entry: PretrainedEntry, offline: bool | None = None) -> Path:
    """Fetch every file of a resolved ``entry`` into the cache; return the first (weights)."""
    paths = [fetch_file(ref, name=entry.name, offline=offline) for ref in entry.files]
    return paths[0]


def is_cached(entry: PretrainedEntry) -> bool:
    """Whether every file of ``entry`` is already in the cache (a fetch would download nothing)."""
    return all(_size_ok(blob_path(ref), ref) for ref in entry.files)


def blob_path(ref: FileRef) -> Path:
    """Where a file lives in the content-addressed cache."""
    return cache_dir() / "blobs" / f"{ref.sha256}{ref.suffix}"


def fetch_file(ref: FileRef, *, name: str = "", offline: bool | None = None) -> Path:
    """A verified cached copy of ``ref``, downloading it (once, under a lock) when missing."""
    target = blob_path(ref)
    if _size_ok(target, ref):
        return target
    offline = is_offline(offline)
    if offline and ref.is_remote:
        what = f"{name!r}" if name else ref.url
        raise FetchError(
            f"offline (ZOO_OFFLINE) and {what} is not in the cache ({cache_dir()}); "
            "fetch it once with network access"
        )
    lock = cache_dir() / "locks" / f"{ref.sha256}.lock"
    for folder in (target.parent, lock.parent):
        _make_cache_dir(folder)
    try:
        with locked(lock):
            if _size_ok(target, ref):  # another process fetched it while we waited
                return target
            target.unlink(missing_ok=True)  # a wrong-size leftover is never a hit
            _download(ref, target)
            _write_record(ref, target, name)
    except OSError as exc:
        where = exc.filename or target.parent
        raise FetchError(
            f"cannot write to the cache ({where}): {exc.strerror or exc}; "
            "set ZOO_HOME to a writable directory"
        ) from None
    return target


def _make_cache_dir(path: Path) -> None:
    """``mkdir -p`` a cache folder, as a one-line :class:`FetchError` when impossible."""
    from zoo._util.atomic import os_reason

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(
            f"cannot create cache dir {path}: {os_reason(exc, path / 'x')}; "
            "set ZOO_HOME to a writable directory"
        ) from None


def _size_ok(path: Path, ref: FileRef) -> bool:
    try:
        return path.stat().st_size == ref.size
    except OSError:  # missing, or a cache dir that cannot exist (reported when writing)
        return False


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (a lock file, or a directory to lock in place).

    A no-op where fcntl is unavailable.
    """
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _download(ref: FileRef, target: Path) -> None:
    """Stream ``ref`` into a temp file beside ``target``, verify size + sha256, rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    got = 0
    try:
        with os.fdopen(fd, "wb") as out, _open_source(ref.url) as (stream, length):
            bar = _progress(ref, length)
            try:
                while True:
                    try:
                        chunk = stream.read(CHUNK)
                    except (OSError, ValueError) as exc:
                        raise _network_error(ref.url, exc) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    if got > ref.size:
                        break  # never stream more than the index promised
            finally:
                if bar is not None:
                    bar.close()
            if got <= ref.size and length is not None and got < length:
                raise FetchError(
                    f"network failure fetching {ref.url}: connection closed after {got} of "
                    f"{length} bytes"
                )
            out.flush()
            os.fsync(out.fileno())
        if got != ref.size:
            shown = f"{got} bytes" if got <= ref.size else f"more than {ref.size} bytes"
            raise FetchError(f"size mismatch for {ref.url}: expected {ref.size} bytes, got {shown}")
        sha = digest.hexdigest()
        if sha != ref.sha256:
            raise FetchError(f"sha256 mismatch for {ref.url}: expected {ref.sha256}, got {sha}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _open_source(url: str) -> Iterator[tuple[Any, int | None]]:
    """A readable stream for a URL or local path, and its announced length (if any)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https"):
        with _open_url(url) as resp:
            length = resp.headers.get("Content-Length")
            yield resp, int(length) if length and length.isdigit() else None
        return
    path = local_path(url)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after mapping errors
    except FileNotFoundError:
        raise FetchError(f"not found: {url} (file missing from its registry)") from None
    except OSError as exc:
        raise FetchError(f"cannot read {url}: {exc.strerror or exc}") from None
    with fh:
        yield fh, None


def _open_url(url: str):
    """``urlopen`` with a User-Agent and timeout; proxies from the environment are honoured."""
    from zoo import __version__

    timeout = float(os.environ.get("ZOO_HTTP_TIMEOUT", TIMEOUT))
    request = urllib.request.Request(url, headers={"User-Agent": f"zoo/{__version__} (+urllib)"})
    try:
        # a fresh opener per call reads *_proxy / no_proxy from the environment as it is now
        opener = urllib.request.build_opener(urllib.request.ProxyHandler())
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FetchError(f"not found (HTTP 404): {url}") from None
        raise FetchError(f"HTTP {exc.code} {exc.reason} fetching {url}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _network_error(url, exc) from None


def _network_error(url: str, exc: BaseException) -> FetchError:
    reason = getattr(exc, "reason", None) or exc
    return FetchError(f"network failure fetching {url}: {type(exc).__name__}: {reason}")


def _progress(ref: FileRef, length: int | None):
    if ref.size < PROGRESS_MIN:
        return None
    from tqdm import tqdm

    name = urllib.parse.urlsplit(ref.url).path.rsplit("/", 1)[-1]
    return tqdm(
        total=length or ref.size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=name, file=sys.stderr, leave=False, disable=None,
    )  # fmt: skip


def _write_record(ref: FileRef, target: Path, name: str) -> None:
    from datetime import UTC, datetime

    from zoo._util.atomic import write_json

    record = {
        "name": name, "url": ref.url, "sha256": ref.sha256, "size": ref.size,
        "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    write_json(target.with_name(target.name + ".json"), record)


# ---------------------------------------------------------------- cache management


@dataclass
class CachedFile:
    """One blob in the cache, with the entry name and URL it was fetched for."""

    path: Path
    sha256: str
    size: int
    name: str = ""
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": "cache", "plugin": "", "summary": self.url,
            "sha256": self.sha256, "size": self.size, "path": str(self.path), "url": self.url,
        }  # fmt: skip


def cached_files() -> list[CachedFile]:
    """Every blob in the cache, with the entry name and URL it was fetched for."""
    blobs = cache_dir() / "blobs"
    out = []
    for path in sorted(blobs.glob("*")) if blobs.is_dir() else []:
        if path.name.startswith(".") or path.name.endswith(".json") or not path.is_file():
            continue
        record: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.with_name(path.name + ".json").read_text())
        sha = path.name.split(".", 1)[0]
        out.append(
            CachedFile(
                path, sha, path.stat().st_size, record.get("name", ""), record.get("url", "")
            )
        )
    return out


def verify_cache(remove: bool = True) -> list[tuple[CachedFile, str]]:
    """Re-hash every cached file; return the bad ones with the reason (removed by default)."""
    bad = []
    for item in cached_files():
        digest = hashlib.sha256()
        with open(item.path, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(CHUNK), b""):
                digest.update(chunk)
        got = digest.hexdigest()
        if got != item.sha256:
            bad.append((item, f"sha256 mismatch: expected {item.sha256}, got {got}"))
            if remove:
                item.path.unlink(missing_ok=True)
                item.path.with_name(item.path.name + ".json").unlink(missing_ok=True)
    return bad


def clear_cache() -> int:
    """Remove the whole hub cache; return the number of bytes freed."""
    root = cache_dir()
    if not root.exists():
        return 0
    freed = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    shutil.rmtree(root)
    return freed
