"""The fast paths of a large listing agree with the plain ones: the table's rows with the
``--json`` rows, file URLs with a plain path join, the table formatter with ljust/rjust."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from pathlib import Path

import pytest

from zoo._util.table import format_table
from zoo.errors import FetchError
from zoo.hub import index as hub
from zoo.hub.entries import parse_index


def _index(root: Path, entries: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.json").write_text(json.dumps({"schema": 2, "entries": entries}))
    return root


def _file(url: str = "w.safetensors") -> dict:
    return {"url": url, "sha256": hashlib.sha256(url.encode()).hexdigest(), "size": 1}


def _entry(name: str, **extra) -> dict:
    return {"name": name, "model": name.split(".")[0], "files": [_file()], **extra}


ENTRIES = [
    _entry("mlp.plain", plugin="workflow", dist="zoo"),
    _entry(
        "mlp.metrics",
        plugin="workflow",
        dist="zoo",
        dataset="iris",
        metrics={"loss": 0.2, "f1": 0.5, "accuracy": 0.75, "top5": 1.0},
    ),  # fmt: skip
    _entry("mlp.told", plugin="workflow", summary="Told summary", metrics={"mse": 2}),
    _entry("mlp.unknown-data", plugin="workflow", dataset="no-such-dataset"),
    _entry("linear-regression.line2", plugin="workflow", dataset="line", metrics={"r2": 0.99}),
    _entry("ghost.x", plugin="elsewhere", dist="ghost-dist", metrics={"accuracy": 0.1}),
    _entry("mlp.schema1"),  # no plugin: a bare name, first-party only
]


def test_table_rows_are_the_json_rows(tmp_path, run_zoo):
    registry = _index(tmp_path / "reg", ENTRIES)
    listed = hub.pretrained_listing(registry=str(registry), only=True)
    assert sorted(n for n, _ in listed) == sorted(e["name"] for e in ENTRIES)
    for _, entry in listed:
        full, brief = entry.to_dict(), entry.to_dict(brief=True)
        assert brief == {k: full[k] for k in brief}
        assert set(brief) == {"name", "kind", "plugin", "summary", "tasks", "installed", "missing"}
    rows = {n: e.to_dict() for n, e in listed}
    assert rows["mlp.metrics"]["summary"] == "mlp trained on iris (accuracy=0.75, f1=0.5)"
    assert rows["mlp.told"]["summary"] == "Told summary (mse=2)"
    assert rows["ghost.x"]["installed"] is False and "ghost-dist" in rows["ghost.x"]["missing"]

    table = run_zoo("list", "pretrained", "--registry", str(registry))
    as_json = run_zoo("list", "pretrained", "--registry", str(registry), "--json")
    assert table.returncode == 0 and as_json.returncode == 0, table.stderr + as_json.stderr
    want = [
        [r["kind"], r["name"], r["plugin"], ",".join(r["tasks"]), r["summary"]]
        for r in json.loads(as_json.stdout)
    ]
    headers = ["kind", "name", "plugin", "tasks", "summary"]
    assert table.stdout == _reference_table(want, headers, [False] * 5) + "\n"
    assert any(r[4].startswith("[not installed: ") for r in want)


@pytest.mark.parametrize(
    "url", ["w.bin", "sub/w.bin", "./w.bin", "sub//w.bin", "sub/./w.bin", "%77.bin", "a b.bin"]
)
def test_relative_file_urls_join_the_index_folder(tmp_path, url):
    location = str(tmp_path / "reg" / "index.json")
    doc = json.dumps({"schema": 2, "entries": [_entry("mlp.x", files=[_file(url)])]})
    (entry,) = parse_index(doc, location)
    parts = [p for p in urllib.parse.unquote(url).split("/") if p not in ("", ".")]
    assert entry.files[0].url == os.path.join(str(tmp_path / "reg"), *parts)


@pytest.mark.parametrize("url", ["../w.bin", "sub/../../w.bin", "/etc/passwd", "..", "%2e%2e/w"])
def test_relative_file_urls_cannot_leave_the_registry(tmp_path, url):
    doc = json.dumps({"schema": 2, "entries": [_entry("mlp.x", files=[_file(url)])]})
    with pytest.raises(FetchError, match="escapes the registry"):
        parse_index(doc, str(tmp_path / "index.json"))


def _reference_table(rows, headers, numeric):
    """A plain formatter: each cell ljust/rjust to its column's width, two spaces between."""
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(line, widths, numeric, strict=True)
        ).rstrip()
        for line in lines
    )


@pytest.mark.parametrize(
    ("rows", "headers", "numeric"),
    [
        ([], ["a", "bb"], [False, True]),
        ([["x", "{}"], ["", "{0}"]], ["", "h"], [False, False]),
        ([["12", "a"], ["3", "bcd"]], ["n", "s"], [True, False]),
        ([["ü日本", " pad "], ["é", ""]], ["name", "x"], [False, True]),
    ],
)
def test_format_table_matches_a_plain_formatter(rows, headers, numeric):
    assert format_table(rows, headers, numeric=numeric) == _reference_table(rows, headers, numeric)
