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
    meta = {k: v for k, v in meta.items() if k != "pins"}  # as zoo.weights/1 wrote it
    save_file(tensors, str(path), metadata={**meta, "model": "linearr", "plugin": "gone"})
    # issue 10: a file names what it was made with; no close match stands in for it
    with pytest.raises(UsageError, match="zoo .* is installed but has no zoo plugin 'gone'") as err:
        zoo.load(path)
    assert "did you mean" not in str(err.value)


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


# ---------------------------------------------------------------- weights in another dtype
# Tolerances against a float64 forward pass written by hand from the fp32 weights, as a
# fraction of the largest |logit|: float64 1e-6 (the fp32 inputs are exact in both), bfloat16
# 5e-2 (8-bit mantissa: weights rounded by up to 2**-9 relative, compounded over 3 layers),
# float16 5e-3 (11-bit mantissa). Labels, accuracy and F1 must equal the reference's.
TOLERANCE = {torch.float64: 1e-6, torch.bfloat16: 5e-2, torch.float16: 5e-3}


@pytest.fixture(scope="module")
def iris_mlp(tmp_path_factory):
    """An MLP trained on iris by zoo's trainer (fp32), and its state."""
    out = tmp_path_factory.mktemp("runs") / "iris"
    result = zoo.Trainer("mlp", "iris", epochs=20, seed=0, device="cpu", quiet=True, out=out)
    model = result.fit().model.cpu().eval()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def _reference_logits(state: dict[str, torch.Tensor], x: torch.Tensor):
    """The MLP by hand in float64: (x W^T + b, ReLU) per hidden layer, then x W^T + b."""
    import numpy as np

    h = x.double().numpy()
    layers = sorted({int(k.split(".")[1]) for k in state})
    for i, n in enumerate(layers):
        h = h @ state[f"layers.{n}.weight"].double().numpy().T
        h = h + state[f"layers.{n}.bias"].double().numpy()
        h = np.maximum(h, 0.0) if i < len(layers) - 1 else h
    return h


def _rewrite(path, tensors: dict[str, torch.Tensor], **meta: str) -> None:
    """Rewrite a weights file with other tensors and metadata (``None`` drops a field)."""
    old = weights.read_header(path)["__metadata__"]
    merged = {k: v for k, v in {**old, **meta}.items() if v is not None}
    save_file(tensors, str(path), metadata=merged)


def _dtypes(model: torch.nn.Module) -> set[torch.dtype]:
    return {t.dtype for t in model.state_dict().values()}


def test_export_records_the_dtype_of_the_stored_tensors(tmp_path):
    model = zoo.create_model("mlp", dataset="iris")
    fp32 = zoo.export(model, tmp_path / "a.safetensors")
    assert weights.read_metadata(fp32)["dtype"] == "float32"
    half = zoo.export(model.half(), tmp_path / "b.safetensors")
    assert weights.read_metadata(half)["dtype"] == "float16"
    model.layers[0].double()
    assert weights.read_metadata(zoo.export(model, tmp_path / "c.safetensors"))["dtype"] == "mixed"


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_weights_in_f64_bf16_f16_load_in_the_recorded_dtype_and_predict_and_evaluate_right(
    iris_mlp, dtype, tmp_path
):
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    model, state = iris_mlp
    path = zoo.export(copy_of(model).to(dtype), tmp_path / "w.safetensors", dataset="iris")
    assert weights.read_metadata(path)["dtype"] == str(dtype).removeprefix("torch.")
    loaded = zoo.load(path)
    assert _dtypes(loaded) == {dtype}  # what the file records, not a mixed or fp32 model

    X, y = zoo.load_dataset("iris", "test")
    want = _reference_logits(state, X)
    got = zoo.predict(path, X, raw=True, transform=False).double().numpy()  # X: transformed
    assert abs(got - want).max() <= TOLERANCE[dtype] * abs(want).max()
    labels = want.argmax(1)
    assert (zoo.predict(path, X, transform=False).numpy() == labels).all()
    metrics = zoo.evaluate(path)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, labels), abs=1e-12)
    assert metrics["f1"] == pytest.approx(f1_score(y, labels, average="macro"), abs=1e-12)
    probs = torch.from_numpy(want).softmax(1).numpy()
    assert metrics["loss"] == pytest.approx(log_loss(y, probs, labels=[0, 1, 2]), rel=0.05)


def copy_of(model: torch.nn.Module) -> torch.nn.Module:
    """A zoo model's independent copy (spec included)."""
    import copy

    return copy.deepcopy(model)


