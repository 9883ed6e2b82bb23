"""Helpers for tests that run the CLI in-process: invoke it, and read its one-line error."""

from __future__ import annotations

from click.testing import CliRunner, Result

from zoo.cli import cli


def zoo_cli(*args) -> Result:
    """``zoo ARGS`` through the real click group (arguments may be paths or numbers)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result: Result, code: int = 2) -> str:
    """The one ``error: ...`` line a failed command printed, after checking its exit code."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
