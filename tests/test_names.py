"""One name filter and one close-match message, shared by the registry and the hub."""

from __future__ import annotations

import pytest

from zoo import api, hub
from zoo._util.names import filter_names, normalize_name, unknown_message
from zoo.errors import UnknownNameError


def test_filter_names_normalises_patterns_and_matches_bare_names():
    names = ["mlp", "linear", "a/tiny-vgg"]
    assert filter_names(names, "TINY_*") == ["a/tiny-vgg"]
    assert filter_names(names, ["m*", "l*"]) == ["mlp", "linear"]
    assert filter_names(names, "x_*", normalize=str.lower) == []
    assert filter_names(["r.a_b"], "r.a_*", normalize=str.lower) == ["r.a_b"]
    assert filter_names(names, None) == names
    assert normalize_name(" MobileNet_V3 ") == "mobilenet-v3"


def test_unknown_message_suggests_close_names_or_where_to_look():
    assert unknown_message("model", "mpl", ["mlp", "linear"], otherwise="see `zoo list`") == (
        "unknown model 'mpl'; did you mean: mlp?"
    )
    assert unknown_message("model", "zzz", ["mlp"], otherwise="see `zoo list`") == (
        "unknown model 'zzz'; see `zoo list`"
    )


def test_registry_and_hub_word_unknown_names_alike():
    with pytest.raises(UnknownNameError, match=r"^unknown model 'mpl'; did you mean: mlp\?$"):
        api.get_entry("model", "mpl")
    with pytest.raises(
        UnknownNameError,
        match=r"^unknown pretrained entry 'mlp.irs'; did you mean: mlp.iris, mlp.circles\?$",
    ):
        hub.get_pretrained("mlp.irs")
    assert hub.list_pretrained("MLP.IRIS") == ["mlp.iris"] == api.list_pretrained("mlp.ir*")
