"""Fetching from a real http.server on 127.0.0.1: verification, failures, locking, offline."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from zoo import hub
from zoo.errors import FetchError, UnknownNameError
from zoo.hub import cache


class Handler(SimpleHTTPRequestHandler):
    """Serves the registry dir; ``server.modes`` makes some paths misbehave on purpose."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path  # absolute-form when used as a proxy
        with self.server.lock:
            self.server.hits[path] += 1
            self.server.hosts.append(self.headers.get("Host"))
            self.server.agents.append(self.headers.get("User-Agent"))
        mode = self.server.modes.get(path)
        body = (self.server.root / path.lstrip("/")).read_bytes() if mode else None
        if mode == "corrupt":
            self._send(body[:-1] + bytes([body[-1] ^ 0xFF]))
        elif mode == "truncated":  # promises the full length, sends half, closes cleanly
            self._send(body[: len(body) // 2], length=len(body))
        elif mode == "drop":  # sends part, then resets the connection
            self._send(body[: len(body) // 3], length=len(body))
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "slow":  # long enough that concurrent fetchers overlap
            time.sleep(0.5)
            self._send(body)
        else:
            self.path = path
            super().do_GET()

    def _send(self, data: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length if length is not None else len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True


def _file_entry(name: str, data: bytes, url: str, **extra) -> dict:
    return {
        "name": name,
        "model": name.split(".")[0],
        "files": [{"url": url, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}],
        "metrics": {"accuracy": 0.75},
        "dataset": "digits",
        **extra,
    }


@pytest.fixture
def server(tmp_path):
    """A registry served over HTTP: entries toy.good/.corrupt/.truncated/.drop/.slow/.missing."""
    root = tmp_path / "served"
    root.mkdir()
    entries = []
    for i, tag in enumerate(["good", "corrupt", "truncated", "drop", "slow", "missing"]):
        data = os.urandom(50_000 + i)
        if tag != "missing":
            (root / f"{tag}.bin").write_bytes(data)
        entries.append(_file_entry(f"toy.{tag}", data, f"{tag}.bin"))
    (root / "index.json").write_text(json.dumps({"schema": 1, "name": "test", "entries": entries}))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    httpd.root, httpd.lock, httpd.hits = root, threading.Lock(), Counter()
    httpd.hosts, httpd.agents = [], []
    httpd.modes = {
        "/corrupt.bin": "corrupt", "/truncated.bin": "truncated", "/drop.bin": "drop",
        "/slow.bin": "slow",
    }  # fmt: skip
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _blobs() -> list[Path]:
    blobs = cache.cache_dir() / "blobs"
    return sorted(blobs.iterdir()) if blobs.exists() else []


def _entry_sha(server, tag: str) -> str:
    index = json.loads((server.root / "index.json").read_text())
    return next(e for e in index["entries"] if e["name"] == f"toy.{tag}")["files"][0]["sha256"]


def test_good_fetch_is_verified_cached_and_then_a_hit(server):
    path = hub.fetch("toy.good", registry=server.url)
    assert path.read_bytes() == (server.root / "good.bin").read_bytes()
    assert path.name == f"{_entry_sha(server, 'good')}.bin"
    assert path.parent == Path(os.environ["ZOO_HOME"]) / "hub" / "blobs"
    assert hub.fetch("toy.good", registry=server.url) == path
    assert server.hits["/good.bin"] == 1  # the second fetch was a cache hit
    assert server.agents[0].startswith("zoo/")
    assert [p.name for p in _blobs()] == [path.name, path.name + ".json"]


def test_corrupted_file_is_refused_and_nothing_cached(server):
    with pytest.raises(FetchError) as err:
        hub.fetch("toy.corrupt", registry=server.url)
    msg = str(err.value)
    assert msg.startswith(f"sha256 mismatch for {server.url}corrupt.bin: expected ")
    assert _entry_sha(server, "corrupt") in msg and ", got " in msg
    assert _blobs() == []


def test_size_mismatch_names_expected_and_got(server, tmp_path):
    index = json.loads((server.root / "index.json").read_text())
    index["entries"][0]["files"][0]["size"] += 10
    (server.root / "index.json").write_text(json.dumps(index))
    with pytest.raises(
        FetchError, match=r"size mismatch for .*good.bin: expected 50010 bytes, got 50000"
    ):
        hub.fetch("toy.good", registry=server.url)
    assert _blobs() == []


def test_truncated_response(server):
    with pytest.raises(
        FetchError,
        match=r"fetching .*truncated.bin: connection closed after 25001 of 50002 bytes",
    ):
        hub.fetch("toy.truncated", registry=server.url)
    assert _blobs() == []


def test_server_dropping_the_connection_midway(server):
    with pytest.raises(FetchError, match=r"network failure fetching .*drop.bin"):
        hub.fetch("toy.drop", registry=server.url)
    assert _blobs() == []


def test_404_and_unknown_entry(server):
    with pytest.raises(FetchError, match=r"not found \(HTTP 404\): .*missing.bin"):
        hub.fetch("toy.missing", registry=server.url)
    with pytest.raises(UnknownNameError, match="did you mean: toy.good"):
        hub.fetch("toy.goood", registry=server.url)
    with pytest.raises(FetchError, match=r"not found \(HTTP 404\): .*/nothing-here/index.json"):
        hub.list_pretrained(registry=server.url + "nothing-here/")


def test_network_failure_names_the_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(
        FetchError, match=rf"network failure fetching http://127.0.0.1:{port}/index.json"
    ):
        hub.fetch("toy.good", registry=f"http://127.0.0.1:{port}/")


def test_eight_concurrent_processes_download_once(server):
    code = f"import sys; from zoo import hub; print(hub.fetch('toy.slow', registry={server.url!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert server.hits["/slow.bin"] == 1
    assert len(set(outs)) == 1
    blob = Path(outs[0])
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == _entry_sha(server, "slow")
    assert [p.name for p in _blobs()] == [blob.name, blob.name + ".json"]  # no temp files left


def test_offline_never_touches_the_network(server, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(FetchError, match="offline .* index .* never fetched"):
        hub.fetch("toy.good", registry=server.url)
    assert sum(server.hits.values()) == 0

    monkeypatch.setenv("ZOO_OFFLINE", "0")
    assert "toy.good" in hub.list_pretrained(registry=server.url)  # caches the index
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(
        FetchError, match=r"offline \(ZOO_OFFLINE\) and 'toy.good' is not in the cache"
    ):
        hub.fetch("toy.good", registry=server.url)
    path = hub.fetch("toy.good", registry=server.url, offline=False)
    hits = sum(server.hits.values())
    assert hub.fetch("toy.good", registry=server.url) == path  # served from the cache
    assert sum(server.hits.values()) == hits


def test_cache_hit_rechecks_size_and_verify_rehashes(server):
    path = hub.fetch("toy.good", registry=server.url)
    path.write_bytes(path.read_bytes()[:100])  # a damaged cache entry is not a hit
    assert hub.fetch("toy.good", registry=server.url) == path
    assert server.hits["/good.bin"] == 2
    assert path.read_bytes() == (server.root / "good.bin").read_bytes()

    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, wrong bytes: only a re-hash notices
    bad = cache.verify_cache()
    assert [(b.path, reason.split(":")[0]) for b, reason in bad] == [(path, "sha256 mismatch")]
    assert not path.exists()


def test_proxies_from_the_environment_are_honoured(server, monkeypatch):
    monkeypatch.setenv("http_proxy", server.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    path = hub.fetch("toy.good", registry="http://zoo-registry.invalid/")
    assert path.read_bytes() == (server.root / "good.bin").read_bytes()
    assert "zoo-registry.invalid" in server.hosts


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (b"{not json", "malformed registry index .*: not JSON"),
        (b'{"schema": 99, "entries": []}', "has schema 99; this zoo reads schema 1"),
        (b'{"schema": 1, "entries": {}}', "malformed registry index"),
        (
            b'{"schema": 1, "entries": [{"name": "toy.x", "files": [{"url": "../../etc/passwd",'
            b' "sha256": "' + b"a" * 64 + b'", "size": 1}]}]}',
            "file url '../../etc/passwd' escapes the registry",
        ),
        (
            b'{"schema": 1, "entries": [{"name": "toy.x", "files": [{"url": "/etc/passwd",'
            b' "sha256": "' + b"a" * 64 + b'", "size": 1}]}]}',
            "file url '/etc/passwd' escapes the registry",
        ),
        (
            b'{"schema": 1, "entries": [{"name": "toy.x", "files": [{"url": "x.bin",'
            b' "sha256": "abc", "size": 1}]}]}',
            "needs a full 64-hex sha256",
        ),
        (b'{"schema": 1, "entries": [{"name": "Toy", "files": []}]}', "must be 'model.tag'"),
    ],
)
def test_malformed_index_is_one_line(server, index, message):
    (server.root / "index.json").write_bytes(index)
    with pytest.raises(FetchError, match=message) as err:
        hub.list_pretrained(registry=server.url)
    assert "\n" not in str(err.value)
