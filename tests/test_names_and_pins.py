"""What a name means and what a file pins (issue 10, items 1, 2 and 7).

The scenario of the issue: a real distribution ``zoo-dup`` (entry point ``dup``) registers
its own ``mlp`` (GELU instead of ReLU, same parameter names and shapes). First-party names
keep meaning zoo's own entries; weights, runs and registry entries made with ``dup/mlp`` load
exactly that model or fail with one line naming what to install; publish validates before
it writes and leaves the registry byte-for-byte as it was when it fails.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import load_file
from scipy.special import erf
from sklearn.metrics import accuracy_score, log_loss

import zoo
from zoo import hub, testing
from zoo.cli import cli
from zoo.errors import AmbiguousNameError, UnknownNameError, UsageError, WeightsError, ZooError
from zoo.hub.publish import publish
from zoo.registry import plugins
from zoo.registry.entries import Registry, make_entry

DUP = {
    "zoo_dup/__init__.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):
            register("mlp", "zoo_dup.models:GeluMLP", input_kind="features",
                     summary="MLP with GELU", defaults={"hidden": [16, 16]})

        @zoo.hookimpl
        def register_losses(register):
            register("smooth-bce", "zoo_dup.models:SmoothBCE", tasks=["binary"],
                     summary="binary cross-entropy on smoothed labels")
    """,
    "zoo_dup/models.py": """
        from torch import nn

        class GeluMLP(nn.Module):
            def __init__(self, in_features, num_classes=1, hidden=(16, 16)):
                super().__init__()
                layers, width = [], in_features
                for size in hidden:
                    layers += [nn.Linear(width, size), nn.GELU()]
                    width = size
                layers.append(nn.Linear(width, num_classes))
                self.layers = nn.Sequential(*layers)

            def forward(self, x):
                return self.layers(x)

        class SmoothBCE(nn.Module):
            def __init__(self, smoothing=0.1):
                super().__init__()
                self.smoothing = smoothing

            def forward(self, output, target):
                target = target.float() * (1 - self.smoothing) + 0.5 * self.smoothing
                return nn.functional.binary_cross_entropy_with_logits(output.squeeze(-1), target)
    """,
}


@pytest.fixture
def dup(make_plugin) -> Path:
    """``zoo-dup`` installed (a real dist-info on sys.path); returns its site directory."""
    return make_plugin("zoo-dup", DUP, {"dup": "zoo_dup"})


