"""The listing CLI: zoo list / info / plugins / --version, for people and for scripts."""

from __future__ import annotations

import json

import zoo


def test_list_json_shows_every_entry_with_plugin(run_zoo):
    result = run_zoo("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    for row in rows:
        assert {"name", "kind", "plugin", "summary"} <= set(row)
    names = {(r["kind"], r["name"]) for r in rows}
    assert {("model", "tinyvgg"), ("loss", "bce"), ("dataset", "digits")} <= names
    assert {r["plugin"] for r in rows if r["kind"] != "pretrained"} == {
        "workflow", "losses", "datasets", "vision", "torchvision",
    }  # fmt: skip


def test_list_kind_and_pattern_as_an_aligned_table(run_zoo):
    result = run_zoo("list", "models", "fashion-*")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "tasks", "summary"]
    assert [line.split()[1] for line in lines[2:]] == ["fashion-v0", "fashion-v1"]
    assert lines[2].index("vision") == lines[0].index("plugin")  # aligned columns
    assert run_zoo("list", "mlp").stdout.splitlines()[2].split()[:2] == ["model", "mlp"]


def test_info_shows_the_contract(run_zoo):
    result = run_zoo("info", "tinyvgg", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "model" and info["plugin"] == "vision"
    assert info["input_kind"] == "image" and info["tasks"] == ["binary", "multiclass"]
    assert "digits" in info["datasets"] and "circles" not in info["datasets"]
    text = run_zoo("info", "tinyvgg").stdout
    assert "zoo_vision.models:TinyVGG" in text and "input_kind" in text
    data = json.loads(run_zoo("info", "digits", "--json").stdout)
    assert data["input_shape"] == [1, 8, 8]
    assert data["standard_kwargs"]["in_channels"] == 1


def test_unknown_name_is_one_line_with_suggestions_and_exit_2(run_zoo):
    result = run_zoo("info", "tinyvg")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == ("error: unknown name 'tinyvg'; did you mean: tinyvgg?")


def test_bad_usage_exits_2(run_zoo):
    assert run_zoo("list", "models", "a", "b").returncode == 2
    assert run_zoo("no-such-command").returncode == 2
    assert run_zoo("info").returncode == 2


def test_plugins_lists_first_party_with_counts(run_zoo):
    records = json.loads(run_zoo("plugins", "--json").stdout)
    by_name = {r["name"]: r for r in records}
    assert by_name["losses"]["entries"] == {"loss": 7}
    assert by_name["vision"]["status"] == "ok" and by_name["vision"]["dist"] == "zoo"
    assert "register_models" in by_name["vision"]["hooks"]
    table = run_zoo("plugins").stdout
    assert "7 losses" in table


def test_version(run_zoo):
    result = run_zoo("--version")
    assert result.returncode == 0 and zoo.__version__ in result.stdout


def test_debug_shows_the_traceback(run_zoo):
    result = run_zoo("info", "tinyvg", env={"ZOO_DEBUG": "1"})
    assert "Traceback" in result.stderr and "UnknownNameError" in result.stderr


def test_every_command_resolves_and_help_lists_it(run_zoo):
    import click

    from zoo.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        assert isinstance(cli.get_command(ctx, name), click.Command), name
    result = run_zoo("--help")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line]
    assert listed == list(COMMANDS)
