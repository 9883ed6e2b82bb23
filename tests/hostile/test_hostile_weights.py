"""Hostile weights files, model targets, and predict/export input (issue 11), one test per class.

Every weights file here is written byte by byte (8-byte little-endian header length, JSON
header, tensor data), as an attacker would. Each case asserts the exit code, one ``error:``
line and no traceback, that a file's data did not act (no marker file appears) and that
nothing was left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from zoo_datasets.declared import CLASSES, TRANSFORMS

import zoo
from zoo.cli import cli
from zoo.errors import UsageError, ZooError, one_line

HIDDEN = 8
KWARGS = {"in_features": 4, "num_classes": 3, "hidden": [HIDDEN]}
SHAPES = {
    "layers.0.bias": [HIDDEN], "layers.0.weight": [HIDDEN, 4],
    "layers.2.bias": [3], "layers.2.weight": [3, HIDDEN],
}  # fmt: skip
MLP_PIN = {"entry": "workflow/mlp", "dist": "zoo"}


def pack(header: dict | bytes, data: bytes) -> bytes:
    """A safetensors file: header length (u64 little-endian), JSON header, data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def mlp_file(
    *,
    meta: dict | None = None,
    entries: dict | None = None,
    values: dict[str, float] | None = None,
    model: dict | None = None,
) -> bytes:
    """iris's ``mlp`` (hidden 8) as zoo writes it, with metadata/tensor entries overridden and
    ``values`` written into the first element of the named tensors."""
    header: dict = {}
    data = b""
    for key, shape in SHAPES.items():
        array = np.full(shape, 0.1, dtype=np.float32)
        if values and key in values:
            array.flat[0] = values[key]
        header[key] = {"dtype": "F32", "shape": shape,
                       "data_offsets": [len(data), len(data) + array.nbytes]}  # fmt: skip
        data += array.tobytes()
    header.update(entries or {})
    pins = {"model": model or MLP_PIN, "dataset": {"entry": "datasets/iris", "dist": "zoo"}}
    header["__metadata__"] = {
        "format": "zoo.weights/2", "model": (model or MLP_PIN)["entry"].split("/")[1],
        "dataset": "iris", "dtype": "float32", "kwargs": json.dumps(KWARGS),
        "pins": json.dumps(pins), "transform": json.dumps(TRANSFORMS["iris"]),
        "classes": json.dumps(CLASSES["iris"]), **(meta or {}),
    }  # fmt: skip
    return pack(header, data)


def entry_of(key: str, **change) -> dict:
    """The header entry ``mlp_file`` writes for ``key``, with fields changed."""
    start = 0
    for name, shape in SHAPES.items():
        size = 4 * int(np.prod(shape))
        if name == key:
            return {key: {"dtype": "F32", "shape": shape, "data_offsets": [start, start + size],
                          **change}}  # fmt: skip
        start += size
    raise KeyError(key)


def kwargs_json(**change) -> dict:
    return {"kwargs": json.dumps({**KWARGS, **change})}


def assert_one_error(code: int, stderr: str, want_code: int, *, says: str = "") -> None:
    """Exit ``want_code`` with exactly one ``error:`` line on stderr (a ``warning:`` line for
    exit 0) and no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, f"traceback:\n{stderr[-2000:]}"
    assert code == want_code, f"exit {code}, wanted {want_code}: {stderr[-500:]}"
    kind = "warning: " if want_code == 0 else "error: "
    assert len(lines) == 1 and kind in lines[0][:20], f"not one {kind}line: {lines}"
    assert says in lines[0], f"{says!r} not in {lines[0]!r}"


def invoke(*args: str) -> tuple[int, str, str]:
    """The real CLI in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(result.exception))
        return 1, result.stdout, result.stderr + "Traceback (in process)\n" + tb
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def inputs(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4))
    return path


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ---------------------------------------------------------------- data must not act

EVIL_PLUGIN = {
    "evilpkg/__init__.py": """
        import zoo

        @zoo.hookimpl
        def register_models(register):
            register("shell", "os:system", task="regression", summary="a builtin")
            register("popen", "subprocess:Popen", task="regression", summary="not a Module")
            register("maker", "evilpkg.make:make", task="regression", summary="a function")
            register("shell-partial", "evilpkg.make:shell", task="regression")
    """,
    "evilpkg/make.py": """
        import functools
        import os
        import torch

        def make(n=2, marker=None):
            if marker:
                open(marker, "w").close()  # what a call would leave
            return torch.nn.Linear(n, 1)

        shell = functools.partial(os.system)
    """,
}

