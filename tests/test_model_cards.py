"""Model cards: the flat YAML header zoo writes and reads (PyYAML is the reference), publish
writing a card from what it knows plus --card/flags, refusing one without its required fields,
fetch verifying it and `zoo info` showing it. Real files, the real CLI in subprocesses."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml
from cli_helpers import one_line_error, zoo_cli
from safetensors import safe_open

from zoo.weights import card as cards

BUNDLED = Path(__file__).resolve().parents[1] / "registry"
WEIGHTS = BUNDLED / "mlp.iris.safetensors"


def _header(text: str) -> str:
    """The YAML between the opening and closing ``---`` of a card."""
    assert text.startswith("---\n")
    return text[4:].split("\n---\n", 1)[0]


def _metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    return {
        k: json.loads(v) if k in ("kwargs", "metrics", "classes") else v for k, v in meta.items()
    }


# ---------------------------------------------------------------- the flat header


TRICKY = [
    "plain", "", " leading and trailing ", "yes", "no", "null", "~", "1.0", "0x10", "-", "- item",
    "key: value", "a # not a comment", "#hash", "'single'", '"double"', "back\\slash", "tab\there",
    "line\nbreak", "cr\rlf", "nul\0byte", "bell\x07", "del\x7f", "c1\x85\x9f", "nbsp\xa0",
    "ls\u2028ps\u2029", "bom\ufeff", "snowman \u2603", "emoji \U0001f600", "[not a list]",
    "{not: a map}", "&anchor", "*alias", "!tag", "| block", "> folded", "%directive", "@at",
    "`tick", "...", "---",
]  # fmt: skip


def test_rendered_header_reads_back_and_parses_as_the_same_yaml():
    rng = random.Random(12)
    alphabet = "".join(chr(c) for c in [*range(0, 0x100), 0x2028, 0xFEFF, 0x1F600, 0x4E2D])
    randoms = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(300)]
    fields: dict = {f"k{i}": s for i, s in enumerate(TRICKY + randoms[:100])}
    fields["a_list"] = TRICKY + randoms
    text = cards.render(fields, "# body\n\ntext")
    back, body = cards.parse(text)
    expected = {k: v for k, v in fields.items() if v != ""}  # empty values are left out
    assert back == expected
    assert body == "# body\n\ntext\n"
    assert yaml.safe_load(_header(text)) == expected  # the independent reference


@pytest.mark.parametrize(
    "header, expected",
    [
        ("license: mit\nintended_use: demos only  # a comment", None),
        ("license: 'it''s mit'\ntags: [a, 'b c', \"d\"]", None),
        ("datasets:\n- iris\n-   'digits'\n# comment\nmetrics: []", None),
        ('title: "caf\\u00e9 \\x41\\U0001F600"', None),
    ],
)
def test_hand_written_flat_headers_read_as_yaml_reads_them(header, expected):
    fields, body = cards.parse(f"---\n{header}\n---\nbody")
    assert fields == yaml.safe_load(header)
    assert body == "body"


@pytest.mark.parametrize(
    "header, why",
    [
        ("model-index:\n  - name: x", "nested values"),
        ("a:\n  b: c", "nested values"),
        ("a: |\n  text", "'|' values"),
        ("a: >\n  text", "'>' values"),
        ("a: &x 1", "'&' values"),
        ("a: *x", "'*' values"),
        ("a: !!python/object x", "'!' values"),
        ("a: {b: c}", "'{' values"),
        ("a: b: c", "nested values"),
        ("a: 1\na: 2", "given twice"),
        ("\ta: 1", "tabs"),
        ("- x", "no 'key:'"),
        ('a: "open', "not closed"),
        ("a: [x, y", "not closed"),
        ('a: "\\q"', "unknown escape"),
        ('a: "\\ud800"', "bad escape"),
        ("just text", "expected 'key: value'"),
    ],
)
def test_outside_the_flat_subset_is_one_line_naming_the_line(header, why):
    with pytest.raises(cards.CardError) as info:
        cards.parse(f"---\n{header}\n---\n", "card x.md")
    message = str(info.value)
    assert "\n" not in message and message.startswith("card x.md line ") and why in message


def test_limits():
    with pytest.raises(cards.CardError, match="never closed"):
        cards.parse("---\na: b\n")
    with pytest.raises(cards.CardError, match="card limit"):
        cards.parse("---\n" + "a" * (cards.MAX_CARD_BYTES + 1))
    with pytest.raises(cards.CardError, match="more than 200 fields"):
        cards.parse("---\n" + "".join(f"k{i}: v\n" for i in range(201)) + "---\n")
    with pytest.raises(cards.CardError, match="more than 1000 items"):
        cards.parse("---\nl:\n" + "- x\n" * 1001 + "---\n")
    with pytest.raises(cards.CardError, match="longer than"):
        cards.parse(f'---\na: "{"x" * (cards.MAX_VALUE + 1)}"\n---\n')
    assert cards.parse("# no header\ntext") == ({}, "# no header\ntext")


# ---------------------------------------------------------------- publish writes a card


def _publish(registry: Path, *args: str, tag: str = "carded", source: Path = WEIGHTS):
    """``zoo publish`` in-process (the subprocess runs below show the real process)."""
    return zoo_cli("publish", source, "--registry", registry, "--tag", tag, *args)


def test_publish_writes_a_card_from_what_it_knows_and_the_card_file(run_zoo, tmp_path):
    card = tmp_path / "card.md"
    card.write_text(
        "---\nlicense: apache-2.0\nintended_use: 'Teaching: iris species from measurements'\n"
        "limitations: only three species\nlanguage: [en]\n---\n\n## Notes\n\nHand-written notes.\n"
    )
    registry = tmp_path / "reg"
    result = run_zoo(
        "publish", str(WEIGHTS), "--registry", str(registry), "--tag", "carded",
        "--card", str(card), "--evaluation", "5-fold CV",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    index = json.loads((registry / "index.json").read_text())
    raw = next(e for e in index["entries"] if e["name"] == "mlp.carded")
    assert raw["license"] == "apache-2.0"
    ref = raw["card"]
    data = (registry / ref["url"]).read_bytes()
    assert ref["url"] == "mlp.carded.md"
    assert (ref["sha256"], ref["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
    text = data.decode()
    header = yaml.safe_load(_header(text))
    meta = _metadata(WEIGHTS)
    assert header["license"] == "apache-2.0"
    assert header["intended_use"] == "Teaching: iris species from measurements"
    assert header["limitations"] == "only three species"
    assert header["evaluation"] == "5-fold CV"  # the flag over zoo's default
    assert header["language"] == ["en"]  # other flat fields pass through
    assert header["datasets"] == [meta["dataset"]]
    assert header["metrics"] == sorted(meta["metrics"])
    assert header["model"] == f"{meta['plugin']}/{meta['model']}"
    assert header["zoo_entry"] == "mlp.carded"
    assert header["library_name"] == "zoo"
    assert cards.parse(text)[0] == header  # zoo reads back what any YAML parser reads
    for name in meta["classes"]:
        assert name in text
    assert json.dumps(meta["kwargs"], sort_keys=True) in text
    assert "Hand-written notes." in text
    assert f"| accuracy | {meta['metrics']['accuracy']:.6g} |" in text


def test_flags_and_a_flat_field_file(tmp_path):
    flat = tmp_path / "fields.txt"
    flat.write_text("license: cc-by-4.0\nintended_use: from the file\n")
    registry = tmp_path / "reg"
    result = _publish(registry, "--card", flat, "--intended-use", "from the flag")
    assert result.exit_code == 0, result.output
    header = yaml.safe_load(_header((registry / "mlp.carded.md").read_text()))
    assert (header["license"], header["intended_use"]) == ("cc-by-4.0", "from the flag")


@pytest.mark.parametrize(
    "args, missing",
    [
        (["--intended-use", "demo"], "license"),
        (["--license", "mit", "--limitations", "x"], "intended_use"),
        (["--limitations", "x"], "license, intended_use"),
    ],
)
def test_a_card_without_required_fields_is_refused_and_nothing_is_written(tmp_path, args, missing):
    registry = tmp_path / "reg"
    assert f"lacks {missing}:" in one_line_error(_publish(registry, *args), 2)
    assert not registry.exists()


def test_a_bad_card_file_is_one_line_and_nothing_is_written(tmp_path):
    card = tmp_path / "card.md"
    card.write_text("---\nlicense: mit\nmodel-index:\n  - name: x\n---\n")
    assert "card.md line 4: nested" in one_line_error(_publish(tmp_path / "reg", "--card", card))
    absent = _publish(tmp_path / "reg", "--card", tmp_path / "absent.md")
    assert "no such card file" in one_line_error(absent, 2)
    assert not (tmp_path / "reg").exists()


def test_info_shows_the_card_fetch_verifies_it_and_republish_replaces_it(
    run_zoo, tmp_path, monkeypatch
):
    registry = tmp_path / "reg"
    assert _publish(registry, "--license", "mit", "--intended-use", "v1").exit_code == 0
    env = {"ZOO_REGISTRY": str(registry)}
    shown = run_zoo("info", "mlp.carded", env=env)  # the real process, as a user runs it
    assert shown.returncode == 0, shown.stderr
    assert 'intended_use="v1"' in shown.stdout and 'license="mit"' in shown.stdout
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    info = json.loads(zoo_cli("info", "mlp.carded", "--json").stdout)
    assert info["card"]["intended_use"] == "v1" and info["card"]["license"] == "mit"
    assert Path(info["card_file"]).read_bytes() == (registry / "mlp.carded.md").read_bytes()

    # an entry published without card options has none (as before)
    assert _publish(registry, tag="bare").exit_code == 0
    assert json.loads(zoo_cli("info", "mlp.bare", "--json").stdout)["card"] == "no card"

    # re-publishing replaces the card; the old one, referenced by nothing, is removed
    result = _publish(registry, "--force", "--intended-use", "v2")  # the license is kept
    assert result.exit_code == 0, result.output
    index = json.loads((registry / "index.json").read_text())
    ref = next(e for e in index["entries"] if e["name"] == "mlp.carded")["card"]
    assert yaml.safe_load(_header((registry / ref["url"]).read_text()))["intended_use"] == "v2"
    assert sorted(p.name for p in registry.glob("*.md")) == [ref["url"]]

    # a card changed after publishing fails verification like any other file
    card = registry / ref["url"]
    card.write_text(card.read_text().replace("v2", "v3"))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home2"))
    error = one_line_error(zoo_cli("fetch", "mlp.carded"), 1)
    assert "sha256 mismatch" in error and ref["url"] in error


def test_an_index_card_must_be_a_hashed_file_inside_the_registry(tmp_path):
    registry = tmp_path / "reg"
    assert _publish(registry, "--license", "mit", "--intended-use", "x").exit_code == 0
    index = json.loads((registry / "index.json").read_text())
    for bad, why in (({"url": "../x.md", "sha256": "0" * 64, "size": 1}, "escapes"),
                     ({"url": "x.md", "size": 1}, "sha256"), ("x.md", "needs a url")):  # fmt: skip
        index["entries"][0]["card"] = bad
        (registry / "index.json").write_text(json.dumps(index))
        assert why in one_line_error(zoo_cli("fetch", "mlp.carded", "--registry", registry), 1)


def test_info_describes_an_entry_whose_card_zoo_does_not_read(tmp_path, monkeypatch):
    registry = tmp_path / "reg"
    assert _publish(registry, "--license", "mit", "--intended-use", "x").exit_code == 0
    card = registry / "mlp.carded.md"
    card.write_text("---\nmodel-index:\n  - name: x\n---\n")  # nested: hashed right, not read
    index = json.loads((registry / "index.json").read_text())
    data = card.read_bytes()
    index["entries"][0]["card"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (registry / "index.json").write_text(json.dumps(index))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    result = zoo_cli("info", "mlp.carded", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["card"]
    assert shown.startswith("not available: ") and "line 3: nested" in shown
