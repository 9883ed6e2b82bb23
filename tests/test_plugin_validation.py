"""Plugins are validated by pluggy against the hook specs, one guard per plugin, and every
problem of a plugin is reported: real dist-info distributions on sys.path, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.errors import PluginError
from zoo.registry import hookspecs, plugins
from zoo.registry.entries import KINDS, PLURALS

GOOD_MODELS = (
    "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
    "    register('good-net', 'good_zoo.models:Net', summary='fine')\n"
)


def _plugin(make_plugin, module: str, source: str, dist: str | None = None) -> Path:
    """One distribution ``<module>-dist`` whose entry point ``<module>`` is ``<module>.py``."""
    dist = dist or f"{module.replace('_', '-')}-dist"
    return make_plugin(dist, {f"{module}.py": source}, entry_points={module: module})


def _record(name: str) -> plugins.PluginRecord:
    return next(r for r in plugins.plugin_records() if r.name == name)


def _zoo_script(*args: str, env: dict[str, str], pythonpath: Path) -> subprocess.CompletedProcess:
    """The installed ``zoo`` console script (``python -m zoo`` where there is none)."""
    script = Path(sys.executable).with_name("zoo")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "zoo"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    full_env["ZOO_HOME"] = os.environ["ZOO_HOME"]
    full_env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env={**full_env, **env}, timeout=300
    )


# --------------------------------------------------------------------------- the hook list


def test_hook_list_derives_from_the_hookspecs():
    specs = [n for n, f in vars(hookspecs).items() if hasattr(f, f"{hookspecs.PROJECT}_spec")]
    assert dict(plugins.HOOKS) == {f"register_{PLURALS[k]}": k for k in KINDS}
    assert set(plugins.HOOKS) <= set(specs)
    assert list(plugins.HOOKS.values()) == list(KINDS)  # called in this order


# --------------------------------------------------------------------------- validation


def test_a_misspelt_hook_fails_its_plugin_naming_the_hook(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_model(register):\n"
        "    register('typo-net', 'typo_zoo:Net')\n"
    )
    _plugin(make_plugin, "typo_zoo", source)
    assert "typo-net" not in zoo.list_models()
    record = _record("typo_zoo")
    assert record.status == "failed" and record.entries == {}
    assert "unknown hook 'register_model'" in record.error  # pluggy's own words
    assert "did you mean 'register_models'?" in record.error
    assert "\n" not in record.error
    assert "mlp" in zoo.list_models()  # everything else keeps working


def test_every_misspelt_hook_of_a_plugin_is_named(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_model(register):\n    pass\n\n"
        "@zoo.hookimpl\ndef register_dataset(register):\n    pass\n"
    )
    _plugin(make_plugin, "typos_zoo", source)
    error = _record("typos_zoo").error
    assert "'register_model'" in error and "'register_dataset'" in error
    assert "did you mean 'register_datasets'?" in error


def test_an_argument_not_in_the_spec_fails_its_plugin_with_pluggys_explanation(make_plugin):
    source = "import zoo\n\n@zoo.hookimpl\ndef register_models(reg):\n    reg('arg-net', 'a.b:C')\n"
    _plugin(make_plugin, "arg_zoo", source)
    assert "arg-net" not in zoo.list_models()
    record = _record("arg_zoo")
    assert record.status == "failed"
    assert "hook 'register_models'" in record.error and "register_models(reg)" in record.error
    assert "Argument(s) {'reg'} are declared in the hookimpl but can not be found" in record.error
    assert "(the spec: register_models(register))" in record.error
    assert "\n" not in record.error


@pytest.mark.parametrize(
    "option, body, message",
    [
        ("hookwrapper=True", "    register('w-net', 'a.b:C')\n    yield\n", "hookwrapper=True"),
        ("wrapper=True", "    register('w-net', 'a.b:C')\n    return (yield)\n", "wrapper=True"),
        ("hookwrapper=True", "    register('w-net', 'a.b:C')\n", "not a generator function"),
    ],
)
def test_a_wrapper_implementation_of_a_register_hook_fails_its_plugin(
    make_plugin, option, body, message
):
    source = f"import zoo\n\n@zoo.hookimpl({option})\ndef register_models(register):\n{body}"
    _plugin(make_plugin, "wrap_zoo", source)
    assert "w-net" not in zoo.list_models()
    record = _record("wrap_zoo")
    assert record.status == "failed"
    assert "'register_models'" in record.error and message in record.error


def test_an_optional_hook_no_spec_declares_is_allowed(make_plugin):
    source = GOOD_MODELS + (
        "\n@zoo.hookimpl(optionalhook=True)\ndef on_something_later(event):\n    pass\n"
    )
    _plugin(make_plugin, "good_zoo", source)
    assert _record("good_zoo").status == "ok"
    assert "good-net" in zoo.list_models()


def test_a_validation_failure_is_fatal_in_strict_mode(make_plugin, monkeypatch):
    source = "import zoo\n\n@zoo.hookimpl\ndef register_models(reg):\n    pass\n"
    _plugin(make_plugin, "arg_zoo", source)
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'arg_zoo' \(arg-zoo-dist\): .*'reg'"):
        zoo.list_models()


@pytest.mark.parametrize(
    "source, words",
    [
        (
            "import zoo\n\n@zoo.hookimpl\ndef register_model(register):\n    pass\n",
            ["unknown hook 'register_model'"],
        ),
        (
            "import zoo\n\n@zoo.hookimpl\ndef register_models(reg):\n    pass\n",
            ["'register_models'", "{'reg'}"],
        ),
    ],
)
def test_zoo_plugins_shows_it_and_strict_zoo_list_exits_1(make_plugin, source, words):
    site = _plugin(make_plugin, "bad_zoo", source)
    shown = _zoo_script("plugins", "--json", env={}, pythonpath=site)
    assert shown.returncode == 0, shown.stderr
    record = next(r for r in json.loads(shown.stdout) if r["name"] == "bad_zoo")
    assert record["status"] == "failed" and all(w in record["error"] for w in words)
    table = _zoo_script("plugins", env={}, pythonpath=site)
    assert "failed" in table.stdout and all(w in table.stdout for w in words)

    listed = _zoo_script("list", env={}, pythonpath=site)
    assert listed.returncode == 0 and "mlp" in listed.stdout
    strict = _zoo_script("list", env={"ZOO_STRICT_PLUGINS": "1"}, pythonpath=site)
    assert strict.returncode == 1
    [line] = strict.stderr.splitlines()
    assert line.startswith("error: plugin 'bad_zoo' (bad-zoo-dist): ")
    assert all(w in line for w in words)


# --------------------------------------------------------------------------- errors


def test_every_registration_error_of_a_plugin_is_reported(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('Bad_Name', 'a.b:C')\n"
        "    register('no-target', 42)\n"
        "    register('twice', 'a.b:C')\n"
        "    register('twice', 'a.b:C')\n"
        "    register('lonely')\n\n"
        "@zoo.hookimpl\ndef register_datasets(register):\n"
        "    register('no-task', 'a.b:load', input_shape=(2,))\n"
    )
    _plugin(make_plugin, "many_zoo", source)
    record = _record("many_zoo")
    assert record.status == "failed" and record.entries == {}
    problems = record.error.split("; ")
    assert problems == [
        "register_models: model name 'Bad_Name' must be lower-case words joined by '-'",
        "register_models: model 'no-target': target 42 is neither 'module:attr' nor callable",
        "register_models: model 'twice' registered twice",
        "register_models: register(name, target, **meta) takes 2 positional arguments, got 1",
        "register_datasets: dataset 'no-task': task is required",
    ]
    assert record.hooks == ["register_models", "register_datasets"]
    assert "twice" not in zoo.list_models()  # all or nothing


def test_a_hook_that_raises_does_not_stop_the_plugins_other_hooks_being_reported(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    raise RuntimeError('boom')\n\n"
        "@zoo.hookimpl\ndef register_losses(register):\n"
        "    register('Bad', 'a.b:C')\n"
    )
    _plugin(make_plugin, "raise_zoo", source)
    error = _record("raise_zoo").error
    assert error.startswith(
        "register_models raised RuntimeError: boom; register_losses: loss name 'Bad'"
    )


def test_one_plugins_exception_never_stops_anothers_hooks(make_plugin):
    raising = "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n    1 / 0\n"
    _plugin(make_plugin, "aaa_zoo", raising, dist="aaa-dist")  # sorted first
    make_plugin(
        "zzz-dist",
        {"good_zoo.py": GOOD_MODELS},
        entry_points={"good_zoo": "good_zoo"},
    )
    assert "good-net" in zoo.list_models()
    assert _record("aaa_zoo").error == "register_models raised ZeroDivisionError: division by zero"
    assert _record("good_zoo").status == "ok" and _record("good_zoo").entries == {"model": 1}


def test_a_register_call_a_plugin_swallows_is_still_reported(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    try:\n        register('x')\n    except Exception:\n        pass\n"
    )
    _plugin(make_plugin, "sly_zoo", source)
    assert "takes 2 positional arguments, got 1" in _record("sly_zoo").error


def test_keyword_name_and_target_are_accepted(make_plugin):
    source = (
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register(name='kw-net', target='a.b:C')\n"
    )
    _plugin(make_plugin, "kw_zoo", source)
    assert _record("kw_zoo").status == "ok" and "kw-net" in zoo.list_models()


# --------------------------------------------------------------------------- blocking


@pytest.mark.parametrize("blocked", ["loud_zoo", "loud-zoo-dist", "LOUD_ZOO"])
def test_a_blocked_plugin_is_never_imported(make_plugin, monkeypatch, blocked):
    source = "raise RuntimeError('imported although blocked')\n"
    _plugin(make_plugin, "loud_zoo", source)
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", blocked)
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")  # importing it would be fatal
    plugins.reset()
    assert "mlp" in zoo.list_models()
    assert "loud_zoo" not in sys.modules
    record = _record("loud_zoo")
    assert (record.status, record.error, record.hooks) == ("blocked", None, [])


def test_blocking_uses_pluggys_set_blocked(make_plugin, monkeypatch):
    _plugin(make_plugin, "good_zoo", GOOD_MODELS)
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "good_zoo")
    plugins.reset()
    zoo.list_models()
    manager = plugins._load().manager
    assert manager.is_blocked("good_zoo") and not manager.has_plugin("good_zoo")
    assert manager.has_plugin("workflow")
