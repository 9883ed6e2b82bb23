"""User mistakes at the CLI: one clear line, the right exit code, nothing lost."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.api import get_entry
from zoo.errors import UsageError


def test_unwritable_output_path_is_one_line_exit_1(run_zoo, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    result = run_zoo(
        "train", "--model", "linear", "--dataset", "iris", "--epochs", "1",
        "--out", str(blocker / "run"), "--quiet",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: Not a directory: {blocker / 'run'}"
    assert blocker.read_text() == "keep me"


def test_list_takes_singular_kinds_and_suggests_for_typos(run_zoo):
    singular = run_zoo("list", "model", "tiny*")
    assert singular.returncode == 0 and "tinyvgg" in singular.stdout
    typo = run_zoo("list", "modles")
    assert typo.returncode == 2
    assert typo.stderr.strip() == "error: nothing matches 'modles'; did you mean `zoo list models`?"
    nothing = run_zoo("list", "zzz", "--json")
    assert nothing.returncode == 0 and json.loads(nothing.stdout) == []
    assert "nothing matches 'zzz'" in nothing.stderr


def test_list_pretrained_with_a_model_name(run_zoo):
    rows = json.loads(run_zoo("list", "pretrained", "tinyvgg", "--json").stdout)
    assert [r["name"] for r in rows] == ["tinyvgg.digits"]


def test_listing_warns_about_failed_plugins_and_unknown_plugin_names(make_plugin, run_zoo):
    broken = {"broken_zoo.py": "raise ImportError('missing dependency')\n"}
    site = make_plugin("broken-zoo", broken, entry_points={"broken": "broken_zoo"})
    result = run_zoo("list", "losses", pythonpath=[site])
    assert result.returncode == 0
    assert "warning: plugins failed to load: broken (see `zoo plugins`)" in result.stderr
    unknown = run_zoo("list", "losses", env={"ZOO_PLUGINS": "no-such-plugin"})
    assert "ZOO_PLUGINS names no installed plugin: no-such-plugin" in unknown.stderr


def test_class_weights_can_be_given_as_numbers():
    assert torch.equal(
        zoo.create_loss("bce-with-logits", pos_weight=2).pos_weight, torch.tensor(2.0)
    )
    weight = zoo.create_loss("cross-entropy", weight=[1, 2, 3]).weight
    assert torch.equal(weight, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(UsageError, match="loss 'cross-entropy'"):
        zoo.create_loss("cross-entropy", weight="heavy")


def test_partial_targets_are_shown_readably():
    assert get_entry("model", "resnet18").target_repr == "zoo_torchvision.build:build('resnet18')"


@pytest.mark.parametrize(
    "args, message",
    [
        (["list", "--jsn"], "error: No such option '--jsn'. Did you mean '--json'?"),
        (["export", "--format", "pt", "x"], "error: Invalid value for '--format'"),
        (["cache", "foo"], "error: Invalid value for '[list|verify|clear]'"),
    ],
)
def test_click_usage_errors_are_one_line_too(run_zoo, args, message):
    result = run_zoo(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1


def test_bench_plot_must_be_png_before_any_work(run_zoo, tmp_path):
    result = run_zoo("bench", "--model", "mlp", "--dataset", "circles", "--plot", "out.jpg")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --plot writes a PNG image; name it FILE.png, not out.jpg"
    )
    assert result.stdout == ""
