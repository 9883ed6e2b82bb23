"""Fine-tuning from the trainer and the CLI (issue 12, item 3): ``zoo train --pretrained TAG``,
``--init RUN|WEIGHTS|ENTRY`` and ``--freeze-backbone``.

The references are independent of zoo's loaders: the bundled entries' own files read with
``safetensors`` (``registry/*.safetensors``) and their sha256 from ``registry/index.json``; a
torchvision model's state dict served from a loopback mirror (the fixtures of
``test_pretrained_torchvision``); a three-channel image dataset from a real dist-info plugin.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from cli_helpers import one_line_error, zoo_cli
from safetensors.torch import load_file
from test_pretrained_torchvision import ORIGIN, _publish, mirror  # noqa: F401

import zoo
from zoo.hub import cache, table
from zoo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "registry"
MLP_BODY = ("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias")


def entry_file(name: str) -> tuple[dict[str, torch.Tensor], str]:
    """A bundled entry's tensors and the sha256 its index declares, read without zoo."""
    index = json.loads((REGISTRY / "index.json").read_text())
    (entry,) = [e for e in index["entries"] if e["name"] == name]
    (ref,) = entry["files"]
    return load_file(REGISTRY / ref["url"]), ref["sha256"]


def run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def test_mlp_circles_to_blobs_new_head_same_body_and_resume_does_not_reload(tmp_path, monkeypatch):
    reference, sha = entry_file("mlp.circles")
    before = Trainer("mlp", "blobs", pretrained="circles", device="cpu")
    before.build()
    state = before.model.state_dict()
    for key in MLP_BODY:
        assert torch.equal(state[key], reference[key]), key
    assert state["layers.4.weight"].shape == (4, 16)  # blobs: 4 classes, the entry had 1 logit

    run = tmp_path / "run"
    result = zoo_cli("train", "--model", "mlp", "--pretrained", "circles", "--dataset", "blobs",
                     "--epochs", "2", "--lr", "0.01", "--device", "cpu", "--out", run,
                     "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "zoo: warning: re-initialising classifier 'layers.4': layers.4.weight is [1, 16] in the "
        "weights, [4, 16] in this model (another number of classes)"
    ) in result.stderr
    info = run_json(run)
    assert info["init"]["entry"] == "mlp.circles" and info["init"]["sha256"] == sha
    assert info["settings"]["pretrained"] == "circles" and info["settings"]["init"] is None
    assert info["model"]["kwargs"] == {"in_features": 2, "num_classes": 4, "hidden": [16, 16]}
    assert info["result"]["metrics"]["accuracy"] > 0.85  # blobs are well separated

    # resuming continues from the checkpoint: the entry is neither fetched nor loaded again
    cache.clear_cache()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    result = zoo_cli("train", "--resume", run, "--epochs", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert "re-initialising" not in result.stderr
    info = run_json(run)
    assert info["status"] == "finished" and info["result"]["epochs"] == 3
    assert info["init"]["sha256"] == sha and info["settings"]["pretrained"] == "circles"


QUADRANTS = """
import numpy as np
import torch
import zoo


def quadrants(split):
    # 3x16x16 colour images, 4 classes: which quadrant is bright
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 256 if split == "train" else 64
    y = rng.integers(0, 4, n)
    X = rng.normal(0.0, 0.3, (n, 3, 16, 16)).astype(np.float32)
    for i, k in enumerate(y):
        r, c = divmod(int(k), 2)
        X[i, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] += 1.0
    return torch.from_numpy(X), torch.from_numpy(y)


@zoo.hookimpl
def register_datasets(register):
    register("quadrants", "quadrants:quadrants", task="multiclass", input_shape=(3, 16, 16),
             num_classes=4, summary="bright quadrant of a 16x16 colour image")
"""


def test_tinyvgg_digits_to_a_plugins_colour_images(make_plugin, run_zoo, tmp_path):
    site = make_plugin(
        "zoo-quadrants", {"quadrants.py": QUADRANTS}, entry_points={"q": "quadrants"}
    )
    reference, sha = entry_file("tinyvgg.digits")
    before = Trainer("tinyvgg", "quadrants", pretrained="digits", device="cpu")
    before.build()
    state = before.model.state_dict()
    conv = reference["block_1.0.weight"]  # (8, 1, 3, 3): repeated over 3 channels, scaled by 1/3
    assert torch.allclose(state["block_1.0.weight"], conv.repeat(1, 3, 1, 1) / 3)
    body = [k for k in reference if k != "block_1.0.weight" and not k.startswith("classifier.")]
    assert body and all(torch.equal(state[k], reference[k]) for k in body)
    assert state["classifier.1.weight"].shape == (4, 8 * 4 * 4)  # 16x16 -> 4x4 maps, 4 classes

    run = tmp_path / "run"
    r = run_zoo("train", "--model", "tinyvgg", "--pretrained", "true", "--dataset", "quadrants",
                "--epochs", "2", "--lr", "0.01", "--device", "cpu", "--out", str(run), "--quiet",
                pythonpath=[site])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        "zoo: warning: adapting first conv 'block_1.0' from 1 to 3 input channels by repeating "
        "and scaling the pretrained filters"
    ) in r.stderr
    assert (
        "zoo: warning: re-initialising classifier 'classifier.1': classifier.1.weight is [10, 32] "
        "in the weights, [4, 128] in this model (another number of classes and another input "
        "size, as another image_size makes it)"
    ) in r.stderr
    info = run_json(run)
    assert info["settings"]["pretrained"] == "digits"  # `true`: the model's only entry
    assert info["init"]["sha256"] == sha and len(info["init"]["adapted"]) == 2
    assert info["model"]["kwargs"] == {
        "in_channels": 3, "num_classes": 4, "image_size": [16, 16], "hidden": 8,
    }  # fmt: skip
    assert 0 <= info["result"]["metrics"]["accuracy"] <= 1


