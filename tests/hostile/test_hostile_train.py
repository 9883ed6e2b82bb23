"""Hostile and broken input for training runs (issue 11): checkpoints, run directories, signals,
a full disk, recorded settings, CLI input and label types. Real files, real processes sent real
signals, a real size-limited tmpfs (skipped with the reason where one cannot be mounted).

Each case asserts the exit code, that stderr is one ``error: ...`` line (no traceback), that
nothing was lost (run.json and the last checkpoint intact, the run resumable) and no debris
(temp files) was left.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from zoo.cli import cli
from zoo.train.checkpoint import load_checkpoint

TINY = ["-m", "mlp", "-d", "circles", "--dataset-arg", "n_samples=200", "--device", "cpu",
        "--quiet"]  # fmt: skip


def zoo_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def debris(run: Path) -> list[str]:
    """Temp files and folders zoo left in a run directory."""
    return sorted(
        str(p.relative_to(run))
        for p in run.rglob("*")
        if p.name.startswith(".") and p.name != ".lock" or p.name.endswith(".tmp")
    )


def run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 1-epoch mlp/circles run (adam: optimizer state to corrupt)."""
    out = tmp_path_factory.mktemp("runs") / "mlp"
    result = zoo_cli("train", *TINY, "--epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    return out


# -- Data must not act ------------------------------------------------------------------------


def _planted_weights(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A fashion-mnist weights file whose training record asks for a download into dirs of
    its choosing."""
    import zoo
    from zoo.weights import files as weights

    planted = [tmp_path / "chosen-root", tmp_path / "chosen-data-dir"]
    model = zoo.create_model("mlp", dataset="fashion-mnist", hidden=[4])
    train = {
        "dataset_kwargs": {"download": True, "root": str(planted[0])},
        "data_dir": str(planted[1]),
    }
    path = weights.export(
        model, tmp_path / "w.safetensors", dataset="fashion-mnist", extra={"train": train}
    )
    return path, planted


def _run_with_split_settings(tmp_path: Path) -> tuple[Path, list[Path]]:
    data = tmp_path / "data"
    data.mkdir()
    run = tmp_path / "run"
    result = zoo_cli("train", "-m", "linear", "-d", "circles", "--dataset-arg", "n_samples=300",
                     "--dataset-arg", "seed=7", "--data-dir", data, "--epochs", "1",
                     "--device", "cpu", "--out", run, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return run, []


DATA_CASES = {
    # case: (make the source, exit code, what the notice names)
    "weights-download-root-data-dir": (
        _planted_weights,
        None,
        ["download=True", "root=", "data_dir="],
    ),
    "run-split-settings-applied": (_run_with_split_settings, 0, ["data_dir="]),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_data_must_not_act(case, tmp_path, monkeypatch):
    make, code, named = DATA_CASES[case]
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "user-data"))  # the user's own (empty) data
    source, planted = make(tmp_path)
    result = zoo_cli("evaluate", source, "--json")
    lines = result.stderr.strip().splitlines()
    notice = [line for line in lines if "recorded dataset options not applied" in line]
    assert len(notice) == 1 and all(n in notice[0] for n in named), result.stderr
    assert "Traceback" not in result.output
    for path in planted:
        assert not path.exists(), f"{path} was created by data in a file"
    assert not (tmp_path / "user-data").exists()  # and nothing downloaded into the user's
    if code is None:  # the data is not on disk: one error line besides the notice
        assert result.exit_code in (1, 2) and len(lines) == 2 and lines[1].startswith("error: ")
    else:
        assert result.exit_code == code, result.output
        recorded = run_json(source)["result"]["metrics"]  # scored as trained: split applied
        assert json.loads(result.stdout)["metrics"]["accuracy"] == pytest.approx(
            recorded["accuracy"]
        )


# -- Faults lose nothing and leave no debris ----------------------------------------------------

BIG = ["-m", "mlp", "-d", "circles", "--dataset-arg", "n_samples=64", "--model-arg",
       "hidden=[192,192]", "--device", "cpu", "--quiet"]  # fmt: skip
PAGE = 4096


def _pages(path: Path) -> int:
    return sum(math.ceil(p.stat().st_size / PAGE) * PAGE for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sizes(tmp_path_factory):
    """Bytes (in tmpfs pages) of what a BIG 1-epoch run writes, measured on a normal disk."""
    run = tmp_path_factory.mktemp("sizes") / "run"
    result = zoo_cli("train", *BIG, "--epochs", "1", "--out", run)
    assert result.exit_code == 0, result.output
    return {
        "checkpoint": _pages(run / "checkpoint"),
        "plot": _pages(run) - _pages(run / "checkpoint") - _pages_of(run, "model.safetensors")
        - _pages_of(run, "run.json") - _pages_of(run, "metrics.csv") - _pages_of(run, ".lock"),
        "weights": _pages_of(run, "model.safetensors"),
        "small": 4 * PAGE,  # .lock, run.json, metrics.csv and one temp copy
    }  # fmt: skip


def _pages_of(run: Path, name: str) -> int:
    return math.ceil((run / name).stat().st_size / PAGE) * PAGE


class Tmpfs:
    """A size-limited tmpfs mounted for one test (root only)."""

    def __init__(self, where: Path, size: int):
        self.path = where
        where.mkdir()
        self._mount(f"size={size}")

    def _mount(self, options: str, *extra: str) -> None:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, *extra, "tmpfs", str(self.path)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")

    def grow(self, size: int) -> None:
        self._mount(f"remount,size={size}")

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path) -> Callable[[int], Tmpfs]:
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mounted: list[Tmpfs] = []

    def mount(size: int) -> Tmpfs:
        fs = Tmpfs(tmp_path / f"fs{len(mounted)}", size)
        mounted.append(fs)
        return fs

    yield mount
    for fs in mounted:
        fs.unmount()


def _disk_full(when: str, tmpfs, sizes, tmp_path) -> None:
    """A run whose disk fills while writing its ``when`` (checkpoint of epoch 2, weights, plot,
    or run.json after epoch 1's checkpoint, leaving no room to record the failure either): one
    line naming the file and the free space, no temp files, the failure recorded in run.json as
    of the last checkpoint (or the line says it could not be), which is intact and resumable."""
    ckpt, plot, weights, small = (sizes[k] for k in ("checkpoint", "plot", "weights", "small"))
    free = {
        "checkpoint": small + ckpt + ckpt // 2,  # epoch 1's fits, epoch 2's does not
        "plot": small + ckpt + plot // 2,
        "weights": small + ckpt + plot + weights // 2,
        "run-json": small - PAGE + ckpt,  # full to the last page once epoch 1 is saved
    }[when]
    epochs = 2 if when == "checkpoint" else 1
    fs = tmpfs(free)
    run = fs.path / "run"
    result = zoo_cli("train", *BIG, "--epochs", epochs, "--out", run)
    target = {"checkpoint": run / "checkpoint", "plot": run / "loss_curves.png",
              "weights": run / "model.safetensors", "run-json": run / "run.json"}[when]  # fmt: skip
    line = one_line_error(result, 1)
    assert line.startswith(f"error: cannot write {target}: No space left on device ("), line
    assert f"free on {fs.path}" in line
    assert debris(run) == []
    assert not (run / "model.safetensors").exists()  # not a finished run
    record = run_json(run)
    if when == "run-json":  # best effort: the line says the record could not be written
        assert line.endswith(f"; the failure could not be recorded in {run / 'run.json'} either")
        assert record["status"] == "running"
    else:
        assert record["status"] == "failed" and record["result"]["error"] == line[7:]
        assert record["result"]["epochs"] == load_checkpoint(run).epoch == 1  # as checkpointed
    assert load_checkpoint(run).epoch == 1  # the last good checkpoint is intact
    fs.grow(free + 4 * ckpt + plot + 4 * weights)
    result = zoo_cli("train", "--resume", run, "--epochs", epochs, "--quiet")
    assert result.exit_code == 0, result.output
    assert run_json(run)["status"] == "finished" and (run / "model.safetensors").is_file()
    assert debris(run) == []


SLOW = ["-m", "mlp", "-d", "circles", "--dataset-arg", "n_samples=3000", "--batch-size", "8",
        "--device", "cpu", "--quiet"]  # fmt: skip
NO_CHECKPOINT_SOON = ["--dataset-arg", "n_samples=100000", "--batch-size", "2", "--lr", "0.004"]

# Each signal case: the run's extra arguments, and when it is ready for its signal.
SIGNAL_RUNS = {
    "after-checkpoint": (["--epochs", "3"], lambda run: _recorded_epochs(run) >= 1),
    "before-first-checkpoint": ([*NO_CHECKPOINT_SOON, "--epochs", "1"],
                                lambda run: (run / "run.json").exists()),
}  # fmt: skip


@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory):
    """One real ``zoo train`` process per signal case, started together (they share the cores
    instead of taking turns) and each frozen (SIGSTOP) once it is ready for its signal."""
    procs = {}
    for sig in ("sigterm", "sigkill"):
        for when, (args, ready) in SIGNAL_RUNS.items():
            run = tmp_path_factory.mktemp(f"{sig}-{when}") / "run"
            procs[f"{sig}-{when}"] = (_start(*SLOW, *args, "--out", run), run, ready)
    waiting = dict(procs)
    deadline = time.monotonic() + 180
    while waiting:
        for case, (proc, run, ready) in list(waiting.items()):
            assert proc.poll() is None, (case, proc.communicate())
            if ready(run):
                proc.send_signal(signal.SIGSTOP)
                del waiting[case]
        assert time.monotonic() < deadline, f"timed out waiting for {list(waiting)}"
        time.sleep(0.01)
    yield {case: (proc, run) for case, (proc, run, _) in procs.items()}
    for proc, _, _ in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _signal(proc: subprocess.Popen, sig: int) -> str:
    """Send ``sig`` to the frozen ``proc``, let it go on, and return its stderr once it ends."""
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    return proc.communicate(timeout=120)[1]


def _signal_after_checkpoint(sig: int, proc: subprocess.Popen, run: Path) -> None:
    """SIGTERM (handled like Ctrl-C, exit 143) or SIGKILL once epoch 1's checkpoint is there:
    run.json follows the checkpoint, and the run resumes to the end."""
    err = _signal(proc, sig)
    done = load_checkpoint(run).epoch
    record = run_json(run)
    assert record["result"]["epochs"] == done
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert err.strip().splitlines()[-1].startswith("terminated at epoch "), err
        assert "Traceback" not in err and record["status"] == "killed"
    else:
        assert record["status"] == "running"  # what it said at its last checkpoint
    assert debris(run) == []
    result = zoo_cli("train", "--resume", run, "--batch-size", "1000", "--quiet")
    assert result.exit_code == 0, result.output
    assert run_json(run)["status"] == "finished" and run_json(run)["result"]["epochs"] == 3


def _recorded_epochs(run: Path) -> int:
    try:
        return run_json(run)["result"]["epochs"]
    except (OSError, ValueError, KeyError):
        return 0


def _killed_before_first_checkpoint(sig: int, proc: subprocess.Popen, run: Path) -> None:
    """A run killed before its first checkpoint is no dead end: ``--resume`` starts it again
    in its own directory, with its recorded settings."""
    err = _signal(proc, sig)
    assert not (run / "checkpoint").exists()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "Traceback" not in err, err
        assert (
            err.strip().splitlines()[-1].endswith(f"start it again with: zoo train --resume {run}")
        )
    result = zoo_cli("train", "--resume", run, "--dataset-arg", "n_samples=200", "--quiet")
    assert result.exit_code == 0, result.output
    assert "starting it again" in result.stderr
    record = run_json(run)
    assert record["status"] == "finished" and record["settings"]["lr"] == 0.004


def _start(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", "train", *map(str, args)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


FAULT_CASES = [
    "disk-full-checkpoint", "disk-full-weights", "disk-full-plot", "disk-full-run-json",
    "sigterm-after-checkpoint",
    "sigkill-after-checkpoint", "sigterm-before-first-checkpoint",
    "sigkill-before-first-checkpoint",
]  # fmt: skip


@pytest.mark.parametrize("case", FAULT_CASES)
def test_faults_lose_nothing_and_leave_no_debris(case, request, tmp_path):
    kind, _, when = case.partition("-")
    if kind == "disk":
        what = when.removeprefix("full-")
        _disk_full(
            what, request.getfixturevalue("tmpfs"), request.getfixturevalue("sizes"), tmp_path
        )
        return
    sig = signal.SIGTERM if kind == "sigterm" else signal.SIGKILL
    proc, run = request.getfixturevalue("stopped_runs")[case]
    if when == "after-checkpoint":
        _signal_after_checkpoint(sig, proc, run)
    else:
        _killed_before_first_checkpoint(sig, proc, run)


# -- Malformed checkpoints: "corrupt checkpoint: ..." with exit 1 --------------------------------


def _json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def corrupt(run: Path) -> None:
        path = run / ("run.json" if name == "run.json" else f"checkpoint/{name}")
        body = json.loads(path.read_text())
        new = change(body)
        path.write_text(json.dumps(body if new is None else new))

    return corrupt


def _raw(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda run: (run / "checkpoint" / name).write_bytes(data)


def _tensors(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def corrupt(run: Path) -> None:
        path = run / "checkpoint" / name
        tensors = dict(load_file(str(path)))
        change(tensors)
        save_file(tensors, str(path), metadata={"format": "zoo-checkpoint/1"})

    return corrupt


def _first(tensors: dict, suffix: str) -> str:
    return next(k for k in sorted(tensors) if k.endswith(suffix))


def _set(keys: str, value):
    def change(body: dict) -> None:
        *path, last = keys.split(".")
        for key in path:
            body = body[key]
        body[last] = value

    return change


def _first_ref(body: dict) -> None:
    state = body["optimizer"]["state"]["__items__"][0][1]
    key = next(iter(state))
    state[key] = {"__tensor__": "optimizer.state.nosuch"}


DEEP = b"[" * 2000 + b"]" * 2000

CORRUPT = {
    # case: (corruption, exit code, what the line says)
    "state-json-a-list": (_json("state.json", lambda b: []), 1, "is not a JSON object"),
    "state-json-garbage": (_raw("state.json", b"\x00\xffgarbage"), 1, "cannot read"),
    "state-json-deep": (_raw("state.json", DEEP), 1, "nested deeper than"),
    "epoch-x": (_json("state.json", _set("epoch", "x")), 1, "epoch must be"),
    "epoch-null": (_json("state.json", _set("epoch", None)), 1, "epoch must be"),
    "epoch-minus-3": (_json("state.json", _set("epoch", -3)), 1, "epoch must be"),
    "aliases-a-list": (_json("state.json", _set("model_aliases", [1])), 1, "model_aliases"),
    "alias-names-missing-key": (
        _json("state.json", _set("model_aliases", {"x.weight": "nosuch"})),
        1,
        "names no tensor",
    ),  # fmt: skip
    "optimizer-ref-missing": (_json("state.json", _first_ref), 1, "which state.safetensors lacks"),
    "optimizer-lr-a-string": (
        _json("state.json", lambda b: b["optimizer"]["param_groups"][0].update(lr="fast")),
        1,
        "optimizer setting 'lr'",
    ),  # fmt: skip
    "rng-wrong-size": (
        _tensors("state.safetensors", lambda t: t.update({"rng.torch": t["rng.torch"][:100]})),
        1,
        "random state does not restore",
    ),  # fmt: skip
    "history-5": (_json("state.json", _set("trainer.history", 5)), 1, "history"),
    "elapsed-x": (_json("state.json", _set("trainer.elapsed_s", "x")), 1, "elapsed_s"),
    "settings-a-list": (_json("state.json", _set("trainer.settings", [1])), 1, "settings"),
    "exp-avg-wrong-shape": (
        _tensors(
            "state.safetensors",
            lambda t: t.update({_first(t, "exp_avg"): torch.zeros(3, 3)}),
        ),
        1,
        "optimizer exp_avg",
    ),  # fmt: skip
    "int64-weights": (
        _tensors(
            "model.safetensors",
            lambda t: t.update({(k := _first(t, "weight")): t[k].to(torch.int64)}),
        ),
        1,
        "is int64, the model's is float32",
    ),  # fmt: skip
    "model-safetensors-missing": (
        lambda run: (run / "checkpoint" / "model.safetensors").unlink(),
        1,
        "has a state.json but no model.safetensors",
    ),  # fmt: skip
    "model-safetensors-truncated": (_raw("model.safetensors", b"\x08\x00"), 1, "cannot read"),
    "run-json-settings-a-list": (_json("run.json", _set("settings", [1])), 2, "not a JSON object"),
    "run-json-lr-a-string": (_json("run.json", _set("settings.lr", "fast")), 2, "lr must be"),
    "run-json-deep": (lambda run: (run / "run.json").write_bytes(DEEP), 2, "nested deeper"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_malformed_checkpoint(case, finished_run, tmp_path):
    corrupt, code, says = CORRUPT[case]
    run = shutil.copytree(finished_run, tmp_path / "run")
    (run / "model.safetensors").unlink()  # an unfinished run, to resume
    corrupt(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = one_line_error(zoo_cli("train", "--resume", run, "--epochs", "2", "--quiet"), code)
    if code == 1:
        assert line.startswith("error: corrupt checkpoint: "), line
    assert says in line, line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing touched, run.json included


# -- CLI and API input: one line before any work, exit 2 ----------------------------------------


def _recipe(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "recipe.toml"
    path.write_text('model = "mlp"\ndataset = "circles"\n' + body)
    return ["--recipe", path]


INPUT_CASES = {
    # case: (arguments after `zoo train` (a callable for a recipe), what the line says)
    "seed-out-of-range": (["--seed", "1180591620717411303424"], "seed must be an integer"),
    "recipe-compile-nosuchbackend": (
        lambda p: _recipe(p, 'compile = "nosuchbackend"\n'),
        "unknown torch.compile backend",
    ),  # fmt: skip
    "recipe-hidden-minus-1": (lambda p: _recipe(p, "[model_kwargs]\nhidden = -1\n"), "hidden"),
    "loss-arg-reduction-bogus": (["--loss-arg", "reduction=bogus"], "bogus"),
    "workers-minus-1": (["--workers", "-1"], "workers must be 0 or more"),
    "model-arg-32,32": (["--model-arg", "hidden=32,32"], "hidden=[32,32]"),
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_cli_input_fails_before_work(case, tmp_path):
    args, says = INPUT_CASES[case]
    args = args(tmp_path) if callable(args) else [*TINY, *args]
    out = tmp_path / "out"
    line = one_line_error(zoo_cli("train", *args, "--epochs", "1", "--out", out, "--quiet"), 2)
    assert says in line, line
    assert not out.exists()  # before any work


def test_model_arg_json_list_is_accepted(tmp_path):
    out = tmp_path / "out"
    result = zoo_cli("train", *TINY, "--model-arg", "hidden=[4,4]", "--epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert run_json(out)["settings"]["model_kwargs"]["hidden"] == [4, 4]


# -- Label types ----------------------------------------------------------------------------------

LABELS = """
import torch
import zoo


class Points(torch.utils.data.Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.full((2,), float(i % 2)), self.labels[i]


def binary_ints(split):
    return Points([i % 2 for i in range(16)])


def binary_twos(split):
    return Points([2 * (i % 2) for i in range(16)])


def multiclass_floats(split):
    return Points([float(i % 3) for i in range(16)])


def multiclass_halves(split):
    return Points([0.5 * (i % 3) for i in range(16)])


@zoo.hookimpl
def register_datasets(register):
    for name, task in [("binary-ints", "binary"), ("binary-twos", "binary"),
                       ("multiclass-floats", "multiclass"), ("multiclass-halves", "multiclass")]:
        register(name, "labels:" + name.replace("-", "_"), task=task, input_shape=(2,),
                 num_classes=3 if task == "multiclass" else 2)
"""

LABEL_CASES = {
    # dataset: (exit code, what the one line says)
    "binary-ints": (0, None),
    "multiclass-floats": (0, None),
    "binary-twos": (2, "binary labels must be 0 or 1, got 2"),
    "multiclass-halves": (2, "multiclass labels must be class indices (0, 1, ...), got 0.5"),
}


@pytest.mark.parametrize("dataset", list(LABEL_CASES))
def test_label_types(dataset, make_plugin, tmp_path):
    make_plugin("zoo-labels", {"labels.py": LABELS}, entry_points={"labels": "labels"})
    code, says = LABEL_CASES[dataset]
    run = tmp_path / "run"
    result = zoo_cli("train", "-m", "linear", "-d", dataset, "--epochs", "1", "--batch-size", "4",
                     "--device", "cpu", "--out", run, "--quiet")  # fmt: skip
    if code == 0:
        assert result.exit_code == 0, result.output
        return
    line = one_line_error(result, code)
    assert says in line, line
    assert run_json(run)["status"] == "failed" and debris(run) == []
