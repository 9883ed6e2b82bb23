"""Shared fixtures: an isolated ZOO_HOME, a clean plugin state, and real dist-info plugins."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo.registry import plugins

# Two shared cores: one intra-op thread per process (this one and every subprocess) keeps
# runs from oversubscribing, and bit-identical comparisons want a fixed thread count.
os.environ["OMP_NUM_THREADS"] = "1"

ZOO_ENV = (
    "ZOO_PLUGINS",
    "ZOO_DISABLE_PLUGINS",
    "ZOO_STRICT_PLUGINS",
    "ZOO_TRACE_PLUGINS",
    "ZOO_REGISTRY",
    "ZOO_OFFLINE",
    "ZOO_MIRROR",
    "ZOO_DATA",
    "ZOO_DEBUG",
)


@pytest.fixture(autouse=True)
def _isolated_zoo(tmp_path_factory, monkeypatch):
    """Each test gets its own ZOO_HOME, no zoo env settings, and freshly loaded plugins."""
    for name in ZOO_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("zoo_home")))
    plugins.reset()
    threads = _set_torch_threads(1)
    yield
    plugins.reset()
    _set_torch_threads(threads)


def _set_torch_threads(n: int | None) -> int | None:
    """Set torch's intra-op threads if torch is already imported; return the old count."""
    torch = sys.modules.get("torch")
    if torch is None or n is None:
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before


@pytest.fixture
def make_plugin(tmp_path, monkeypatch) -> Callable[..., Path]:
    """Write a real installed distribution (``NAME-VERSION.dist-info`` + modules) and put it
    on ``sys.path``, exactly what ``pip install`` leaves in site-packages.

    ``make_plugin(dist, {"module.py": source, ...}, entry_points={"ep": "module"})`` returns the
    site directory (also usable as ``PYTHONPATH`` for a subprocess).
    """
    created: list[str] = []

    def make(
        dist: str,
        files: dict[str, str],
        entry_points: dict[str, str],
        version: str = "0.1.0",
    ) -> Path:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[zoo]\n{eps}\n")
        for rel, source in files.items():
            path = site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
            created.append(rel.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        plugins.reset()
        return site

    yield make
    for module in created:
        sys.modules.pop(module, None)


def _run_zoo(*args: str, env: dict[str, str] | None = None, pythonpath: list[Path] = ()):
    """Run the real ``zoo`` CLI (``python -m zoo``) in a subprocess; returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in ZOO_ENV}
    if pythonpath:
        full_env["PYTHONPATH"] = os.pathsep.join(
            [*map(str, pythonpath), full_env.get("PYTHONPATH", "")]
        )
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.fixture
def run_zoo() -> Callable[..., subprocess.CompletedProcess]:
    """``run_zoo("list", "--json", env={...}, pythonpath=[site])`` runs the real CLI."""
    return _run_zoo
