"""Weights files: export/load round trips, tied weights, and one-line errors for bad files."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo import weights
from zoo.errors import UsageError, WeightsError

TIED_PLUGIN = {
    "tiedpkg/__init__.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):
            register("tied-net", "tiedpkg.models:TiedNet", task="multiclass",
                     summary="embedding tied to its output head")
            register("buffered-net", "tiedpkg.models:Buffered", task="regression",
                     summary="a non-persistent buffer the weights file does not hold")
    """,
    "tiedpkg/models.py": """
        import torch
        from torch import nn

        class TiedNet(nn.Module):
            def __init__(self, vocab: int = 11, dim: int = 6):
                super().__init__()
                self.embed = nn.Embedding(vocab, dim)
                self.mix = nn.Linear(dim, dim)
                self.head = nn.Linear(dim, vocab, bias=False)
                self.head.weight = self.embed.weight  # tied
                self.register_buffer("scale", torch.tensor(0.5))

            def forward(self, x):
                return self.head(torch.relu(self.mix(self.embed(x))) * self.scale)

        class Buffered(nn.Module):
            def __init__(self, n: int = 3):
                super().__init__()
                self.linear = nn.Linear(n, 1)
                offset = torch.arange(n, dtype=torch.float32)
                self.register_buffer("offset", offset, persistent=False)

            def forward(self, x):
                return self.linear(x + self.offset)
    """,
}


@pytest.fixture
def tied(make_plugin):
    make_plugin("tied-dist", TIED_PLUGIN, {"tied": "tiedpkg"})
    return zoo.create_model("tied-net", vocab=13)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> bool:
    a.eval()
    b.eval()
    with torch.inference_mode():
        return torch.equal(a(x), b(x))


def test_export_writes_metadata_and_load_rebuilds_identically(tmp_path):
    model = zoo.create_model("mlp", dataset="iris", hidden=[8, 5])
    path = zoo.export(model, tmp_path / "mlp.safetensors", metrics={"accuracy": 0.5})
    meta = weights.read_metadata(path)
    assert meta["model"] == "mlp" and meta["plugin"] == "workflow" and meta["dist"] == "zoo"
    assert meta["kwargs"] == {"in_features": 4, "num_classes": 3, "hidden": [8, 5]}
    assert meta["dataset"] == "iris" and meta["metrics"] == {"accuracy": 0.5}
    assert meta["zoo_version"] == zoo.__version__ and meta["dist_version"] and meta["created"]

    loaded = zoo.load(path)
    assert not loaded.training
    assert loaded.zoo_spec.model == "mlp" and loaded.zoo_spec.dataset == "iris"
    assert not any(p.is_meta for p in loaded.parameters())
    assert _same_outputs(model, loaded, torch.randn(7, 4))


def test_cnn_round_trip_through_meta_device(tmp_path):
    model = zoo.create_model("tinyvgg", dataset="digits", hidden=4)
    path = zoo.export(model, tmp_path / "cnn.safetensors")
    loaded = zoo.load(path)
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert _same_outputs(model, loaded, torch.randn(3, 1, 8, 8))


def test_tied_weights_stored_once_and_retied_on_load(tied, tmp_path):
    path = zoo.export(tied, tmp_path / "tied.safetensors")
    header = weights.read_header(path)
    stored = sorted(k for k in header if k != "__metadata__")
    assert stored == ["embed.weight", "mix.bias", "mix.weight", "scale"]
    assert weights.read_metadata(path)["aliases"] == {"head.weight": "embed.weight"}

    loaded = zoo.load(path)
    assert loaded.head.weight is loaded.embed.weight
    assert len(list(loaded.parameters())) == 3
    assert _same_outputs(tied, loaded, torch.tensor([[1, 2, 12], [0, 5, 7]]))

    fresh = zoo.create_model("tied-net", vocab=13)
    weights.load_weights(fresh, path)
    assert fresh.head.weight is fresh.embed.weight
    assert _same_outputs(tied, fresh, torch.tensor([[3, 4]]))


