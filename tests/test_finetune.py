"""Fine-tuning from a pretrained entry (issue 12, item 3): a new head, adapted input channels.

``create_model(name, pretrained=tag, num_classes=K)`` loads every tensor but the classifier the
model entry declares and re-initialises it; ``in_channels=1`` sums the first conv's pretrained
filters (timm's ``adapt_input_conv``). Checked against the strictly loaded entry, a
hand-written training loop on scikit-learn's blobs, and a torchvision model served from a
loopback mirror (the fixtures of ``test_pretrained_torchvision``).
"""

from __future__ import annotations

import logging

import pytest
import torch
from test_pretrained_torchvision import _publish, _tiny_state, _use_table, mirror  # noqa: F401

import zoo
from zoo.errors import WeightsError


def test_mlp_circles_to_four_classes_keeps_the_body_and_trains(caplog):
    base = zoo.create_model("mlp", pretrained="circles")
    with caplog.at_level(logging.WARNING, logger="zoo"):
        tuned = zoo.create_model("mlp", pretrained="circles", num_classes=4)
    assert "re-initialising classifier 'layers.4'" in caplog.text
    before, after = base.state_dict(), tuned.state_dict()
    for key in ("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"):
        assert torch.equal(before[key], after[key]), key
    assert after["layers.4.weight"].shape == (4, 16) and before["layers.4.weight"].shape == (1, 16)
    # the new head trains: a hand-written loop on blobs (4 classes, 2 features)
    X, y = zoo.load_dataset("blobs")
    Xt, yt = zoo.load_dataset("blobs", "test")
    torch.manual_seed(0)
    opt = torch.optim.Adam(tuned.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tuned(X), y).backward()
        opt.step()
    with torch.no_grad():
        acc = (tuned(Xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.9


def test_same_head_loads_strictly_and_a_wrong_body_names_the_layer():
    same = zoo.create_model("mlp", pretrained="circles", num_classes=1)
    assert torch.equal(
        same.state_dict()["layers.4.weight"],
        zoo.create_model("mlp", pretrained="circles").state_dict()["layers.4.weight"],
    )
    with pytest.raises(
        WeightsError, match=r"cannot fine-tune into this shape: layer 'layers.0.weight'"
    ):
        zoo.create_model("mlp", pretrained="circles", num_classes=4, in_features=3)


def test_torchvision_mirror_model_to_ten_classes_one_channel(mirror, tmp_path, monkeypatch, caplog):  # noqa: F811
    site, _ = mirror
    state = _tiny_state()  # SqueezeNet 1.1 with 5 classes
    _use_table(monkeypatch, tmp_path, _publish(site, "squeezenet1_1tiny", state))
    with caplog.at_level(logging.WARNING, logger="zoo"):
        model = zoo.create_model("squeezenet1-1", pretrained=True, num_classes=10, in_channels=1)
    assert "adapting first conv 'features.0' from 3 to 1 input channel by summing" in caplog.text
    assert "re-initialising classifier 'classifier.1'" in caplog.text
    got = model.state_dict()
    assert torch.allclose(got["features.0.weight"], state["features.0.weight"].sum(1, keepdim=True))
    assert got["classifier.1.weight"].shape == (10, 512, 1, 1)
    same = [k for k in state if not k.startswith(("classifier.1.", "features.0.weight"))]
    assert same and all(torch.equal(got[k], state[k]) for k in same)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 10)
