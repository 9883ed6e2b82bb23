"""Broken or clashing registries, fetch/export CLI edge cases and unwritable paths."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo import hub
from zoo.cli import cli
from zoo.errors import FetchError, WeightsError, ZooError
from zoo.hub import cache
from zoo.hub import index as hub_index
from zoo.hub.publish import publish

BUNDLED = {"mlp.circles", "mlp.iris", "tinyvgg.digits"}


def _invoke(*args: str, **kw):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kw)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("zoo: warning:")]


@pytest.fixture(autouse=True)
def _fresh_warnings():
    """Warnings are once per process; each test starts with none shown yet."""
    hub_index._WARNED.clear()
    yield
    hub_index._WARNED.clear()


@pytest.fixture
def registry(tmp_path):
    """A registry dir with one real entry, mlp.test (an iris mlp)."""
    model = zoo.create_model("mlp", dataset="iris", hidden=6)
    weights = zoo.export(model, tmp_path / "w.safetensors", metrics={"accuracy": 0.875})
    root = tmp_path / "reg"
    publish(weights, root, "test")
    return root


@pytest.fixture
def run(tmp_path):
    """A run dir holding an iris mlp's model.safetensors."""
    model = zoo.create_model("mlp", dataset="iris", hidden=4)
    out = tmp_path / "run"
    zoo.export(model, out / "model.safetensors", metrics={"accuracy": 0.5})
    return out


def _bad_registry(tmp_path: Path, kind: str) -> tuple[str, str]:
    """A broken ZOO_REGISTRY value and (part of) the reason it is skipped."""
    if kind == "missing":
        return str(tmp_path / "nonexist"), "registry index not found"
    if kind == "malformed":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "index.json").write_text("{not json")
        return str(tmp_path / "bad"), "not JSON"
    return "ftp://example.invalid/reg", "unsupported registry"


# ---------------------------------------------------------------- 1. a broken extra registry


@pytest.mark.parametrize("kind", ["missing", "malformed", "scheme"])
def test_a_broken_env_registry_is_skipped_with_one_warning(kind, tmp_path, monkeypatch, capsys):
    bad, reason = _bad_registry(tmp_path, kind)
    monkeypatch.setenv("ZOO_REGISTRY", bad)
    assert set(zoo.list_pretrained()) >= BUNDLED
    assert set(hub.list_pretrained()) >= BUNDLED
    assert "mlp.iris" in zoo.info("mlp")["pretrained"]
    model = zoo.create_model("mlp", pretrained="circles")
    assert model.zoo_spec.dataset == "circles"
    [line] = _warnings(capsys.readouterr().err)
    assert "skipping registry" in line and reason in line and "ZOO_REGISTRY" in line
    assert bad.split("://")[-1] in line


def test_broken_env_registry_does_not_break_cli_listing(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "nonexist"))
    for args in (["list", "pretrained"], ["list"], ["info", "mlp"], ["info", "mlp.iris"]):
        result = _invoke(*args)
        assert result.exit_code == 0, result.output
        assert "mlp.iris" in result.stdout or "mlp" in result.stdout
    hub_index._WARNED.clear()
    result = _invoke("list", "pretrained")  # lists every entry: still one warning line
    assert len(_warnings(result.stderr)) == 1 and "mlp.circles" in result.stdout


def test_broken_env_registry_real_cli_warns_once_without_traceback(tmp_path, run_zoo):
    result = run_zoo("list", "pretrained", env={"ZOO_REGISTRY": str(tmp_path / "nonexist")})
    assert result.returncode == 0 and "mlp.circles" in result.stdout
    assert result.stderr.count("\n") == 1 and "registry index not found" in result.stderr


def test_a_name_only_the_broken_registry_could_have_is_an_error(tmp_path, monkeypatch):
    bad, _ = _bad_registry(tmp_path, "missing")
    monkeypatch.setenv("ZOO_REGISTRY", bad)
    with pytest.raises(FetchError, match=r"cannot look up pretrained entry 'mlp\.mine': regis"):
        hub.fetch("mlp.mine")
    result = _invoke("fetch", "mlp.mine")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: cannot look up pretrained entry")


