"""Entry-point discovery of real distributions, guards, filters, strict mode and laziness."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import zoo
from zoo.errors import AmbiguousNameError, PluginError, UnknownNameError
from zoo.registry import plugins
from zoo.registry.entries import Registry, make_entry

GOOD_SOURCES = {
    "acme_zoo/__init__.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):
            register("acme-net", "acme_zoo.models:AcmeNet", task="multiclass",
                     input_kind="features", summary="Acme's net", defaults={"hidden": 5})

        @zoo.hookimpl
        def register_losses(register):
            register("acme-loss", "torch.nn:CrossEntropyLoss", tasks=["multiclass"],
                     summary="Acme's loss")

        @zoo.hookimpl
        def register_datasets(register):
            register("acme-data", "acme_zoo.models:load", task="multiclass", input_shape=(2,),
                     num_classes=4, summary="Four noisy clusters")
    """,
    "acme_zoo/models.py": """
        import torch
        from torch import nn

        class AcmeNet(nn.Module):
            def __init__(self, in_features, num_classes, hidden=3):
                super().__init__()
                self.hidden = hidden
                self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                         nn.Linear(hidden, num_classes))

            def forward(self, x):
                return self.net(x)

        def load(split):
            g = torch.Generator().manual_seed(0 if split == "train" else 1)
            return torch.randn(20, 2, generator=g), torch.randint(0, 4, (20,), generator=g)
    """,
}
GOOD = {path: textwrap.dedent(src) for path, src in GOOD_SOURCES.items()}


def broken(kind: str) -> dict[str, str]:
    bodies = {
        "import": "import zoo\nraise ImportError('no module named acme_missing_dep')\n",
        "hook": (
            "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
            "    raise RuntimeError('boom in hook')\n"
        ),
        "target": (
            "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
            "    register('bad-target', 42)\n"
        ),
    }
    return {"broken_zoo/__init__.py": bodies[kind]}


def test_third_party_distribution_is_discovered_listed_and_built(make_plugin):
    make_plugin("acme-zoo", GOOD, entry_points={"acme": "acme_zoo"}, version="1.2.3")
    assert "acme-net" in zoo.list_models()
    assert "acme-loss" in zoo.list_losses("acme-*")
    assert zoo.list_datasets("acme*") == ["acme-data"]
    info = zoo.info("acme-net")
    assert (info["plugin"], info["dist"], info["version"]) == ("acme", "acme-zoo", "1.2.3")
    model = zoo.create_model("acme-net", dataset="acme-data")
    assert model.hidden == 5  # defaults applied on top of the dataset's standard kwargs
    assert model.net[0].in_features == 2 and model.net[-1].out_features == 4
    assert zoo.create_model("acme-net", dataset="acme-data", hidden=7).hidden == 7  # user wins
    X, y = zoo.load_dataset("acme-data", "train")
    assert model(X).shape == (20, 4)
    record = next(r for r in plugins.plugin_records() if r.name == "acme")
    assert record.status == "ok"
    assert record.entries == {"model": 1, "loss": 1, "dataset": 1}
    assert record.hooks == ["register_models", "register_losses", "register_datasets"]