def test_tensors_stored_in_another_dtype_than_recorded_are_cast_with_a_note(
    iris_mlp, tmp_path, caplog
):
    model, state = iris_mlp
    path = zoo.export(model, tmp_path / "w.safetensors")  # records float32
    stored = {k: v.half() for k, v in state.items()}
    _rewrite(path, stored)
    loaded = zoo.load(path)
    assert _dtypes(loaded) == {torch.float32}
    notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert notes == [
        f"{path}: loaded 6 tensors stored as float16 as float32 "
        "(the dtype the file records for the model)"
    ]
    X, _ = zoo.load_dataset("iris", "test")
    with torch.inference_mode():
        got = loaded(X).double().numpy()
    want = _reference_logits(stored, X)  # the stored (rounded) weights, computed exactly
    assert abs(got - want).max() <= 1e-5 * abs(want).max()


def test_a_mixed_file_that_records_no_dtype_loads_in_the_dtype_the_model_is_built_in(
    iris_mlp, tmp_path, caplog
):
    model, state = iris_mlp
    path = zoo.export(model, tmp_path / "w.safetensors")
    stored = {k: v.half() if k.startswith("layers.0") else v.double() for k, v in state.items()}
    _rewrite(path, stored, dtype=None)  # as written before zoo recorded the dtype
    loaded = zoo.load(path)
    assert _dtypes(loaded) == {torch.float32}  # not a mixed model
    (note,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "2 tensors stored as float16 as float32, 4 tensors stored as float64 as float32" in note
    assert note.endswith("(the model's dtype; the file records none)")
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, stored[key].float()), key


def test_a_file_that_records_mixed_loads_each_tensor_as_stored(tmp_path):
    model = zoo.create_model("mlp", dataset="iris")
    model.layers[4].double()
    path = zoo.export(model, tmp_path / "w.safetensors")
    loaded = zoo.load(path)
    _assert_same_state(loaded.state_dict(), model.state_dict())


def test_recorded_dtype_holds_for_a_model_rebuilt_for_real(make_plugin, tmp_path):
    make_plugin("tied-dist", TIED_PLUGIN, {"tied": "tiedpkg"})
    model = zoo.create_model("buffered-net", n=4).to(torch.float64)
    loaded = zoo.load(zoo.export(model, tmp_path / "b.safetensors"))
    assert loaded.offset.dtype == torch.float64 and loaded.linear.weight.dtype == torch.float64
    assert _same_outputs(model, loaded, torch.randn(3, 4, dtype=torch.float64))


def test_load_weights_casts_into_the_models_own_dtype_with_a_note(iris_mlp, tmp_path, caplog):
    model, state = iris_mlp
    path = zoo.export(copy_of(model).to(torch.bfloat16), tmp_path / "w.safetensors")
    fp32 = zoo.create_model("mlp", dataset="iris")
    weights.load_weights(fp32, path)
    assert _dtypes(fp32) == {torch.float32}
    for key, tensor in fp32.state_dict().items():
        assert torch.equal(tensor, state[key].bfloat16().float()), key
    (note,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert note == f"{path}: loaded 6 tensors stored as bfloat16 as float32 (the model's dtype)"
    f64 = zoo.create_model("mlp", dataset="iris").double()
    weights.load_weights(f64, zoo.export(model, tmp_path / "f32.safetensors"))
    assert _dtypes(f64) == {torch.float64}


def test_a_dtype_the_file_cannot_be_loaded_in_is_refused_in_one_line(iris_mlp, tmp_path):
    model, state = iris_mlp
    path = zoo.export(model, tmp_path / "w.safetensors")
    _rewrite(path, state, dtype="int8")
    with pytest.raises(WeightsError) as err:
        zoo.load(path)
    assert str(err.value) == (
        f"{path}: metadata dtype 'int8' is not one of float16, bfloat16, float32, float64, mixed"
    )
    big = {**state, "layers.0.weight": state["layers.0.weight"] * 0 + 1e6}
    _rewrite(path, big, dtype="float16")  # values float16 cannot hold
    with pytest.raises(WeightsError) as err:
        zoo.load(path)
    assert str(err.value) == (
        f"{path}: tensor 'layers.0.weight' holds values up to 1e+06 that float16 cannot "
        "represent; refusing to load it as float16 (the dtype the file records for the model)"
    )
    huge = {k: v.double() for k, v in state.items()}
    huge["layers.2.bias"] = huge["layers.2.bias"] * 0 + 1e300
    _rewrite(path, huge, dtype="float64")
    with pytest.raises(WeightsError, match="'layers.2.bias' holds values up to 1e\\+300 that "):
        weights.load_weights(zoo.create_model("mlp", dataset="iris"), path)
    assert _dtypes(zoo.load(path)) == {torch.float64}  # recorded float64 holds it
