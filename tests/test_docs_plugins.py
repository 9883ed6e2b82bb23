"""docs/plugins.md: its files are the template's, its hooks are the real ones, and its steps,
followed from an empty folder, install a real distribution that zoo discovers and checks."""

from __future__ import annotations

import inspect
import logging
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from zoo.registry import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
TEMPLATE = ROOT / "docs" / "template"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
FILE_HEADER = re.compile(r"^\*\*`([^`]+)`\*\*$")
JUNK = ("__pycache__", ".egg-info", ".pytest_cache")


def guide_steps(text: str | None = None) -> list[tuple[str, str, str]]:
    """The guide's code in order: ("file", path, body) for a block under a **`path`** header,
    ("shell", "", commands) for the ``$ `` lines of console blocks, ("python", "", body)."""
    text = GUIDE.read_text() if text is None else text
    steps = []
    for m in BLOCK.finditer(text):
        lang, body = m.group(1), m.group(2)
        lines = text[: m.start()].rstrip().splitlines()
        header = FILE_HEADER.match(lines[-1]) if lines else None
        if header:
            steps.append(("file", header.group(1), body))
        elif lang == "console":
            commands = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
            steps.append(("shell", "", "\n".join(commands)))
        elif lang == "python":
            steps.append(("python", "", body))
    return steps


def template_files() -> dict[str, str]:
    return {
        p.relative_to(TEMPLATE).as_posix(): p.read_text()
        for p in sorted(TEMPLATE.rglob("*"))
        if p.is_file()
        and not any(j in part for part in p.relative_to(TEMPLATE).parts for j in JUNK)
        and not any(part.startswith(".") for part in p.relative_to(TEMPLATE).parts)
    }


def test_the_guide_includes_every_template_file_verbatim():
    files = {path: body for kind, path, body in guide_steps() if kind == "file"}
    assert files == template_files()
    assert set(files) >= {
        "pyproject.toml",
        "zoo_example/__init__.py",
        "zoo_example/models.py",
        "tests/test_zoo_example.py",
    }
    assert '[project.entry-points.zoo]\nexample = "zoo_example"' in files["pyproject.toml"]
    assert "zoo.testing" in files["tests/test_zoo_example.py"]


def test_every_hook_spec_is_documented_with_its_signature():
    text = GUIDE.read_text()
    code = "\n".join(body for kind, _, body in guide_steps() if kind == "python")
    specs = {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")
    }
    assert set(specs) == {
        "register_models", "register_losses", "register_datasets",
        "register_commands", "on_fit_start", "on_epoch_end", "on_fit_end",
    }  # fmt: skip
    for name, fn in specs.items():
        signature = f"{name}{inspect.signature(fn)}"
        assert f"@zoo.hookimpl\ndef {signature}:" in code, signature
        assert f"- `{signature}`:" in text, signature  # and described in the reference list


def test_every_register_meta_key_is_in_the_reference_table():
    text = GUIDE.read_text()
    read_by_core = set()
    for path in (ROOT / "zoo").rglob("*.py"):
        read_by_core |= set(re.findall(r'\b\w+\.meta(?:\.get\(|\[)"(\w+)"', path.read_text()))
    keys = read_by_core | {"summary", "task", "tasks", "root"}
    assert {"input_kind", "defaults", "pretrained", "expects", "input_shape", "num_classes"} <= keys
    missing = sorted(k for k in keys if f"\n| `{k}` |" not in text)
    assert not missing, f"register(...) meta keys missing from docs/plugins.md: {missing}"


def test_guide_steps_parser_reads_files_shell_and_python():
    sample = (
        "# T\n\n```console\n$ mkdir a && cd a\nout\n$ zoo list\n```\n\n**`a/b.py`**\n\n"
        "```python\nx = 1\n```\n\n```python\nprint(2)\n```\n\n```text\n$ not run\n```\n"
    )
    assert guide_steps(sample) == [
        ("shell", "", "mkdir a && cd a\nzoo list"),
        ("file", "a/b.py", "x = 1\n"),
        ("python", "", "print(2)\n"),
    ]


def test_the_reference_hooks_register_as_a_real_plugin(make_plugin, monkeypatch, caplog):
    """The reference's example registrations, pretrained declaration and ``expects`` included,
    are accepted by zoo as they stand (strict loading: any problem is an error)."""
    import zoo

    reference = next(
        body for kind, _, body in guide_steps() if kind == "python" and "pretrained=" in body
    )
    make_plugin(
        "my-plugin", {"my_plugin/__init__.py": reference}, entry_points={"mine": "my_plugin"}
    )
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="zoo"):
        warnings.simplefilter("error")  # a malformed pretrained declaration would only warn
        assert zoo.list_pretrained("my-*") == ["my-net.my-data"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("zoo")] == []  # (logged)
    pretrained = zoo.info("my-net.my-data")
    assert pretrained["plugin"] == "mine" and pretrained["dataset"] == "my-data"
    assert pretrained["kwargs"] == {"in_features": 2, "num_classes": 4}
    assert pretrained["files"][0]["url"].startswith("https://")
    assert zoo.info("my-bce")["expects"] == "probabilities"
    datasets = zoo.info("my-net")["datasets"]
    # multiclass only; a features model takes image datasets flattened (issue 10 item 3)
    assert "my-data" in datasets and "iris" in datasets and "digits" in datasets
    assert "diabetes" not in datasets and "circles" not in datasets
    assert zoo.list_losses("my-*") == ["my-bce", "my-focal"]


