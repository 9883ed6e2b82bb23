"""A corrupted cache hit is never served (issue 10, item 4).

Every hit is checked against the fingerprint (size, mtime_ns, ctime_ns, inode) recorded beside
the blob's sha256 when it was last hashed; any change re-hashes, a mismatch removes the copy and
fetches it again (offline: one line). Real parts only: a registry served by ``http.server`` on
127.0.0.1, the bundled registry, the real CLI in a subprocess, a cache made read-only by chmod.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest
import test_hub_fetch

import zoo
from zoo import hub
from zoo.errors import FetchError, UsageError
from zoo.hub import cache

FINGERPRINT = ("size", "mtime_ns", "ctime_ns", "inode")
server = test_hub_fetch.server  # the registry on a loopback http.server (toy.good is plain)


def _served(server) -> bytes:
    return (server.root / "good.bin").read_bytes()


@pytest.fixture(autouse=True)
def _default_verify_mode(monkeypatch):
    monkeypatch.delenv("ZOO_VERIFY", raising=False)


@pytest.fixture
def rehashes(caplog):
    """``rehashes()``: how many cache hits were re-hashed since the last call."""
    caplog.set_level(logging.DEBUG, logger="zoo.hub.cache")

    def count() -> int:
        n = sum(r.getMessage().startswith("re-hashing ") for r in caplog.records)
        caplog.clear()
        return n

    return count


def _record(blob: Path) -> dict:
    return json.loads(blob.with_name(blob.name + ".json").read_text())


def _flip(blob: Path, offset: int = -1) -> None:
    """A same-size byte flip in place, with the mtime put back as a careless tool would."""
    before = blob.stat()
    with open(blob, "r+b") as fh:
        fh.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert blob.stat().st_size == before.st_size


def _tick_past(path: Path, scratch: Path) -> None:
    """Wait until the filesystem clock is past ``path``'s last change, so a fingerprint recorded
    from now on is not "racily clean" (git's term); it polls a file's mtime, not a timer."""
    changed = path.stat().st_ctime_ns
    probe = scratch / ".tick"
    deadline = time.monotonic() + 10
    while True:
        probe.write_bytes(b"x")
        if probe.stat().st_mtime_ns > changed:
            break
        assert time.monotonic() < deadline, "the filesystem clock did not move"
        time.sleep(0.001)
    probe.unlink()


def _warm(server, tmp_path) -> Path:
    """Fetch ``toy.good`` and leave it with a fingerprint that vouches for it."""
    blob = hub.fetch("toy.good", registry=server.url)
    _tick_past(blob, tmp_path)
    assert hub.fetch("toy.good", registry=server.url) == blob  # records afresh if it was racy
    return blob


def test_fingerprint_is_recorded_beside_the_sha256_at_download(server):
    blob = hub.fetch("toy.good", registry=server.url)
    record = _record(blob)
    st = blob.stat()
    assert record["sha256"] == hashlib.sha256(_served(server)).hexdigest()
    assert record["name"] == "toy.good" and record["url"] == server.url + "good.bin"
    assert record["fingerprint"] == dict(
        zip(FINGERPRINT, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino), strict=True)
    )


def test_same_size_flip_is_caught_on_the_next_zoo_fetch_over_http(server, tmp_path, run_zoo):
    blob = _warm(server, tmp_path)
    _tick_past(blob, tmp_path)
    _flip(blob)
    result = run_zoo("fetch", "toy.good", "--registry", server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(blob)
    assert f"fetched toy.good ({blob})" in result.stderr
    assert "is corrupt (sha256 mismatch: expected " in result.stderr
    assert server.hits["/good.bin"] == 2  # downloaded again
    assert blob.read_bytes() == _served(server)

    _flip(blob, offset=100)  # and through the Python API, without waiting for a clock tick
    assert hub.fetch("toy.good", registry=server.url) == blob
    assert server.hits["/good.bin"] == 3
    assert blob.read_bytes() == _served(server)


def test_same_size_flip_in_bundled_weights_is_caught_by_create_model(tmp_path, run_zoo):
    import torch
    from safetensors.torch import load_file

    ref = hub.get_pretrained("tinyvgg.digits").files[0]
    original = Path(hub.bundled_index()).parent / "tinyvgg.digits.safetensors"
    want = load_file(str(original))
    zoo.create_model("tinyvgg", pretrained="digits")
    blob = cache.blob_path(ref)
    _tick_past(blob, tmp_path)
    _flip(blob)  # the last byte: inside the last tensor's data
    assert hashlib.sha256(blob.read_bytes()).hexdigest() != ref.sha256

    model = zoo.create_model("tinyvgg", pretrained="digits")
    got = model.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert blob.read_bytes() == original.read_bytes()

    _tick_past(blob, tmp_path)
    _flip(blob)
    result = run_zoo("fetch", "tinyvgg.digits")
    assert result.returncode == 0, result.stderr
    assert f"fetched tinyvgg.digits ({blob})" in result.stderr
    assert blob.read_bytes() == original.read_bytes()


def test_unchanged_hit_is_not_rehashed_and_a_touched_one_is_rehashed_once(
    server, tmp_path, rehashes
):
    blob = _warm(server, tmp_path)
    rehashes()
    for _ in range(3):
        assert hub.fetch("toy.good", registry=server.url) == blob
    assert rehashes() == 0

    os.utime(blob)  # touched, same bytes
    _tick_past(blob, tmp_path)
    for _ in range(3):
        assert hub.fetch("toy.good", registry=server.url) == blob
    assert rehashes() == 1
    assert server.hits["/good.bin"] == 1  # served every time, never downloaded again
    st = blob.stat()
    assert _record(blob)["fingerprint"]["mtime_ns"] == st.st_mtime_ns
    assert _record(blob)["fingerprint"]["ctime_ns"] == st.st_ctime_ns


def test_a_record_from_before_fingerprints_is_read_rehashed_once_and_upgraded(
    server, tmp_path, rehashes
):
    blob = hub.fetch("toy.good", registry=server.url)
    old = {
        "name": "toy.good", "url": server.url + "good.bin", "sha256": blob.name.split(".")[0],
        "size": len(_served(server)), "fetched": "2025-01-01T00:00:00+00:00",
    }  # fmt: skip
    blob.with_name(blob.name + ".json").write_text(json.dumps(old))
    assert [(c.name, c.url) for c in cache.cached_files()] == [("toy.good", old["url"])]
    _tick_past(blob, tmp_path)
    rehashes()
    for _ in range(3):
        assert hub.fetch("toy.good", registry=server.url) == blob
    assert rehashes() == 1
    record = _record(blob)
    assert {k: record[k] for k in old} == old
    assert set(record["fingerprint"]) == set(FINGERPRINT)


def test_offline_and_corrupt_is_a_one_line_error(server, tmp_path, monkeypatch, run_zoo):
    blob = _warm(server, tmp_path)
    _flip(blob)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(FetchError) as err:
        hub.fetch("toy.good", registry=server.url)
    msg = str(err.value)
    assert msg.startswith(
        "offline (ZOO_OFFLINE) and the cached copy of 'toy.good' is corrupt (sha256 mismatch: "
    )
    assert "removed it" in msg and "\n" not in msg
    assert not blob.exists() and server.hits["/good.bin"] == 1

    monkeypatch.setenv("ZOO_OFFLINE", "0")
    hub.fetch("toy.good", registry=server.url)
    _flip(blob)
    result = run_zoo("fetch", "toy.good", "--registry", server.url, "--offline")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: offline (ZOO_OFFLINE) and the cached copy of 'toy.good'")
    assert server.hits["/good.bin"] == 2 and not blob.exists()


def test_zoo_verify_full_rehashes_every_hit_and_catches_silent_rot(
    server, tmp_path, monkeypatch, rehashes, run_zoo
):
    blob = _warm(server, tmp_path)
    # rot that changes no metadata: the bytes change, the recorded fingerprint still matches
    _flip(blob)
    record = _record(blob)
    st = blob.stat()
    record["fingerprint"] = dict(
        zip(FINGERPRINT, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino), strict=True)
    )
    _tick_past(blob, tmp_path)
    blob.with_name(blob.name + ".json").write_text(json.dumps(record))
    rehashes()
    assert hub.fetch("toy.good", registry=server.url) == blob
    assert rehashes() == 0 and server.hits["/good.bin"] == 1  # by design: the fingerprint holds
    [(bad, reason)] = cache.verify_cache(remove=False)  # what `zoo cache verify` is for
    assert bad.path == blob and reason.startswith("sha256 mismatch")

    monkeypatch.setenv("ZOO_VERIFY", "full")
    assert hub.fetch("toy.good", registry=server.url) == blob
    assert server.hits["/good.bin"] == 2 and blob.read_bytes() == _served(server)
    rehashes()
    for _ in range(3):
        assert hub.fetch("toy.good", registry=server.url) == blob
    assert rehashes() == 3 and server.hits["/good.bin"] == 2

    monkeypatch.setenv("ZOO_VERIFY", "paranoid")
    with pytest.raises(
        UsageError, match=r"^ZOO_VERIFY='paranoid' is not one of: fingerprint, full$"
    ):
        hub.fetch("toy.good", registry=server.url)
    result = run_zoo("fetch", "toy.good", "--registry", server.url)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: ZOO_VERIFY='paranoid' is not one of: fingerprint, full"
    ]


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)


@pytest.fixture
def read_only_cache():
    """``make()`` makes the whole hub cache read-only (skips when chmod cannot, as for root)."""
    root = cache.cache_dir()

    def make() -> None:
        _make_read_only(root)
        if os.access(root / "blobs", os.W_OK):
            pytest.skip("chmod does not make the cache read-only here (running as root)")

    yield make
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_read_only_cache_rehashes_every_hit_and_never_serves_corruption(
    server, tmp_path, monkeypatch, rehashes, read_only_cache
):
    blob = _warm(server, tmp_path)
    read_only_cache()  # the chmod moved the blob's ctime: its fingerprint no longer vouches
    record = blob.with_name(blob.name + ".json").read_bytes()
    rehashes()
    for _ in range(3):
        assert hub.fetch("toy.good", registry=server.url) == blob
    assert rehashes() == 3  # it cannot record the new fingerprint, so every hit re-hashes
    assert blob.with_name(blob.name + ".json").read_bytes() == record
    assert server.hits["/good.bin"] == 1

    blob.chmod(0o644)
    _flip(blob)
    blob.chmod(0o444)
    with pytest.raises(FetchError, match=r"^cannot write to the cache .*; set ZOO_HOME") as err:
        hub.fetch("toy.good", registry=server.url)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(FetchError, match=r"cached copy of 'toy.good' is corrupt") as err:
        hub.fetch("toy.good", registry=server.url)
    assert "removed it" not in str(err.value) and blob.exists()  # it could not remove it


def test_verify_speed_benchmark_runs(capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "verify_speed.py"
    spec = importlib.util.spec_from_file_location("verify_speed", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    home = os.environ["ZOO_HOME"]
    args = ["--model", "linear-regression", "--rounds", "2", "--hits", "3", "--threads", "1"]
    assert module.main(args) == 0
    printed = capsys.readouterr().out
    assert "verified hit" in printed and "goal: verified hit < 5% of zoo.load" in printed
    assert os.environ["ZOO_HOME"] == home  # the script's own cache is gone with it
    assert not logging.getLogger("zoo.hub.cache").handlers