ACTING = {
    # name: (model entry, kwargs written to the file, what stderr says)
    "os-system-target": ("shell", {"command": "touch {marker}"}, "builtin"),
    "partial-of-builtin": ("shell-partial", {"command": "touch {marker}"}, "builtin"),
    "popen-class-target": (
        "popen",
        {"args": "touch {marker}", "shell": True},
        "not a torch.nn.Module",
    ),
    "unknown-kwarg": ("maker", {"n": 2, "marker": "{marker}", "bogus": 1}, "bogus"),
    "nan-kwarg": ("maker", {"n": float("nan"), "marker": "{marker}"}, "finite JSON"),
    "kwargs-not-object": ("maker", ["{marker}"], "kwargs"),
}


@pytest.mark.parametrize("case", [*ACTING, "export-default-name-traversal"])
def test_data_does_not_act(case, tmp_path, make_plugin, run_zoo, inputs, monkeypatch):
    if case == "export-default-name-traversal":  # the file's "model" once chose the output path
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        src = work / "src.safetensors"
        src.write_bytes(mlp_file(meta={"model": "../escaped", "dataset": "../escaped"}))
        code, stdout, stderr = invoke("export", str(src))
        assert code == 0 and not stderr.strip(), stderr
        made = listing(tmp_path) - {"x.npy"}
        assert made == {"work", "work/src.safetensors", "work/mlp-iris.safetensors"}
        assert stdout.strip() == "mlp-iris.safetensors"
        return
    site = make_plugin("evil-dist", EVIL_PLUGIN, {"evil": "evilpkg"})
    name, kwargs, says = ACTING[case]
    marker = tmp_path / "marker"
    kwargs = json.loads(json.dumps(kwargs).replace("{marker}", str(marker)))
    path = tmp_path / "evil.safetensors"
    pin = {"entry": f"evil/{name}", "dist": "evil-dist"}
    path.write_bytes(mlp_file(meta={"kwargs": json.dumps(kwargs)}, model=pin))
    if case == "os-system-target":  # a real process, the plugin installed as pip leaves it
        proc = run_zoo("predict", str(path), "-i", str(inputs), pythonpath=[site])
        code, stderr = proc.returncode, proc.stderr
    else:
        code, _, stderr = invoke("predict", str(path), "-i", str(inputs))
    assert not marker.exists(), "the file's kwargs ran code"
    assert_one_error(code, stderr, 1, says=says)
    assert "shell" in zoo.list_models()  # listing still imports nothing and lists it


# ---------------------------------------------------------------- malformed weights files

MALFORMED = {
    "metadata-list": (pack({"__metadata__": ["a"]}, b""), "__metadata__"),
    "metadata-string": (pack({"__metadata__": "abc"}, b""), "__metadata__"),
    "metadata-value-number": (mlp_file(meta={"flatten": 1}), "__metadata__"),
    "dtype-unhashable": (mlp_file(entries=entry_of("layers.0.bias", dtype=["F32"])), "dtype"),
    "shape-int": (mlp_file(entries=entry_of("layers.0.bias", shape=5)), "shape"),
    "shape-str": (mlp_file(entries=entry_of("layers.0.bias", shape=["a"])), "shape"),
    "shape-bool": (mlp_file(entries=entry_of("layers.0.bias", shape=[True] * 8)), "shape"),
    "offsets-str": (
        mlp_file(entries=entry_of("layers.0.bias", data_offsets=["0", "32"])),
        "data_offsets",
    ),
    "entry-list": (mlp_file(entries={"layers.0.bias": [1]}), "layers.0.bias"),
    "alias-unhashable": (mlp_file(meta={"aliases": json.dumps({"x": ["a"]})}), "aliases"),
    "alias-missing": (mlp_file(meta={"aliases": json.dumps({"x": "nope"})}), "nope"),
    "extra-list": (mlp_file(meta={"extra": "[1]"}), "extra"),
    "extra-train-entries-int": (
        mlp_file(meta={"extra": json.dumps({"train": {"entries": 5}})}),
        "entries",
    ),
    "metrics-string": (mlp_file(meta={"metrics": json.dumps({"acc": "x"})}), "metrics"),
    "kwargs-list": (mlp_file(meta={"kwargs": "[1]"}), "kwargs"),
    "kwargs-in-features-neg": (mlp_file(meta=kwargs_json(in_features=-1)), "in_features=-1"),
    "kwargs-dropout-5": (mlp_file(meta=kwargs_json(dropout=5)), "dropout=5"),
    "kwargs-hidden-2**40": (mlp_file(meta=kwargs_json(hidden=[2**40])), "does not fit"),
    "json-nested-2000": (mlp_file(meta={"extra": "[" * 2000 + "]" * 2000}), "nested deeper"),
    "header-nested-2000": (pack(b"[" * 2000 + b"]" * 2000, b""), "nested deeper"),
    "nan-weight": (mlp_file(values={"layers.0.bias": float("nan")}), "'layers.0.bias' holds"),
    "inf-weight": (mlp_file(values={"layers.2.weight": float("inf")}), "'layers.2.weight'"),
}


