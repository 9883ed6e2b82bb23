"""`zoo list pretrained --registry R`: that registry's entries alone, read as every command
reads one (dir, file:// or http(s):// URL), and bad registries as one line with exit 1 or 2."""

from __future__ import annotations

import hashlib
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def _write_registry(root: Path, tags: list[str], **extra) -> list[dict]:
    """A registry of ``mlp`` entries (zoo's own model) sharing one small file."""
    root.mkdir(parents=True)
    data = b"not really weights"
    (root / "w.safetensors").write_bytes(data)
    ref = {"url": "w.safetensors", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    entries = [
        {
            "name": f"mlp.{tag}",
            "model": "mlp",
            "plugin": "workflow",
            "dist": "zoo",
            "files": [ref],
            "dataset": "iris",
            "metrics": {"accuracy": 0.5 + i / 100},
            **extra,
        }  # fmt: skip
        for i, tag in enumerate(tags)
    ]
    (root / "index.json").write_text(json.dumps({"schema": 2, "entries": entries}))
    return entries


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path):
    """A registry on a loopback HTTP server; yields (its URL, its entries)."""
    entries = _write_registry(tmp_path / "served", ["http-a", "http-b"])
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "served"))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", entries
    httpd.shutdown()
    httpd.server_close()


def _table(stdout: str) -> list[list[str]]:
    """The table's rows as [kind, name, plugin, tasks, summary]."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "tasks", "summary"]
    return [line.split(None, 4) for line in lines[2:]]


def test_registry_dir_replaces_the_configured_registries(run_zoo, tmp_path):
    mine = _write_registry(tmp_path / "mine", ["b-two", "a-one", "c-three"])
    _write_registry(tmp_path / "other", ["from-env"])
    env = {"ZOO_REGISTRY": str(tmp_path / "other")}

    result = run_zoo("list", "pretrained", "--registry", str(tmp_path / "mine"), env=env)
    assert result.returncode == 0, result.stderr
    rows = _table(result.stdout)
    assert [r[1] for r in rows] == sorted(e["name"] for e in mine)  # not mlp.iris, not from-env
    for row in rows:
        entry = next(e for e in mine if e["name"] == row[1])
        assert row[0] == "pretrained" and row[2] == "mine" and row[3] == "multiclass"
        assert row[4] == f"mlp trained on iris (accuracy={entry['metrics']['accuracy']:.4g})"

    # without --registry the same command lists the configured ones (bundled, ZOO_REGISTRY)
    names = [r[1] for r in _table(run_zoo("list", "pretrained", env=env).stdout)]
    assert {"mlp.from-env", "mlp.iris"} <= set(names) and "mlp.a-one" not in names

    # no kind word: --registry means pretrained entries; a PATTERN still filters them
    result = run_zoo("list", "mlp.a*", "--registry", str(tmp_path / "mine"))
    assert [r[1] for r in _table(result.stdout)] == ["mlp.a-one"], result.stderr


def test_registry_urls_and_json(run_zoo, tmp_path, served):
    url, entries = served
    mine = _write_registry(tmp_path / "mine", ["local"])
    file_url = (tmp_path / "mine").as_uri()

    result = run_zoo("list", "pretrained", "--json", "--registry", f"{url},{file_url}")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == sorted(e["name"] for e in [*entries, *mine])
    sources = {r["name"]: r["source"] for r in rows}
    assert sources["mlp.http-a"] == f"{url}index.json"
    assert sources["mlp.local"] == str(tmp_path / "mine" / "index.json")
    assert all(r["installed"] and r["qualname"] == f"workflow/{r['name']}" for r in rows)
    # one object per line between the brackets: a large listing stays quick to write and grep
    lines = result.stdout.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(rows) + 2
    assert [json.loads(line.strip().rstrip(",")) for line in lines[1:-1]] == rows


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing", 1, "error: registry index not found: "),
        ("malformed", 1, "error: malformed registry index "),
        ("metric too large", 1, "metric 'accuracy' is out of range"),
        ("escaping url", 1, "escapes the registry"),
        ("gopher", 2, "error: unsupported registry or file location 'gopher://x'"),
        ("models kind", 2, "error: --registry lists pretrained entries"),
    ],
)
def test_bad_registry_is_one_line(run_zoo, tmp_path, case, code, message):
    registry = tmp_path / "reg"
    args = ["list", "pretrained", "--registry", str(registry)]
    if case == "malformed":
        registry.mkdir()
        (registry / "index.json").write_text('{"schema": 2, "entries": 5}')
    elif case == "metric too large":  # an integer no float holds (was an OverflowError)
        _write_registry(registry, ["big"])
        text = (
            (registry / "index.json")
            .read_text()
            .replace('"accuracy": 0.5', '"accuracy": 1' + "0" * 400)
        )
        (registry / "index.json").write_text(text)
    elif case == "escaping url":
        _write_registry(registry, ["out"])
        text = (
            (registry / "index.json").read_text().replace('"w.safetensors"', '"../w.safetensors"')
        )
        (registry / "index.json").write_text(text)
    elif case == "gopher":
        args[-1] = "gopher://x"
    elif case == "models kind":
        _write_registry(registry, ["x"])
        args[1] = "models"
    result = run_zoo(*args)
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
