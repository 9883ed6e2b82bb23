"""torchvision's weights as pretrained entries (issue 12, items 1-2).

The generated table is compared with torchvision's own ``Weights`` enums; fetching runs end to
end against a real loopback mirror (``ZOO_MIRROR``) laid out like download.pytorch.org, serving
real ``.pth`` files these tests write with ``torch.save`` (named with their own sha256
prefix): download, prefix check, ``torch.load(weights_only=True)`` conversion to safetensors,
trust-on-first-use record, verified cache hits, ``create_model(pretrained=...)``. The hostile
case serves a pickle that would run a command and checks that it never does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickletools
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import FetchError, UnknownNameError, UsageError
from zoo.hub import cache, table
from zoo.hub import index as hub

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "https://download.pytorch.org"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "torchvision_table", ROOT / "tools/torchvision_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the table


def test_table_is_what_torchvision_enums_generate():
    gen = _generator()
    checked_in = json.loads(table.TABLE.read_text())
    assert checked_in == json.loads(gen.render(gen.build_table())), (
        "zoo/hub/torchvision.json is stale: run python tools/torchvision_table.py"
    )


def test_every_torchvision_model_has_entries_with_one_default():
    from torchvision import models
    from zoo_torchvision import ARCHITECTURES

    entries = {e.name: e for e in table.entries()}
    for upstream, *_ in ARCHITECTURES:
        model = upstream.replace("_", "-")
        enum = models.get_model_weights(upstream)
        mine = [e for e in entries.values() if e.model == model]
        assert sorted(e.tag for e in mine) == sorted(w.name.lower().replace("_", "-") for w in enum)
        (default,) = [e for e in mine if e.default]
        assert default.tag == enum.DEFAULT.name.lower().replace("_", "-")
        weights = enum[default.tag.upper().replace("-", "_")]
        assert default.files[0].url == weights.url
        assert default.metrics == weights.meta["_metrics"]["ImageNet-1K"]
        assert default.about["num_params"] == weights.meta["num_params"]
        assert table.categories(default) == weights.meta["categories"]
    r50 = entries["resnet50.imagenet1k-v2"]
    assert r50.files[0].sha256 == "11ad3fa6" and r50.files[0].prefix_only
    assert table.transforms(r50) == {
        "resize": [232], "crop": [224], "interpolation": "bilinear",
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    }  # fmt: skip
    # one shared category list, not 1000 names per entry
    assert table.TABLE.stat().st_size < 64 << 10


def test_list_pretrained_shows_acc_and_imports_no_torch(run_zoo):
    result = run_zoo("list", "pretrained")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "resnet50.imagenet1k-v2" in x)
    assert "acc@1=80.86" in line
    code = (
        "import sys; from zoo.hub import index; "
        "assert 'resnet18.imagenet1k-v1' in index.list_pretrained(); "
        "index.get_pretrained('resnet18.imagenet1k-v1').to_dict(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_info_states_trust_on_first_use(run_zoo):
    result = run_zoo("info", "resnet18.imagenet1k-v1", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    (f,) = info["files"]
    assert f["sha256_prefix"] == "f37072fd" and "trust on first use" in f["integrity"]
    assert info["default"] is True and info["categories"] == "imagenet-1k"
    assert info["metrics"] == {"acc@1": 69.758, "acc@5": 89.078}


def test_pretrained_true_means_the_declared_default(monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # resolving is all this needs: stop before fetching
    with pytest.raises(FetchError, match=r"'resnet50.imagenet1k-v2' is not in the cache"):
        zoo.create_model("resnet50", pretrained=True)
    with pytest.raises(UsageError, match=r"none is declared its default.*breast-cancer, circles"):
        zoo.create_model("mlp", pretrained=True)
    with pytest.raises(
        UnknownNameError, match=r"did you mean: resnet50.imagenet1k-v2, resnet50.imagenet1k-v1\?"
    ):
        zoo.create_model("resnet50", pretrained="imagenet1k-v3")
    assert zoo.create_model("mlp", pretrained=False, in_features=2, num_classes=2) is not None


# ---------------------------------------------------------------- a mirror on loopback


def _tiny_state() -> dict[str, torch.Tensor]:
    """A real torchvision model's state dict (SqueezeNet 1.1, 5 classes: ~3 MB)."""
    torch.manual_seed(0)
    return zoo.create_model("squeezenet1-1", num_classes=5).state_dict()