def test_an_explicit_broken_registry_is_still_an_error(tmp_path):
    bad, _ = _bad_registry(tmp_path, "malformed")
    with pytest.raises(FetchError, match="malformed registry index .*not JSON"):
        hub.list_pretrained(registry=bad)
    result = _invoke("fetch", "--registry", bad, "mlp.iris")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: malformed registry index") and bad in line


# ---------------------------------------------------------------- 2. shadowed entries


def _copy_registry(src: Path, dest: Path, **changes) -> Path:
    raw = json.loads((src / "index.json").read_text())
    entry = raw["entries"][0]
    entry["files"][0]["url"] = (src / entry["files"][0]["url"]).as_uri()
    entry.update(changes)
    dest.mkdir()
    (dest / "index.json").write_text(json.dumps(raw))
    return dest


def test_shadowed_entries_warn_naming_both_sources(registry, tmp_path, capsys):
    other = _copy_registry(registry, tmp_path / "other", kwargs={"hidden": 7})
    found = hub.get_pretrained("mlp.test", [str(other), str(registry)])
    assert found.kwargs == {"hidden": 7}  # the first registry in search order wins
    [line] = _warnings(capsys.readouterr().err)
    assert "mlp.test" in line and "shadows" in line
    assert line.index(str(other)) < line.index(str(registry / "index.json"))
    hub.list_pretrained(registry=[str(other), str(registry)])
    assert _warnings(capsys.readouterr().err) == []  # once per process


def test_an_identical_copy_is_not_a_clash(registry, tmp_path, capsys):
    same = _copy_registry(registry, tmp_path / "same")
    assert hub.get_pretrained("mlp.test", [str(same), str(registry)]).source.startswith(str(same))
    assert _warnings(capsys.readouterr().err) == []


def test_env_registry_shadowing_the_bundled_one_warns(registry, tmp_path, monkeypatch, capsys):
    raw = json.loads((registry / "index.json").read_text())
    raw["entries"][0]["name"] = "mlp.iris"
    (registry / "index.json").write_text(json.dumps(raw))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    result = _invoke("list", "pretrained", "--json")
    [row] = [r for r in json.loads(result.stdout) if r["name"] == "mlp.iris"]
    assert row["plugin"] == "reg"
    [line] = _warnings(result.stderr)
    assert str(registry) in line and hub.bundled_index() in line


def test_a_plugin_declaration_for_its_own_mlp_shadows_nothing(make_plugin, registry, capsys):
    ref = hub.get_pretrained("mlp.test", str(registry)).files[0]
    decl = {"tag": "test", "kwargs": {"hidden": 3}, "files": [vars(ref) | {"url": ref.url}]}
    make_plugin(
        "clash-dist",
        {
            "clashpkg/__init__.py": f"""
                import zoo

                @zoo.hookimpl
                def register_models(register):
                    register("mlp", "zoo_workflow.models:MLP", task="multiclass",
                             pretrained=[{decl!r}])
            """
        },
        {"clash": "clashpkg"},
    )
    # issue 10: clash's mlp.test is for clash/mlp, the registry's for zoo's mlp: both are kept
    assert hub.get_pretrained("mlp.test", str(registry)).kwargs["hidden"] == 6
    assert hub.get_pretrained("clash/mlp.test", str(registry)).kwargs["hidden"] == 3
    assert {"mlp.test", "clash/mlp.test"} <= set(hub.list_pretrained(registry=str(registry)))
    assert _warnings(capsys.readouterr().err) == []


# ---------------------------------------------------------------- 3. fetch says "cached"


def test_fetch_says_fetched_then_cached(registry):
    first = _invoke("fetch", "mlp.test", "--registry", str(registry))
    path = first.stdout.strip()
    assert first.exit_code == 0 and first.stderr.strip() == f"fetched mlp.test ({path})"
    again = _invoke("fetch", "mlp.test", "--registry", str(registry))
    assert again.stdout.strip() == path and again.stderr.strip() == f"cached mlp.test ({path})"


# ---------------------------------------------------------------- 4./5. export


