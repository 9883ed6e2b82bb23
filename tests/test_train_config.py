"""One settings object: ``TrainConfig`` is the source of the Trainer's keywords, the recipe
schema, the ``zoo train`` options, what ``run.json`` records and what resume reuses."""

from __future__ import annotations

import ast
import inspect
import json
import os
from pathlib import Path

import pytest
from cli_helpers import one_line_error, zoo_cli

import zoo
from zoo.cli.train import COMMAND_OPTIONS, train_cmd
from zoo.errors import UsageError
from zoo.train import rundir
from zoo.train.checkpoint import load_checkpoint
from zoo.train.config import DERIVED, TrainConfig, TrainState
from zoo.train.recipes import parse_recipe
from zoo.train.resume import resolve_config

FIELDS = set(TrainConfig.names())


def sample(name: str):
    """A valid non-default-looking value for every field, from its annotation."""
    hint = TrainConfig.hints()[name]
    default = TrainConfig.default(name)
    if default is not None:
        return default
    return {"str | None": "x", "str | bool | None": "x", "int | None": 1, "float | None": 1.0}[
        str(hint).replace("typing.", "")
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    result = zoo_cli("train", "-m", "linear", "-d", "circles", "--epochs", "2", "--device",
                     "cpu", "--lr", "0.05", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


# -- every consumer covers exactly the fields ----------------------------------------------------


def test_cli_options_recipe_schema_and_run_json_cover_exactly_the_fields(run):
    options = {p.name for p in train_cmd.params} - {"help"}
    assert options - set(COMMAND_OPTIONS) == FIELDS

    settings, info = parse_recipe({name: sample(name) for name in FIELDS}, "r.toml")
    assert set(settings) == FIELDS and info == {}
    with pytest.raises(UsageError) as bad:
        parse_recipe({"nope": 1}, "r.toml")
    listed = str(bad.value).split("recipes take ")[1].split(" (and informational")[0]
    assert set(listed.split(", ")) == FIELDS

    recorded = json.loads((run / "run.json").read_text())["settings"]
    assert set(recorded) == FIELDS | set(DERIVED)

    params = inspect.signature(zoo.Trainer).parameters
    assert set(params) == FIELDS | {"out", "resume"}


def test_every_flag_of_zoo_train_is_still_there_with_its_default():
    opts = {o: p for p in train_cmd.params for o in [*p.opts, *p.secondary_opts]}
    for flag in ("--model", "-m", "--dataset", "-d", "--loss", "--optimizer", "--lr",
                 "--weight-decay", "--momentum", "--epochs", "--batch-size", "--device",
                 "--precision", "--seed", "--shuffle", "--no-shuffle", "--compile",
                 "--patience", "--monitor", "--model-arg", "--loss-arg", "--dataset-arg",
                 "--workers", "--out", "--resume", "--recipe", "--data-dir", "--quiet", "-q",
                 "--json"):  # fmt: skip
        assert flag in opts, flag
    defaults = {"--optimizer": "adam", "--lr": 1e-3, "--weight-decay": 0.0, "--momentum": 0.0,
                "--epochs": 10, "--batch-size": 32, "--device": "auto", "--precision": "fp32",
                "--seed": 0, "--shuffle": True, "--compile": False, "--quiet": False}  # fmt: skip
    for flag, default in defaults.items():
        assert opts[flag].default == default, flag
    assert opts["--model-arg"].multiple and opts["--compile"].is_flag
    help_text = zoo_cli("train", "--help").output
    for name in FIELDS:
        assert TrainConfig.meta(name)["help"].split()[0] in help_text, name


def test_weights_keep_the_settings_marked_for_them(run):
    meta = zoo.weights.read_metadata(run / "model.safetensors")
    kept = meta["extra"]["train"]
    assert set(kept) == {*TrainConfig.names(weights=True), "entries", "data"}
    assert kept["data"] is None  # a registered dataset: no data of the user's


# -- the Trainer's keywords ----------------------------------------------------------------------


def test_unknown_trainer_keyword_is_one_line_listing_the_settings():
    with pytest.raises(UsageError) as bad:
        zoo.Trainer("linear", "circles", epocs=3)
    message = str(bad.value)
    assert "\n" not in message and message.startswith("unknown setting 'epocs'; Trainer takes ")
    assert "epochs" in message and "batch_size" in message


def test_settings_read_as_attributes_and_as_the_config():
    t = zoo.Trainer("linear", "circles", lr=0.05, epochs=3, device="cpu", model_kwargs=None)
    assert (t.lr, t.epochs, t.config.lr) == (0.05, 3, 0.05)
    assert t.model_kwargs == {} and t.optimizer_name == "adam"
    assert t.settings()["lr"] == 0.05 and t.settings()["task"] == "binary"


def test_from_config_and_replace():
    config = TrainConfig(model="linear", dataset="circles", epochs=1, device="cpu", quiet=True)
    result = zoo.Trainer.from_config(config.replace(lr=0.05)).fit()
    assert len(result.history) == 1
    with pytest.raises(UsageError, match="unknown setting 'lrr'"):
        config.replace(lrr=1)


# -- the recipe schema comes from the annotations --------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"epochs": "3"}, "r.toml: epochs must be int, got str '3'"),
        ({"epochs": 2.5}, "r.toml: epochs must be int, got float 2.5"),
        ({"lr": True}, "r.toml: lr must be float, got bool True"),
        ({"shuffle": 1}, "r.toml: shuffle must be bool, got int 1"),
        ({"model-args": 3}, "r.toml: model-args must be table, got int 3"),
        ({"compile": 1}, "r.toml: compile must be bool or str, got int 1"),
    ],
)
def test_recipe_types_come_from_the_annotations(doc, message):
    with pytest.raises(UsageError) as bad:
        parse_recipe(doc, "r.toml")
    assert str(bad.value) == message


