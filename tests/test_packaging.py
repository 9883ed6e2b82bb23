"""A non-editable install works: the wheel carries the plugins, their entry points and the
bundled registry, and zoo runs from it with no access to this checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a clean copy: an in-tree build/ left by an earlier build could add stale files.
    src = tmp_path_factory.mktemp("src") / "zoo"
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", "runs", "__pycache__", ".venv")
    shutil.copytree(ROOT, src, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    return next(out.glob("zoo-*.whl"))


def test_wheel_contains_plugins_entry_points_and_registry(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("zoo", "zoo_workflow", "zoo_losses", "zoo_datasets", "zoo_vision",
                    "zoo_torchvision", "zoo_loggers", "zoo_registry"):  # fmt: skip
        assert f"{package}/__init__.py" in names
    assert "zoo_registry/index.json" in names
    index = json.loads(zipfile.ZipFile(wheel).read("zoo_registry/index.json"))
    for entry in index["entries"]:
        for file in entry["files"]:
            assert f"zoo_registry/{file['url']}" in names
    assert any(n.startswith("zoo_registry/recipes/") and n.endswith(".toml") for n in names)
    eps = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(eps).decode()
    assert "[zoo]" in text and "vision = zoo_vision" in text
    assert "tensorboard = zoo_loggers.tensorboard" in text and "mlflow = zoo_loggers.mlflow" in text
    assert "zoo = zoo.cli:main" in text


def _install(wheel: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The wheel unpacked as pip installs it, and the environment that runs it (``python -S``)
    with no access to this checkout."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip does for a pure-Python wheel
    env = {
        **os.environ,
        # -S skips site-packages' .pth files (and so the editable install of this checkout);
        # dependencies still come from site-packages, listed after the wheel's folder.
        "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]]),
        "ZOO_HOME": str(tmp_path / "home"),
    }
    return site, env


def test_zoo_runs_from_the_installed_wheel(wheel, tmp_path):
    site, env = _install(wheel, tmp_path)

    def zoo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-S", "-m", "zoo", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True,
        )  # fmt: skip

    where = subprocess.run(
        [sys.executable, "-S", "-c", "import zoo, zoo_registry; print(zoo.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(site))
    listed = zoo("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {"tinyvgg", "mlp", "digits", "cross-entropy"} <= {r["name"] for r in rows}
    pretrained = [r["name"] for r in rows if r["kind"] == "pretrained"]
    assert "tinyvgg.digits" in pretrained
    fetched = zoo("fetch", "tinyvgg.digits")
    assert fetched.returncode == 0, fetched.stderr


def test_a_recipe_by_entry_name_comes_from_the_installed_package(wheel, tmp_path):
    site, env = _install(wheel, tmp_path)
    recipe = site / "zoo_registry" / "recipes" / "mlp.circles.toml"
    text = recipe.read_text(encoding="utf-8")
    assert "lr = 0.02\n" in text
    recipe.write_text(text.replace("lr = 0.02\n", "lr = 0.0123\n"))  # the installed copy's own
    trained = subprocess.run(
        [sys.executable, "-S", "-m", "zoo", "train", "--recipe", "mlp.circles", "--epochs", "1",
         "--out", "run", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    settings = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert (settings["model"], settings["dataset"], settings["lr"]) == ("mlp", "circles", 0.0123)
    assert (tmp_path / "run" / "recipe.toml").read_text(encoding="utf-8") == recipe.read_text(
        encoding="utf-8"
    )
