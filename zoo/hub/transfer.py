"""Bounded reads of URLs and local files: every transfer has a deadline and a byte cap.

:func:`open_source` opens an ``http(s)://`` URL or a local path; :func:`chunks` reads it. An HTTP
read times out per socket operation after ``$ZOO_HTTP_TIMEOUT`` seconds, and a whole transfer
after its :class:`Deadline` (``$ZOO_FETCH_DEADLINE`` for a file): a watchdog shuts the socket down
when it passes, so a server trickling one byte at a time cannot keep a fetch alive. Redirects
stay within ``http(s)`` and the origin (scheme, host, port) of the URL asked for. A local source
must be a regular file (a FIFO or a device such as ``/dev/zero`` is refused, never opened for
blocking reads). Bad values of these variables are one-line usage errors. This module does not
import torch.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from zoo._util.values import env_seconds
from zoo.errors import FetchError
from zoo.hub.entries import local_path, origin

__all__ = [
    "CHUNK",
    "FETCH_DEADLINE",
    "INDEX_DEADLINE",
    "TIMEOUT",
    "Deadline",
    "chunks",
    "fetch_deadline",
    "http_timeout",
    "is_offline",
    "lock_wait",
    "network_error",
    "open_source",
    "read_all",
]

TIMEOUT = 30.0  # seconds per socket operation ($ZOO_HTTP_TIMEOUT)
FETCH_DEADLINE = 3600.0  # seconds for one whole file download ($ZOO_FETCH_DEADLINE)
INDEX_DEADLINE = 60.0  # seconds for a registry index (or $ZOO_FETCH_DEADLINE when shorter)
CHUNK = 1 << 20


def http_timeout() -> float:
    """Seconds one socket operation may take: ``$ZOO_HTTP_TIMEOUT``, else :data:`TIMEOUT`."""
    return env_seconds("ZOO_HTTP_TIMEOUT", TIMEOUT)


def fetch_deadline() -> float:
    """Seconds one file download may take: ``$ZOO_FETCH_DEADLINE``, else :data:`FETCH_DEADLINE`."""
    return env_seconds("ZOO_FETCH_DEADLINE", FETCH_DEADLINE)


def lock_wait() -> float:
    """Seconds to wait for a cache lock: ``$ZOO_LOCK_TIMEOUT``, else as long as the download
    its holder may be doing can take (the fetch deadline plus one socket timeout)."""
    return env_seconds("ZOO_LOCK_TIMEOUT", fetch_deadline() + http_timeout())


class Deadline:
    """The overall time limit of one transfer: a watchdog shuts its sockets down when it passes.

    Use as a context manager around the transfer; :meth:`check` raises the error naming it.
    """

    def __init__(self, seconds: float, what: str, env: str = "ZOO_FETCH_DEADLINE") -> None:
        self.seconds, self.what, self.env = seconds, what, env
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None  # started with the first socket

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def attach(self, sock: socket.socket) -> None:
        """Watch a connection's socket: shut down when the deadline passes."""
        with self._lock:
            self._sockets.append(sock)
            if self._timer is None:
                self._timer = threading.Timer(max(self.end - time.monotonic(), 0), self._expire)
                self._timer.daemon = True
                self._timer.start()
            if not self.expired:
                return
        self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.end

    def check(self) -> None:
        """Raise the deadline's :class:`FetchError` once it has passed."""
        if self.passed():
            raise FetchError(
                f"{self.what}: gave up after the {self.seconds:g} s download deadline "
                f"({self.env}); the source is too slow or stalled"
            )


