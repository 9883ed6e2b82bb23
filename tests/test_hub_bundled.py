"""The bundled registry is real: its weights reproduce their recorded metrics, and so do its
recipes when trained again with ``zoo train --recipe``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
import zoo.weights
from zoo import hub
from zoo.cli import cli
from zoo.train.recipes import load_recipe

REQUIRED = {
    "linear-regression.line",
    "linear.diabetes",
    "mlp.breast-cancer",
    "mlp.iris",
    "mlp.circles",
    "tinyvgg.digits",
}
INDEX = Path(hub.bundled_index())
ENTRIES = {e["name"]: e for e in json.loads(INDEX.read_text())["entries"]}


def test_bundled_index_is_complete_small_and_verifiable():
    assert set(ENTRIES) >= REQUIRED
    assert set(hub.list_pretrained()) >= REQUIRED
    for name, raw in ENTRIES.items():
        assert raw["metrics"] and raw["dataset"] and raw["license"] and raw["created"], name
        assert (INDEX.parent / raw["recipe"]).is_file(), name
        [f] = raw["files"]
        data = (INDEX.parent / f["url"]).read_bytes()
        assert len(data) == f["size"] < 64 * 1024, name
        assert hashlib.sha256(data).hexdigest() == f["sha256"], name
        assert zoo.weights.read_metadata(INDEX.parent / f["url"])["model"] == raw["model"]
        row = hub.get_pretrained(name).to_dict()
        assert row["plugin"] == "zoo" and row["kind"] == "pretrained"


def test_every_bundled_entry_has_a_verified_card_zoo_info_shows(tmp_path, monkeypatch):
    """Cards written by tools/bundled_cards.py through the code ``zoo publish`` uses: hashed
    in the index, valid YAML headers (PyYAML as the reference) naming the entry and its data,
    and shown by ``zoo info`` from a verified copy in the cache."""
    yaml = pytest.importorskip("yaml")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    for name, raw in ENTRIES.items():
        data = (INDEX.parent / raw["card"]["url"]).read_bytes()
        assert len(data) == raw["card"]["size"], name
        assert hashlib.sha256(data).hexdigest() == raw["card"]["sha256"], name
        header = yaml.safe_load(data.decode().split("---\n")[1])
        assert header["zoo_entry"] == name and header["datasets"] == [raw["dataset"]]
        assert header["license"] == raw["license"] and header["intended_use"], name
        assert sorted(header["metrics"]) == sorted(raw["metrics"]), name
    result = CliRunner().invoke(cli, ["info", "mlp.iris", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["card"]["zoo_entry"] == "mlp.iris" and Path(info["card_file"]).is_file()


def test_tinyvgg_digits_reproduces_its_recorded_metrics():
    from zoo.api import evaluate_model

    model = zoo.create_model("tinyvgg", pretrained="digits")
    got = evaluate_model(model, "digits", split="test")
    want = ENTRIES["tinyvgg.digits"]["metrics"]
    assert want["accuracy"] > 0.9
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("name", sorted(REQUIRED - {"tinyvgg.digits"}))
def test_every_bundled_entry_reproduces_its_recorded_metrics(name):
    from zoo.api import evaluate_model

    raw = ENTRIES[name]
    settings, _ = load_recipe(INDEX.parent / raw["recipe"])
    model_name, tag = name.split(".", 1)
    model = zoo.create_model(model_name, pretrained=tag)
    got = evaluate_model(model, raw["dataset"], split="test", loss=settings.get("loss"))
    for key, value in raw["metrics"].items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_zoo_train_recipe_reproduces_the_recorded_metrics(name, tmp_path):
    raw = ENTRIES[name]
    recipe = INDEX.parent / raw["recipe"]
    args = ["train", "--recipe", str(recipe), "--out", str(tmp_path / "run"), "-q", "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{") :])["metrics"]
    for key, value in raw["metrics"].items():
        assert metrics[key] == pytest.approx(value, abs=0.01), key
