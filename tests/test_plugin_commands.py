"""Plugins add CLI commands with ``register_commands(cli)`` (as llm's do): a plugin's command
is listed by ``zoo --help`` and runs; one that takes zoo's (or an earlier plugin's) name is
refused with a warning; a hook or command that raises fails the plugin or the command, never
zoo."""

from __future__ import annotations

from cli_helpers import zoo_cli

import zoo
from zoo.testing import check_plugin

HELLO = """\
import click

import zoo


@zoo.hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("name")
    @click.option("--shout", is_flag=True, help="Upper case.")
    def hello(name, shout):
        \"\"\"Greet NAME (a plugin's command).\"\"\"
        text = f"hello {name}, zoo has {len(zoo.list_models('mlp'))} mlp"
        click.echo(text.upper() if shout else text)

    @cli.command()
    def train():
        \"\"\"Takes zoo's own name: refused.\"\"\"
        click.echo("not zoo's train")

    @cli.command()
    def boom():
        \"\"\"Fails when run.\"\"\"
        raise ValueError("kaboom")
"""

SECOND = """\
import click

import zoo


@zoo.hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        \"\"\"The same name as the first plugin's.\"\"\"

    @cli.command("bye")
    def goodbye():
        \"\"\"Its own name.\"\"\"
        click.echo("bye")
"""


def _plugin(make_plugin, dist, module, source, ep):
    return make_plugin(dist, {f"{module}.py": source}, {ep: module})


def test_a_plugin_command_is_listed_by_help_and_runs(make_plugin, run_zoo):
    site = _plugin(make_plugin, "zoo-hello", "zoo_hello", HELLO, "hello")
    shown = run_zoo("--help", pythonpath=[site])
    assert shown.returncode == 0, shown.stderr
    after = shown.stdout.split("Plugin commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in after if line.strip()] == ["hello", "boom"]
    assert "Greet NAME (a plugin's command). [hello]" in shown.stdout
    assert "  train     Train a model on a dataset" in shown.stdout  # zoo's own stays
    refused = (
        "zoo: warning: plugin 'hello': command 'train' is refused: it is zoo's own `zoo train`"
    )
    assert shown.stderr.strip() == refused

    ran = run_zoo("hello", "you", "--shout", pythonpath=[site])
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "HELLO YOU, ZOO HAS 1 MLP\n"
    assert "--shout" in run_zoo("hello", "--help", pythonpath=[site]).stdout


def test_zoo_own_command_wins_and_a_plugin_command_that_raises_is_one_line(make_plugin):
    _plugin(make_plugin, "zoo-hello", "zoo_hello", HELLO, "hello")
    own = zoo_cli("train", "--help")
    assert own.exit_code == 0 and "--logger" in own.stdout  # zoo's own train, not the plugin's
    failed = zoo_cli("boom")
    assert failed.exit_code == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        "error: plugin 'hello' command 'boom' failed: ValueError: kaboom"
    )
    assert "Traceback" not in failed.output


def test_an_earlier_plugins_command_name_is_refused(make_plugin):
    _plugin(make_plugin, "zoo-hello", "zoo_hello", HELLO, "hello")
    _plugin(make_plugin, "zoo-second", "zoo_second", SECOND, "second")
    shown = zoo_cli("--help")
    assert shown.exit_code == 0
    assert "Greet NAME (a plugin's command). [hello]" in shown.stdout
    assert "bye    Its own name. [second]" in shown.stdout
    assert "The same name" not in shown.stdout
    assert (
        "plugin 'second': command 'hello' is refused: it is plugin 'hello''s `zoo hello`"
        in shown.stderr
    )
    assert zoo_cli("bye").stdout == "bye\n"


def test_a_register_commands_hook_that_raises_fails_its_plugin_not_zoo(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('cmd-net', 'zoo_workflow.models:MLP', task='multiclass')\n\n"
        "@zoo.hookimpl\ndef register_commands(cli):\n    raise RuntimeError('no cli today')\n"
    )
    _plugin(make_plugin, "zoo-badcmd", "zoo_badcmd", source, "badcmd")
    shown = zoo_cli("--help")
    assert shown.exit_code == 0 and "Plugin commands" not in shown.stdout
    record = next(r for r in zoo.registry.plugin_records() if r.name == "badcmd")
    assert record.status == "failed"
    assert record.error == "register_commands raised RuntimeError: no cli today"
    assert "cmd-net" not in zoo.list_models()  # a failed plugin contributes nothing
    listed = zoo_cli("plugins")
    assert "register_commands raised RuntimeError: no cli today" in listed.stdout
    assert zoo_cli("nope").exit_code == 2  # an unknown command is still click's usage error


def test_register_commands_is_validated_and_checked_like_every_hook(make_plugin):
    wrong = "import zoo\n\n@zoo.hookimpl\ndef register_commands(group):\n    pass\n"
    _plugin(make_plugin, "zoo-wrongcmd", "zoo_wrongcmd", wrong, "wrongcmd")
    _plugin(make_plugin, "zoo-hello", "zoo_hello", HELLO, "hello")
    records = {r.name: r for r in zoo.registry.plugin_records()}
    assert records["wrongcmd"].status == "failed"
    assert "{'group'}" in records["wrongcmd"].error
    assert "(the spec: register_commands(cli))" in records["wrongcmd"].error
    hello = records["hello"]
    assert hello.hooks == ["register_commands"]
    assert hello.to_dict()["commands"] == ["boom", "hello", "train"]
    report = check_plugin("hello")  # no entries, but a command: it loads fine
    load = next(r for r in report.get("hello").results if r.check == "load")
    assert load.status == "pass" and "register_commands" in load.message