def test_recipe_aliases_and_coercion():
    settings, info = parse_recipe(
        {"train": {"batch-size": 8, "lr": 1, "model_args": {"hidden": [4]}, "data-dir": "d"},
         "name": "x"}, "r.toml",
    )  # fmt: skip
    assert settings == {"batch_size": 8, "lr": 1.0, "model_kwargs": {"hidden": [4]},
                        "data_dir": "d"}  # fmt: skip
    assert isinstance(settings["lr"], float) and info == {"name": "x"}


# -- resume rules, for Python users too -----------------------------------------------------------


def test_python_resume_reuses_the_recorded_settings(run, tmp_path):
    import shutil

    copy = shutil.copytree(run, tmp_path / "copy")
    recorded = json.loads((copy / "run.json").read_text())["settings"]
    config = resolve_config(resume=copy, overrides={"epochs": 3})
    assert (config.lr, config.epochs, config.quiet) == (0.05, 3, False)
    assert config.model == recorded["entries"]["model"]  # the qualified name it recorded
    trainer = zoo.Trainer.resumed(copy, epochs=3, quiet=True)
    assert trainer.out == copy and trainer.lr == 0.05
    result = trainer.fit()
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    info = json.loads((copy / "run.json").read_text())
    assert info["resumed_from"] and info["settings"]["lr"] == 0.05
    assert info["settings"]["entries"]["model"].endswith("/linear")


def test_python_resume_refuses_another_model_naming_the_keyword(run):
    with pytest.raises(UsageError) as bad:
        zoo.Trainer.resumed(run, model="mlp", epochs=3)
    assert str(bad.value) == "model='mlp' conflicts with the resumed run (linear)"


def test_recipe_model_conflicting_with_the_resumed_run(run, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "mlp"\n')
    line = one_line_error(zoo_cli("train", "--resume", run, "--recipe", recipe, "--epochs", "3"))
    assert line == "error: the recipe's model 'mlp' conflicts with the resumed run (linear)"


def test_kwarg_flags_update_the_recipe_s_dict(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "mlp"\n[model_kwargs]\nhidden = [4]\nact = "relu"\n')
    config = resolve_config(recipe=recipe, overrides={"model_kwargs": {"act": "tanh"}})
    assert config.model_kwargs == {"hidden": [4], "act": "tanh"}


# -- the run record ---------------------------------------------------------------------------


def test_checkpoint_and_run_json_are_written_from_the_train_state(run):
    ckpt = load_checkpoint(run)
    state = TrainState.from_checkpoint(ckpt.trainer, ckpt.epoch, str(ckpt.path))
    assert [row["epoch"] for row in state.history] == [1, 2] and state.start_epoch == 3
    assert state.elapsed_before > 0
    assert set(ckpt.trainer["fingerprint"]) == set(TrainConfig.names(fingerprint=True))
    info = json.loads((run / "run.json").read_text())
    assert info["result"]["error"] is None and info["resumed_from"] is None


def test_the_run_dir_writer_reads_no_private_trainer_field():
    source = Path(rundir.__file__).read_text()
    private = [
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "trainer"
        and node.attr.startswith("_")
    ]
    assert private == []


# -- the data dir is a setting, not an environment variable ------------------------------------


def test_data_dir_is_passed_down_not_put_in_the_environment(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]:
        (folder / name).write_bytes(bytes(3073 * 4))
    result = zoo_cli("train", "-m", "tinyvgg", "--model-arg", "hidden=4", "-d", "cifar10",
                     "--data-dir", tmp_path, "--epochs", "1", "--device", "cpu",
                     "--out", tmp_path / "r", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ZOO_DATA" not in os.environ
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["settings"]["data_dir"] == str(tmp_path.resolve())
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))  # no data_dir given: $ZOO_DATA, recorded
    t = zoo.Trainer("tinyvgg", "cifar10", epochs=1, device="cpu", quiet=True,
                    model_kwargs={"hidden": 4})  # fmt: skip
    assert t.settings()["data_dir"] == str(tmp_path.resolve())
    assert t.fit().metrics
