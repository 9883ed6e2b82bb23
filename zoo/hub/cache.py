"""The content-addressed download cache: where fetched files live and how they get there.

Files are cached under ``$ZOO_HOME/hub`` (else ``$XDG_CACHE_HOME/zoo/hub``) as
``blobs/<sha256><suffix>``: downloaded to a unique temp file in that directory, checked for full
sha256 and size, then renamed into place, under a per-file ``flock`` (``locks/<sha256>.lock``)
so concurrent fetches download once. Copies of ``http(s)://`` registry indexes are kept under
``indexes/`` for offline use and outages: a fresh index is parsed before its copy is kept (one
that does not parse is never cached), and an index that cannot be fetched or parsed is replaced
by its cached copy with one warning. ``ZOO_OFFLINE=1`` never touches the network. This module
does not import torch.

Limits (:mod:`zoo.hub.transfer`): every download has an overall deadline
(``$ZOO_FETCH_DEADLINE``), a lock is waited for at most ``$ZOO_LOCK_TIMEOUT`` seconds, and both
errors name their variable. A temp file of a killed fetch (``.<blob>.*.part``) is removed by the
next fetch once nobody holds its blob's lock: judged by the lock, not a PID, so a download that
another node sharing the cache is doing is kept. A cache that cannot be written (read-only)
still serves what it holds, with a warning where it could not keep a fresh copy.

torchvision's weights (:mod:`zoo.hub.table`) publish only a sha256 prefix: their first
download must match it, is converted once to a safetensors blob (:mod:`zoo.hub.convert`; the
``.pth`` is never kept), and ``pins/<key>.json`` records the ``.pth``'s full sha256 and size
and the blob's (trust on first use, :func:`first_use`); the blob is then verified as any
other, and a later download must match the recorded hash in full. ``$ZOO_MIRROR`` replaces
the host these files come from.

Every hit is verified. Beside each blob, ``<blob>.json`` records its sha256 and the fingerprint
the file had when it was last hashed (size, ``mtime_ns``, ``ctime_ns``, inode); no blob's name
ends in ``.json``. A hit whose
fingerprint still matches is served as is; any change (a write, a touch, a chmod, a copy, a
replaced file: each moves ``ctime``, which no ordinary tool sets back) re-hashes it, and a file that
no longer hashes right is removed and fetched again (offline: a one-line error). A fingerprint
recorded in the same filesystem clock tick as the file's last change proves nothing (git's
"racily clean" case), so such a hit re-hashes too. ``ZOO_VERIFY=full`` re-hashes every hit; a
cache where the fingerprint cannot be recorded (read-only) re-hashes every hit it cannot vouch
for. A cached blob that hashes right but is not the size an entry says stays: the entry is
wrong. Rot that changes no metadata is what ``zoo cache verify`` (:func:`verify_cache`) is for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zoo._util.jsonio import loads
from zoo._util.log import get_logger, warn_once
from zoo.errors import FetchError, UsageError
from zoo.hub.entries import max_index_bytes
from zoo.hub.transfer import (
    Deadline,
    chunks,
    fetch_deadline,
    is_offline,
    lock_wait,
    open_source,
    read_all,
)

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
    "file_sha256",
    "fetch_index",
    "first_use",
    "is_cached",
    "is_offline",
    "locked",
    "verify_cache",
    "verify_mode",
]

T = TypeVar("T")

PROGRESS_MIN = 4 << 20  # show a progress bar for files of at least 4 MiB
RECORD_MAX = 64 << 10  # a blob's JSON record is a few hundred bytes; never read more than this
VERIFY_MODES = ("fingerprint", "full")
_TEMP_SUFFIXES = (".part", ".tmp")  # a download's temp file, an atomic write's


# ---------------------------------------------------------------- locations and indexes


def cache_dir() -> Path:
    """The hub cache root: ``$ZOO_HOME/hub``, else ``$XDG_CACHE_HOME/zoo/hub`` (~/.cache)."""
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "zoo" / "hub"


def fetch_index(url: str, offline: bool | None = None, parse: Callable[[bytes], T] = bytes) -> T:
    """An ``http(s)://`` registry index, ``parse``\\ d (the default: its bytes).

    A fresh index is read within its size cap (``$ZOO_MAX_INDEX_BYTES``) and deadline and
    parsed before a copy is kept in the cache, so a copy always parses. When the registry
    cannot be read (unreachable, a truncated or stalled body, too large, malformed), its cached
    copy is used with one warning; with none, that is the one-line :class:`FetchError`.
    """
    copy = cache_dir() / "indexes" / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")
    if is_offline(offline):
        if copy.is_file():
            return parse(_read_copy(copy))
        raise FetchError(f"offline (ZOO_OFFLINE) and the registry index {url} was never fetched")
    try:
        data = read_all(url, max_index_bytes(), "registry index", "ZOO_MAX_INDEX_BYTES")
        result = parse(data)
    except FetchError as exc:
        if not copy.is_file():
            raise
        try:
            result = parse(_read_copy(copy))
        except FetchError:
            raise exc from None
        warn_once(get_logger(__name__), f"{exc}; using the cached copy of registry index {url}")
        return result
    _keep_copy(copy, data, url)
    return result


def _read_copy(copy: Path) -> bytes:
    """The cached copy of a registry index, within the index size cap."""
    return read_all(str(copy), max_index_bytes(), "cached registry index", "ZOO_MAX_INDEX_BYTES")


def _keep_copy(copy: Path, data: bytes, url: str) -> None:
    """Keep ``data`` as the cached copy of an index (best effort: a read-only cache warns)."""
    from zoo._util.atomic import os_reason, write_bytes

    with contextlib.suppress(OSError):
        if copy.stat().st_size == len(data) and copy.read_bytes() == data:
            return  # kept already: nothing to write (so a read-only cache still serves)
    try:
        for folder in (copy.parent, _lock_of(copy.name).parent):
            folder.mkdir(parents=True, exist_ok=True)
        _sweep(copy.parent)
        with locked(_lock_of(copy.name)):
            write_bytes(copy, data)
    except (OSError, FetchError) as exc:
        reason = os_reason(exc, copy) if isinstance(exc, OSError) else str(exc)
        warn_once(
            get_logger(__name__),
            f"cannot keep a copy of registry index {url} in the cache ({copy}): {reason}; "
            "using it without one",
        )


# ---------------------------------------------------------------- fetch


def fetch_entry(entry: PretrainedEntry, offline: bool | None = None) -> Path:
    """Fetch every file of a resolved ``entry`` (and its card) into the cache; return the first
    (weights)."""
    refs = [*entry.files, *([entry.card] if entry.card is not None else [])]
    paths = [fetch_file(ref, name=entry.name, offline=offline) for ref in refs]
    return paths[0]


def is_cached(entry: PretrainedEntry) -> bool:
    """Whether every file of ``entry`` is in the cache and verified (a fetch would download
    nothing): a file whose fingerprint changed since it was recorded is re-hashed first."""
    return all(
        _prefixed_hit(ref, first_use(ref))[1].ok
        if ref.prefix_only
        else _check_hit(blob_path(ref), ref).ok
        for ref in [*entry.files, *([entry.card] if entry.card is not None else [])]
    )


def blob_path(ref: FileRef) -> Path:
    """Where a file lives in the content-addressed cache."""
    return cache_dir() / "blobs" / f"{ref.sha256}{ref.suffix}"


def verify_mode() -> str:
    """How a cache hit is verified, from ``$ZOO_VERIFY``: ``fingerprint`` (the default: re-hash
    a file only when its size, mtime, ctime or inode changed since it was last hashed) or
    ``full`` (re-hash every hit). Anything else is a one-line :class:`UsageError`."""
    value = os.environ.get("ZOO_VERIFY", "").strip().lower() or VERIFY_MODES[0]
    if value not in VERIFY_MODES:
        raise UsageError(f"ZOO_VERIFY={value!r} is not one of: {', '.join(VERIFY_MODES)}")
    return value


def fetch_file(ref: FileRef, *, name: str = "", offline: bool | None = None) -> Path:
    """A verified cached copy of ``ref``, downloading it (once, under a lock) when missing.

    A cached copy that fails verification is removed and fetched again; offline, that is a
    one-line :class:`FetchError` for a remote file. A cached copy that hashes right but is
    not the size ``ref`` says is kept, and ``ref`` is the error.
    """
    if ref.prefix_only:
        return _fetch_prefixed(ref, name, offline)
    target = blob_path(ref)
    what = f"{name!r}" if name else ref.url
    check = _check_hit(target, ref, name)
    if check.ok:
        return target
    if check.wrong_size:
        raise _wrong_size(ref, what, check)
    offline = is_offline(offline)
    if offline and ref.is_remote:
        if check.problem:
            removed = "; removed it" if _discard(target, ref, check.seen) else ""
            raise FetchError(
                f"offline (ZOO_OFFLINE) and the cached copy of {what} is corrupt "
                f"({check.problem}){removed}; fetch it again with network access"
            )
        raise _not_cached(what)
    if check.problem:
        _warn_refetch(what, target, check.problem)
    lock = _lock_path(ref)
    for folder in (target.parent, lock.parent):
        _make_cache_dir(folder)
    try:
        _sweep(target.parent)
        with locked(lock):
            # another process may have fetched it while we waited: look again if it changed
            if _stat_fingerprint(target) != check.seen and _check_hit(target, ref, name).ok:
                return target
            _remove_blob(target)  # a corrupt or wrong-size leftover is never a hit
            _download(ref, target)
            _write_record(target, ref.sha256, ref.url, name)
    except OSError as exc:
        where = exc.filename or target.parent
        raise FetchError(
            f"cannot write to the cache ({where}): {exc.strerror or exc}; "
            "set ZOO_HOME to a writable directory"
        ) from None
    return target


# ---------------------------------------------------------------- trust on first use


def _pin_path(ref: FileRef) -> Path:
    """Where the first fetch of a prefix-only file records what it hashed to (by URL path, so a
    mirror serving the same path shares it)."""
    path = urllib.parse.urlsplit(ref.url).path
    return cache_dir() / "pins" / (hashlib.sha256(path.encode()).hexdigest()[:32] + ".json")


def first_use(ref: FileRef) -> dict[str, Any] | None:
    """What the first download of a prefix-only ``ref`` recorded: the ``.pth``'s full
    ``source_sha256`` and ``source_size``, and the converted blob's ``sha256`` and ``size``;
    ``None`` when it was never fetched (or the record is unreadable)."""
    try:
        with open(_pin_path(ref), "rb") as fh:
            pin = loads(fh.read(RECORD_MAX + 1), max_bytes=RECORD_MAX)
    except (OSError, ValueError):
        return None
    ok = isinstance(pin, dict) and all(
        isinstance(pin.get(k), str) and len(pin[k]) == 64 for k in ("sha256", "source_sha256")
    )
    sizes = ok and all(type(pin.get(k)) is int for k in ("size", "source_size"))
    return pin if sizes and pin["source_sha256"].startswith(ref.sha256) else None


def _prefixed_hit(ref: FileRef, pin: dict[str, Any] | None) -> tuple[Path | None, _Check]:
    """The converted blob of a pinned prefix-only file, verified as every blob is."""
    if pin is None:
        return None, _Check(False)
    target = cache_dir() / "blobs" / f"{pin['sha256']}.safetensors"
    return target, _check_hit(target, _converted_ref(ref, pin))


def _converted_ref(ref: FileRef, pin: dict[str, Any]) -> FileRef:
    return dataclasses.replace(ref, sha256=pin["sha256"], size=pin["size"], prefix_only=False)


def _fetch_prefixed(ref: FileRef, name: str, offline: bool | None) -> Path:
    """A torchvision file (:attr:`FileRef.prefix_only`): a verified hit of its converted blob,
    else downloaded (from ``$ZOO_MIRROR`` when set), checked against its sha256 prefix (later
    downloads: against the full sha256 and size recorded the first time), converted to
    safetensors (:mod:`zoo.hub.convert`) and recorded. Only the safetensors blob is kept."""
    from zoo._util.atomic import write_json
    from zoo.hub.convert import download_checked, to_safetensors
    from zoo.hub.table import mirrored

    what = f"{name!r}" if name else ref.url
    url = mirrored(ref.url)  # a bad $ZOO_MIRROR is a usage error, hit or not
    target, check = _prefixed_hit(ref, first_use(ref))
    if target is not None and check.ok:
        return target
    if is_offline(offline):
        raise _not_cached(what)
    if check.problem:
        _warn_refetch(what, target, check.problem)
    file = urllib.parse.urlsplit(ref.url).path.rsplit("/", 1)[-1]
    blobs, lock = cache_dir() / "blobs", _lock_of(file)
    for folder in (blobs, lock.parent):
        _make_cache_dir(folder)
    converted = blobs / f".{file.split('.', 1)[0]}.safetensors.part"
    try:
        _sweep(blobs)
        with locked(lock):
            pin = first_use(ref)
            target, check = _prefixed_hit(ref, pin)
            if target is not None and check.ok:  # fetched by another process meanwhile
                return target
            if target is not None:
                _remove_blob(target)  # a corrupt converted blob is never a hit
            try:
                expect = (pin["source_sha256"], pin["source_size"]) if pin else None
                pth, sha, size = download_checked(url, ref.sha256, ref.size, blobs, expect)
                try:
                    to_safetensors(pth, converted, f"{file} from {url}")
                finally:
                    pth.unlink(missing_ok=True)
                blob_sha = file_sha256(converted)
                target = blobs / f"{blob_sha}.safetensors"
                os.replace(converted, target)
                _write_record(target, blob_sha, ref.url, name)
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                write_json(_pin_path(ref), {
                    "url": ref.url, "file": file, "trust": "first use",
                    "source_sha256": sha, "source_size": size,
                    "sha256": blob_sha, "size": target.stat().st_size,
                    "fetched": (pin or {}).get("fetched", now), "from": url,
                })  # fmt: skip
            finally:
                converted.unlink(missing_ok=True)
    except OSError as exc:
        where = exc.filename or blobs
        raise FetchError(
            f"cannot write to the cache ({where}): {exc.strerror or exc}; "
            "set ZOO_HOME to a writable directory"
        ) from None
    return target


def _wrong_size(ref: FileRef, what: str, check: _Check) -> FetchError:
    size = check.seen["size"] if check.seen else "?"
    return FetchError(
        f"registry entry {what} is wrong: it gives {ref.url} a size of {ref.size} bytes, but "
        f"the file with its sha256 {ref.sha256[:12]}... has {size} bytes (the cached copy is "
        "intact and kept)"
    )


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


@contextlib.contextmanager
def locked(path: Path, wait: float | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (a lock file, or a directory to lock in place),
    waited for at most ``wait`` seconds (default :func:`~zoo.hub.transfer.lock_wait`,
    ``$ZOO_LOCK_TIMEOUT``); longer is a one-line :class:`FetchError` naming the lock.

    A no-op where fcntl is unavailable.
    """
    wait = lock_wait() if wait is None else wait
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        end, pause = time.monotonic() + wait, 0.01
        while not _try_flock(fd):
            if time.monotonic() >= end:
                raise FetchError(
                    f"gave up waiting for the lock {path} after {wait:g} s (ZOO_LOCK_TIMEOUT): "
                    "another zoo process holds it"
                )
            time.sleep(min(pause, max(end - time.monotonic(), 0)))
            pause = min(pause * 2, 0.25)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` if nobody holds one."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _sweep(folder: Path) -> None:
    """Remove the temp files in ``folder`` that nobody is writing: a temp whose file's lock
    (``locks/<sha256>.lock``) nobody holds is debris of a killed fetch (best effort; nothing
    is swept where there are no locks to tell)."""
    try:
        import fcntl  # noqa: F401 - only to know that locks work here
    except ImportError:  # pragma: no cover - not POSIX
        return
    try:
        temps = [p for p in folder.iterdir() if p.name.startswith(".")]
    except OSError:
        return
    for tmp in temps:
        if not tmp.name.endswith(_TEMP_SUFFIXES):
            continue
        with contextlib.suppress(OSError, FetchError), locked(_lock_of(tmp.name[1:]), wait=0):
            tmp.unlink(missing_ok=True)


def _download(ref: FileRef, target: Path) -> None:
    """Stream ``ref`` into a temp file beside ``target`` within the fetch deadline, verify size
    and sha256, rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    got = 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            Deadline(fetch_deadline(), f"fetching {ref.url}") as deadline,
            open_source(ref.url, deadline) as (stream, length),
        ):
            bar = _progress(ref, length)
            try:  # never stream more than the index promised
                for chunk in chunks(stream, ref.url, length, ref.size, deadline):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
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


def _progress(ref: FileRef, length: int | None):
    if ref.size < PROGRESS_MIN:
        return None
    from tqdm import tqdm

    name = urllib.parse.urlsplit(ref.url).path.rsplit("/", 1)[-1]
    return tqdm(
        total=length or ref.size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=name, file=sys.stderr, leave=False, disable=None,
    )  # fmt: skip


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class _Check:
    """What looking at a cached blob found: a hit, or why not (no ``problem``: it is missing)."""

    ok: bool
    seen: dict[str, int] | None = None  # the blob's fingerprint when it was looked at
    problem: str = ""
    wrong_size: bool = False  # the blob hashes right: the size asked for is what is wrong


def _check_hit(target: Path, ref: FileRef, name: str = "") -> _Check:
    """Verify a cached blob: by its recorded fingerprint while that holds, else by sha256.

    A blob that hashes right gets its fingerprint recorded (best effort: where the record cannot
    be written, as in a read-only cache, every hit re-hashes).
    """
    full = verify_mode() == "full"
    for _ in range(3):  # a blob that changes while it is hashed is looked at again
        seen = _stat_fingerprint(target)
        if seen is None:
            return _Check(False)
        record, written_ns = _read_record(target)
        stale = _stale(record, written_ns, ref.sha256, seen)
        if seen["size"] != ref.size:
            problem = f"size mismatch: expected {ref.size} bytes, got {seen['size']}"
            intact = not stale or file_sha256(target) == ref.sha256
            return _Check(False, seen, problem, intact and _stat_fingerprint(target) == seen)
        if not stale and not full:
            return _Check(True, seen)
        get_logger(__name__).debug(f"re-hashing {target} ({stale or 'ZOO_VERIFY=full'})")
        got = file_sha256(target)
        if _stat_fingerprint(target) != seen:
            continue
        if got != ref.sha256:
            return _Check(False, seen, f"sha256 mismatch: expected {ref.sha256}, got {got}")
        if stale:
            _record_quietly(target, ref.sha256, ref.url, name, record, seen)
        return _Check(True, seen)
    return _Check(False, seen, "it kept changing while being verified")


def _stat_fingerprint(path: Path) -> dict[str, int] | None:
    """:func:`_fingerprint` of ``path``, ``None`` when it cannot be read."""
    try:
        return _fingerprint(path.stat())
    except OSError:  # missing, or a cache dir that cannot exist (reported when writing)
        return None


def _fingerprint(st: os.stat_result) -> dict[str, int]:
    """What any change to a file moves: size, ``mtime_ns``, ``ctime_ns`` and inode."""
    return {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
    }  # fmt: skip


def _stale(record: dict[str, Any], written_ns: int, sha256: str, seen: dict[str, int]) -> str:
    """Why the record cannot vouch for a blob whose fingerprint is ``seen`` ("" when it can)."""
    recorded = record.get("fingerprint")
    if record.get("sha256") != sha256 or not isinstance(recorded, dict):
        return "no fingerprint recorded"
    if any(recorded.get(key) != value for key, value in seen.items()):
        return "changed since its fingerprint was recorded"
    if written_ns <= seen["ctime_ns"]:  # a change later in that clock tick would not show
        return "fingerprint recorded in the clock tick of its last change"
    return ""


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of the file at ``path``, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _lock_path(ref: FileRef) -> Path:
    return _lock_of(ref.sha256)


def _lock_of(name: str) -> Path:
    """The lock of a cache file (its blob, record, temp or index copy) named ``name``: by the
    part before its first dot (a sha256, or an index copy's key)."""
    return cache_dir() / "locks" / f"{name.split('.', 1)[0]}.lock"


def _read_record(target: Path) -> tuple[dict[str, Any], int]:
    """A blob's JSON record and when it was written (``{}``, 0 when missing or unreadable).

    Records written before fingerprints were (name, url, sha256, size, fetched) read the same.
    """
    try:
        with open(_record_path(target), "rb") as fh:
            written_ns = os.fstat(fh.fileno()).st_mtime_ns
            data = fh.read(RECORD_MAX + 1)
        record = loads(data, max_bytes=RECORD_MAX)
    except (OSError, ValueError):  # JSONLimitError: not JSON, too large or too deep
        return {}, 0
    return (record, written_ns) if isinstance(record, dict) else ({}, 0)


def _write_record(
    target: Path,
    sha256: str,
    url: str,
    name: str,
    previous: dict[str, Any] | None = None,
    seen: dict[str, int] | None = None,
) -> None:
    """Record what ``target`` hashes to and its fingerprint (``seen``, else its stat now).

    A re-hash keeps the name, URL and fetch time of the ``previous`` record.
    """
    from datetime import UTC, datetime

    from zoo._util.atomic import write_json

    now = datetime.now(UTC).isoformat(timespec="seconds")
    previous = previous or {}
    fingerprint = seen or _fingerprint(target.stat())
    record = {
        "name": previous.get("name") or name, "url": previous.get("url") or url,
        "sha256": sha256, "size": fingerprint["size"],
        "fetched": previous.get("fetched") or now, "verified": now, "fingerprint": fingerprint,
    }  # fmt: skip
    write_json(_record_path(target), record)


def _record_quietly(
    target: Path, sha256: str, url: str, name: str, previous: dict[str, Any], seen: dict[str, int]
) -> None:
    """:func:`_write_record` after a re-hash; a cache that cannot record re-hashes every hit."""
    try:
        _write_record(target, sha256, url, name, previous, seen)
    except OSError as exc:
        get_logger(__name__).debug(
            f"cannot record the fingerprint of {target} ({exc.strerror or exc}); "
            "every hit on it re-hashes"
        )


def _remove_blob(target: Path) -> None:
    target.unlink(missing_ok=True)
    _record_path(target).unlink(missing_ok=True)


def _discard(target: Path, ref: FileRef, seen: dict[str, int] | None) -> bool:
    """Remove a blob found bad unless another process replaced it meanwhile (best effort);
    return whether it is gone."""
    with contextlib.suppress(OSError, FetchError), locked(_lock_path(ref)):
        if _stat_fingerprint(target) == seen:
            _remove_blob(target)
    return not target.exists()


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
        record, _ = _read_record(path)
        sha = path.name.split(".", 1)[0]
        out.append(
            CachedFile(
                path, sha, path.stat().st_size, record.get("name", ""), record.get("url", "")
            )
        )
    return out


def verify_cache(remove: bool = True) -> list[tuple[CachedFile, str]]:
    """Re-hash every cached file; return the bad ones with the reason (removed by default).

    This catches rot that changed no metadata, which a hit's fingerprint check cannot see; a
    good file's fingerprint is recorded afresh (best effort), so later hits need no re-hash.
    """
    bad = []
    for item in cached_files():
        seen = _stat_fingerprint(item.path)
        try:
            got = file_sha256(item.path)
        except FileNotFoundError:  # removed meanwhile (another zoo cache verify / clear)
            continue
        if got != item.sha256:
            bad.append((item, f"sha256 mismatch: expected {item.sha256}, got {got}"))
            if remove:
                _remove_blob(item.path)
        elif seen is not None and _stat_fingerprint(item.path) == seen:
            record, _ = _read_record(item.path)
            _record_quietly(item.path, item.sha256, item.url, item.name, record, seen)
    return bad


def clear_cache() -> int:
    """Remove the whole hub cache; return the number of bytes freed."""
    root = cache_dir()
    if not root.exists():
        return 0
    freed = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    shutil.rmtree(root)
    return freed


def _not_cached(what: str) -> FetchError:
    """The error for a file that offline mode cannot serve."""
    return FetchError(
        f"offline (ZOO_OFFLINE) and {what} is not in the cache ({cache_dir()}); "
        "fetch it once with network access"
    )


def _warn_refetch(what: str, target: Path | None, problem: str) -> None:
    """Say once that a corrupt cached copy is being fetched again."""
    get_logger(__name__).warning(
        f"cached copy of {what} ({target}) is corrupt ({problem}); fetching it again"
    )
