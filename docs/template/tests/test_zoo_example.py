"""The plugin's own tests: zoo's conformance checks, then one real training run."""

import zoo
from zoo.testing import assert_plugin_ok


def test_every_entry_honours_zoo_contracts():
    assert_plugin_ok("example")  # raises AssertionError listing every failed check


def test_res_mlp_learns_rings():
    result = zoo.Trainer("res-mlp", "rings", lr=1e-2, epochs=10, batch_size=64, quiet=True).fit()
    assert result.metrics["accuracy"] > 0.9