def uninstall(site: Path) -> None:
    """What ``pip uninstall zoo-dup`` leaves: no dist-info on sys.path, no module, no entries."""
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m == "zoo_dup" or m.startswith("zoo_dup.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    plugins.reset()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (``None`` for a directory)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def gelu_forward(path: Path, X: np.ndarray) -> np.ndarray:
    """The dup model's forward written out in numpy from the file's tensors (the reference)."""
    t = load_file(str(path))
    h = X.astype(np.float64)
    for i in (0, 2):
        h = h @ t[f"layers.{i}.weight"].T + t[f"layers.{i}.bias"]
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    return (h @ t["layers.4.weight"].T + t["layers.4.bias"])[:, 0]


# ---------------------------------------------------------------- item 2: names


def _entry(kind, name, plugin, dist):
    return make_entry(kind, name, "pkg.mod:Thing", {}, plugin=plugin, dist=dist, version="1")


def test_the_name_rule_first_party_bare_third_party_qualified_dist_when_shared():
    from zoo.registry.entries import Pin

    reg = Registry(
        [
            _entry("model", "mlp", "workflow", "zoo"),
            _entry("model", "mlp", "dup", "zoo-dup"),
            _entry("model", "mlp", "dup", "other-dup"),
            _entry("model", "mlp", "workflow", "evil"),
            _entry("model", "net", "a", "a"),
            _entry("model", "net", "b", "b"),
        ]
    )
    assert reg.get("model", "mlp").dist == "zoo"  # first-party keeps its bare name
    assert reg.get("model", "workflow/mlp").dist == "zoo"  # and its qualified one
    assert reg.get("model", "evil:workflow/mlp").dist == "evil"
    assert reg.get("model", "Zoo_Dup:dup/mlp").dist == "zoo-dup"
    assert reg.names("model") == [
        "other-dup:dup/mlp", "zoo-dup:dup/mlp", "evil:workflow/mlp", "mlp", "a/net", "b/net",
    ]  # fmt: skip
    with pytest.raises(AmbiguousNameError, match=r"'mlp'.*other-dup:dup/mlp, zoo-dup:dup/mlp"):
        reg.get("model", "dup/mlp")  # two distributions, one entry-point name
    with pytest.raises(AmbiguousNameError, match="use one of: a/net, b/net"):
        reg.get("model", "net")  # two third-party plugins: never a silent pick
    # a pin finds exactly its entry, never another of that name
    assert reg.pinned(Pin("model", "mlp", "dup", "other-dup")).dist == "other-dup"
    assert reg.pinned(Pin("model", "mlp", "dup", "gone-dup")) is None
    assert reg.pinned(Pin("model", "mlp")).dist == "zoo"  # zoo 0.1's bare name: first-party
    assert reg.pinned(Pin("model", "net")) is None  # ... and only first-party


def test_installing_a_plugin_never_takes_a_first_party_name(dup, tmp_path):
    assert {"mlp", "dup/mlp"} <= set(zoo.list_models())
    assert zoo.info("mlp")["plugin"] == "workflow" and zoo.info("dup/mlp")["plugin"] == "dup"
    model = zoo.create_model("mlp", dataset="circles")
    assert isinstance(model.layers[1], torch.nn.ReLU)
    assert isinstance(zoo.create_model("dup/mlp", dataset="circles").layers[1], torch.nn.GELU)
    bundled = zoo.create_model("mlp", pretrained="circles")  # the bundled entry, unchanged
    assert bundled.zoo_spec.plugin == "workflow"
    assert "mlp.circles" in zoo.info("mlp")["pretrained"] and not zoo.info("dup/mlp")["pretrained"]
    assert "mlp" in zoo.list_models(pretrained=True)
    assert zoo.evaluate("workflow/mlp.circles") == zoo.evaluate("mlp.circles")
    assert "dup/mlp" not in zoo.list_models(pretrained=True)
    trainer = zoo.Trainer("mlp", "iris", epochs=1, device="cpu", quiet=True)
    assert trainer.qualnames()["model"] == "workflow/mlp"
    assert testing.check("mlp", datasets=["iris"]).get("mlp").plugin == "workflow"


def test_zoo_plugins_warns_and_zoo_check_fails_a_plugin_taking_a_first_party_name(dup, run_zoo):
    shown = run_zoo("plugins", pythonpath=[dup])
    assert shown.returncode == 0
    [line] = [w for w in shown.stderr.splitlines() if w.startswith("zoo: warning:")]
    assert "plugin dup (zoo-dup): model 'mlp' is a first-party name" in line
    assert "reachable only as dup/mlp" in line
    listed = json.loads(run_zoo("plugins", "--json", pythonpath=[dup]).stdout)
    record = next(r for r in listed if r["name"] == "dup")
    assert record["status"] == "ok" and len(record["warnings"]) == 1
    report = testing.check("dup", datasets=["circles"])
    plugin_report = next(r for r in report if r.kind == "plugin")
    assert plugin_report.status == "fail"
    [names] = [r for r in plugin_report.results if r.check == "names"]
    assert "model 'mlp' is a first-party name" in names.detail
    result = invoke("check", "dup", "--dataset", "circles")
    assert result.exit_code == 1 and "dup" in result.stderr
    assert testing.check("workflow", datasets=["iris"]).get("workflow").status == "pass"


def test_two_distributions_may_use_one_entry_point_name(dup, make_plugin, tmp_path):
    source = DUP["zoo_dup/__init__.py"]  # registers mlp and smooth-bce from zoo_dup's module
    make_plugin("other-dup", {"other_dup.py": source}, {"dup": "other_dup"})
    make_plugin("evil", {"evil_zoo.py": source}, {"workflow": "evil_zoo"})
    records = {(r.name, r.dist): r for r in plugins.plugin_records()}
    assert records[("dup", "other-dup")].status == "ok" == records[("dup", "zoo-dup")].status
    names = zoo.list_models("*mlp")
    assert "mlp" in names and "evil:workflow/mlp" in names
    assert {"zoo-dup:dup/mlp", "other-dup:dup/mlp"} <= set(names)
    assert zoo.create_model("workflow/mlp", dataset="iris").zoo_spec.dist == "zoo"
    assert "reachable only as evil:workflow/mlp" in " ".join(records[("workflow", "evil")].warnings)
    model = zoo.create_model("other-dup:dup/mlp", dataset="circles")
    path = zoo.export(model, tmp_path / "o.safetensors")
    assert zoo.load(path).zoo_spec.dist == "other-dup"  # exactly that distribution's entry


# ---------------------------------------------------------------- item 1: what a file pins


def test_weights_pin_the_qualified_model_its_distribution_and_version(dup, tmp_path):
    model = zoo.create_model("dup/mlp", dataset="circles")
    meta = zoo.weights.read_metadata(zoo.export(model, tmp_path / "w.safetensors"))
    assert meta["format"] == "zoo.weights/2"
    assert meta["pins"]["model"] == {"entry": "dup/mlp", "dist": "zoo-dup", "version": "0.1.0"}
    assert meta["pins"]["dataset"] == {"entry": "datasets/circles", "dist": "zoo",
                                       "version": zoo.__version__}  # fmt: skip
    assert (meta["model"], meta["plugin"], meta["dist"]) == ("mlp", "dup", "zoo-dup")


def test_a_plugins_weights_never_load_into_the_first_party_model(dup, run_zoo, tmp_path):
    """The issue's scenario: evaluate said 0.5 instead of the GELU model's score, with no word."""
    run = tmp_path / "run"
    zoo.Trainer("dup/mlp", "circles", out=run, epochs=8, lr=0.02, batch_size=32, seed=0,
                device="cpu", quiet=True).fit()  # fmt: skip
    weights = run / "model.safetensors"
    X, y = (t.numpy() for t in zoo.load_dataset("circles", "test"))
    expected = accuracy_score(y, gelu_forward(weights, X) > 0)
    assert zoo.evaluate(run)["accuracy"] == pytest.approx(expected)
    relu = zoo.create_model("mlp", in_features=2, num_classes=1, hidden=[16, 16])
    zoo.weights.load_weights(relu, weights)  # what the bare-name fallback used to build
    assert zoo.api.evaluate_model(relu, "circles")["accuracy"] != pytest.approx(expected)

    uninstall(dup)
    hint = f"{weights}: model 'dup/mlp' (zoo-dup 0.1.0) is not installed: pip install zoo-dup"
    with pytest.raises(UnknownNameError) as err:
        zoo.load(weights)
    assert str(err.value) == hint
    with pytest.raises(UnknownNameError, match="pip install zoo-dup"):
        zoo.evaluate(run)
    with pytest.raises(UnknownNameError, match="pip install zoo-dup"):
        zoo.predict(run, X[:3])
    result = run_zoo("evaluate", str(run))  # a fresh process without zoo-dup
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {hint}"


def test_zoo_0_1_files_load_by_their_first_party_bare_name_only(dup, tmp_path):
    from safetensors.torch import save_file

    model = zoo.create_model("mlp", dataset="iris", hidden=[5])
    kwargs = json.dumps(model.zoo_spec.kwargs)
    old = tmp_path / "old.safetensors"  # what zoo 0.1 wrote: a bare name, no plugin or dist
    save_file(model.state_dict(), str(old), metadata={"model": "mlp", "kwargs": kwargs})
    loaded = zoo.load(old)  # dup also registers mlp: the bare name still means zoo's own
    assert loaded.zoo_spec.plugin == "workflow" and isinstance(loaded.layers[1], torch.nn.ReLU)
    x = torch.randn(4, 4)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model.eval()(x))

    gelu = zoo.create_model("dup/mlp", dataset="iris", hidden=[5])
    v1 = tmp_path / "v1.safetensors"  # zoo.weights/1 with its plugin: pinned to it as well
    meta = {"format": "zoo.weights/1", "model": "mlp", "plugin": "dup", "dist": "zoo-dup",
            "dist_version": "0.1.0", "kwargs": kwargs}  # fmt: skip
    save_file(gelu.state_dict(), str(v1), metadata=meta)
    assert isinstance(zoo.load(v1).layers[1], torch.nn.GELU)
    bare = tmp_path / "bare.safetensors"
    save_file(gelu.state_dict(), str(bare), metadata={"model": "acme-net", "kwargs": kwargs})
    uninstall(dup)
    with pytest.raises(UnknownNameError, match="pip install zoo-dup$"):
        zoo.load(v1)
    with pytest.raises(UnknownNameError, match="model 'acme-net' names no plugin") as err:
        zoo.load(bare)
    assert "\n" not in str(err.value) and "did you mean" not in str(err.value)


