"""Diagnostics go through the ``zoo`` logger: one line each on stderr, in the CLI and for
Python API users alike, never a Python warning that shows zoo's own source line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

from click.testing import CliRunner

import zoo
from zoo._util import log
from zoo.cli import cli
from zoo.hub import index as hub_index
from zoo.registry import plugins

BROKEN_DECLARATION = {
    "decl_zoo.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):
            register("decl-net", "zoo_workflow.models:MLP", task="multiclass",
                     pretrained=[{"tag": "broken", "files": [{"url": "x"}]}])
    """
}


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with no zoo settings but this test's ZOO_HOME."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    full_env["ZOO_HOME"] = os.environ["ZOO_HOME"]
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**full_env, **(env or {})},
        timeout=300,
    )


def test_a_warning_in_the_cli_is_one_line_with_no_source_line(make_plugin, run_zoo):
    site = make_plugin("decl-dist", BROKEN_DECLARATION, entry_points={"decl": "decl_zoo"})
    result = run_zoo("list", "pretrained", pythonpath=[site])
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()  # one line, however often the entries were read
    # a malformed pretrained declaration fails its plugin (issue 11): named once, one line
    assert line == "zoo: warning: plugins failed to load: decl (see `zoo plugins`)"
    assert "Warning:" not in result.stderr and ".py:" not in result.stderr

    unknown = run_zoo("list", "losses", env={"ZOO_PLUGINS": "no-such-plugin"})
    assert unknown.stderr == "zoo: warning: ZOO_PLUGINS names no installed plugin: no-such-plugin\n"


def test_the_failed_plugins_warning_of_zoo_list_has_the_same_shape(make_plugin, run_zoo):
    broken = {"broken_zoo.py": "raise ImportError('missing dependency')\n"}
    site = make_plugin("broken-zoo", broken, entry_points={"broken": "broken_zoo"})
    result = run_zoo("list", "losses", pythonpath=[site])
    assert result.stderr == ("zoo: warning: plugins failed to load: broken (see `zoo plugins`)\n")


def test_python_api_users_see_a_warning_on_stderr_once_without_configuring_logging():
    result = _python(
        """
        import zoo
        zoo.list_models(); zoo.list_losses(); zoo.list_datasets()
        """,
        env={"ZOO_PLUGINS": "nope"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "zoo: warning: ZOO_PLUGINS names no installed plugin: nope\n"


def test_the_default_handler_can_be_silenced_with_the_logging_api():
    result = _python(
        """
        import logging
        import zoo
        logging.getLogger("zoo").setLevel(logging.ERROR)
        zoo.list_models()
        """,
        env={"ZOO_PLUGINS": "nope"},
    )
    assert result.returncode == 0 and result.stderr == ""


def test_records_reach_the_applications_handlers(monkeypatch, caplog):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "nope")
    plugins.reset()
    with caplog.at_level(logging.WARNING, logger="zoo"):
        zoo.list_models()
    [record] = [r for r in caplog.records if r.name.startswith("zoo")]
    assert record.name == "zoo.registry.plugins" and record.levelno == logging.WARNING
    assert record.getMessage() == "ZOO_DISABLE_PLUGINS names no installed plugin: nope"


def test_one_line_handler_collapses_lines_and_follows_redirected_stderr(capsys):
    logger = log.get_logger("zoo.tests.diagnostics")
    logger.warning("first\n   second\tthird")
    logger.error("bad %s", "thing")
    assert capsys.readouterr().err == "zoo: warning: first second third\nzoo: error: bad thing\n"
    assert log.get_logger("elsewhere").name == "zoo.elsewhere"


def test_trace_goes_through_the_logger_at_debug(make_plugin, monkeypatch, caplog):
    source = "import zoo\n\n@zoo.hookimpl\ndef register_losses(register):\n    pass\n"
    make_plugin("quiet-zoo", {"quiet_zoo.py": source}, entry_points={"quiet": "quiet_zoo"})
    monkeypatch.setenv("ZOO_TRACE_PLUGINS", "1")
    plugins.reset()
    with caplog.at_level(logging.DEBUG):
        zoo.list_models()
    traced = [r for r in caplog.records if r.name == "zoo.registry.plugins"]
    assert all(r.levelno == logging.DEBUG for r in traced)
    assert "plugin quiet register_losses -> nothing" in [r.getMessage() for r in traced]
    assert plugins.logger.level == logging.NOTSET  # enabled only while plugins load


def test_debug_on_the_plugins_logger_traces_without_the_variable(make_plugin, capsys):
    source = "import zoo\n\n@zoo.hookimpl\ndef register_losses(register):\n    pass\n"
    make_plugin("quiet-zoo", {"quiet_zoo.py": source}, entry_points={"quiet": "quiet_zoo"})
    plugins.logger.setLevel(logging.DEBUG)
    try:
        zoo.list_models()
    finally:
        plugins.logger.setLevel(logging.NOTSET)
    assert "zoo: plugin quiet register_losses -> nothing" in capsys.readouterr().err.splitlines()


def test_the_cli_installs_its_handler_whatever_the_process_did(monkeypatch):
    zoo_logger = logging.getLogger("zoo")
    monkeypatch.setattr(zoo_logger, "handlers", [])  # an application removed zoo's handler
    monkeypatch.setenv("ZOO_REGISTRY", "/nonexistent/registry")
    hub_index._WARNED.clear()
    try:
        result = CliRunner().invoke(cli, ["list", "pretrained", "--json"])
    finally:
        hub_index._WARNED.clear()
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("zoo: warning: skipping registry /nonexistent/registry")
    assert [type(h) for h in zoo_logger.handlers] == [log.OneLineHandler]
