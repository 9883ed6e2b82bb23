"""Hostile input to the pretrained hub (issue 11): indexes, downloads, the cache, the CLI.

One parametrised test per class of the issue; each case id names the input. Every case runs
the real ``zoo`` CLI in a subprocess (bounded by a wall-clock timeout and an address-space
limit, so an old hang or runaway read is reported as such instead of taking the machine down)
against a real loopback HTTP server with fault modes, real FIFOs and devices, real SIGKILL and
a real read-only mount. A failure message starts with what went wrong: HANG, TRACEBACK,
WRONG EXIT, SILENT, LOSS, SIDE EFFECT or DEBRIS.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from zoo.hub.entries import bundled_index

RUN_TIMEOUT = 12  # s: anything slower than this is a hang here (the fixed code takes ~1 s)
MEMORY_LIMIT = 2 << 30  # bytes of address space for each zoo process
PIN = {"model": "mlp", "plugin": "workflow", "dist": "zoo"}  # an installed, first-party model


# ---------------------------------------------------------------- a server with fault modes


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes); ``server.modes[path]`` makes a path misbehave."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path
        server = self.server
        with server.lock:
            server.hits[path] += 1
        mode, body = server.modes.get(path, ""), server.files.get(path)
        if mode.startswith("redirect:"):
            self.send_response(302)
            self.send_header("Location", mode.partition(":")[2])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "endless":  # no length, never ends: only a cap stops the reader
            self._headers(None)
            with contextlib.suppress(OSError):
                while not server.stop.is_set():
                    self.wfile.write(b" " * 65536)
        elif body is None:
            self.send_error(404)
        elif mode == "truncated":  # promises the whole body, sends half, closes
            self._headers(len(body))
            self.wfile.write(body[: len(body) // 2])
        elif mode in ("stall", "slow"):  # half the body, then nothing until the test ends
            self._headers(len(body))
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            server.stop.wait(60)
        elif mode == "trickle":  # one byte every 0.2 s: each read is quick, the whole is not
            self._headers(len(body))
            with contextlib.suppress(OSError):
                for byte in body:
                    if server.stop.wait(0.2):
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
        else:
            self._headers(len(body))
            self.wfile.write(body)
        self.close_connection = True

    def _headers(self, length: int | None) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock, self.stop, self.hits = threading.Lock(), threading.Event(), Counter()
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"

    def put(self, path: str, data: bytes | str, mode: str = "") -> str:
        """Serve ``data`` at ``/path`` (in ``mode``); return its URL."""
        self.files["/" + path] = data.encode() if isinstance(data, str) else data
        self.modes["/" + path] = mode
        return self.url + path

    def put_index(self, entries: list[dict], path: str = "index.json", mode: str = "") -> str:
        return self.put(path, json.dumps({"schema": 2, "entries": entries}), mode)


@pytest.fixture
def server():
    servers = []

    def start() -> Server:
        httpd = Server()
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return httpd

    yield start
    for httpd in servers:
        httpd.stop.set()
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- running zoo


def entry(name: str, url: str, data: bytes = b"", *, size: int | None = None) -> dict:
    """An index entry for zoo's own ``mlp`` with one file at ``url`` holding ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    ref = {"url": url, "sha256": digest, "size": len(data) if size is None else size}
    return {"name": name, **PIN, "files": [ref]}