def test_what_to_install_is_named_for_each_reason(dup, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    model = zoo.create_model("dup/mlp", dataset="circles")
    header = zoo.weights.read_header(zoo.export(model, tmp_path / "w.safetensors"))
    meta = header["__metadata__"]

    def pinned(entry, version="0.0.9"):
        path = tmp_path / "pinned.safetensors"
        pins = {"model": {"entry": entry, "dist": "zoo-dup", "version": version}}
        save_file(model.state_dict(), str(path), metadata={**meta, "pins": json.dumps(pins)})
        return path

    with pytest.raises(UnknownNameError, match=r"zoo-dup 0\.1\.0 is installed but registers no "
                       r"model 'dup/gone'; .*pip install 'zoo-dup==0\.0\.9'$"):  # fmt: skip
        zoo.load(pinned("dup/gone"))
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "dup")
    plugins.reset()
    with pytest.raises(UnknownNameError, match="plugin 'dup' is disabled by ZOO_DISABLE_PLUGINS"):
        zoo.load(pinned("dup/mlp"))
    with pytest.raises(WeightsError, match="malformed name"):
        zoo.load(pinned("dup/Not A Name"))


def test_evaluate_falls_back_to_the_default_loss_when_the_training_loss_is_gone(
    dup, tmp_path, caplog
):
    run = tmp_path / "run"
    zoo.Trainer("mlp", "circles", "dup/smooth-bce", out=run, epochs=2, device="cpu",
                quiet=True).fit()  # fmt: skip
    assert zoo.weights.read_metadata(run / "model.safetensors")["pins"]["loss"]["entry"] == (
        "dup/smooth-bce"
    )
    with_plugin = zoo.evaluate(run)
    uninstall(dup)
    with caplog.at_level(logging.WARNING, logger="zoo"):
        without = zoo.evaluate(run)
    [record] = [r for r in caplog.records if "default loss" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "loss 'dup/smooth-bce' (zoo-dup 0.1.0) is not installed: pip install zoo-dup" in (
        record.getMessage()
    )
    assert "reporting the task's default loss instead" in record.getMessage()
    assert without["accuracy"] == with_plugin["accuracy"]
    model = zoo.load(run / "model.safetensors")
    X, y = zoo.load_dataset("circles", "test")
    with torch.inference_mode():
        p = torch.sigmoid(model(X)).double().numpy()[:, 0]
    assert without["loss"] == pytest.approx(log_loss(y.numpy(), p), rel=1e-5)  # bce-with-logits
    assert without["loss"] != pytest.approx(with_plugin["loss"], rel=1e-3)


# ---------------------------------------------------------------- item 1: registry entries


@pytest.fixture
def gelu_registry(dup, tmp_path) -> tuple[Path, torch.nn.Module]:
    """dup's mlp published as ``mlp.gelu`` and ``mlp.circles`` (the bundled one's name)."""
    model = zoo.create_model("dup/mlp", dataset="circles").eval()
    weights = zoo.export(model, tmp_path / "g.safetensors", metrics={"accuracy": 0.5})
    root = tmp_path / "reg"
    publish(weights, root, "gelu")
    publish(weights, root, "circles")
    return root, model


def test_publish_pins_the_model_and_pretrained_names_resolve_by_it(gelu_registry, monkeypatch):
    root, model = gelu_registry
    index = json.loads((root / "index.json").read_text())
    assert index["schema"] == 2
    raw = next(e for e in index["entries"] if e["name"] == "mlp.gelu")
    assert (raw["model"], raw["plugin"], raw["dist"], raw["dist_version"]) == (
        "mlp", "dup", "zoo-dup", "0.1.0",
    )  # fmt: skip
    monkeypatch.setenv("ZOO_REGISTRY", str(root))
    loaded = zoo.create_model("dup/mlp", pretrained="gelu")
    x = torch.randn(6, 2)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(x), model(x))
    for name in ("mlp", "workflow/mlp"):  # never into the first-party model
        with pytest.raises(UsageError, match="dup/mlp.gelu holds weights for model 'dup/mlp'"):
            zoo.create_model(name, pretrained="gelu")
    # the same bare name for two models: the bare one is zoo's, the other is qualified
    assert zoo.create_model("mlp", pretrained="circles").zoo_spec.plugin == "workflow"
    assert zoo.create_model("dup/mlp", pretrained="circles").zoo_spec.plugin == "dup"
    assert {"mlp.circles", "dup/mlp.circles", "mlp.gelu"} <= set(zoo.list_pretrained())
    assert zoo.info("workflow/mlp.circles")["source"] == hub.bundled_index()
    assert zoo.info("dup/mlp.circles")["source"] == str(root / "index.json")
    result = invoke("info", "workflow/mlp.circles", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["qualname"] == "workflow/mlp.circles"


def test_listing_and_fetch_mark_entries_whose_model_is_not_installed(
    dup, gelu_registry, monkeypatch
):
    root, _ = gelu_registry
    uninstall(dup)
    monkeypatch.setenv("ZOO_REGISTRY", str(root))
    rows = {r["name"]: r for r in json.loads(invoke("list", "pretrained", "--json").stdout)}
    assert rows["mlp.gelu"]["installed"] is False and rows["mlp.iris"]["installed"] is True
    assert "pip install zoo-dup" in rows["mlp.gelu"]["missing"]
    table = invoke("list", "pretrained", "mlp.gelu").stdout
    assert "[not installed: model 'dup/mlp' (zoo-dup 0.1.0) is not installed" in table
    assert "dup/mlp.circles" in rows  # still its own entry, not the bundled mlp.circles
    fetched = invoke("fetch", "mlp.gelu")
    assert fetched.exit_code == 0 and Path(fetched.stdout.strip()).is_file()
    assert "zoo: warning: dup/mlp.gelu: model 'dup/mlp' (zoo-dup 0.1.0) is not installed: " \
        "pip install zoo-dup" in fetched.stderr  # fmt: skip
    with pytest.raises(UnknownNameError, match="pip install zoo-dup"):
        zoo.evaluate("mlp.gelu")


# ---------------------------------------------------------------- item 7: publish


@pytest.fixture
def registry(tmp_path) -> tuple[Path, Path]:
    """A registry holding mlp.test, and other weights to publish into it."""
    root = tmp_path / "reg"
    first = zoo.export(zoo.create_model("mlp", dataset="iris", hidden=6), tmp_path / "a.st")
    publish(first, root, "test")
    other = zoo.export(zoo.create_model("mlp", dataset="iris", hidden=7), tmp_path / "b.st")
    return root, other


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tag", "test", "--force", "--recipe", "missing.toml"], "no such recipe file"),
        (["--tag", "new", "--recipe", "missing.toml"], "no such recipe file"),
        (["--tag", "test"], "already in"),
        (["--tag", "Bad Tag", "--force"], "must be lower-case"),
    ],
)
def test_a_failed_publish_leaves_the_registry_byte_for_byte(registry, args, message):
    root, other = registry
    before = snapshot(root)
    result = invoke("publish", other, "--registry", root, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(root) == before
    assert zoo.hub.fetch("mlp.test", registry=str(root)).is_file()  # still verifies


def test_a_publish_failing_while_it_writes_is_rolled_back(registry, tmp_path):
    root, other = registry
    (root / "recipes").write_text("a file where the recipes directory would go\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text('description = "x"\n')
    before = snapshot(root)
    with pytest.raises(ZooError, match="cannot write to registry") as err:
        publish(other, root, "test", force=True, recipe=recipe)
    assert "\n" not in str(err.value)
    assert snapshot(root) == before  # the weights copied first were removed again
    with pytest.raises(UsageError, match="no such recipe file"):
        publish(other, tmp_path / "new-reg", "x", recipe=tmp_path / "nowhere.toml")
    assert not (tmp_path / "new-reg").exists()


def test_force_commits_file_and_index_together(registry):
    root, other = registry
    old = json.loads((root / "index.json").read_text())["entries"][0]["files"][0]
    publish(other, root, "test", force=True)
    [raw] = json.loads((root / "index.json").read_text())["entries"]
    [ref] = raw["files"]
    data = (root / ref["url"]).read_bytes()
    assert ref["sha256"] == hashlib.sha256(data).hexdigest() == hashlib.sha256(
        other.read_bytes()
    ).hexdigest()  # fmt: skip
    assert ref["url"] != old["url"]  # never written over a file the old index named
    assert not (root / old["url"]).exists()  # and the replaced file is gone after the commit
    assert sorted(p.name for p in root.iterdir()) == ["index.json", ref["url"]]
    assert zoo.hub.fetch("mlp.test", registry=str(root)).read_bytes() == data
    publish(other, root, "test", force=True)  # the same bytes again: the file is kept as is
    assert json.loads((root / "index.json").read_text())["entries"][0]["files"][0] == ref