# ---------------------------------------------------------------- opening


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else ``$ZOO_OFFLINE`` (any value but empty/0)."""
    if offline is not None:
        return offline
    return os.environ.get("ZOO_OFFLINE", "") not in ("", "0", "false", "no")


@contextlib.contextmanager
def open_source(
    url: str, deadline: Deadline, what: str = ""
) -> Iterator[tuple[BinaryIO, int | None]]:
    """A readable stream for an ``http(s)://`` URL or a local path/``file://`` URL, and its
    announced length (``None`` when unknown). Errors are one-line :class:`FetchError`\\ s,
    naming the source as ``what url`` (``registry index /x/index.json``)."""
    if urllib.parse.urlsplit(url).scheme in ("http", "https"):
        with _open_url(url, deadline) as resp:
            length = resp.headers.get("Content-Length")
            yield resp, int(length) if length and length.isdigit() else None
        return
    if url[:5].lower() == "hf://":  # resolved through huggingface_hub's cache (zoo.hub.hf)
        from zoo.hub.hf import download

        with _open_local(download(url, offline=is_offline()), what, url) as (fh, size):
            yield fh, size
        return
    with _open_local(local_path(url), what, url) as (fh, size):
        yield fh, size


@contextlib.contextmanager
def _open_local(path: Path, what: str, url: str) -> Iterator[tuple[BinaryIO, int]]:
    """A regular file opened without blocking (a FIFO or device is refused), and its size."""
    name = f"{what} {url}".lstrip()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise FetchError(f"{what} not found: {url}".lstrip()) from None
    except OSError as exc:
        raise FetchError(f"cannot read {name}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FetchError(f"cannot read {name}: not a regular file")
        os.set_blocking(fd, True)
        yield fh, st.st_size


class _Watched:
    """A urllib handler mixin: every connection it opens is attached to the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        deadline = self.deadline

        class Connection(http_class):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                deadline.attach(self.sock)

        return super().do_open(Connection, req, **kwargs)  # type: ignore[misc]


class _HTTP(_Watched, urllib.request.HTTPHandler):
    pass


class _HTTPS(_Watched, urllib.request.HTTPSHandler):
    pass


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to ``http(s)`` under the origin of the URL first asked for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):  # the scheme too: http(s) only
            raise FetchError(
                f"refusing the redirect of {req.full_url} to {target}: a redirect must stay "
                "under the origin (scheme, host and port) of the URL"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open_url(url: str, deadline: Deadline) -> Any:
    """``urlopen`` with a User-Agent, the socket timeout and the deadline's watchdog; proxies
    from the environment are honoured."""
    from zoo import __version__

    timeout = http_timeout()
    request = urllib.request.Request(url, headers={"User-Agent": f"zoo/{__version__} (+urllib)"})
    # a fresh opener per call reads *_proxy / no_proxy from the environment as it is now
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler(), _HTTP(deadline), _HTTPS(deadline), _SameOrigin()
    )
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FetchError(f"not found (HTTP 404): {url}") from None
        raise FetchError(f"HTTP {exc.code} {exc.reason} fetching {url}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        deadline.check()
        raise network_error(url, exc) from None


def network_error(url: str, exc: BaseException) -> FetchError:
    """A one-line :class:`FetchError` for a failed transfer of ``url``."""
    reason = getattr(exc, "reason", None) or exc
    return FetchError(f"network failure fetching {url}: {type(exc).__name__}: {reason}")


# ---------------------------------------------------------------- reading


def chunks(
    stream: BinaryIO, url: str, length: int | None, limit: int, deadline: Deadline
) -> Iterator[bytes]:
    """The chunks of ``stream``, stopping once more than ``limit`` bytes came (the caller
    says what that means). A body shorter than its announced ``length``, a read error or
    the deadline is a one-line :class:`FetchError` naming ``url``."""
    got = 0
    while got <= limit:
        try:
            chunk = stream.read(CHUNK)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            deadline.check()
            raise network_error(url, exc) from None
        deadline.check()
        if not chunk:
            if length is not None and got < length:
                raise FetchError(
                    f"network failure fetching {url}: connection closed after {got} of "
                    f"{length} bytes"
                )
            return
        got += len(chunk)
        yield chunk


def read_all(url: str, limit: int, what: str, env: str) -> bytes:
    """The whole of a small source (a registry index): at most ``limit`` bytes (``$env`` sets
    it) within the index deadline, else a one-line :class:`FetchError`."""
    seconds = min(INDEX_DEADLINE, fetch_deadline())
    with (
        Deadline(seconds, f"fetching {what} {url}") as deadline,
        open_source(url, deadline, what) as src,
    ):
        stream, length = src
        if length is not None and length > limit:
            raise FetchError(f"{what} {url} is larger than the {limit:,}-byte limit ({env})")
        data = b"".join(chunks(stream, url, length, limit, deadline))
    if len(data) > limit:
        raise FetchError(f"{what} {url} is larger than the {limit:,}-byte limit ({env})")
    return data
