"""``zoo train`` / ``zoo evaluate`` / ``zoo predict``: the run directory and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import zoo
from zoo import weights
from zoo.cli import cli


def zoo_cli(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def train(out, *extra: str, model="linear", dataset="circles"):
    return zoo_cli(
        "train", "--model", model, "--dataset", dataset, "--device", "cpu", "--out", out, *extra
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One finished 2-epoch run shared by the read-only tests below."""
    out = tmp_path_factory.mktemp("runs") / "circles"
    result = train(out, "--epochs", "2", "--lr", "0.05", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_run_directory_holds_every_artifact(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "run.json",
        "metrics.csv",
        "model.safetensors",
        "checkpoint",
        "loss_curves.png",
    } <= names
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished"
    settings = info["settings"]
    for key in ("model", "dataset", "loss", "optimizer", "lr", "epochs", "batch_size", "device",
                "precision", "seed", "weight_decay", "momentum", "model_kwargs"):  # fmt: skip
        assert key in settings, key
    assert settings["loss"] == "bce-with-logits"  # default for a binary task
    assert info["seed"] == 0 and info["device"]["type"] == "cpu"
    assert info["versions"]["torch"] == torch.__version__
    assert info["timings"]["train_s"] > 0 and info["timings"]["epochs_run"] == 2
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss") and len(rows) == 3
    assert (run_dir / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = weights.read_metadata(run_dir / "model.safetensors")
    assert meta["model"] == "linear" and meta["dataset"] == "circles"
    assert meta["metrics"]["accuracy"] == pytest.approx(info["result"]["metrics"]["accuracy"])
    ckpt = run_dir / "checkpoint"
    assert {p.name for p in ckpt.iterdir()} == {
        "model.safetensors",
        "state.safetensors",
        "state.json",
    }
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2
    assert "optimizer" in state and "rng" in state
    assert any(k.startswith("optimizer.state.") for k in load_file(ckpt / "state.safetensors"))


def test_no_plot_leaves_out_the_curves_and_records_it(tmp_path, run_dir):
    result = train(tmp_path / "r", "--epochs", "2", "--lr", "0.05", "--quiet", "--no-plot")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "r" / "loss_curves.png").exists()
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["settings"]["plot"] is False
    # the same training as the shared run: only the picture differs
    before = json.loads((run_dir / "run.json").read_text())["result"]["metrics"]
    assert info["result"]["metrics"] == before


def test_training_output_is_data_on_stdout_progress_on_stderr(tmp_path):
    result = train(tmp_path / "r", "--epochs", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["epochs"] == 1 and "accuracy" in data["metrics"]
    assert "epoch 1/1" in result.stderr  # plain progress lines: stderr is not a terminal


def test_quiet_prints_no_progress(tmp_path):
    result = train(tmp_path / "r", "--epochs", "1", "--quiet")
    assert result.exit_code == 0 and result.stderr == ""


def test_evaluate_a_run_or_its_weights(run_dir):
    recorded = json.loads((run_dir / "run.json").read_text())["result"]["metrics"]
    for source in (run_dir, run_dir / "model.safetensors"):
        result = zoo_cli("evaluate", source, "--json")
        assert result.exit_code == 0, result.output
        got = json.loads(result.stdout)
        assert got["dataset"] == "circles"
        assert got["metrics"]["accuracy"] == pytest.approx(recorded["accuracy"])
        assert got["metrics"]["loss"] == pytest.approx(recorded["loss"], rel=1e-5)


def test_predict_from_npy_csv_and_safetensors(run_dir, tmp_path):
    X, _ = zoo.load_dataset("circles", "test")
    model = weights.load(run_dir / "model.safetensors")
    with torch.inference_mode():
        expected = (model(X).squeeze(-1) > 0).long()
    np.save(tmp_path / "x.npy", X.numpy())
    np.savetxt(tmp_path / "x.csv", X.numpy(), delimiter=",", header="a,b", comments="")
    save_file({"x": X}, tmp_path / "x.safetensors")
    for name in ("x.npy", "x.csv", "x.safetensors"):
        result = zoo_cli("predict", run_dir, "--input", tmp_path / name, "--no-transform")
        assert result.exit_code == 0, result.output
        labels = [int(line) for line in result.stdout.split()]
        assert labels == expected.tolist(), name
    out = tmp_path / "pred.npy"
    result = zoo_cli("predict", run_dir / "model.safetensors", "-i", tmp_path / "x.npy", "-o", out,
                     "--no-transform")  # fmt: skip
    assert result.exit_code == 0
    assert np.load(out).tolist() == expected.tolist()


def test_predict_reshapes_flat_image_rows(tmp_path):
    out = tmp_path / "digits"
    result = train(out, "--epochs", "1", "--quiet", "--model-arg", "hidden=4", model="tinyvgg",
                   dataset="digits")  # fmt: skip
    assert result.exit_code == 0, result.output
    X, _ = zoo.load_dataset("digits", "test")
    np.save(tmp_path / "flat.npy", X[:5].reshape(5, 64).numpy())
    result = zoo_cli("predict", out, "--input", tmp_path / "flat.npy", "--raw")
    assert result.exit_code == 0, result.output
    assert [len(line.split(",")) for line in result.stdout.splitlines()] == [10] * 5


def test_recipe_flags_override_it(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "linear"\ndataset = "circles"\nepochs = 3\nlr = 0.05\n')
    result = zoo_cli("train", "--recipe", recipe, "--epochs", "1", "--device", "cpu",
                     "--out", tmp_path / "r", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert (settings["epochs"], settings["lr"], settings["model"]) == (1, 0.05, "linear")
    assert (tmp_path / "r" / "recipe.toml").read_text() == recipe.read_text()  # kept with the run


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tinyvgg", "--dataset", "circles"],
         "incompatible combination: model 'tinyvgg'"),
        (["--model", "mlp", "--dataset", "circles", "--loss", "cross-entropy"],
         "loss 'cross-entropy' serves multiclass, not binary"),
        (["--model", "mlp", "--dataset", "circles", "--precision", "fp16"],
         "precision fp16 needs a CUDA device"),
        (["--model", "mlp", "--dataset", "circles", "--optimizer", "adamz"],
         "unknown optimizer 'adamz'; did you mean: adam"),
        (["--model", "mlp", "--dataset", "circles", "--optimizer", "lbfgs"],
         "optimizer 'lbfgs' is not supported"),
        (["--model", "mlp", "--dataset", "circles", "--momentum", "0.9"],
         "optimizer 'adam' takes no momentum"),
        (["--model", "mlp", "--dataset", "circles", "--precision", "fp8"],
         "unknown precision 'fp8'"),
        (["--model", "mlp", "--dataset", "circles", "--device", "tpu"], "unknown device 'tpu'"),
        (["--model", "mlp", "--dataset", "circles", "--patience", "2", "--monitor", "r2"],
         "cannot monitor 'r2'"),
        (["--model", "mlp", "--dataset", "circles", "--model-arg", "hidden"],
         "--model-arg wants key=value"),
        (["--dataset", "circles"], "needs --model and --dataset"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_error(tmp_path, args, message):
    result = zoo_cli("train", "--device", "cpu", "--out", tmp_path / "r", "--quiet", *args)
    assert message in one_line_error(result)
    assert not (tmp_path / "r").exists()  # refused before any work


def test_fp16_refused_on_cpu_by_the_api():
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        zoo.Trainer("mlp", "circles", device="cpu", precision="fp16")


def test_existing_run_is_not_overwritten(run_dir):
    before = (run_dir / "model.safetensors").read_bytes()
    result = train(run_dir, "--epochs", "1")
    assert "already holds a run" in one_line_error(result)
    assert (run_dir / "model.safetensors").read_bytes() == before


def test_bad_recipe_key(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "mlp"\ndataset = "circles"\nepocs = 3\n')
    result = zoo_cli("train", "--recipe", recipe, "--out", tmp_path / "r")
    assert "unknown setting 'epocs'" in one_line_error(result)


def test_diverging_run_exits_1_naming_epoch_and_step(tmp_path):
    result = train(tmp_path / "r", "--optimizer", "sgd", "--lr", "1e12", "--epochs", "3",
                   "--batch-size", "4", "--quiet",
                   model="linear-regression", dataset="line")  # fmt: skip
    line = one_line_error(result, code=1)
    assert "at epoch 1, step" in line and "diverged" in line
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "diverged"


def test_evaluate_on_a_dataset_the_model_cannot_take(run_dir):
    result = zoo_cli("evaluate", run_dir, "--dataset", "iris")
    assert "incompatible" in one_line_error(result) or "in_features" in result.stderr


def test_predict_bad_inputs(run_dir, tmp_path):
    (tmp_path / "x.txt").write_text("1,2\n")
    assert "use a .safetensors, .npy or .csv" in one_line_error(
        zoo_cli("predict", run_dir, "--input", tmp_path / "x.txt")
    )
    np.save(tmp_path / "wide.npy", np.zeros((3, 5), dtype=np.float32))
    assert "does not fit the model's input" in one_line_error(
        zoo_cli("predict", run_dir, "--input", tmp_path / "wide.npy")
    )
    assert "neither a run directory nor a weights file" in one_line_error(
        zoo_cli("predict", tmp_path / "missing", "--input", tmp_path / "wide.npy")
    )


# -- threads: --threads, else $OMP_NUM_THREADS, else the physical cores per process -----------


def test_train_threads_flag_is_used_recorded_and_torch_s_count_restored(tmp_path):
    torch.set_num_threads(2)  # the caller's own count
    result = train(tmp_path / "r", "--epochs", "1", "--quiet", "--threads", "1")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["settings"]["threads"] == 1 and info["device"]["threads"] == 1
    assert torch.get_num_threads() == 2


def test_train_without_threads_follows_omp_num_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(2)  # torch's default would be every core
    result = train(tmp_path / "r", "--epochs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["settings"]["threads"] is None and info["device"]["threads"] == 1
    assert torch.get_num_threads() == 2


def test_trainer_evaluate_and_predict_run_with_the_threads_asked_for():
    seen: list[int] = []
    model = zoo.create_model("mlp", dataset="circles")
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    torch.set_num_threads(1)
    zoo.Trainer(model, "circles", epochs=1, device="cpu", quiet=True, threads=2).fit()
    X, _ = zoo.load_dataset("circles", "test")
    zoo.predict(model, X, threads=2)
    zoo.evaluate(model, "circles", threads=2)
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == 1


def test_evaluate_and_predict_take_threads(run_dir, tmp_path):
    X, _ = zoo.load_dataset("circles", "test")
    np.save(tmp_path / "x.npy", X.numpy())
    torch.set_num_threads(1)
    evaluated = zoo_cli("evaluate", run_dir, "--threads", "2", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["metrics"] == zoo.evaluate(run_dir)
    predicted = zoo_cli("predict", run_dir, "-i", tmp_path / "x.npy", "--threads", "2")
    assert predicted.exit_code == 0, predicted.output
    assert torch.get_num_threads() == 1


def test_threads_zero_is_one_line_for_train_evaluate_and_predict(run_dir, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 2), dtype=np.float32))
    message = "error: threads must be a positive integer, got 0"
    assert one_line_error(train(tmp_path / "r", "--threads", "0")) == message
    assert not (tmp_path / "r").exists()
    assert one_line_error(zoo_cli("evaluate", run_dir, "--threads", "0")) == message
    assert (
        one_line_error(zoo_cli("predict", run_dir, "-i", tmp_path / "x.npy", "--threads", "0"))
        == message
    )