def _index_kwargs(tmp_path, inputs):
    """An index entry's ``hidden=[2**40]``: once a 4 TiB allocation before the fit check."""
    from zoo.hub.publish import publish

    good = tmp_path / "mlp.safetensors"
    good.write_bytes(mlp_file())
    registry = tmp_path / "registry"
    publish(good, registry, "huge")
    index = registry / "index.json"
    doc = json.loads(index.read_text())
    doc["entries"][0]["kwargs"]["hidden"] = [2**40]
    index.write_text(json.dumps(doc))
    os.environ["ZOO_REGISTRY"] = str(registry)  # the autouse fixture removes it again
    try:
        zoo.create_model("mlp", pretrained="huge")
    except ZooError as exc:
        return exc.exit_code, f"error: {one_line(exc)}\n"
    return 0, ""


def _fifo(tmp_path, inputs):
    """``zoo.load(FIFO)`` once blocked forever opening it: load on a thread with a deadline
    (a hung thread is released by opening the FIFO's other end)."""
    import zoo

    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            zoo.load(fifo)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        return -1, "hung opening the FIFO"
    error = outcome[0]
    if isinstance(error, zoo.ZooError):
        return 1, f"error: {error}\n"
    return 0 if error is None else -2, repr(error)


MALFORMED["index-kwargs-hidden-2**40"] = (_index_kwargs, "1099511627776")
MALFORMED["fifo-as-weights"] = (_fifo, "not a regular file")


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_weights_file(case, tmp_path, inputs):
    data, says = MALFORMED[case]
    if callable(data):
        code, stderr = data(tmp_path, inputs)
        assert_one_error(code, stderr, 1, says=says)
        return
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(data)
    before = listing(tmp_path)
    code, _, stderr = invoke("predict", str(path), "-i", str(inputs))
    assert_one_error(code, stderr, 1, says=says)
    assert path.read_bytes() == data and listing(tmp_path) == before


# ---------------------------------------------------------------- CLI and API input