def test_load_weights_into_a_built_model(tmp_path):
    model = zoo.create_model("linear", dataset="diabetes")
    path = zoo.export(model, tmp_path / "lin.safetensors")
    other = zoo.create_model("linear", dataset="diabetes")
    weights.load_weights(other, path)
    assert _same_outputs(model, other, torch.randn(4, 10))


def test_file_for_another_architecture_lists_missing_and_unexpected_keys(tmp_path):
    path = zoo.export(zoo.create_model("tinyvgg", dataset="digits"), tmp_path / "cnn.safetensors")
    model = zoo.create_model("mlp", dataset="iris")
    with pytest.raises(WeightsError) as err:
        weights.load_weights(model, path)
    msg = str(err.value)
    assert "\n" not in msg and "file is for 'tinyvgg'" in msg
    assert "missing keys: layers.0.weight" in msg and "unexpected keys: block_1.0.bias" in msg


def test_shape_mismatch_is_named(tmp_path):
    path = zoo.export(zoo.create_model("mlp", dataset="iris", hidden=8), tmp_path / "a.safetensors")
    model = zoo.create_model("mlp", dataset="iris", hidden=9)
    with pytest.raises(WeightsError, match=r"'layers.0.weight' has shape \[8, 4\], model expects"):
        weights.load_weights(model, path)


def test_truncated_file(tmp_path):
    path = zoo.export(zoo.create_model("mlp", dataset="iris"), tmp_path / "a.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(WeightsError, match="truncated"):
        zoo.load(path)
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError, match="not a safetensors file"):
        zoo.load(path)


def test_absurd_header_length(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}" * 10)
    with pytest.raises(WeightsError, match="header length 1152921504606846976"):
        weights.read_metadata(path)
    path.write_bytes(struct.pack("<Q", 4) + b"nope")
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        weights.read_metadata(path)