def test_export_refuses_to_overwrite_without_force(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mlp-iris.safetensors"
    out.write_text("precious")
    result = _invoke("export", str(run))
    assert result.exit_code == 2 and out.read_text() == "precious"
    [line] = result.stderr.splitlines()
    assert "mlp-iris.safetensors already exists" in line and "--force" in line
    assert _invoke("export", str(run), "--force").exit_code == 0
    assert zoo.weights.read_metadata(out)["model"] == "mlp"


@pytest.mark.parametrize(("fmt", "output"), [("onnx", "m.safetensors"), ("safetensors", "m.onnx")])
def test_export_format_and_extension_must_agree(run, tmp_path, fmt, output):
    result = _invoke("export", str(run), "--format", fmt, "-o", str(tmp_path / output))
    assert result.exit_code == 2 and not (tmp_path / output).exists()
    [line] = result.stderr.splitlines()
    assert f"--format {fmt} does not match the output" in line


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed")
def test_export_default_output_is_the_current_directory_for_both_formats(
    run, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert _invoke("export", str(run)).stdout.strip() == "mlp-iris.safetensors"
    result = _invoke("export", str(run), "--format", "onnx")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "mlp-iris.onnx" and (tmp_path / "mlp-iris.onnx").is_file()
    assert not (run / "model.onnx").exists()
    result = _invoke("export", str(run), "-o", "inferred.onnx")  # format from the extension
    assert result.exit_code == 0 and (tmp_path / "inferred.onnx").read_bytes()[:2] != b"\0\0"
    assert "current directory" in " ".join(_invoke("export", "--help").stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "onnx", "--input-shape", "abc"], "--input-shape 'abc' must be positive"),
        (["--format", "onnx", "--input-shape", "4,0"], "--input-shape '4,0' must be positive"),
        (["--input-shape", "4"], "--input-shape only applies to --format onnx"),
    ],
)
def test_export_bad_input_shape_is_a_usage_error(run, tmp_path, args, message):
    result = _invoke("export", str(run), *args, "-o", str(tmp_path / "m.x"))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line


# ---------------------------------------------------------------- 7. unwritable paths


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "somefile"
    path.write_text("x")
    return path


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_export_into_a_file_is_a_one_line_error(run, afile, fmt):
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx not installed")
    out = afile / f"x.{fmt}"
    result = _invoke("export", str(run), "--format", fmt, "-o", str(out))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line == f"error: cannot write {out}: {afile} is not a directory"


def test_python_export_into_a_file_is_a_weights_error(afile):
    with pytest.raises(WeightsError, match=f"cannot write .*: {afile} is not a directory"):
        zoo.export(zoo.create_model("linear", in_features=2), afile / "w.safetensors")


def test_publish_into_a_file_is_a_one_line_error(run, afile):
    result = _invoke("publish", str(run), "--registry", str(afile / "reg"), "--tag", "t")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot create registry directory") and "not a directory" in line
    with pytest.raises(ZooError, match="cannot create registry directory"):
        publish(run, afile / "reg", "t")


def test_fetch_with_an_unusable_zoo_home_is_a_one_line_error(afile, monkeypatch, run_zoo):
    monkeypatch.setenv("ZOO_HOME", str(afile / "home"))
    with pytest.raises(FetchError, match=f"cannot create cache dir .*{afile} is not a directory"):
        hub.fetch("mlp.iris")
    result = run_zoo("fetch", "mlp.iris", env={"ZOO_HOME": str(afile / "home")})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot create cache dir") and "ZOO_HOME" in line


def test_fetch_that_cannot_write_into_the_cache_is_a_one_line_error():
    ref = hub.get_pretrained("mlp.iris").files[0]
    record = cache.blob_path(ref).with_name(cache.blob_path(ref).name + ".json")
    record.mkdir(parents=True)  # a directory where the fetch record must go
    with pytest.raises(FetchError, match=f"cannot write to the cache .*{record.parent}") as err:
        hub.fetch("mlp.iris")
    assert "\n" not in str(err.value) and "ZOO_HOME" in str(err.value)


def test_fetch_from_a_registry_under_a_file_is_a_one_line_error(afile):
    result = _invoke("fetch", "--registry", str(afile / "reg"), "mlp.iris")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert (
        line == f"error: cannot read registry index {afile / 'reg' / 'index.json'}: Not a directory"
    )


def test_publishing_a_plain_module_says_why_it_cannot(tmp_path):
    import torch

    path = zoo.export(torch.nn.Linear(2, 1), tmp_path / "plain.safetensors")
    with pytest.raises(zoo.UsageError, match="module not built by zoo.create_model"):
        publish(path, tmp_path / "reg", "t")