def _see_this_interpreters_packages(python: Path) -> None:
    """Let a new venv import what this interpreter imports (zoo, torch, pytest, setuptools).

    ``--system-site-packages`` only reaches the *base* interpreter's packages: when the suite
    itself runs in a venv (as the README's Quickstart installs it), those have no zoo or torch.
    ``site.addsitedir`` in a ``.pth`` file adds this interpreter's site directories, processing
    their own ``.pth`` files (zoo's editable install) as well.
    """
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)
    (Path(purelib) / "zz_outer_site.pth").write_text(lines)


def _shim(path: Path, command: str) -> None:
    path.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    path.chmod(0o755)


@pytest.mark.slow
def test_following_the_guide_from_an_empty_folder_works(tmp_path):
    """Every file and ``$`` command of the guide, in order, in a fresh venv that sees zoo.

    The template is installed as a real distribution (``pip install -e .`` into the venv,
    offline: no index, no dependencies, no build isolation); ``zoo``, ``pip`` and ``pytest``
    are the venv's. The guide's remaining Python snippets then run against the installed plugin.
    """
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
    )
    python = venv / "bin" / "python"
    _see_this_interpreters_packages(python)
    shims = tmp_path / "shims"
    shims.mkdir()
    _shim(shims / "zoo", f"{python} -m zoo")
    _shim(shims / "pytest", f"{python} -m pytest -p no:cacheprovider")
    pip = shims / "pip"
    pip.write_text(f'#!/bin/sh\nexec {python} -m pip "$@" --no-deps --no-build-isolation -q\n')
    pip.chmod(0o755)

    script = ["set -eu"]
    snippets = []
    for kind, path, body in guide_steps():
        if kind == "file":
            script.append(f"mkdir -p {shlex.quote(str(Path(path).parent))}")
            script.append(f"cat > {shlex.quote(path)} <<'ZOO_GUIDE_EOF'\n{body}ZOO_GUIDE_EOF")
        elif kind == "shell":
            for command in body.splitlines():
                script.append(f"echo {shlex.quote('### ' + command)}")
                script.append(command)
        else:
            snippets.append(body)
    script.append("echo '### pwd'\npwd")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_") and k != "PYTHONPATH"}
    env.update(
        PATH=f"{shims}{os.pathsep}{env['PATH']}",
        ZOO_HOME=str(tmp_path / "home"),
        ZOO_OFFLINE="1",  # nothing in the guide downloads: make sure of it
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    run = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    out = {
        chunk.split("\n", 1)[0]: chunk.split("\n", 1)[1] if "\n" in chunk else ""
        for chunk in run.stdout.split("### ")[1:]
    }
    project = Path(out["pwd"].strip())
    assert project == work / "zoo-example"

    # a real distribution, installed into the venv only (the test's own interpreter can't see it)
    site = subprocess.run(
        [python, "-c", "import importlib.metadata as m; d = m.distribution('zoo-example');"
         "print(d.version, [(e.group, e.name, e.value) for e in d.entry_points])"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert site.stdout.strip() == "0.1.0 [('zoo', 'example', 'zoo_example')]"
    from importlib.metadata import PackageNotFoundError, distribution

    with pytest.raises(PackageNotFoundError):
        distribution("zoo-example")

    assert "model  res-mlp  example" in out["zoo list models 'res-*'"]
    assert "dataset  rings  example  multiclass" in out["zoo list datasets rings"]
    plugins_rows = [line.split() for line in out["zoo plugins"].splitlines()]
    assert ["example", "zoo-example", "0.1.0", "ok"] in [row[:4] for row in plugins_rows]
    check_rows = {
        tuple(line.split()[:2]): line.split()[-1]
        for line in out["zoo check example"].splitlines()[2:]
        if line.strip()
    }
    assert check_rows == {
        ("plugin", "example"): "pass",
        ("model", "res-mlp"): "pass",
        ("dataset", "rings"): "pass",
    }
    assert "2 passed" in out["pytest -q tests"]
    bench = out[next(k for k in out if k.startswith("zoo bench"))].splitlines()
    assert bench[0].split()[:2] == ["model", "dataset"]
    table = bench[2 : next(i for i, line in enumerate(bench) if line.startswith("*"))]
    rows = [line.split() for line in table if line]  # the legend follows the "*" line
    assert {(r[0], "fit" if "fit" in r else "infer" if "infer" in r else "?") for r in rows} == {
        ("res-mlp", "infer"),
        ("res-mlp", "fit"),
        ("mlp", "infer"),
        ("mlp", "fit"),
    }

    for snippet in snippets:  # the reference's code, against the installed plugin
        result = subprocess.run(
            [python, "-c", snippet], cwd=project, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, snippet + result.stderr[-3000:]