@pytest.mark.parametrize(
    "kind, message",
    [("import", "acme_missing_dep"), ("hook", "boom in hook"), ("target", "neither")],
)
def test_broken_plugin_is_recorded_and_everything_else_works(make_plugin, run_zoo, kind, message):
    site = make_plugin("broken-zoo", broken(kind), entry_points={"broken": "broken_zoo"})
    listed = run_zoo("list", "models", "--json", pythonpath=[site])
    assert listed.returncode == 0, listed.stderr
    assert "mlp" in {row["name"] for row in json.loads(listed.stdout)}
    shown = run_zoo("plugins", "--json", pythonpath=[site])
    record = next(r for r in json.loads(shown.stdout) if r["name"] == "broken")
    assert record["status"] == "failed"
    assert message in record["error"]
    strict = run_zoo("list", pythonpath=[site], env={"ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert strict.stderr.startswith("error: plugin 'broken'") and message in strict.stderr
    assert len(strict.stderr.strip().splitlines()) == 1


def test_strict_mode_raises_in_python(make_plugin, monkeypatch):
    make_plugin("broken-zoo", broken("hook"), entry_points={"broken": "broken_zoo"})
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="boom in hook"):
        zoo.list_models()


def test_failed_plugin_contributes_nothing_even_if_it_registered_first(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('half-done', 'x.y:Z')\n    raise RuntimeError('late failure')\n"
    )
    make_plugin("half-zoo", {"half_zoo.py": source}, entry_points={"half": "half_zoo"})
    assert "half-done" not in zoo.list_models()
    with pytest.raises(UnknownNameError, match="plugins failed to load: half"):
        zoo.create_model("half-done")


def test_bad_target_fails_at_use_with_a_clear_error(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('ghost', 'ghost_pkg.models:Ghost')\n"
    )
    make_plugin("ghost-zoo", {"ghost_zoo.py": source}, entry_points={"ghost": "ghost_zoo"})
    assert "ghost" in zoo.list_models()  # listing never imports the target
    with pytest.raises(PluginError, match="model 'ghost' \\(plugin 'ghost'\\): cannot import"):
        zoo.create_model("ghost")


def test_zoo_plugins_env_selects_and_disable_blocks_before_import(
    make_plugin, tmp_path, monkeypatch
):
    marker = tmp_path / "imported"
    source = GOOD["acme_zoo/__init__.py"] + f"\nopen({str(marker)!r}, 'w').close()\n"
    make_plugin(
        "acme-zoo", {**GOOD, "acme_zoo/__init__.py": source}, entry_points={"acme": "acme_zoo"}
    )

    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "acme-zoo")
    plugins.reset()
    assert "acme-net" not in zoo.list_models()
    assert not marker.exists()
    assert next(r for r in plugins.plugin_records() if r.name == "acme").status == "blocked"

    monkeypatch.delenv("ZOO_DISABLE_PLUGINS")
    monkeypatch.setenv("ZOO_PLUGINS", "")
    plugins.reset()
    assert "acme-net" not in zoo.list_models()
    assert "mlp" in zoo.list_models()  # first-party always loads
    assert not marker.exists()

    monkeypatch.setenv("ZOO_PLUGINS", "acme")
    plugins.reset()
    assert "acme-net" in zoo.list_models()
    assert marker.exists()


def test_two_plugins_one_name_both_reachable(make_plugin):
    clash = {
        "clash_zoo.py": (
            "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
            "    register('mlp', 'acme_zoo.models:AcmeNet', summary='another mlp')\n"
        )
    }
    make_plugin("clash-zoo", clash, entry_points={"clash": "clash_zoo"})
    models = zoo.list_models()
    # issue 10: the first-party entry keeps its bare name, the plugin's is qualified
    assert "clash/mlp" in models and "mlp" in models and "workflow/mlp" not in models
    assert zoo.api.get_entry("model", "mlp").plugin == "workflow"
    assert zoo.info("clash/mlp")["summary"] == "another mlp"
    assert zoo.info("workflow/mlp")["plugin"] == "workflow"
    with pytest.raises(AmbiguousNameError, match="clash/mlp, other/mlp"):  # two third parties
        third = [e for e in zoo.api.get_registry().entries("model") if not e.first_party]
        Registry([*third, _other("mlp")]).get("model", "mlp")


def _other(name: str):
    return make_entry("model", name, "x.y:Z", {}, plugin="other", dist="other", version="1")


def test_plugins_load_lazily_once(make_plugin, tmp_path):
    counter = tmp_path / "count"
    source = GOOD["acme_zoo/__init__.py"] + (
        f"\nwith open({str(counter)!r}, 'a') as fh:\n    fh.write('x')\n"
    )
    make_plugin(
        "acme-zoo", {**GOOD, "acme_zoo/__init__.py": source}, entry_points={"acme": "acme_zoo"}
    )
    assert not counter.exists()  # making zoo aware of it imports nothing
    zoo.list_models()
    zoo.list_losses()
    zoo.info("acme-net")
    assert counter.read_text() == "x"


def test_trace_prints_each_hook_call(make_plugin, run_zoo):
    site = make_plugin("acme-zoo", GOOD, entry_points={"acme": "acme_zoo"})
    result = run_zoo("list", "losses", pythonpath=[site], env={"ZOO_TRACE_PLUGINS": "1"})
    assert "zoo: plugin acme register_models -> acme-net" in result.stderr
    assert "zoo: plugin losses register_losses -> l1, mse" in result.stderr


def test_import_zoo_and_listing_do_not_import_torch(make_plugin):
    import subprocess

    code = (
        "import sys, zoo\n"
        "zoo.list_models(); zoo.list_losses(); zoo.list_datasets(); zoo.list_pretrained()\n"
        "from zoo.cli import cli\n"
        "try:\n    cli(['list'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'torchvision', 'sklearn', 'matplotlib', 'numpy')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in out.stdout, out.stdout