def write_registry(root: Path, entries: list[dict], files: dict[str, bytes] = {}) -> Path:  # noqa: B006
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    (root / "index.json").write_text(json.dumps({"schema": 2, "entries": entries}))
    return root


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def zoo(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT):
    """Run ``python -m zoo ARGS`` (ZOO_HOME and PYTHONPATH as this process has them) within
    :data:`MEMORY_LIMIT` (none of these commands imports torch); a run past ``timeout`` is a
    HANG failure."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_") or k == "ZOO_HOME"}
    full.update(env or {})
    try:
        return subprocess.run(
            [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full,
            cwd=cwd, timeout=timeout, preexec_fn=_limits,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"HANG: zoo {' '.join(args)} still running after {timeout} s")


def expect_error(result, code: int, *needles: str) -> str:
    """Exit ``code`` and stderr one ``error: ...`` line holding every needle; returns it."""
    assert "Traceback" not in result.stderr, f"TRACEBACK:\n{result.stderr[-1500:]}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == code, (
        f"WRONG EXIT {result.returncode} (want {code}):\n{result.stderr}"
    )
    assert len(errors) == 1, f"WRONG EXIT: want one error line, got:\n{result.stderr}"
    others = [line for line in result.stderr.splitlines() if not line.startswith("zoo: warning:")]
    assert others == errors, f"not one line:\n{result.stderr}"
    for needle in needles:
        assert needle in errors[0], f"SILENT: {needle!r} not in {errors[0]!r}"
    return errors[0]


def expect_ok(result, warnings: int | None = None, *needles: str) -> list[str]:
    """Exit 0, no traceback, ``warnings`` warning lines (if given) holding every needle."""
    assert "Traceback" not in result.stderr, f"TRACEBACK:\n{result.stderr[-1500:]}"
    assert result.returncode == 0, f"WRONG EXIT {result.returncode} (want 0):\n{result.stderr}"
    found = [line for line in result.stderr.splitlines() if line.startswith("zoo: warning:")]
    if warnings is not None:
        assert len(found) == warnings, f"want {warnings} warning(s), got:\n{result.stderr}"
    for needle in needles:
        assert any(needle in w for w in found), f"SILENT: no warning says {needle!r}:\n{found}"
    return found


def hub_dir() -> Path:
    return Path(os.environ["ZOO_HOME"]) / "hub"


def debris() -> list[str]:
    """Temp files left anywhere in the cache."""
    root = hub_dir()
    temps = (
        [p for p in root.rglob(".*") if p.name.endswith((".part", ".tmp"))] if root.exists() else []
    )
    return sorted(p.name for p in temps)


def blobs() -> list[str]:
    folder = hub_dir() / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def index_copies() -> list[Path]:
    folder = hub_dir() / "indexes"
    return (
        sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    )


def no_debris() -> None:
    assert not debris(), f"DEBRIS: {debris()}"


@contextlib.contextmanager
def holding_lock(sha256: str):
    """Hold the cache's lock of a blob, as a fetch in another process (or node) would."""
    path = hub_dir() / "locks" / f"{sha256}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        os.close(fd)


# ---------------------------------------------------------------- data must not act


