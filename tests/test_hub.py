"""Registries, publish, pretrained models and the hub CLI (local registries, real files)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo import hub
from zoo.cli import cli
from zoo.errors import FetchError, UsageError
from zoo.hub import index as hub_index
from zoo.hub.publish import publish


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def published(tmp_path):
    """A real mlp exported with metrics and published into a fresh registry dir."""
    model = zoo.create_model("mlp", dataset="iris", hidden=6)
    weights = zoo.export(model, tmp_path / "w.safetensors", metrics={"accuracy": 0.875})
    registry = tmp_path / "reg"
    entry = publish(weights, registry, "test")
    return model.eval(), registry, entry


def test_publish_writes_a_verifiable_entry(published):
    _, registry, entry = published
    index = json.loads((registry / "index.json").read_text())
    assert index["schema"] == 2  # issue 10: entries pin the model's plugin and distribution
    [raw] = index["entries"]
    assert raw["name"] == "mlp.test" and raw["model"] == "mlp" and raw["dataset"] == "iris"
    assert (raw["plugin"], raw["dist"], raw["dist_version"]) == ("workflow", "zoo", zoo.__version__)
    assert raw["kwargs"] == {"in_features": 4, "num_classes": 3, "hidden": 6}
    assert raw["metrics"] == {"accuracy": 0.875} and raw["license"] == "MIT" and raw["created"]
    [f] = raw["files"]
    data = (registry / f["url"]).read_bytes()
    assert f["size"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry.name == "mlp.test"


def test_publish_refuses_overwrite_without_force(published, tmp_path):
    _, registry, _ = published
    other = zoo.export(
        zoo.create_model("mlp", dataset="iris", hidden=6), tmp_path / "o.safetensors"
    )
    before = (registry / "index.json").read_text()
    with pytest.raises(UsageError, match="mlp.test is already in .*; use --force"):
        publish(other, registry, "test")
    assert (registry / "index.json").read_text() == before
    publish(other, registry, "test", force=True, license="CC0-1.0")
    [raw] = json.loads((registry / "index.json").read_text())["entries"]
    assert raw["license"] == "CC0-1.0" and raw["metrics"] == {}
    assert raw["files"][0]["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()


def test_publish_a_run_dir_reads_run_json_and_copies_the_recipe(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    zoo.export(zoo.create_model("linear", dataset="diabetes"), run / "model.safetensors")
    recipe = tmp_path / "linear.diabetes.toml"
    recipe.write_text(
        'description = "Linear on diabetes"\nmodel = "linear"\ndataset = "diabetes"\n'
    )
    from zoo.train import rundir

    rundir.keep_recipe(run, recipe)
    run_json = {"settings": {"dataset": "diabetes"}, "result": {"metrics": {"r2": 0.4}}}
    (run / "run.json").write_text(json.dumps(run_json))
    result = _invoke("publish", str(run), "--registry", str(tmp_path / "reg"), "--tag", "d")
    assert result.exit_code == 0, result.output
    [raw] = json.loads((tmp_path / "reg" / "index.json").read_text())["entries"]
    assert raw["name"] == "linear.d" and raw["metrics"] == {"r2": 0.4}
    assert raw["recipe"] == "recipes/linear.d.toml"
    assert raw["summary"] == "Linear on diabetes"  # from the recipe's description
    assert (tmp_path / "reg" / raw["recipe"]).read_text() == recipe.read_text()


def test_publish_bad_inputs(tmp_path):
    assert _invoke("publish", str(tmp_path), "--registry", "r", "--tag", "x").exit_code == 2
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(UsageError, match="no zoo model metadata"):
        publish(plain, tmp_path / "r", "x")
    good = zoo.export(zoo.create_model("linear", in_features=2), tmp_path / "g.safetensors")
    with pytest.raises(UsageError, match="tag 'Bad Tag' must be"):
        publish(good, tmp_path / "r", "Bad Tag")


def test_create_model_pretrained_from_a_registry(published, monkeypatch):
    model, registry, _ = published
    monkeypatch.setenv("ZOO_REGISTRY", f"file://{registry}")
    loaded = zoo.create_model("mlp", pretrained="test")
    x = torch.randn(5, 4)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(x), model(x))
    assert "mlp" in zoo.list_models(pretrained=True)
    assert "fashion-v0" not in zoo.list_models(pretrained=True)
    with pytest.raises(zoo.UsageError, match="unknown pretrained entry 'mlp.tset'; did you mean"):
        zoo.create_model("mlp", pretrained="tset")


def test_listing_and_info_show_pretrained_entries(published, monkeypatch):
    _, registry, _ = published
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    result = _invoke("list", "pretrained", "mlp.t*", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["name"] == "mlp.test" and row["kind"] == "pretrained" and row["plugin"] == "reg"
    assert row["model"] == "mlp" and row["dataset"] == "iris" and row["tasks"] == ["multiclass"]
    assert row["metrics"] == {"accuracy": 0.875} and "accuracy=0.875" in row["summary"]
    info = json.loads(_invoke("info", "mlp.test", "--json").output)
    assert info["files"][0]["url"] == str(registry / "mlp.test.safetensors")
    assert "mlp.test" in zoo.info("mlp")["pretrained"]


def test_first_registry_wins_and_the_bundled_one_is_always_searched(published, tmp_path):
    _, registry, _ = published
    locations = hub.registry_locations([str(registry), f"file://{registry}/index.json"])
    assert locations[0] == str(registry / "index.json") and len(locations) == 2
    assert Path(locations[-1]) == Path(hub.bundled_index())
    assert Path(hub.bundled_index()).is_file()
    second = tmp_path / "second"
    (second).mkdir()
    raw = json.loads((registry / "index.json").read_text())
    raw["entries"][0]["metrics"] = {"accuracy": 0.1}
    raw["entries"][0]["files"][0]["url"] = (registry / "mlp.test.safetensors").as_uri()
    (second / "index.json").write_text(json.dumps(raw))
    assert hub.get_pretrained("mlp.test", [str(second), str(registry)]).metrics["accuracy"] == 0.1
    assert hub.get_pretrained("mlp.test", [str(registry), str(second)]).metrics["accuracy"] == 0.875


def test_local_registry_with_a_missing_file_and_unsupported_scheme(published, tmp_path):
    _, registry, entry = published
    (registry / "mlp.test.safetensors").unlink()
    with pytest.raises(FetchError, match="not found: .*mlp.test.safetensors"):
        hub.fetch("mlp.test", registry=str(registry))
    with pytest.raises(UsageError, match="unsupported registry"):  # bad usage: exit 2
        hub.list_pretrained(registry="ftp://example.com/reg")
    with pytest.raises(FetchError, match="registry index not found"):
        hub.list_pretrained(registry=str(tmp_path / "nowhere"))


def test_plugins_declare_pretrained_entries(make_plugin, published, caplog):
    _, registry, entry = published
    ref = entry.files[0]
    make_plugin(
        "demo-dist",
        {
            "demopkg/__init__.py": f"""
                import zoo

                @zoo.hookimpl
                def register_models(register):
                    register("demo-mlp", "zoo_workflow.models:MLP", task="multiclass",
                             pretrained=[
                                 {{"tag": "iris", "kwargs": {{"in_features": 4, "num_classes": 3,
                                   "hidden": 6}}, "dataset": "iris",
                                   "files": [{{"url": "file://{ref.url}",
                                              "sha256": "{ref.sha256}", "size": {ref.size}}}]}},
                             ])
            """
        },
        {"demo": "demopkg"},
    )
    hub_index._WARNED.clear()  # a warning is logged once per process: start with none shown
    with caplog.at_level(logging.WARNING, logger="zoo"):  # diagnostics are logged, not warned
        names = hub.list_pretrained()
    assert "demo-mlp.iris" in names  # a malformed declaration fails its plugin: tests/hostile
    hub_index._WARNED.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zoo"):
        found = hub.get_pretrained("demo-mlp.iris")
        assert found.to_dict()["plugin"] == "demo"
        model = zoo.create_model("demo-mlp", pretrained="iris")
    assert not any(r.levelno == logging.WARNING for r in caplog.records)
    assert model.layers[0].weight.shape == (6, 4)


def test_hub_cli_fetch_and_cache(published, monkeypatch):
    _, registry, _ = published
    result = _invoke("fetch", "mlp.test", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent.name == "blobs"
    listing = json.loads(_invoke("cache", "list", "--json").output)
    assert [(r["name"], r["path"]) for r in listing] == [("mlp.test", str(path))]
    assert "1 of 1 cached files verified" in _invoke("cache", "verify").output
    result = _invoke("fetch", "mlp.test", "--registry", str(registry), "--offline")
    assert result.exit_code == 0 and result.stdout.strip().endswith(str(path))
    assert _invoke("cache", "clear").exit_code == 0
    assert not path.exists() and json.loads(_invoke("cache", "list", "--json").output) == []
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    result = _invoke("fetch", "mlp.nope")
    assert result.exit_code == 2 and "error: unknown pretrained entry 'mlp.nope'" in result.output


def test_export_cli_safetensors_and_onnx(tmp_path, monkeypatch):
    model = zoo.create_model("tinyvgg", dataset="digits", hidden=4).eval()
    run = tmp_path / "run"
    zoo.export(model, run / "model.safetensors", metrics={"accuracy": 0.5})
    monkeypatch.chdir(tmp_path)
    result = _invoke("export", str(run))
    assert result.exit_code == 0, result.output
    out = tmp_path / "tinyvgg-digits.safetensors"
    assert result.stdout.strip() == "tinyvgg-digits.safetensors" and out.is_file()
    assert zoo.weights.read_metadata(out)["metrics"] == {"accuracy": 0.5}
    assert _invoke("export", str(out), "-o", str(out)).exit_code == 2
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx not installed")
    result = _invoke("export", str(run), "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert result.exit_code == 0, result.output
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
        x = torch.randn(5, 1, 8, 8)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.inference_mode():
            assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-5)


def test_hub_listing_stays_light(published):
    _, registry, _ = published
    code = (
        "import sys; from zoo import hub; "
        f"assert 'mlp.test' in hub.list_pretrained(registry={str(registry)!r}); "
        "hub.get_pretrained('mlp.test', registry=" + repr(str(registry)) + ").to_dict(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_export_takes_a_pretrained_entry_name_as_evaluate_does(tmp_path, monkeypatch):
    # one resolver for RUN|WEIGHTS|ENTRY: `zoo export tinyvgg.digits` as `zoo evaluate` takes it
    monkeypatch.chdir(tmp_path)
    result = _invoke("export", "tinyvgg.digits", "-o", "digits.safetensors")
    assert result.exit_code == 0, result.output
    exported = zoo.load(tmp_path / "digits.safetensors")
    reference = zoo.create_model("tinyvgg", pretrained="digits")
    assert exported.state_dict().keys() == reference.state_dict().keys()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(exported.state_dict()[name], tensor), name
