"""Recipes by entry name (issue 12, item 5): ``zoo train --recipe mlp.circles`` trains with the
recipe the pretrained entry was made with, read from its registry - the bundled one through the
installed package (``importlib.resources``), not this checkout; a recipe file still works, and
an unknown name is one line with close matches (exit 2). From an installed wheel:
tests/test_packaging.py."""

from __future__ import annotations

import json
import tomllib
from importlib.resources import files

import pytest
from cli_helpers import one_line_error, zoo_cli

from zoo.errors import UnknownNameError, UsageError
from zoo.train.recipes import find_recipe, load_recipe


def test_an_entry_name_means_the_recipe_shipped_in_the_registry_package():
    path = find_recipe("tinyvgg.digits")
    assert path == files("zoo_registry").joinpath("recipes", "tinyvgg.digits.toml")
    assert find_recipe("workflow/mlp.circles").name == "mlp.circles.toml"  # qualified names too
    settings, info = load_recipe("tinyvgg.digits")
    shipped = tomllib.loads(path.read_text(encoding="utf-8"))
    assert settings["lr"] == shipped["lr"] and settings["model_kwargs"] == {"hidden": 8}
    assert info["name"] == "tinyvgg.digits"


def test_zoo_train_with_an_entry_name_trains_and_keeps_that_recipe(tmp_path):
    shipped = files("zoo_registry").joinpath("recipes", "mlp.circles.toml").read_text("utf-8")
    out = tmp_path / "run"
    result = zoo_cli("train", "--recipe", "mlp.circles", "--epochs", "1", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "run.json").read_text())["settings"]
    recipe = tomllib.loads(shipped)
    assert (settings["model"], settings["dataset"]) == (recipe["model"], recipe["dataset"])
    assert (settings["lr"], settings["batch_size"]) == (recipe["lr"], recipe["batch_size"])
    assert settings["epochs"] == 1  # a flag still wins over the recipe
    assert (out / "recipe.toml").read_text("utf-8") == shipped


def test_a_recipe_file_still_works_even_one_named_like_an_entry(tmp_path, monkeypatch):
    mine = tmp_path / "mlp.circles"  # an existing file wins over the entry of that name
    mine.write_text('model = "mlp"\ndataset = "moons"\nlr = 0.5\n')
    monkeypatch.chdir(tmp_path)
    assert find_recipe("mlp.circles") == mine.relative_to(tmp_path)
    assert load_recipe("mlp.circles")[0] == {"model": "mlp", "dataset": "moons", "lr": 0.5}
    assert load_recipe(mine)[0]["dataset"] == "moons"
    with pytest.raises(UsageError, match="recipe missing.toml does not exist"):
        load_recipe("missing.toml")


@pytest.mark.parametrize(
    ("name", "close"),
    [("tinyvgg.digit", "did you mean: tinyvgg.digits?"), ("circles", "mlp.circles")],
)
def test_an_unknown_recipe_is_one_line_with_close_matches(name, close, tmp_path):
    error = one_line_error(zoo_cli("train", "--recipe", name, "--out", tmp_path / "r"))
    assert error.startswith(f"error: unknown recipe {name!r}") and close in error
    assert not (tmp_path / "r").exists()
    with pytest.raises(UnknownNameError):
        find_recipe(name)


def test_an_entry_without_a_local_recipe_file_says_so():
    error = one_line_error(zoo_cli("train", "--recipe", "resnet18.imagenet1k-v1"))
    assert "resnet18.imagenet1k-v1 has no local recipe file" in error
    assert "https://github.com/pytorch/vision" in error  # torchvision's recipe is a web page


def _registry(root, recipe):
    """A registry directory whose one entry names ``recipe`` (never fetched: no weights)."""
    root.mkdir()
    entry = {"name": "mlp.mine", "model": "mlp", "plugin": "workflow", "recipe": recipe,
             "files": [{"url": "mlp.mine.safetensors", "sha256": "0" * 64, "size": 1}]}  # fmt: skip
    (root / "index.json").write_text(json.dumps({"schema": 2, "entries": [entry]}))
    return root


def test_a_users_registry_serves_its_recipes_inside_it_only(tmp_path, monkeypatch):
    mine = _registry(tmp_path / "reg", "recipes/mlp.mine.toml")
    (mine / "recipes").mkdir()
    (mine / "recipes" / "mlp.mine.toml").write_text('model = "mlp"\ndataset = "blobs"\n')
    monkeypatch.setenv("ZOO_REGISTRY", str(mine))
    assert find_recipe("mlp.mine") == mine / "recipes" / "mlp.mine.toml"
    outside = _registry(tmp_path / "evil", "../reg/recipes/mlp.mine.toml")
    monkeypatch.setenv("ZOO_REGISTRY", str(outside))
    with pytest.raises(UsageError, match="has no local recipe file"):
        find_recipe("mlp.mine")