def case_remote_index_names_a_local_file(tmp_path, server):
    """A remote index naming file:///... of a local file with the right sha256: before, the
    file was copied into the cache (exit 0)."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"local secret\n")
    s = server()
    s.put_index([entry("mlp.leak", secret.as_uri(), secret.read_bytes())])
    result = zoo(tmp_path, "fetch", "mlp.leak", "--registry", s.url)
    assert not blobs(), f"SIDE EFFECT: the local file was copied into the cache: {blobs()}"
    expect_error(result, 1, "not under the registry's origin")


def case_remote_index_names_dev_zero(tmp_path, server):
    s = server()
    s.put_index([entry("mlp.zero", "file:///dev/zero", b"", size=3_000_000)])
    result = zoo(tmp_path, "fetch", "mlp.zero", "--registry", s.url)
    expect_error(result, 1, "not under the registry's origin", "/dev/zero")
    no_debris()


def case_remote_index_names_a_fifo(tmp_path, server):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    s = server()
    s.put_index([entry("mlp.fifo", fifo.as_uri(), b"x")])
    expect_error(zoo(tmp_path, "fetch", "mlp.fifo", "--registry", s.url), 1, "origin")


def case_remote_index_names_another_host(tmp_path, server):
    s, other = server(), server()
    data = b"weights from elsewhere"
    url = other.put("w.bin", data)
    s.put_index([entry("mlp.other", url, data)])
    result = zoo(tmp_path, "fetch", "mlp.other", "--registry", s.url)
    assert other.hits["/w.bin"] == 0, "SIDE EFFECT: another origin was contacted"
    expect_error(result, 1, "origin")


def case_redirect_to_another_origin(tmp_path, server):
    s, other = server(), server()
    data = b"redirected weights"
    target = other.put("w.bin", data)
    s.put("w.bin", data, mode=f"redirect:{target}")
    s.put_index([entry("mlp.redirect", "w.bin", data)])
    result = zoo(tmp_path, "fetch", "mlp.redirect", "--registry", s.url)
    assert other.hits["/w.bin"] == 0, "SIDE EFFECT: the redirect to another origin was followed"
    expect_error(result, 1, "redirect")
    assert not blobs() and not debris()


def case_local_index_is_a_fifo(tmp_path, server):
    registry = tmp_path / "reg"
    registry.mkdir()
    os.mkfifo(registry / "index.json")
    result = zoo(tmp_path, "list", "pretrained", env={"ZOO_REGISTRY": str(registry)})
    expect_ok(result, 1, "not a regular file")
    result = zoo(tmp_path, "fetch", "mlp.x", "--registry", str(registry))
    expect_error(result, 1, "not a regular file")


def case_local_index_is_dev_zero(tmp_path, server):
    registry = tmp_path / "reg"
    registry.mkdir()
    (registry / "index.json").symlink_to("/dev/zero")
    result = zoo(tmp_path, "list", "pretrained", env={"ZOO_REGISTRY": str(registry)})
    expect_ok(result, 1, "not a regular file")


def case_local_registry_file_is_a_fifo(tmp_path, server):
    registry = tmp_path / "reg"
    write_registry(registry, [entry("mlp.fifo", "w.bin", b"x")])
    os.mkfifo(registry / "w.bin")
    expect_error(zoo(tmp_path, "fetch", "mlp.fifo", "--registry", str(registry)), 1, "regular")
    no_debris()


DATA_MUST_NOT_ACT = {
    "remote-index-file-url-local-file": case_remote_index_names_a_local_file,
    "remote-index-file-url-dev-zero": case_remote_index_names_dev_zero,
    "remote-index-file-url-fifo": case_remote_index_names_a_fifo,
    "remote-index-url-on-another-host": case_remote_index_names_another_host,
    "redirect-to-another-origin": case_redirect_to_another_origin,
    "local-index-is-a-fifo": case_local_index_is_a_fifo,
    "local-index-is-dev-zero": case_local_index_is_dev_zero,
    "local-registry-file-is-a-fifo": case_local_registry_file_is_a_fifo,
}


@pytest.mark.parametrize("case", DATA_MUST_NOT_ACT)
def test_data_must_not_act(case, tmp_path, server):
    DATA_MUST_NOT_ACT[case](tmp_path, server)


# ---------------------------------------------------------------- limits and deadlines


def _padded_index(n_bytes: int) -> str:
    doc = {"schema": 2, "entries": [], "padding": "x" * n_bytes}
    return json.dumps(doc)


def case_index_over_the_size_cap(tmp_path, server):
    s = server()
    s.put("index.json", _padded_index(40_000))
    env = {"ZOO_MAX_INDEX_BYTES": "20000"}
    result = zoo(tmp_path, "fetch", "mlp.x", "--registry", s.url, env=env)
    assert not index_copies(), "SIDE EFFECT: an index over the cap was cached"
    expect_error(result, 1, "20,000-byte limit", "ZOO_MAX_INDEX_BYTES")
    result = zoo(tmp_path, "list", "pretrained", env={**env, "ZOO_REGISTRY": s.url})
    expect_ok(result, 1, "skipping registry", "ZOO_MAX_INDEX_BYTES")


def case_endless_index_body(tmp_path, server):
    s = server()
    s.put("index.json", b"", mode="endless")
    env = {"ZOO_MAX_INDEX_BYTES": "1000000"}
    expect_error(zoo(tmp_path, "fetch", "mlp.x", "--registry", s.url, env=env), 1, "limit")
    assert not index_copies(), "SIDE EFFECT: an endless index was cached"


def case_malformed_index_is_never_cached(tmp_path, server):
    s = server()
    s.put("index.json", '{"schema": 2, "entries": [{"name": 1}]}')
    result = zoo(tmp_path, "fetch", "mlp.x", "--registry", s.url)
    assert not index_copies(), "SIDE EFFECT: an index that does not parse was cached"
    expect_error(result, 1, "malformed")


def case_deep_json_in_zoo_registry(tmp_path, server):
    registry = tmp_path / "deep"
    registry.mkdir()
    (registry / "index.json").write_text("[" * 2000 + "]" * 2000)
    env = {"ZOO_REGISTRY": str(registry)}
    for args in (["list"], ["info", "mlp"], ["fetch", "mlp.iris"]):
        expect_ok(zoo(tmp_path, *args, env=env), 1, "skipping registry", "deeper")


def case_deep_json_in_a_cache_record(tmp_path, server):
    s = server()
    data = b"weights" * 100
    s.put("w.bin", data)
    s.put_index([entry("mlp.rec", "w.bin", data)])
    expect_ok(zoo(tmp_path, "fetch", "mlp.rec", "--registry", s.url))
    sha = hashlib.sha256(data).hexdigest()
    (hub_dir() / "blobs" / f"{sha}.bin.json").write_text("[" * 5000 + "]" * 5000)
    result = zoo(tmp_path, "fetch", "mlp.rec", "--registry", s.url)
    expect_ok(result)
    assert s.hits["/w.bin"] == 1, "a re-hash that matched downloads nothing"


def case_list_400_http_entries_reads_the_index_once(tmp_path, server):
    s = server()
    s.put_index([entry(f"mlp.t{i}", "w.bin", b"w") for i in range(400)])
    result = zoo(tmp_path, "list", "pretrained", "--json", env={"ZOO_REGISTRY": s.url})
    expect_ok(result, 0)
    assert len([r for r in json.loads(result.stdout) if r["name"].startswith("mlp.t")]) == 400
    assert sum(s.hits.values()) == 1, f"SILENT: {sum(s.hits.values())} GETs for one listing"


def case_fetch_of_two_names_reads_the_index_once(tmp_path, server):
    s = server()
    data = b"shared weights"
    s.put("w.bin", data)
    s.put_index([entry("mlp.a", "w.bin", data), entry("mlp.b", "w.bin", data)])
    result = zoo(tmp_path, "fetch", "mlp.a", "mlp.b", "--registry", s.url)
    expect_ok(result, 0)
    assert len(result.stdout.split()) == 2
    assert s.hits["/index.json"] == 1, f"SILENT: {s.hits['/index.json']} GETs of the index"


def case_list_local_entries_is_linear(tmp_path, server):
    """In-process (no interpreter start-up): 4x the entries must not take 16x the time (the
    10,000-entry figure is in benchmarks/list_speed.py)."""
    code = (
        "import sys, time; from zoo.hub import index\n"
        "t = []\n"
        "for reg in sys.argv[1:]:\n"
        "    t0 = time.perf_counter(); n = len(index.pretrained_listing(None, reg))\n"
        "    t.append(time.perf_counter() - t0)\n"
        "print(t[0], t[1])\n"
    )
    regs = []
    for n in (2000, 8000):
        regs.append(
            str(
                write_registry(
                    tmp_path / f"r{n}", [entry(f"mlp.t{i}", "w.bin", b"w") for i in range(n)]
                )
            )
        )
    out = subprocess.run(
        [sys.executable, "-c", code, *regs], capture_output=True, text=True, cwd=tmp_path,
        timeout=60, check=True,
    )  # fmt: skip
    small, large = map(float, out.stdout.split())
    assert large < 8 * small, f"SILENT: 4x the entries took {large / small:.1f}x the time"
    assert large < 5.0, f"SILENT: listing 8,000 entries took {large:.1f} s"


def case_truncated_index_body_uses_the_cached_copy(tmp_path, server):
    s = server()
    s.put_index([entry("mlp.t1", "w.bin", b"w")])
    expect_ok(zoo(tmp_path, "list", "pretrained", env={"ZOO_REGISTRY": s.url}), 0)
    s.put_index([entry("mlp.t1", "w.bin", b"w"), entry("mlp.t2", "w.bin", b"w")], mode="truncated")
    for env in ({"ZOO_REGISTRY": s.url}, {}):
        args = ["list", "pretrained", "--json"] if env else ["fetch", "mlp.t1", "--registry", s.url]
        result = zoo(tmp_path, *args, env=env)
        if env:
            expect_ok(result, 1, "using the cached copy")
            assert "mlp.t1" in result.stdout
        else:  # the entry is there, its file is not: the index came from the cached copy
            line = expect_error(result, 1, "w.bin")
            assert "using the cached copy" in result.stderr, f"SILENT: {line}"


def case_stalled_index_body_uses_the_cached_copy(tmp_path, server):
    s = server()
    s.put_index([entry("mlp.t1", "w.bin", b"w")])
    expect_ok(zoo(tmp_path, "list", "pretrained", env={"ZOO_REGISTRY": s.url}), 0)
    s.put_index([entry("mlp.t1", "w.bin", b"w")], mode="stall")
    env = {"ZOO_REGISTRY": s.url, "ZOO_HTTP_TIMEOUT": "1"}
    result = zoo(tmp_path, "list", "pretrained", "--json", env=env)
    expect_ok(result, 1, "using the cached copy")
    assert "mlp.t1" in result.stdout


def case_trickling_download_hits_the_deadline(tmp_path, server):
    s = server()
    data = os.urandom(400)
    s.put("w.bin", data, mode="trickle")
    s.put_index([entry("mlp.slow", "w.bin", data)])
    env = {"ZOO_HTTP_TIMEOUT": "5", "ZOO_FETCH_DEADLINE": "1.5"}
    start = time.monotonic()
    result = zoo(tmp_path, "fetch", "mlp.slow", "--registry", s.url, env=env)
    took = time.monotonic() - start
    expect_error(result, 1, "ZOO_FETCH_DEADLINE", "w.bin")
    assert took < 8, f"HANG: the 1.5 s deadline ended the fetch after {took:.1f} s"
    no_debris()
    assert not blobs()


def case_lock_wait_is_bounded(tmp_path, server):
    s = server()
    data = b"locked weights"
    s.put("w.bin", data)
    s.put_index([entry("mlp.lock", "w.bin", data)])
    env = {"ZOO_LOCK_TIMEOUT": "1"}
    with holding_lock(hashlib.sha256(data).hexdigest()):
        result = zoo(tmp_path, "fetch", "mlp.lock", "--registry", s.url, env=env)
    expect_error(result, 1, "ZOO_LOCK_TIMEOUT", "lock")
    expect_ok(zoo(tmp_path, "fetch", "mlp.lock", "--registry", s.url, env=env))  # free again


def case_bad_timeout_values(tmp_path, server):
    s = server()
    data = b"w"
    s.put("w.bin", data)
    s.put_index([entry("mlp.env", "w.bin", data)])
    for name, value in (
        ("ZOO_HTTP_TIMEOUT", "abc"), ("ZOO_FETCH_DEADLINE", "-1"), ("ZOO_LOCK_TIMEOUT", "nan"),
        ("ZOO_MAX_INDEX_BYTES", "lots"),
    ):  # fmt: skip
        result = zoo(tmp_path, "fetch", "mlp.env", "--registry", s.url, env={name: value})
        expect_error(result, 2, name)


LIMITS_AND_DEADLINES = {
    "index-over-the-size-cap": case_index_over_the_size_cap,
    "index-body-endless": case_endless_index_body,
    "index-malformed-never-cached": case_malformed_index_is_never_cached,
    "json-2000-deep-in-zoo-registry": case_deep_json_in_zoo_registry,
    "json-5000-deep-in-cache-record": case_deep_json_in_a_cache_record,
    "list-400-http-entries-one-get": case_list_400_http_entries_reads_the_index_once,
    "fetch-2-names-one-index-get": case_fetch_of_two_names_reads_the_index_once,
    "list-local-entries-2000-vs-8000-linear": case_list_local_entries_is_linear,
    "index-body-truncated": case_truncated_index_body_uses_the_cached_copy,
    "index-body-stalled": case_stalled_index_body_uses_the_cached_copy,
    "download-trickling-1-byte-per-0.2s": case_trickling_download_hits_the_deadline,
    "lock-held-by-another-fetch": case_lock_wait_is_bounded,
    "env-timeouts-not-numbers": case_bad_timeout_values,
}


@pytest.mark.parametrize("case", LIMITS_AND_DEADLINES)
def test_limits_and_deadlines(case, tmp_path, server):
    LIMITS_AND_DEADLINES[case](tmp_path, server)


# ---------------------------------------------------------------- faults lose nothing


def case_sigkill_mid_download(tmp_path, server):
    s = server()
    data = os.urandom(5 << 19)  # 2.5 MiB: the half sent before the stall fills a 1 MiB chunk
    s.put("w.bin", data, mode="slow")
    s.put_index([entry("mlp.kill", "w.bin", data)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_") or k == "ZOO_HOME"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "fetch", "mlp.kill", "--registry", s.url], env=env,
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not any((hub_dir() / "blobs").glob(".*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        parts = list((hub_dir() / "blobs").glob(".*.part"))
        assert parts, "the download never started"
        while parts[0].stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert debris(), "the killed fetch left no temp file: nothing tested"
    s.modes["/w.bin"] = ""
    result = zoo(tmp_path, "fetch", "mlp.kill", "--registry", s.url)
    expect_ok(result)
    assert Path(result.stdout.strip()).read_bytes() == data
    no_debris()


def case_live_download_of_another_process_is_kept(tmp_path, server):
    s = server()
    data = b"other weights"
    s.put("w.bin", data)
    s.put_index([entry("mlp.other", "w.bin", data)])
    busy = "ab" * 32
    part = hub_dir() / "blobs" / f".{busy}.bin.x1y2z3.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half of a download")
    with holding_lock(busy):
        expect_ok(zoo(tmp_path, "fetch", "mlp.other", "--registry", s.url))
        assert part.exists(), "LOSS: a download another process holds the lock of was removed"
    expect_ok(zoo(tmp_path, "fetch", "mlp.other", "--registry", s.url))


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` remounted read-only (a bind mount: chmod does not stop root)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    done = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot bind-mount {path}: {done.stderr.strip()}")
    try:
        done = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(f"cannot remount {path} read-only: {done.stderr.strip()}")
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def case_read_only_home_serves_a_cached_entry(tmp_path, server):
    s = server()
    data = b"cached weights"
    s.put("w.bin", data)
    s.put_index([entry("mlp.ro", "w.bin", data)])
    first = zoo(tmp_path, "fetch", "mlp.ro", "--registry", s.url)
    expect_ok(first)
    s.put_index([entry("mlp.ro", "w.bin", data), entry("mlp.new", "w.bin", data)])  # changed
    with read_only(Path(os.environ["ZOO_HOME"])):
        result = zoo(tmp_path, "fetch", "mlp.ro", "--registry", s.url)
        expect_ok(result, 1, "cannot keep a copy")
        assert result.stdout == first.stdout
        result = zoo(tmp_path, "fetch", "mlp.ro", env={"ZOO_REGISTRY": s.url})
        expect_ok(result, 1, "cannot keep a copy")


def case_json_suffix_blob_is_listed_and_verified(tmp_path, server):
    s = server()
    data = b'{"hidden": [64]}'
    s.put("config.json", data)
    s.put_index([entry("mlp.cfg", "config.json", data)])
    expect_ok(zoo(tmp_path, "fetch", "mlp.cfg", "--registry", s.url))
    listed = json.loads(zoo(tmp_path, "cache", "list", "--json").stdout)
    assert [r["name"] for r in listed] == ["mlp.cfg"], f"SILENT: the blob is not listed: {listed}"
    result = zoo(tmp_path, "cache", "verify")
    assert result.returncode == 0 and "1 of 1" in result.stdout, f"SILENT: {result.stdout}"


def case_wrong_size_keeps_the_good_blob(tmp_path, server):
    s = server()
    data = b"good weights" * 10
    s.put("w.bin", data)
    s.put_index([entry("mlp.good", "w.bin", data)])
    path = Path(zoo(tmp_path, "fetch", "mlp.good", "--registry", s.url).stdout.strip())
    other = write_registry(
        tmp_path / "liar", [entry("mlp.liar", "w.bin", data, size=len(data) + 5)]
    )
    result = zoo(tmp_path, "fetch", "mlp.liar", "--registry", str(other))
    assert path.is_file() and path.read_bytes() == data, "LOSS: the good cached blob was evicted"
    expect_error(result, 1, "size", "kept")
    no_debris()


FAULTS = {
    "sigkill-mid-download": case_sigkill_mid_download,
    "temp-of-a-live-download-elsewhere": case_live_download_of_another_process_is_kept,
    "read-only-zoo-home-cached-entry": case_read_only_home_serves_a_cached_entry,
    "blob-url-ending-in-json": case_json_suffix_blob_is_listed_and_verified,
    "index-size-wrong-for-a-cached-sha256": case_wrong_size_keeps_the_good_blob,
}


@pytest.mark.parametrize("case", FAULTS)
def test_faults_lose_nothing_and_leave_no_debris(case, tmp_path, server):
    FAULTS[case](tmp_path, server)


# ---------------------------------------------------------------- CLI input


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["fetch", "mlp.x", "--registry", "gopher://x"], id="fetch-registry-gopher"),
        pytest.param(["fetch", "mlp.x", "--registry", "ftp://x/reg"], id="fetch-registry-ftp"),
    ],
)
def test_cli_input(args, tmp_path):
    expect_error(zoo(tmp_path, *args), 2, "unsupported")


def test_cli_input_publish_registry_gopher(tmp_path):
    """``zoo publish W --registry gopher://x``: a usage error before anything is written."""
    weights = str(Path(bundled_index()).parent / "mlp.iris.safetensors")
    args = ("publish", weights, "--registry", "gopher://x", "--tag", "t")
    result = zoo(tmp_path, *args)  # refused before the weights are read (no torch)
    expect_error(result, 2, "unsupported")