@contextlib.contextmanager
def full_disk(folder: Path):
    """A 64 KiB tmpfs at ``folder`` (skip with the reason when one cannot be mounted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def _model_arg(tmp_path, run_zoo, inputs, arg, *, process=False):
    out = tmp_path / "run"
    if not process:
        code, _, stderr = invoke("train", "-m", "mlp", "-d", "iris", "--epochs", "1", "-q",
                                 "--out", str(out), "--model-arg", arg)  # fmt: skip
        return code, stderr
    proc = run_zoo("train", "-m", "mlp", "-d", "iris", "--epochs", "1", "-q", "--out", str(out),
                   "--model-arg", arg)  # fmt: skip
    return proc.returncode, proc.stderr


def _create_model(tmp_path, run_zoo, inputs, **kwargs):
    try:
        zoo.create_model("mlp", dataset="iris", **kwargs)
    except UsageError as exc:
        return exc.exit_code, f"error: {exc}\n"
    return 0, ""


def _export(tmp_path, run_zoo, inputs, *args):
    src = tmp_path / "mlp.safetensors"
    src.write_bytes(mlp_file())
    code, _, stderr = invoke("export", str(src), *args)
    assert not (tmp_path / "out.onnx").exists()
    return code, stderr


def _export_full(tmp_path, run_zoo, inputs, suffix):
    model = zoo.create_model("mlp", dataset="digits", hidden=[256])  # 77 KB of weights
    src = zoo.export(model, tmp_path / "big.safetensors")
    with full_disk(tmp_path / "full") as full:
        target = full / f"out{suffix}"
        code, _, stderr = invoke("export", str(src), "-o", str(target))
        assert listing(full) == set(), "temp files left on the full disk"
    assert str(target) in stderr and " free on " in stderr
    return code, stderr


def _predict_full(tmp_path, run_zoo, inputs):
    weights = tmp_path / "mlp.safetensors"
    weights.write_bytes(mlp_file())
    with full_disk(tmp_path / "full") as full:
        with contextlib.suppress(OSError), open(full / "filler", "wb") as fh:
            fh.write(bytes(128 * 1024))  # fills it
        target = full / "pred.safetensors"
        code, _, stderr = invoke("predict", str(weights), "-i", str(inputs), "-o", str(target))
        assert listing(full) == {"filler"}, "temp files left on the full disk"
    assert str(target) in stderr and " free on " in stderr
    return code, stderr


def _predict_input(tmp_path, run_zoo, inputs, array):
    path = tmp_path / "odd.npy"
    np.save(path, array)
    weights = tmp_path / "mlp.safetensors"
    weights.write_bytes(mlp_file())
    code, _, stderr = invoke("predict", str(weights), "-i", str(path))
    return code, stderr


def _raw_outputs(tmp_path, run_zoo, inputs):
    """An unknown dataset in the weights: raw logits, and one warning saying so (none with
    ``--raw``, which asks for them)."""
    path = tmp_path / "mlp.safetensors"
    pins = {"model": MLP_PIN}
    path.write_bytes(mlp_file(meta={"dataset": "no-such-set", "pins": json.dumps(pins)}))
    code, stdout, stderr = invoke("predict", str(path), "-i", str(inputs), "--raw")
    assert code == 0 and not stderr.strip() and len(stdout.split()) == 3
    code, stdout, stderr = invoke("predict", str(path), "-i", str(inputs))
    assert [len(row.split(",")) for row in stdout.split()] == [3, 3, 3]  # logits
    return code, stderr


CLI_INPUT = {
    # name: (run(tmp_path, run_zoo, inputs) -> (exit code, stderr), exit code, says)
    "train-model-arg-hidden=-5": (
        lambda *a: _model_arg(*a, "hidden=-5", process=True),
        2,
        "hidden=-5",
    ),
    "train-model-arg-dropout=2": (lambda *a: _model_arg(*a, "dropout=2"), 2, "dropout=2"),
    "create-model-hidden=-5": (lambda *a: _create_model(*a, hidden=-5), 2, "hidden=-5"),
    "create-model-hidden=[4,-1]": (lambda *a: _create_model(*a, hidden=[4, -1]), 2, "[4, -1]"),
    "create-model-dropout=2": (lambda *a: _create_model(*a, dropout=2), 2, "dropout=2"),
    "export-opset-0": (
        lambda t, *a: _export(t, *a, "-o", str(t / "out.onnx"), "--opset", "0"),
        2,
        "opset 0",
    ),  # fmt: skip
    "export-opset-999": (
        lambda t, *a: _export(t, *a, "-o", str(t / "out.onnx"), "--opset", "999"),
        2,
        "opset 999",
    ),  # fmt: skip
    "export-full-disk-safetensors": (lambda *a: _export_full(*a, ".safetensors"), 1, "space"),
    "export-full-disk-onnx": (lambda *a: _export_full(*a, ".onnx"), 1, "space"),
    "predict-output-full-disk-safetensors": (_predict_full, 1, "space"),
    "predict-complex-npy": (
        lambda *a: _predict_input(*a, np.ones((3, 4), np.complex64) * 1j),
        2,
        "complex",
    ),
    "predict-str-npy": (lambda *a: _predict_input(*a, np.full((3, 4), "a")), 2, "strings"),
    "predict-unknown-dataset": (_raw_outputs, 0, "raw outputs"),
}


@pytest.mark.parametrize("case", list(CLI_INPUT))
def test_cli_and_api_input(case, tmp_path, run_zoo, inputs):
    run, want, says = CLI_INPUT[case]
    code, stderr = run(tmp_path, run_zoo, inputs)
    assert_one_error(code, stderr, want, says=says)