def test_another_image_size_alone_reinitialises_the_classifier(caplog):
    reference, _ = entry_file("tinyvgg.digits")
    with caplog.at_level(logging.WARNING, logger="zoo"):
        model = zoo.create_model("tinyvgg", pretrained="digits", image_size=16)
    assert caplog.messages == [
        "re-initialising classifier 'classifier.1': classifier.1.weight is [10, 32] in the "
        "weights, [10, 128] in this model (another input size, as another image_size makes it)"
    ]
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reference.items() if "classifier" not in k)
    assert state["classifier.1.weight"].shape == (10, 128)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def _mobilenet_table(monkeypatch, tmp_path: Path, name: str, kwargs: dict) -> None:
    """A torchvision table (as the generator writes it) holding one default entry for a
    MobileNetV3-Small served as ``models/<name>``."""
    doc = json.loads(table.TABLE.read_text())
    doc["entries"] = [
        {
            "name": "mobilenet-v3-small.tiny-v1", "model": "mobilenet-v3-small",
            "enum": "MobileNet_V3_Small_Weights.TINY_V1", "default": True,
            "url": f"{ORIGIN}/models/{name}", "sha256_prefix": name.rsplit("-", 1)[1][:8],
            "max_bytes": 8 << 20, "kwargs": kwargs, "metrics": {"acc@1": 1.0, "acc@5": 5.0},
            "num_params": 0, "categories": "imagenet-1k", "recipe": "-",
            "license": "BSD-3-Clause", "transforms": {},
        }
    ]  # fmt: skip
    path = tmp_path / "torchvision.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(table, "TABLE", path)
    table._read.cache_clear()


def test_torchvision_mirror_entry_to_digits_with_a_frozen_backbone(mirror, tmp_path, monkeypatch):  # noqa: F811
    site, hits = mirror
    kwargs = {"num_classes": 5, "width_mult": 0.25}  # a real MobileNetV3-Small, ~0.5 MB
    torch.manual_seed(0)
    state = zoo.create_model("mobilenet-v3-small", **kwargs).state_dict()
    name = _publish(site, "mobilenet_v3_small_tiny", state)
    _mobilenet_table(monkeypatch, tmp_path, name, kwargs)
    run = tmp_path / "run"
    result = zoo_cli("train", "--model", "mobilenet-v3-small", "--pretrained", "true",
                     "--dataset", "digits", "--freeze-backbone", "--epochs", "1",
                     "--batch-size", "256", "--device", "cpu", "--out", run,
                     "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert hits == [f"/models/{name}"]
    assert (
        "adapting first conv 'features.0.0' from 3 to 1 input channel by summing the pretrained "
        "filters"
    ) in result.stderr
    assert "re-initialising classifier 'classifier.3'" in result.stderr
    trained = load_file(run / "model.safetensors")
    head = [k for k in state if k.startswith("classifier.3.")]
    frozen = [k for k in state if k not in head]
    assert trained["features.0.0.weight"].shape == (8, 1, 3, 3)
    assert torch.equal(trained["features.0.0.weight"], state["features.0.0.weight"].sum(1, True))
    # the body, batch-norm running statistics included, is bit for bit the entry's
    unchanged = [k for k in frozen if k != "features.0.0.weight"]
    assert any("running_mean" in k for k in unchanged)
    for key in unchanged:
        assert torch.equal(trained[key], state[key]), key
    assert trained["classifier.3.weight"].shape == (10, state["classifier.3.weight"].shape[1])
    info = run_json(run)
    assert info["settings"]["pretrained"] == "tiny-v1" and info["settings"]["freeze_backbone"]
    total = sum(
        v.numel() for k, v in trained.items() if "running" not in k and "num_batches" not in k
    )
    head_params = sum(trained[k].numel() for k in head)
    assert info["freeze"] == {"classifier": "classifier.3", "trainable": head_params,
                              "parameters": total}  # fmt: skip
    assert info["model"]["trainable"] == head_params


def test_freeze_backbone_trains_the_head_only(tmp_path, caplog):
    reference, _ = entry_file("mlp.circles")
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="zoo"):
        trainer = Trainer("mlp", "blobs", pretrained="circles", freeze_backbone=True,
                          epochs=2, lr=0.05, device="cpu", out=run, quiet=True)  # fmt: skip
        trainer.build()
    head0 = {
        k: v.clone() for k, v in trainer.model.state_dict().items() if k.startswith("layers.4")
    }
    trainer.fit()
    # 2*16+16 + 16*16+16 in the body, 16*4+4 in the head
    assert "freezing the backbone: training classifier 'layers.4' only, 68 of 388 parameters" in (
        caplog.text
    )
    assert [p.shape for p in trainer.optimizer.param_groups[0]["params"]] == [(4, 16), (4,)]
    trained = load_file(run / "model.safetensors")
    for key in MLP_BODY:
        assert torch.equal(trained[key], reference[key]), key
    assert all(not torch.equal(trained[k], v) for k, v in head0.items())
    info = run_json(run)
    assert info["freeze"] == {"classifier": "layers.4", "trainable": 68, "parameters": 388}
    assert info["result"]["metrics"]["accuracy"] > 0.5  # a head on the circles body, 4 classes