def _publish(root: Path, stem: str, payload) -> str:
    """``torch.save`` ``payload`` to ``root/models/<stem>-<its sha256 prefix>.pth``; the name."""
    folder = root / "models"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(payload, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    name = f"{stem}-{prefix}.pth"
    tmp.rename(folder / name)
    return name


def _use_table(monkeypatch, tmp_path: Path, name: str, max_bytes: int = 8 << 20) -> None:
    """A table (as the generator writes it) holding one entry for ``models/<name>``."""
    doc = json.loads(table.TABLE.read_text())
    entry = {
        "name": "squeezenet1-1.tiny-v1", "model": "squeezenet1-1",
        "enum": "SqueezeNet1_1_Weights.TINY_V1", "default": True,
        "url": f"{ORIGIN}/models/{name}", "sha256_prefix": name.rsplit("-", 1)[1][:8],
        "max_bytes": max_bytes, "kwargs": {"num_classes": 5},
        "metrics": {"acc@1": 1.0, "acc@5": 5.0}, "num_params": 0,
        "categories": "imagenet-1k", "recipe": "-", "license": "BSD-3-Clause",
        "transforms": {},
    }  # fmt: skip
    doc["entries"] = [entry]
    path = tmp_path / "torchvision.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(table, "TABLE", path)
    table._read.cache_clear()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback HTTP server for ``tmp_path/site``, set as ``ZOO_MIRROR``; its request log."""
    site = tmp_path / "site"
    site.mkdir()
    hits: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ZOO_MIRROR", f"http://127.0.0.1:{server.server_port}")
    yield site, hits
    server.shutdown()
    server.server_close()
    table._read.cache_clear()


def _hub_files() -> list[str]:
    root = cache.cache_dir()
    return (
        sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        if root.exists()
        else []
    )


def test_mirror_fetch_convert_cache_load(mirror, tmp_path, monkeypatch):
    site, hits = mirror
    state = _tiny_state()
    name = _publish(site, "squeezenet1_1tiny", state)
    _use_table(monkeypatch, tmp_path, name)
    model = zoo.create_model("squeezenet1-1", pretrained=True)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert hits == [f"/models/{name}"]  # the path of the origin URL, on the mirror's host
    # only a safetensors blob (and its record) is kept: no pickle in the cache
    blobs = [f for f in _hub_files() if f.startswith("blobs/")]
    assert len(blobs) == 2 and blobs[0].endswith(".safetensors")
    assert not any(f.endswith(".pth") or f.endswith(".part") for f in _hub_files())
    # trust on first use: the full sha256 and size are recorded, and shown by `zoo info`
    pth = (site / "models" / name).read_bytes()
    (pin,) = zoo.info("squeezenet1-1.tiny-v1")["first_use"]
    assert pin["source_sha256"] == hashlib.sha256(pth).hexdigest()
    assert pin["source_size"] == len(pth) and pin["trust"] == "first use"
    blob = cache.cache_dir() / blobs[0]
    assert pin["sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()
    # a hit is served from the cache, verified (offline: no request)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    again = zoo.create_model("squeezenet1-1", pretrained="tiny-v1")
    assert torch.equal(again.classifier[1].weight, state["classifier.1.weight"])
    assert len(hits) == 1
    # a corrupted blob is caught by the full hash and fetched again (checked in full)
    monkeypatch.delenv("ZOO_OFFLINE")
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    zoo.create_model("squeezenet1-1", pretrained=True)
    assert len(hits) == 2 and hashlib.sha256(blob.read_bytes()).hexdigest() == pin["sha256"]


def test_a_later_download_must_match_the_full_hash_of_the_first(mirror, tmp_path, monkeypatch):
    site, hits = mirror
    name = _publish(site, "squeezenet1_1tiny", _tiny_state())
    _use_table(monkeypatch, tmp_path, name)
    zoo.create_model("squeezenet1-1", pretrained=True)
    ref = table.entries()[0].files[0]
    pin_path = next((cache.cache_dir() / "pins").glob("*.json"))
    pin = json.loads(pin_path.read_text())
    # the first download recorded another file with the same 8-hex prefix: the origin changed
    pin["source_sha256"] = pin["source_sha256"][:8] + "0" * 56
    pin_path.write_text(json.dumps(pin))
    assert cache.first_use(ref)["source_sha256"].endswith("0" * 56)
    blob = cache.cache_dir() / "blobs" / f"{pin['sha256']}.safetensors"
    blob.write_bytes(b"rot")  # so the blob must be fetched again
    with pytest.raises(FetchError, match=rf"{name} from .* changed since its first download"):
        zoo.create_model("squeezenet1-1", pretrained=True)
    assert len(hits) == 2 and not blob.exists()


def test_prefix_mismatch_names_prefix_url_and_file(mirror, tmp_path, monkeypatch):
    site, _ = mirror
    name = _publish(site, "squeezenet1_1tiny", _tiny_state())
    wrong = "squeezenet1_1tiny-00000000.pth"
    (site / "models" / name).rename(site / "models" / wrong)
    _use_table(monkeypatch, tmp_path, wrong)
    with pytest.raises(FetchError) as err:
        zoo.create_model("squeezenet1-1", pretrained=True)
    msg = str(err.value)
    assert "expected 00000000" in msg and wrong in msg
    assert f"{os.environ['ZOO_MIRROR']}/models/{wrong}" in msg
    assert not [f for f in _hub_files() if not f.startswith("locks/")]


def test_download_over_the_byte_cap_is_refused(mirror, tmp_path, monkeypatch):
    site, _ = mirror
    name = _publish(site, "squeezenet1_1tiny", _tiny_state())
    _use_table(monkeypatch, tmp_path, name, max_bytes=1 << 20)
    with pytest.raises(FetchError, match=r"larger than its 1,048,576-byte cap"):
        zoo.create_model("squeezenet1-1", pretrained=True)
    assert not [f for f in _hub_files() if not f.startswith("locks/")]


class _Payload:
    """What a hostile .pth holds: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_through_the_mirror_is_refused(mirror, tmp_path, monkeypatch):
    site, _ = mirror
    marker = tmp_path / "PWNED"
    name = _publish(site, "squeezenet1_1tiny", {"classifier.1.weight": _Payload(marker)})
    _use_table(monkeypatch, tmp_path, name)
    with pytest.raises(FetchError, match=r"refusing .*weights_only=True.*nothing was cached"):
        zoo.create_model("squeezenet1-1", pretrained=True)
    assert not marker.exists()
    assert not [f for f in _hub_files() if not f.startswith("locks/")]
    assert cache.first_use(table.entries()[0].files[0]) is None
    # the payload is real: its pickle calls os.system (read as opcodes, never run)
    with zipfile.ZipFile(site / "models" / name) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    names = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    assert f"{os.system.__module__} system" in names  # a GLOBAL opcode: module and name


def test_a_checkpoint_that_is_not_a_flat_state_dict_is_refused(mirror, tmp_path, monkeypatch):
    site, _ = mirror
    name = _publish(site, "squeezenet1_1tiny", {"model": {"w": torch.zeros(1)}, "epoch": 3})
    _use_table(monkeypatch, tmp_path, name)
    with pytest.raises(FetchError, match=r"not a flat state dict \('model' is not a tensor\)"):
        zoo.create_model("squeezenet1-1", pretrained=True)
    assert not [f for f in _hub_files() if not f.startswith("locks/")]


def test_mirror_must_be_an_http_url(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", "ftp://mirror.example")
    with pytest.raises(UsageError, match="ZOO_MIRROR"):
        table.mirrored(f"{ORIGIN}/models/x-12345678.pth")
    monkeypatch.setenv("ZOO_MIRROR", "http://10.0.0.1:8080/pytorch/")
    got = table.mirrored(f"{ORIGIN}/models/x-12345678.pth")
    assert got == "http://10.0.0.1:8080/pytorch/models/x-12345678.pth"
    # user registries are untouched: their URLs are not rewritten
    assert all(
        not f.prefix_only
        for e in hub.all_entries().values()
        if e.registry == "zoo"
        for f in e.files
    )
