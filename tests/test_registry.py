"""Registry entries: validation, lookup, duplicates, suggestions, compatibility."""

from __future__ import annotations

import pytest

from zoo import tasks
from zoo.errors import AmbiguousNameError, IncompatibleError, UnknownNameError
from zoo.registry.entries import Registry, filter_names, make_entry


def entry(kind, name, plugin="p", **meta):
    return make_entry(kind, name, "pkg.mod:Thing", meta, plugin=plugin, dist=plugin, version="1")


def test_valid_entry_keeps_meta_and_tasks():
    e = entry("model", "my-mlp", task="multiclass", summary="x", defaults={"hidden": 3})
    assert e.tasks == ("multiclass",)
    assert e.defaults == {"hidden": 3}
    assert e.qualname == "p/my-mlp"
    assert e.input_kind == "any"


@pytest.mark.parametrize(
    "kind, name, target, meta, reason",
    [
        ("model", "My_Model", "a:b", {}, "lower-case"),
        ("model", "ok", "no-colon", {}, "neither"),
        ("model", "ok", 42, {}, "neither"),
        ("model", "ok", "a:b", {"task": "clustering"}, "unknown task"),
        ("model", "ok", "a:b", {"task": "binary", "tasks": ["binary"]}, "not both"),
        ("model", "ok", "a:b", {"input_kind": "audio"}, "input_kind"),
        ("loss", "ok", "a:b", {"expects": "odds"}, "expects"),
        ("dataset", "ok", "a:b", {"input_shape": (2,), "num_classes": 2}, "task is required"),
        ("dataset", "ok", "a:b", {"task": "binary", "input_shape": (2, 3)}, "input_shape"),
        ("dataset", "ok", "a:b", {"task": "multiclass", "input_shape": (2,)}, "num_classes"),
        (
            "dataset",
            "ok",
            "a:b",
            {"task": "binary", "input_shape": (2,), "num_classes": 3},
            "2 for",
        ),
    ],
)
def test_malformed_registrations_are_rejected_with_reason(kind, name, target, meta, reason):
    with pytest.raises(ValueError, match=reason):
        make_entry(kind, name, target, meta, plugin="p", dist="p", version="1")


def test_duplicate_names_stay_reachable_and_bare_name_is_ambiguous():
    reg = Registry([entry("model", "net", plugin="a"), entry("model", "net", plugin="b")])
    assert reg.names("model") == ["a/net", "b/net"]
    assert reg.get("model", "a/net").plugin == "a"
    assert reg.get("model", "b/net").plugin == "b"
    with pytest.raises(AmbiguousNameError, match="a/net, b/net"):
        reg.get("model", "net")


def test_unknown_name_suggests_close_matches_and_failed_plugins():
    reg = Registry([entry("model", "tinyvgg"), entry("model", "mlp")], failed_plugins=["broken"])
    with pytest.raises(UnknownNameError) as err:
        reg.get("model", "tinyvg")
    message = str(err.value)
    assert "did you mean: tinyvgg" in message
    assert "broken" in message and "zoo plugins" in message
    assert "\n" not in message


def test_lookup_normalises_case_and_underscores():
    reg = Registry([entry("model", "mobilenet-v3-small")])
    assert reg.get("model", "MobileNet_V3_Small").name == "mobilenet-v3-small"


def test_filter_names_takes_patterns_as_str_or_list():
    names = ["mlp", "linear", "a/tinyvgg"]
    assert filter_names(names, "l*") == ["linear"]
    assert filter_names(names, ["m*", "tiny*"]) == ["mlp", "a/tinyvgg"]
    assert filter_names(names, None) == names


def _ds(name, task, shape, k=None):
    meta = {"task": task, "input_shape": shape}
    if k:
        meta["num_classes"] = k
    return entry("dataset", name, **meta)


def test_compatibility_reasons():
    image_model = entry("model", "cnn", tasks=["multiclass"], input_kind="image")
    features_ds = _ds("blobs", "multiclass", (2,), 4)
    regression_ds = _ds("line", "regression", (1,))
    images = _ds("digits", "multiclass", (1, 8, 8), 10)
    ce = entry("loss", "ce", tasks=["multiclass"])
    assert "takes image inputs" in tasks.incompatibility(image_model, features_ds)
    assert "serves multiclass" in tasks.incompatibility(image_model, regression_ds)
    assert "not regression" in tasks.incompatibility(entry("model", "any"), regression_ds, ce)
    assert tasks.incompatibility(image_model, images, ce) is None
    rgb = entry("model", "resnet", input_kind="image", in_channels=3)
    assert "3-channel" in tasks.incompatibility(rgb, images)
    with pytest.raises(IncompatibleError, match="^incompatible combination: "):
        tasks.check_compatible(image_model, features_ds)


def test_standard_kwargs_per_dataset_shape():
    assert tasks.standard_kwargs(_ds("blobs", "multiclass", (2,), 4)) == {
        "in_features": 2,
        "num_classes": 4,
    }
    assert tasks.standard_kwargs(_ds("digits", "multiclass", (1, 8, 8), 10)) == {
        "in_features": 64,
        "num_classes": 10,
        "in_channels": 1,
        "image_size": [8, 8],
    }
    assert tasks.standard_kwargs(_ds("bc", "binary", (30,), 2))["num_classes"] == 1