def test_init_from_a_run_a_weights_file_or_an_entry(tmp_path):
    first = tmp_path / "blobs"
    Trainer("mlp", "blobs", model_kwargs={"hidden": [8]}, epochs=1, device="cpu", out=first,
            quiet=True).fit()  # fmt: skip
    weights = first / "model.safetensors"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    for given in (first, weights):
        trainer = Trainer("mlp", "moons", init=str(given), device="cpu")
        trainer.build()
        assert trainer.settings()["model_kwargs"]["hidden"] == [8]  # from the weights' record
        assert trainer.settings()["init"] == str(weights.resolve())
        assert trainer.init_record["sha256"] == sha
        assert torch.equal(trainer.model.state_dict()["layers.0.weight"],
                           load_file(weights)["layers.0.weight"])  # fmt: skip
    by_entry = Trainer("mlp", "blobs", init="mlp.circles", device="cpu")
    by_entry.build()
    assert by_entry.init_record["entry"] == "mlp.circles"
    line = one_line_error(
        zoo_cli("train", "-m", "tinyvgg", "-d", "digits", "--init", weights, "--epochs", "1")
    )
    assert f"--init {weights} holds weights for model 'workflow/mlp'" in line
    assert "not for model 'vision/tinyvgg'" in line


@pytest.mark.parametrize(
    "args, expected",
    [
        (("-m", "mlp", "-d", "blobs", "--pretrained", "circels"),
         "error: unknown pretrained entry 'mlp.circels'; did you mean: mlp.circles"),
        (("-m", "mlp", "-d", "blobs", "--pretrained", "circles", "--init", "mlp.iris"),
         "error: --pretrained and --init both name the weights to start from; give one"),
        (("-m", "linear", "-d", "blobs", "--freeze-backbone"),
         "error: --freeze-backbone needs the model's classifier, and model 'linear' declares "
         "none"),
        (("-m", "mlp", "-d", "blobs", "--init", "nothing.here"),
         "error: --init nothing.here is neither a run directory nor a weights file; unknown "
         "pretrained entry 'nothing.here'"),
    ],
)  # fmt: skip
def test_bad_fine_tuning_input_is_one_line_exit_2(args, expected, tmp_path):
    out = tmp_path / "run"
    line = one_line_error(zoo_cli("train", *args, "--epochs", "1", "--out", out))
    assert line.startswith(expected), line
    assert not out.exists()  # refused before any work


@pytest.mark.parametrize(
    "value, says",
    [
        ("true", "model workflow/mlp has several pretrained entries and none is declared its "
                 "default; pass pretrained= one of: breast-cancer, circles, iris"),
        ('"circlez"', "circles"),
    ],
    ids=["toml-boolean-means-the-default", "unknown-tag"],
)  # fmt: skip
def test_a_recipe_names_the_start_as_toml_writes_it(value, says, tmp_path):
    """``pretrained = true`` in a recipe is the TOML boolean, as ``pretrained=True`` is in
    Python (here refused because mlp declares no default, listing its tags)."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "mlp"\ndataset = "blobs"\npretrained = {value}\nepochs = 1\n')
    result = zoo_cli("train", "--recipe", recipe, "--out", tmp_path / "run", "--quiet")
    line = one_line_error(result, 2)
    assert says in line and "must be" not in line, line
    assert not (tmp_path / "run").exists()
