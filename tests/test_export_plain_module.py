"""A model zoo did not build exports with its class path and kwargs (issue 14, item 1).

The class lives in a real module file on ``sys.path``; ``zoo.load`` rebuilds it only once the
user's code has imported that module. A file never makes zoo import anything: the module here
writes a marker file when imported, and a fresh process asked to load the weights must leave
no marker.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from zoo.errors import WeightsError

MODULE = textwrap.dedent(
    """
    import pathlib, os
    import torch
    from torch import nn

    marker = os.environ.get("PLAIN_NETS_MARKER")
    if marker:
        pathlib.Path(marker).write_text("imported")

    class Net(nn.Module):
        def __init__(self, hidden: int, out: int = 3):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, out))

        def forward(self, x):
            return self.body(x)

    class Lit(nn.Module):
        def __init__(self, hidden: int):
            super().__init__()
            self.hparams = {"hidden": hidden}
            self.fc = nn.Linear(2, hidden)

        def forward(self, x):
            return self.fc(x)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(x)
    """
)


@pytest.fixture
def nets(tmp_path, monkeypatch):
    """``plain_nets`` as a real module file on ``sys.path``, imported fresh."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "plain_nets.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "plain_nets", raising=False)
    module = importlib.import_module("plain_nets")
    yield module, site
    sys.modules.pop("plain_nets", None)


def _meta(path):
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def test_given_kwargs_round_trip_through_zoo_load(nets, tmp_path):
    module, _ = nets
    torch.manual_seed(0)
    net = module.Net(hidden=8, out=3)
    path = zoo.export(net, tmp_path / "net.safetensors", model_kwargs={"hidden": 8, "out": 3})
    meta = _meta(path)
    assert meta["model_class"] == "plain_nets:Net" and "model" not in meta
    back = zoo.load(path)
    assert type(back) is module.Net and not back.training
    x = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    for key, value in net.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_hparams_and_no_arg_constructors_need_no_kwargs(nets, tmp_path):
    module, _ = nets
    lit = zoo.export(module.Lit(hidden=6), tmp_path / "lit.safetensors")
    assert zoo.load(lit).fc.out_features == 6
    plain = zoo.export(module.Plain(), tmp_path / "plain.safetensors")
    assert _meta(plain)["kwargs"] == "{}"
    assert torch.equal(zoo.load(plain).fc.weight, load_file(str(plain))["fc.weight"])


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda m: m.Net(hidden=4), "its constructor takes hidden, out (give model_kwargs=...)"),
        (lambda m: _local_module(), "is defined inside a function"),
        (lambda m: torch.nn.Sequential(torch.nn.Linear(2, 2)), "takes *args"),
    ],
    ids=["kwargs-unknown", "class-inside-a-function", "positional-modules"],
)
def test_unknown_class_or_kwargs_warn_that_load_needs_the_model(nets, tmp_path, caplog, make, why):
    module, _ = nets
    model = make(module)
    path = tmp_path / "w.safetensors"
    with caplog.at_level(logging.WARNING, logger="zoo"):
        zoo.export(model, path)
    assert why in caplog.text and "zoo.load will need the model supplied" in caplog.text
    assert "model_class" not in _meta(path)
    with pytest.raises(WeightsError, match="build the model yourself"):
        zoo.load(path)
    zoo.weights.load_weights(model, path)  # the documented way still works


def _local_module() -> torch.nn.Module:
    class Local(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

    return Local()


def test_a_file_never_imports_the_module_it_names(nets, tmp_path):
    module, site = nets
    path = zoo.export(
        module.Net(hidden=4), tmp_path / "net.safetensors", model_kwargs={"hidden": 4}
    )
    marker = tmp_path / "imported.txt"
    code = (
        "import sys, zoo\n"
        "from zoo.errors import WeightsError\n"
        "try:\n"
        f"    zoo.load({str(path)!r})\n"
        "except WeightsError as e:\n"
        "    print(e)\n"
        "print('plain_nets' in sys.modules)\n"
    )
    env = {"PYTHONPATH": str(site), "PLAIN_NETS_MARKER": str(marker), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "False" and not marker.exists(), out
    assert lines[0] == (
        f"{path} holds a plain_nets:Net that zoo did not build; zoo never imports code a file "
        "names: import plain_nets first, or build the model and use "
        "zoo.weights.load_weights(model, path)"
    )
    # once the user imports it, the same file loads in that process
    code = f"import plain_nets, zoo; print(type(zoo.load({str(path)!r})).__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "Net" and marker.exists(), out


@pytest.mark.parametrize(
    "model_class, kwargs, error",
    [
        ("os:system", "{}", "os:system is not an nn.Module class in os"),
        ("os:path.sep", "{}", "os:path.sep is not an nn.Module class in os"),
        ("../evil:X", "{}", "metadata field 'model_class' is not a class path"),
        ("plain_nets:Net", '{"hidden": -1}', "plain_nets:Net(**kwargs) failed"),
        ("plain_nets:Net", '{"nosuch": 1}', "the recorded kwargs do not fit its signature"),
        ("plain_nets:Net", '{"hidden": 5}', "'body.0.weight' has shape [4, 4]"),
        ("torch.nn:Module", "{}", "unexpected"),
    ],
    ids=["function", "attribute", "path-traversal", "kwargs-refused", "unknown-kwarg",
         "wrong-shape", "another-class"],
)  # fmt: skip
def test_hostile_class_paths_are_one_line_errors(nets, tmp_path, model_class, kwargs, error):
    module, _ = nets
    tensors = {k: v.contiguous() for k, v in module.Net(hidden=4).state_dict().items()}
    path = tmp_path / "w.safetensors"
    meta = {"format": "zoo.weights/2", "model_class": model_class, "kwargs": kwargs}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsError) as info:
        zoo.load(path)
    assert error in str(info.value) and "\n" not in str(info.value)


def test_trainer_on_a_plain_module_writes_weights_zoo_load_rebuilds(nets, tmp_path):
    module, _ = nets
    X = torch.randn(64, 2)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()  # three classes
    result = zoo.Trainer(module.Plain(), (X, y), epochs=1, out=tmp_path / "run", quiet=True).fit()
    back = zoo.load(tmp_path / "run" / "model.safetensors")
    assert type(back) is module.Plain
    assert torch.equal(back.fc.weight, result.model.fc.weight.detach().cpu())
