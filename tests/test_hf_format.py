"""Hugging Face conventions: `zoo export --format hf` folders (config.json, model.safetensors,
README.md) that `zoo.load(DIR)` reads, and `hf://owner/repo[@revision]` registries resolved
through huggingface_hub, tested offline against a cache laid out as huggingface_hub lays it
out (checked with huggingface_hub's own cache scanner)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import one_line_error, zoo_cli
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_iris

import zoo
from zoo.errors import UnknownNameError, WeightsError

BUNDLED = Path(__file__).resolve().parents[1] / "registry"
WEIGHTS = BUNDLED / "mlp.iris.safetensors"
JSON_META = ("kwargs", "metrics", "classes", "transform")


def _metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    return {k: json.loads(v) if k in JSON_META else v for k, v in (meta or {}).items()}


def _header(text: str) -> dict:
    return yaml.safe_load(text[4:].split("\n---\n", 1)[0])


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "mlp-iris"
    result = zoo_cli(
        "export", WEIGHTS, "--format", "hf", "-o", out, "--license", "mit",
        "--intended-use", "classifying iris flowers from four measurements",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    return out


# ---------------------------------------------------------------- export and load


def test_export_writes_config_weights_and_card(folder):
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    meta = _metadata(WEIGHTS)
    config = json.loads((folder / "config.json").read_text())
    for key in ("model", "plugin", "dist", "dist_version", "kwargs", "dataset", "metrics"):
        assert config[key] == meta[key], key
    assert config["transform"] == meta["transform"] and config["classes"] == meta["classes"]
    assert config["id2label"] == {str(i): c for i, c in enumerate(meta["classes"])}
    assert config["label2id"] == {c: i for i, c in enumerate(meta["classes"])}
    assert (config["zoo_version"], config["zoo_format"]) == (zoo.__version__, "zoo.hf/1")
    source, copied = load_file(str(WEIGHTS)), load_file(str(folder / "model.safetensors"))
    assert source.keys() == copied.keys()
    assert all(torch.equal(source[k], copied[k]) for k in source)
    card = _header((folder / "README.md").read_text())
    assert card["license"] == "mit" and card["library_name"] == "zoo"
    assert card["intended_use"] == "classifying iris flowers from four measurements"
    assert card["datasets"] == ["iris"] and card["metrics"] == sorted(meta["metrics"])


def test_zoo_load_reads_the_folder(folder):
    from_folder, from_file = zoo.load(folder), zoo.load(WEIGHTS)
    x = torch.randn(16, 4)
    assert torch.equal(from_folder(x), from_file(x))
    assert from_folder.zoo_spec.model == "mlp" and not from_folder.training
    assert zoo.transforms(from_folder).classes == tuple(load_iris().target_names)
    raw = load_iris().data[:20]
    assert torch.equal(zoo.predict(folder, raw), zoo.predict(WEIGHTS, raw))


def test_a_folder_with_plain_safetensors_is_built_from_its_config(folder):
    reference = zoo.load(WEIGHTS)
    save_file(load_file(str(WEIGHTS)), str(folder / "model.safetensors"))  # no zoo metadata
    assert "model" not in _metadata(folder / "model.safetensors")
    model = zoo.load(folder)
    x = torch.randn(8, 4)
    assert torch.equal(model(x), reference(x))
    assert zoo.transforms(model).classes == tuple(load_iris().target_names)


@pytest.mark.parametrize(
    "change, why",
    [
        ({"model": "os.system"}, "model"),
        ({"model": "../../etc/passwd"}, "model"),
        ({"model": "no-such-model"}, "registers no model"),
        ({"plugin": "evil.module:attr"}, "model"),
        ({"zoo_format": "transformers"}, "not a zoo model config"),
        ({"kwargs": [1, 2]}, "kwargs must be an object"),
        ({"metrics": {"accuracy": "high"}}, "metrics must be numbers"),
        ({"classes": "setosa"}, "classes"),
        ({"kwargs": {"in_features": 4, "num_classes": 3, "hidden": [8]}}, "but"),
    ],
)
def test_config_is_data_checked_before_anything_is_built(folder, change, why):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, **change}))
    with pytest.raises((WeightsError, UnknownNameError)) as info:
        zoo.load(folder)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_unknown_config_fields_never_act_and_size_is_bounded(folder, monkeypatch):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    hostile = {"auto_map": {"AutoModel": "evil.Model"}, "architectures": ["os.system"]}
    path.write_text(json.dumps({**config, **hostile}))
    assert "evil" not in sys.modules and zoo.load(folder).zoo_spec.model == "mlp"
    monkeypatch.setattr("zoo.weights.hf.MAX_CONFIG_BYTES", 100)
    with pytest.raises(WeightsError, match="byte limit"):
        zoo.load(folder)
    path.write_text("[" * 100 + "]" * 100)
    monkeypatch.setattr("zoo.weights.hf.MAX_CONFIG_BYTES", 10_000)
    with pytest.raises(WeightsError, match="nested deeper"):
        zoo.load(folder)


def test_export_refusals(folder, tmp_path):
    again = zoo_cli("export", WEIGHTS, "--format", "hf", "-o", folder)
    assert "not empty; pass --force" in one_line_error(again, 2)
    assert zoo_cli("export", WEIGHTS, "--format", "hf", "-o", folder, "--force").exit_code == 0
    a_file = tmp_path / "x.txt"
    a_file.write_text("x")
    assert "not a folder" in one_line_error(
        zoo_cli("export", WEIGHTS, "--format", "hf", "-o", a_file)
    )
    card_flag = zoo_cli("export", WEIGHTS, "-o", tmp_path / "w.safetensors", "--license", "mit")
    assert "only apply to --format hf" in one_line_error(card_flag, 2)


def test_a_registry_lists_a_published_folder(folder, tmp_path, monkeypatch):
    registry = tmp_path / "reg"
    result = zoo_cli("publish", folder, "--registry", registry, "--tag", "hf")
    assert result.exit_code == 0, result.output
    entry = json.loads((registry / "index.json").read_text())["entries"][0]
    assert [f["url"] for f in entry["files"]] == ["mlp.hf/model.safetensors", "mlp.hf/config.json"]
    assert entry["card"]["url"] == "mlp.hf/README.md"
    for ref in [*entry["files"], entry["card"]]:
        data = (registry / ref["url"]).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (ref["sha256"], ref["size"])
    published = registry / "mlp.hf"
    assert (published / "config.json").read_bytes() == (folder / "config.json").read_bytes()
    card = _header((published / "README.md").read_text())  # the folder's card fields, completed
    assert card["license"] == "mit" and card["zoo_entry"] == "mlp.hf"
    assert card["intended_use"] == "classifying iris flowers from four measurements"
    x = torch.randn(4, 4)
    assert torch.equal(zoo.load(published)(x), zoo.load(folder)(x))  # still an hf folder
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    assert torch.equal(zoo.create_model("mlp", pretrained="hf")(x), zoo.load(folder)(x))
    # a folder whose config names another model than its weights is refused
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model": "linear"}))
    wrong = zoo_cli("publish", folder, "--registry", registry, "--tag", "x")
    assert "names model workflow/linear but its weights are for" in one_line_error(wrong)


# ---------------------------------------------------------------- hf:// registries


def _hf_repo(cache: Path, repo_id: str, commits: dict[str, dict[str, bytes]], main: str) -> Path:
    """A repository in huggingface_hub's on-disk cache layout: ``blobs/<etag>`` holding the
    bytes, ``snapshots/<commit>/<file>`` symlinks into them, ``refs/main`` naming a commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for commit, files in commits.items():
        for name, data in files.items():
            etag = hashlib.sha256(data).hexdigest()  # an LFS file's etag is its sha256
            (repo / "blobs" / etag).write_bytes(data)
            link = repo / "snapshots" / commit / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(repo / "blobs" / etag, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(main)
    return repo


@pytest.fixture
def hf_cache(tmp_path, folder) -> tuple[Path, dict[str, str], Path]:
    """A cache holding ``owner/zoo-models`` at two commits (``main`` has entry ``mlp.new``,
    the older one ``mlp.old``), both published by zoo, and the environment to read it."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    old, new = "1" * 40, "2" * 40
    commits = {}
    for commit, tag in ((old, "old"), (new, "new")):
        registry = tmp_path / f"reg-{tag}"
        result = zoo_cli("publish", folder, "--registry", registry, "--tag", tag)
        assert result.exit_code == 0, result.output
        commits[commit] = {
            p.relative_to(registry).as_posix(): p.read_bytes()
            for p in registry.rglob("*")
            if p.is_file()
        }
    cache = tmp_path / "hf-cache"
    _hf_repo(cache, "owner/zoo-models", commits, main=new)
    scanned = huggingface_hub.scan_cache_dir(cache)  # huggingface_hub agrees on the layout
    (repo,) = scanned.repos
    assert repo.repo_id == "owner/zoo-models" and repo.refs["main"].commit_hash == new
    assert {r.commit_hash for r in repo.revisions} == {old, new}
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    return cache, env, tmp_path / "reg-new"


def test_hf_registry_fetches_verifies_and_pins_revisions(run_zoo, hf_cache):
    cache, env, published = hf_cache
    found = run_zoo("fetch", "mlp.new", "--registry", "hf://owner/zoo-models", env=env)
    assert found.returncode == 0, found.stderr
    weights = Path(found.stdout.strip())
    assert weights.read_bytes() == (published / "mlp.new" / "model.safetensors").read_bytes()
    info = run_zoo(
        "info", "mlp.new", "--json", env={**env, "ZOO_REGISTRY": "hf://owner/zoo-models"}
    )
    assert info.returncode == 0, info.stderr
    shown = json.loads(info.stdout)
    assert shown["source"] == "hf://owner/zoo-models/index.json"
    assert shown["card"]["intended_use"] == "classifying iris flowers from four measurements"
    # a revision pins the index: the older commit has mlp.old, main does not
    older = run_zoo("fetch", "mlp.old", "--registry", f"hf://owner/zoo-models@{'1' * 40}", env=env)
    assert older.returncode == 0, older.stderr
    missing = run_zoo("fetch", "mlp.old", "--registry", "hf://owner/zoo-models@main", env=env)
    assert missing.returncode == 2 and "unknown pretrained entry" in missing.stderr


def test_hf_registry_errors_are_one_line(run_zoo, hf_cache, monkeypatch):
    cache, env, published = hf_cache
    etag = hashlib.sha256((published / "mlp.new" / "model.safetensors").read_bytes()).hexdigest()
    blob = cache / "models--owner--zoo-models" / "blobs" / etag
    index_link = cache / "models--owner--zoo-models" / "snapshots" / ("2" * 40) / "index.json"
    index = json.loads(index_link.read_text())
    # an index naming a file outside its repository is refused before anything is fetched
    entry = index["entries"][0]
    outside_file = {**entry["files"][0], "url": "https://elsewhere.example/w.safetensors"}
    bad = {**index, "entries": [{**entry, "files": [outside_file]}]}
    real = index_link.resolve()
    index_link.unlink()
    index_link.write_text(json.dumps(bad))
    outside = run_zoo("fetch", "mlp.new", "--registry", "hf://owner/zoo-models", env=env)
    assert outside.returncode == 1 and "plain relative path" in outside.stderr
    index_link.unlink()
    os.symlink(real, index_link)
    # a blob changed in huggingface_hub's cache fails zoo's own verification
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    changed = run_zoo("fetch", "mlp.new", "--registry", "hf://owner/zoo-models", env=env)
    assert changed.returncode == 1 and "mismatch" in changed.stderr
    # a repository not in the offline cache, a malformed location
    absent = run_zoo("fetch", "mlp.new", "--registry", "hf://owner/other", env=env)
    assert absent.returncode == 1
    assert (
        absent.stderr.count("\n") == 1 and "cannot get hf://owner/other/index.json" in absent.stderr
    )
    assert "malformed hf:// location" in one_line_error(
        zoo_cli("fetch", "x.y", "--registry", "hf://x")
    )


def test_without_the_extra_hf_registries_say_what_to_install(run_zoo, tmp_path):
    code = (
        "import sys; sys.modules['huggingface_hub'] = None\n"
        "from zoo.cli import main\n"
        "sys.argv = ['zoo', 'fetch', 'mlp.iris', '--registry', 'hf://owner/zoo-models']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_REGISTRY")}
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == 'error: hf:// registries need the huggingface_hub package: pip install "zoo[hf]"'
    )
    # and zoo's core never imports it
    listing = subprocess.run(
        [sys.executable, "-c", "import sys, zoo.hub.index as hub; hub.list_pretrained(); "
         "print('huggingface_hub' in sys.modules)"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert listing.stdout.strip() == "False", listing.stderr