def test_wrong_dtype(tmp_path):
    model = zoo.create_model("linear", in_features=3)
    path = tmp_path / "int.safetensors"
    state = {k: v.to(torch.int64) for k, v in model.state_dict().items()}
    save_file(state, str(path))
    with pytest.raises(
        WeightsError, match="'linear.weight' has dtype int64, model expects float32"
    ):
        weights.load_weights(model, path)

    # a header that declares a dtype safetensors does not know
    header = json.dumps({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(WeightsError, match="unknown dtype 'F99'"):
        weights.load_weights(model, path)

    # a byte range that does not match dtype x shape
    header = json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(WeightsError, match="does not match its byte range"):
        weights.load_weights(model, path)


def test_missing_metadata_cannot_rebuild_but_loads_into_a_model(tmp_path):
    model = zoo.create_model("linear", in_features=3)
    path = tmp_path / "plain.safetensors"
    save_file(model.state_dict(), str(path))
    with pytest.raises(WeightsError, match="no zoo model metadata"):
        zoo.load(path)
    other = zoo.create_model("linear", in_features=3)
    weights.load_weights(other, path)
    assert _same_outputs(model, other, torch.randn(2, 3))


def test_missing_file_and_unserialisable_kwargs(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        zoo.load(tmp_path / "nope.safetensors")
    model = zoo.create_model("linear", in_features=3)
    with pytest.raises(WeightsError, match="extra is not JSON-serialisable"):
        zoo.export(model, tmp_path / "x.safetensors", extra={"fn": print})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_unknown_model_in_metadata(tmp_path):
    model = zoo.create_model("linear", in_features=3)
    path = zoo.export(model, tmp_path / "x.safetensors")
    header = weights.read_header(path)
    meta = header["__metadata__"]
    tensors = {k: torch.zeros(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    save_file(tensors, str(path), metadata={**meta, "model": "linearr", "plugin": "gone"})
    with pytest.raises(UsageError, match="did you mean: linear"):
        zoo.load(path)


def test_non_persistent_buffers_are_rebuilt_for_real(make_plugin, tmp_path):
    make_plugin("tied-dist", TIED_PLUGIN, {"tied": "tiedpkg"})
    model = zoo.create_model("buffered-net", n=4)
    path = zoo.export(model, tmp_path / "b.safetensors")
    assert "offset" not in weights.read_header(path)
    loaded = zoo.load(path)
    assert torch.equal(loaded.offset, torch.arange(4.0))
    assert _same_outputs(model, loaded, torch.randn(3, 4))


def test_a_plain_module_exports_and_loads_only_into_a_built_model(tmp_path):
    plain = torch.nn.Sequential(torch.nn.Linear(3, 2))
    path = zoo.export(plain, tmp_path / "plain.safetensors", metrics={"accuracy": 1.0})
    assert weights.read_metadata(path)["format"] == weights.FORMAT
    with pytest.raises(WeightsError) as err:
        zoo.load(path)
    message = str(err.value)
    assert "module not built by zoo.create_model" in message and "no model entry" in message
    assert "zoo.weights.load_weights(model, path)" in message and "\n" not in message
    other = torch.nn.Sequential(torch.nn.Linear(3, 2))
    weights.load_weights(other, path)
    assert _same_outputs(plain, other, torch.randn(4, 3))


def test_load_skips_init_only_while_building_on_meta(tmp_path):
    from torch.nn import init

    before = init.kaiming_uniform_
    path = zoo.export(zoo.create_model("mlp", dataset="iris"), tmp_path / "m.safetensors")
    zoo.load(path)
    assert init.kaiming_uniform_ is before
    layer = torch.nn.Linear(4, 4)  # built normally afterwards: randomly initialised
    assert layer.weight.abs().sum() > 0


class _Views(torch.nn.Module):
    """A tied pair plus buffers that view the same memory differently (never aliases)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4, bias=False)
        self.b = torch.nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight  # tied: the same tensor under two keys
        w = self.a.weight.detach()
        self.register_buffer("row", w[1])  # same storage, other offset and shape
        self.register_buffer("flat", w.view(16))  # same offset, other shape
        self.register_buffer("turned", w.t())  # same offset and shape, other stride
        self.register_buffer("bits", w.view(torch.int32))  # same all but dtype


def _assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for key, tensor in want.items():
        assert got[key].dtype == tensor.dtype and torch.equal(got[key], tensor), key


def test_split_shared_stores_a_tie_once_and_every_other_view_on_its_own():
    state = _Views().state_dict()
    tensors, aliases = weights.split_shared(state)
    assert aliases == {"b.weight": "a.weight"}
    assert set(tensors) == {"a.weight", "row", "flat", "turned", "bits"}
    _assert_same_state({**tensors, "b.weight": tensors["a.weight"]}, state)
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in tensors.values())
    storages = [t.untyped_storage().data_ptr() for t in tensors.values()]
    assert len(set(storages)) == len(storages)  # safetensors refuses shared memory


def test_a_tied_model_and_aliased_views_round_trip_through_weights_and_checkpoints(tied, tmp_path):
    from zoo.train.checkpoint import load_checkpoint, save_checkpoint

    for model in (tied, _Views()):
        state = model.state_dict()
        path = zoo.export(model, tmp_path / f"{type(model).__name__}.safetensors")
        fresh = (
            type(model)() if isinstance(model, _Views) else zoo.create_model("tied-net", vocab=13)
        )
        weights.load_weights(fresh, path)
        _assert_same_state(fresh.state_dict(), state)

        run = tmp_path / f"run-{type(model).__name__}"
        save_checkpoint(run, epoch=1, model=model)
        restored = load_checkpoint(run).model_state
        _assert_same_state(restored, state)
        tied_keys = ("b.weight", "a.weight") if isinstance(model, _Views) else None
        tied_keys = tied_keys or ("head.weight", "embed.weight")
        assert restored[tied_keys[0]] is restored[tied_keys[1]]
    loaded = zoo.load(tmp_path / "TiedNet.safetensors")
    assert loaded.head.weight is loaded.embed.weight
