"""Pretrained registries and the verified, content-addressed download cache.

Registries, searched in this order (like ``PATH``: the first one naming an entry wins):

1. ``registry=`` arguments / ``--registry`` options, in order;
2. ``$ZOO_REGISTRY`` (comma-separated), in order;
3. the bundled registry (package ``zoo_registry``: the repo's ``registry/``);
4. ``pretrained=[...]`` declarations in plugins' model metadata.

So a registry you add explicitly overrides the bundled one. When two sources provide the same
``model.tag`` with different contents, the later one is shadowed and one ``zoo: warning:`` line
on stderr names both (once per process). A ``$ZOO_REGISTRY`` registry that cannot be read
(missing or malformed index, unreachable URL) is skipped with one warning line, so it cannot
break unrelated commands; looking up a name no readable registry has then fails with that
registry's error. Registries passed explicitly (``registry=``, ``--registry``) and the bundled
one are never skipped: their errors are raised.

A registry is a directory, a ``file://`` URL or an ``http(s)://`` URL holding ``index.json``
(or the URL of the index itself). Files are cached under ``$ZOO_HOME/hub`` (else
``$XDG_CACHE_HOME/zoo/hub``) as ``blobs/<sha256><suffix>``: downloaded to a unique temp file
in that directory, checked for full sha256 and size, then renamed into place, under a per-file
``flock`` so concurrent fetches download once. ``ZOO_OFFLINE=1`` never touches the network.
This module does not import torch.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import FetchError, UnknownNameError, UsageError, ZooError

SCHEMA = 1
BUNDLED = "zoo"
TIMEOUT = 30.0
CHUNK = 1 << 20
PROGRESS_MIN = 4 << 20  # show a progress bar for files of at least 4 MiB
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------- entries


@dataclass(frozen=True)
class FileRef:
    """One file of a pretrained entry: where it lives (absolute) and what it must hash to."""

    url: str
    sha256: str
    size: int

    @property
    def suffix(self) -> str:
        name = urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]
        suffix = "".join(Path(name).suffixes[-1:])
        return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", suffix) else ""

    @property
    def is_remote(self) -> bool:
        return urllib.parse.urlsplit(self.url).scheme in ("http", "https")


@dataclass(frozen=True)
class PretrainedEntry:
    """A published set of weights for one model (``model.tag``)."""

    name: str
    model: str
    files: tuple[FileRef, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    dataset: str | None = None
    license: str | None = None
    recipe: str | None = None
    created: str | None = None
    summary: str = ""
    registry: str = BUNDLED  # the registry's name, or the declaring plugin
    source: str = ""  # where the entry came from (index location or "plugin:<name>")

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: name, kind, plugin, summary, tasks, model, dataset, metrics..."""
        tasks = _tasks(self)
        return {
            "name": self.name,
            "kind": "pretrained",
            "plugin": self.registry,
            "summary": _summary(self, tasks),
            "tasks": tasks,
            "model": self.model,
            "tag": self.tag,
            "dataset": self.dataset,
            "metrics": dict(self.metrics),
            "kwargs": dict(self.kwargs),
            "license": self.license,
            "recipe": self.recipe,
            "created": self.created,
            "source": self.source,
            "files": [{"url": f.url, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


def _summary(entry: PretrainedEntry, tasks: list[str]) -> str:
    """The entry's summary (or model + dataset) followed by its headline metrics."""
    from zoo.tasks import TASKS

    text = entry.summary or (
        f"{entry.model} trained on {entry.dataset}" if entry.dataset else entry.model
    )
    primary = TASKS[tasks[0]].primary_metric if len(tasks) == 1 and tasks[0] in TASKS else None
    keys = sorted((k for k in entry.metrics if k != "loss"), key=lambda k: k != primary)
    shown = [f"{k}={entry.metrics[k]:.4g}" for k in keys[:2]]
    return f"{text} ({', '.join(shown)})" if shown else text


def _tasks(entry: PretrainedEntry) -> list[str]:
    from zoo.plugins import get_registry

    registry = get_registry()
    for kind, name in (("dataset", entry.dataset), ("model", entry.model)):
        if name and registry.find(name):
            found = [e for e in registry.find(name) if e.kind == kind]
            if found:
                return list(found[0].tasks)
    return []


# ---------------------------------------------------------------- registries


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


def bundled_index() -> str:
    """Location of the bundled registry's ``index.json`` (works from any kind of install)."""
    from importlib.resources import files

    root = files("zoo_registry")
    return str(Path(str(root)) / "index.json")


def registry_locations(registry: str | list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Index locations in search order: explicit, ``$ZOO_REGISTRY``, then the bundled one."""
    return [loc for loc, _ in _sources(registry)]


def _sources(registry: str | list[str] | tuple[str, ...] | None) -> list[tuple[str, str]]:
    """``(index location, origin)`` in search order, without repeats.

    ``origin`` is ``"argument"``, ``"ZOO_REGISTRY"`` or ``"bundled"``. A ``$ZOO_REGISTRY``
    value that is not even a valid location keeps its raw text (reading it fails later).
    """
    explicit = [registry] if isinstance(registry, str) else list(registry or [])
    env = [p.strip() for p in os.environ.get("ZOO_REGISTRY", "").split(",") if p.strip()]
    raw = [(r, "argument") for r in explicit]
    raw += [(r, "ZOO_REGISTRY") for r in env]
    raw.append((bundled_index(), "bundled"))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for loc, origin in raw:
        try:
            loc = _index_location(loc)
        except FetchError:
            if origin != "ZOO_REGISTRY":
                raise
        if loc not in seen:
            seen.add(loc)
            out.append((loc, origin))
    return out


def _index_location(loc: str) -> str:
    """A registry given as dir/URL -> the location of its ``index.json``."""
    parts = urllib.parse.urlsplit(loc)
    if parts.scheme in ("http", "https"):
        return loc if parts.path.endswith(".json") else loc.rstrip("/") + "/index.json"
    path = _local_path(loc)
    return str(path if path.suffix == ".json" else path / "index.json")


def _local_path(loc: str) -> Path:
    parts = urllib.parse.urlsplit(loc)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise FetchError(
            f"unsupported registry or file location {loc!r} (use a path, file:// or http(s)://)"
        )
    return Path(loc).expanduser()


def load_index(location: str, offline: bool | None = None) -> list[PretrainedEntry]:
    """Read and validate one registry index (HTTP indexes are cached for offline use)."""
    if urllib.parse.urlsplit(location).scheme in ("http", "https"):
        data = _remote_index(location, is_offline(offline))
    else:
        path = _local_path(location)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FetchError(f"registry index not found: {path}") from None
        except OSError as exc:
            raise FetchError(f"cannot read registry index {path}: {exc.strerror or exc}") from None
    return parse_index(data, location)


def _remote_index(url: str, offline: bool) -> bytes:
    copy = cache_dir() / "indexes" / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")
    if offline:
        if copy.is_file():
            return copy.read_bytes()
        raise FetchError(f"offline (ZOO_OFFLINE) and the registry index {url} was never fetched")
    try:
        with _open_url(url) as resp:
            data = resp.read()
    except FetchError:
        if copy.is_file():
            warnings.warn(f"registry {url} unreachable; using the cached index", stacklevel=3)
            return copy.read_bytes()
        raise
    from zoo.fileio import write_bytes

    _make_cache_dir(copy.parent)
    try:
        write_bytes(copy, data)
    except OSError as exc:
        raise FetchError(f"cannot write to the cache ({copy}): {exc.strerror or exc}") from None
    return data


def parse_index(data: bytes | str, location: str) -> list[PretrainedEntry]:
    """Validate an index's schema and entries; relative file URLs resolve against it."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FetchError(f"malformed registry index {location}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FetchError(
            f"malformed registry index {location}: expected {{'schema', 'entries': [...]}}"
        )
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise FetchError(
            f"registry index {location} has schema {schema!r}; this zoo reads schema {SCHEMA}"
        )
    name = doc.get("name") or _default_registry_name(location)
    entries = []
    for i, raw in enumerate(doc["entries"]):
        entries.append(
            make_entry(raw, base=location, registry=str(name), where=f"{location} entry {i}")
        )
    return entries


def _default_registry_name(location: str) -> str:
    if location == bundled_index():
        return BUNDLED
    parts = urllib.parse.urlsplit(location)
    tail = [p for p in parts.path.split("/") if p][:-1]
    return (tail[-1] if tail else parts.netloc) or "registry"


def make_entry(raw: Any, *, base: str | None, registry: str, where: str) -> PretrainedEntry:
    """Validate one entry dict (index or plugin declaration); one-line errors naming ``where``."""

    def bad(msg: str) -> FetchError:
        return FetchError(f"malformed registry index {where}: {msg}")

    if not isinstance(raw, dict):
        raise bad("entry is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad(f"name {name!r} must be 'model.tag' in lower case")
    model = raw.get("model", name.split(".", 1)[0])
    if model != name.split(".", 1)[0]:
        raise bad(f"{name}: model {model!r} does not match the name")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise bad(f"{name}: files must be a non-empty list")
    refs = []
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("url"), str):
            raise bad(f"{name}: each file needs a url")
        sha, size = f.get("sha256"), f.get("size")
        if not isinstance(sha, str) or not _SHA.match(sha.lower()):
            raise bad(f"{name}: file {f['url']!r} needs a full 64-hex sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"{name}: file {f['url']!r} needs an integer size")
        refs.append(FileRef(_resolve(f["url"], base, where), sha.lower(), size))
    for key, kind in (("kwargs", dict), ("metrics", dict)):
        if not isinstance(raw.get(key, {}), kind):
            raise bad(f"{name}: {key} must be an object")
    metrics = raw.get("metrics", {})
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()):
        raise bad(f"{name}: metrics must be numbers")
    for key in ("dataset", "license", "recipe", "created", "summary"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise bad(f"{name}: {key} must be a string")
    return PretrainedEntry(
        name=name,
        model=model,
        files=tuple(refs),
        kwargs=dict(raw.get("kwargs", {})),
        metrics={k: float(v) for k, v in metrics.items()},
        dataset=raw.get("dataset"),
        license=raw.get("license"),
        recipe=raw.get("recipe"),
        created=raw.get("created"),
        summary=raw.get("summary") or "",
        registry=registry,
        source=str(base or f"plugin:{registry}"),
    )


def _resolve(url: str, base: str | None, where: str) -> str:
    """Absolute URLs pass; relative ones must stay inside the registry (no ``..``, no ``/x``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https", "file"):
        return url
    if parts.scheme and len(parts.scheme) > 1:
        raise FetchError(f"malformed registry index {where}: unsupported url scheme in {url!r}")
    if base is None:
        if Path(url).is_absolute():
            return url
        raise FetchError(f"malformed registry index {where}: {url!r} must be an absolute URL")
    segments = urllib.parse.unquote(url).replace("\\", "/").split("/")
    if url.startswith(("/", "\\")) or ".." in segments or parts.netloc:
        raise FetchError(f"registry index {where}: file url {url!r} escapes the registry")
    if urllib.parse.urlsplit(base).scheme in ("http", "https"):
        return urllib.parse.urljoin(base, url)
    return str(_local_path(base).parent / Path(*[s for s in segments if s not in ("", ".")]))


def _plugin_entries() -> list[PretrainedEntry]:
    """Pretrained entries declared as ``pretrained=[{...}]`` in plugins' model metadata."""
    from zoo.plugins import get_registry

    out = []
    for model in get_registry().entries("model"):
        for i, raw in enumerate(model.meta.get("pretrained", ())):
            raw = dict(raw) if isinstance(raw, dict) else raw
            if isinstance(raw, dict):
                tag = raw.pop("tag", None)
                if tag and "name" not in raw:
                    raw["name"] = f"{model.name}.{tag}"
                raw.setdefault("model", model.name)
            try:
                entry = make_entry(
                    raw, base=None, registry=model.plugin,
                    where=f"plugin {model.plugin!r} model {model.name!r} pretrained[{i}]",
                )  # fmt: skip
            except FetchError as exc:
                warnings.warn(str(exc), stacklevel=2)
                continue
            out.append(entry)
    return out


_WARNED: set[str] = set()


def _warn(message: str) -> None:
    """One ``zoo: warning: ...`` line on stderr, at most once per process per message."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    print(f"zoo: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


@dataclass
class _Found:
    """Every readable entry by name, and the ``$ZOO_REGISTRY`` registries that were skipped."""

    entries: dict[str, PretrainedEntry]
    skipped: list[tuple[str, FetchError]]


def _collect(registry: str | list[str] | tuple[str, ...] | None, offline: bool | None) -> _Found:
    found: dict[str, PretrainedEntry] = {}
    skipped: list[tuple[str, FetchError]] = []
    for loc, origin in _sources(registry):
        try:
            entries = load_index(loc, offline)
        except FetchError as exc:
            if origin != "ZOO_REGISTRY":
                raise
            _warn(f"skipping registry {loc} (from ZOO_REGISTRY): {exc}")
            skipped.append((loc, exc))
            continue
        for entry in entries:
            _keep_first(found, entry)
    for entry in _plugin_entries():
        _keep_first(found, entry)
    return _Found(found, skipped)


def _keep_first(found: dict[str, PretrainedEntry], entry: PretrainedEntry) -> None:
    """Add ``entry`` unless an earlier source has its name; warn when that hides a different one."""
    first = found.setdefault(entry.name, entry)
    if first is not entry and _contents(first) != _contents(entry):
        _warn(
            f"pretrained entry {entry.name} from {_where(first)} shadows the one from "
            f"{_where(entry)} (the first registry in search order wins)"
        )


def _contents(entry: PretrainedEntry) -> tuple:
    return entry.model, entry.kwargs, tuple((f.sha256, f.size) for f in entry.files)


def _where(entry: PretrainedEntry) -> str:
    kind, _, name = entry.source.partition(":")
    return f"plugin {name}" if kind == "plugin" else f"registry {entry.source}"


def all_entries(
    registry: str | list[str] | tuple[str, ...] | None = None, offline: bool | None = None
) -> dict[str, PretrainedEntry]:
    """Every pretrained entry by name; earlier registries win over later ones.

    Unreadable ``$ZOO_REGISTRY`` registries are skipped with a warning (see the module doc).
    """
    return _collect(registry, offline).entries


def list_pretrained(
    pattern: str | list[str] | None = None, registry: str | list[str] | None = None
) -> list[str]:
    """Pretrained entry names (``model.tag``) matching an fnmatch ``pattern``, sorted."""
    names = sorted(all_entries(registry))
    if pattern is None:
        return names
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p.lower()) for p in patterns)]


def get_pretrained(
    name: str, registry: str | list[str] | None = None, offline: bool | None = None
) -> PretrainedEntry:
    """The entry called ``name`` (``model.tag``); unknown names get close matches."""
    found = _collect(registry, offline)
    entries = found.entries
    key = name.strip().lower()
    if key in entries:
        return entries[key]
    if found.skipped:  # the skipped registry may be the one that has it: say why it was not read
        loc, exc = found.skipped[0]
        raise FetchError(f"cannot look up pretrained entry {name!r}: {exc} (from ZOO_REGISTRY)")
    close = difflib.get_close_matches(key, list(entries), n=3, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else "; see `zoo list pretrained`"
    raise UnknownNameError(f"unknown pretrained entry {name!r}{hint}")


# ---------------------------------------------------------------- fetch


def fetch(name: str, registry: str | list[str] | None = None, offline: bool | None = None) -> Path:
    """Fetch every file of pretrained entry ``name`` into the cache; return the first (weights)."""
    return fetch_entry(get_pretrained(name, registry, offline), offline)


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
        with _locked(lock):
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
    from zoo.weights import os_reason

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
def _locked(path: Path) -> Iterator[None]:
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
    path = _local_path(url)
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

    from zoo.fileio import write_json

    record = {
        "name": name, "url": ref.url, "sha256": ref.sha256, "size": ref.size,
        "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    write_json(target.with_name(target.name + ".json"), record)


# ---------------------------------------------------------------- cache management


@dataclass
class CachedFile:
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


# ---------------------------------------------------------------- publish


def publish(
    source: str | os.PathLike,
    registry: str | os.PathLike,
    tag: str,
    *,
    force: bool = False,
    license: str | None = None,
    recipe: str | os.PathLike | None = None,
    summary: str | None = None,
) -> PretrainedEntry:
    """Copy a weights file (or a run dir's ``model.safetensors``) into a local registry.

    The entry (``model.tag``) takes its model, kwargs, dataset and metrics from the file's
    metadata, completed from the run's ``run.json`` when ``source`` is a run dir. ``index.json``
    is rewritten atomically under a lock; an existing entry is replaced only with ``force``.
    """
    from zoo import rundir, weights
    from zoo.fileio import atomic_path, write_json

    weights_path = rundir.resolve_weights(source)
    run = _run_of(source)
    kept = Path(source) / rundir.RECIPE
    recipe = recipe or (kept if kept.is_file() else None)
    meta = weights.read_metadata(weights_path)
    if not meta.get("model"):
        why = (
            "was exported from a module not built by zoo.create_model, so it names no model entry"
            if meta.get("format") == weights.FORMAT
            else "has no zoo model metadata (it was not written by zoo.export)"
        )
        raise UsageError(f"{weights_path} {why}; only weights of zoo models can be published")
    name = f"{meta['model']}.{tag}"
    if not _NAME.match(name):
        raise UsageError(f"tag {tag!r} must be lower-case letters, digits and '-'")
    root = _local_path(str(registry))
    if root.suffix == ".json":
        root = root.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(
            f"cannot create registry directory {root}: {weights.os_reason(exc, root / 'x')}"
        ) from None
    try:
        with _locked(root):  # the directory itself: publishing leaves no lock file behind
            index_path = root / "index.json"
            doc = _read_index_doc(index_path)
            existing = [e for e in doc["entries"] if isinstance(e, dict) and e.get("name") == name]
            if existing and not force:
                raise UsageError(f"{name} is already in {index_path}; use --force to replace it")
            filename = f"{name}.safetensors"
            digest, size = hashlib.sha256(), 0
            with (
                atomic_path(root / filename) as tmp,
                open(weights_path, "rb") as src,
                open(tmp, "wb") as dst,
            ):
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    dst.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            raw: dict[str, Any] = {
                "name": name,
                "model": meta["model"],
                "kwargs": meta.get("kwargs") or {},
                "files": [{"url": filename, "sha256": digest.hexdigest(), "size": size}],
                "metrics": meta.get("metrics") or run.get("result", {}).get("metrics", {}),
                "dataset": meta.get("dataset") or run.get("settings", {}).get("dataset"),
                "license": license or (existing[0].get("license") if existing else None) or "MIT",
                "recipe": None,
                "created": meta.get("created"),
            }
            if recipe and not Path(recipe).is_file():
                raise UsageError(f"no such recipe file: {recipe}")
            summary = summary or (existing[0].get("summary") if existing else None)
            summary = summary or (_recipe_description(Path(recipe)) if recipe else None)
            if summary:
                raw["summary"] = summary
            if recipe:
                recipe_src = Path(recipe)
                dest = root / "recipes" / f"{name}.toml"
                if recipe_src.resolve() != dest.resolve():
                    from zoo.fileio import write_bytes

                    write_bytes(dest, recipe_src.read_bytes())
                raw["recipe"] = f"recipes/{name}.toml"
            entry = make_entry(raw, base=str(index_path), registry="", where=str(index_path))
            doc["entries"] = sorted(
                [e for e in doc["entries"] if not (isinstance(e, dict) and e.get("name") == name)]
                + [raw],
                key=lambda e: str(e.get("name", "")) if isinstance(e, dict) else "",
            )
            write_json(index_path, doc)
    except OSError as exc:
        where = exc.filename or root
        raise ZooError(
            f"cannot write to registry {root} ({where}): {exc.strerror or exc}"
        ) from None
    return entry


def _recipe_description(path: Path) -> str | None:
    """A recipe's ``description`` (the entry's summary when none is given)."""
    import tomllib

    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("description")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def _run_of(source: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` beside a run dir's weights ({} for a bare weights file)."""
    from zoo import rundir

    path = Path(source)
    if not (path / rundir.RUN_JSON).is_file():
        return {}
    try:
        return rundir.read_run_json(path)
    except ValueError as exc:
        raise UsageError(f"{path / rundir.RUN_JSON} is not valid JSON ({exc})") from None


def _read_index_doc(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema": SCHEMA, "entries": []}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FetchError(f"malformed registry index {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FetchError(f"malformed registry index {path}: expected an object with entries")
    if doc.get("schema") != SCHEMA:
        raise FetchError(f"registry index {path} has schema {doc.get('schema')!r}, not {SCHEMA}")
    return doc
