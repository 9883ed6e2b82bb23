"""zoo.runtime: one device + precision grammar, the Precision object, and THE train step that
the trainer, ``zoo bench --mode train`` and ``zoo check`` all run."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.nn import functional as F

import zoo
from zoo import testing
from zoo.bench.plan import Grid, make_plan
from zoo.cli import cli
from zoo.errors import UsageError
from zoo.runtime import step as runtime_step
from zoo.runtime.device import (
    PRECISION_ALIASES,
    parse_device,
    parse_precision,
    resolve_device,
    unavailable_reason,
)
from zoo.runtime.precision import Precision
from zoo.runtime.step import evaluate_batches, predict_outputs, train_step
from zoo.train.trainer import Trainer

FAST = {"min_run_time": 0.02, "warmup": 0.0, "threads": 1}
CPU = torch.device("cpu")
HAS_CUDA = torch.cuda.is_available()


# -- one train step for all three callers ----------------------------------------------------


class StepCalls:
    """Records, for each call of ``zoo.runtime.step.train_step``, the module that called it."""

    def __init__(self) -> None:
        self.code = runtime_step.train_step.__code__
        self.callers: list[str] = []

    def _profile(self, frame, event, arg):  # noqa: ANN001 - sys.setprofile's signature
        if event == "call" and frame.f_code is self.code:
            self.callers.append(frame.f_back.f_globals.get("__name__", "?"))

    def __enter__(self) -> StepCalls:
        self._before = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self._before)


def test_trainer_bench_train_mode_and_check_call_the_same_train_step():
    trainer = Trainer("linear", "circles", epochs=2, batch_size=100, device="cpu", quiet=True)
    with StepCalls() as trainer_calls:
        trainer.fit()
    with StepCalls() as bench_calls:
        result = zoo.bench("linear", "circles", devices="cpu", modes="train", **FAST)
    with StepCalls() as check_calls:
        report = testing.check_model("linear", datasets=["circles"])

    assert trainer_calls.callers == ["zoo.train.trainer"] * (2 * len(trainer.train_batches))
    assert result.rows[0]["error"] is None and result.rows[0]["mode"] == "train"
    timed = result.rows[0]["timing_samples"] * result.rows[0]["timing_block"]
    assert set(bench_calls.callers) == {"zoo.bench.combo"}
    assert len(bench_calls.callers) >= timed  # warm-up calls + every timed call
    assert report.ok
    assert check_calls.callers == ["zoo.checks.model"]


def test_zoo_bench_stays_callable_after_a_submodule_import():
    import zoo.bench.plan  # binds the package to the name zoo.bench

    assert callable(zoo.bench) and zoo.bench.bench is zoo.bench.plan.bench


def test_the_step_tracer_sees_nothing_when_the_step_is_not_called():
    with StepCalls() as calls:
        zoo.bench("linear", "circles", devices="cpu", modes="infer", **FAST)
    assert calls.callers == []


# -- the train step against hand-written PyTorch ---------------------------------------------


def _pair(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, copy.deepcopy(model)


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_train_step_equals_a_hand_written_step_bit_for_bit():
    mine, theirs = _pair()
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen))]
    batches *= 3
    opt_mine = torch.optim.Adam(mine.parameters(), lr=1e-2)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    loss_fn, fp32 = nn.CrossEntropyLoss(), Precision("fp32", CPU)
    mine.train()
    theirs.train()
    for x, y in batches:
        # the canonical loop, as the design page writes it
        output = theirs(x)
        loss = F.cross_entropy(output, y)
        opt_theirs.zero_grad()
        loss.backward()
        opt_theirs.step()

        got = train_step(
            mine, x, y, loss_fn=loss_fn, optimizer=opt_mine, precision=fp32, task="multiclass"
        )
        assert torch.equal(got, loss.detach()) and not got.requires_grad
        _assert_same_weights(mine, theirs)


def test_train_step_aligns_binary_outputs_and_feeds_a_probability_loss():
    torch.manual_seed(0)
    mine = nn.Linear(3, 1)
    theirs = copy.deepcopy(mine)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,)).float()
    opt_mine = torch.optim.SGD(mine.parameters(), lr=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)

    loss = F.binary_cross_entropy(torch.sigmoid(theirs(x).squeeze(-1)), y)
    opt_theirs.zero_grad()
    loss.backward()
    opt_theirs.step()
    got = train_step(
        mine, x, y, loss_fn=nn.BCELoss(), optimizer=opt_mine, precision=Precision(),
        task="binary", expects="probabilities",
    )  # fmt: skip
    assert torch.equal(got, loss.detach())
    _assert_same_weights(mine, theirs)


@pytest.mark.parametrize("factor", [0.5, 0.0])
def test_train_step_loss_factor_scales_the_gradient_and_reports_the_plain_loss(factor):
    mine, theirs = _pair()
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    opt_mine = torch.optim.SGD(mine.parameters(), lr=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)

    loss = F.cross_entropy(theirs(x), y)
    opt_theirs.zero_grad()
    (loss * factor).backward()
    opt_theirs.step()
    got = train_step(
        mine, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=opt_mine, precision=Precision(),
        task="multiclass", loss_factor=factor,
    )  # fmt: skip
    assert torch.equal(got, loss.detach())
    _assert_same_weights(mine, theirs)
    assert all(p.grad is not None for p in mine.parameters())  # factor 0 still ran backward


def test_evaluate_batches_equals_a_hand_written_evaluation():
    model, _ = _pair()
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    batches = list(zip(x.split(8), y.split(8), strict=True))
    got = evaluate_batches(
        model, batches, task="multiclass", loss_fn=nn.CrossEntropyLoss(), num_classes=3
    )
    model.eval()
    with torch.inference_mode():
        output = torch.cat([model(xb) for xb, _ in batches])
    assert not model.training
    assert got["loss"] == F.cross_entropy(output, y).item()
    assert got["accuracy"] == (output.argmax(-1) == y).double().mean().item()
    assert evaluate_batches(model, [], task="multiclass") == {}


def test_predict_outputs_batches_under_inference_mode():
    model, _ = _pair()
    x = torch.randn(10, 4)
    out = predict_outputs(model, x, batch_size=3)
    with torch.inference_mode():
        assert torch.equal(out, torch.cat([model(xb) for xb in x.split(3)]))
    assert out.is_inference() and not model.training
    assert predict_outputs(model, x[:0], batch_size=3).numel() == 0


# -- Precision ---------------------------------------------------------------------------------


def test_bf16_autocast_runs_the_forward_in_bf16_on_cpu():
    torch.manual_seed(0)
    layer = nn.Linear(8, 4)
    x = torch.randn(16, 8)
    bf16 = Precision("bf16", "cpu")
    assert bf16.autocast_dtype is torch.bfloat16 and bf16.scaler is None
    with bf16.forward_context():
        out = layer(x)
    reference = F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16())
    assert out.dtype is torch.bfloat16 and torch.equal(out, reference)
    assert bf16.convert_output(out).dtype is torch.float32


def test_the_train_step_under_bf16_computes_in_bf16_and_returns_an_fp32_loss():
    model, _ = _pair()
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    loss = train_step(
        model, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters()),
        precision=Precision("bf16", CPU), task="multiclass",
    )  # fmt: skip
    assert seen == [torch.bfloat16]
    assert loss.dtype is torch.float32 and torch.isfinite(loss)
    assert all(p.dtype is torch.float32 for p in model.parameters())


def test_fp32_is_plain():
    fp32 = Precision("float32", "cpu")
    assert fp32.name == "fp32" and fp32.autocast_dtype is None and fp32.scaler is None
    assert fp32.dtype is torch.float32
    assert fp32.state_dict() == {}
    fp32.load_state_dict({})  # nothing to restore
    with fp32.forward_context():
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("name", ["fp16", "float16", "16", "half"])
def test_fp16_is_refused_off_cuda_by_precision_trainer_and_bench(name):
    message = "precision fp16 needs a CUDA device (GradScaler), not cpu; use bf16 or fp32 there"
    with pytest.raises(UsageError) as info:
        Precision(name, "cpu")
    assert str(info.value) == message
    with pytest.raises(UsageError) as info:
        Trainer("linear", "circles", device="cpu", precision=name)
    assert str(info.value) == message
    plan = make_plan(Grid("linear", "circles", "auto", "cpu", 8, f"fp32,{name}", "train"))
    assert {c.precision for c in plan.combos} == {"fp32"}
    assert [s["reason"] for s in plan.skipped] == [message]


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_fp16_on_cuda_scales_steps_and_keeps_its_scaler_state():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).cuda()
    fp16 = Precision("half", "cuda")
    assert fp16.name == "fp16" and fp16.scaler is not None
    x, y = torch.randn(8, 4, device="cuda"), torch.randint(0, 3, (8,), device="cuda")
    before = model.weight.detach().clone()
    loss = train_step(
        model, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters()),
        precision=fp16, task="multiclass",
    )  # fmt: skip
    assert loss.dtype is torch.float32 and not torch.equal(model.weight, before)
    state = fp16.state_dict()
    assert state["scale"] > 0
    again = Precision("fp16", "cuda")
    again.load_state_dict(state)
    assert again.state_dict()["scale"] == state["scale"]


# -- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("auto", "auto"),
        (" Auto ", "auto"),
        ("cpu", "cpu"),
        ("cpu:0", "cpu"),
        ("CPU:0", "cpu"),
        ("cpu:2", "cpu:2"),
        ("cuda", "cuda"),
        ("cuda:0", "cuda:0"),
        ("cuda:1", "cuda:1"),
        ("mps", "mps"),
        ("mps:0", "mps"),
    ],
)
def test_device_spellings(text, canonical):
    assert parse_device(text) == canonical


@pytest.mark.parametrize("text", ["tpu", "gpu", "cuda:", "cuda:-1", "cpu:x", "auto:0", "cuda1"])
def test_a_bad_device_is_the_same_one_line_error_everywhere(text):
    expected = f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or mps"
    for where in (
        lambda: parse_device(text),
        lambda: resolve_device(text),
        lambda: Trainer("linear", "circles", device=text),
        lambda: zoo.bench("linear", "circles", devices=f"cpu,{text}"),
    ):
        with pytest.raises(UsageError) as info:
            where()
        assert str(info.value) == expected


def test_cli_bad_device_reads_the_same_for_train_and_bench(tmp_path):
    runner = CliRunner()
    bench = runner.invoke(cli, ["bench", "-m", "linear", "-d", "circles", "--device", "tpu"])
    train = runner.invoke(
        cli,
        ["train", "-m", "linear", "-d", "circles", "--device", "tpu", "--out", str(tmp_path / "r")],
    )
    assert bench.exit_code == train.exit_code == 2
    expected = "error: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"
    assert bench.stderr.strip() == train.stderr.strip() == expected


def test_cpu_0_works_for_bench_and_train(tmp_path):
    runner = CliRunner()
    bench = runner.invoke(
        cli,
        ["bench", "-m", "linear", "-d", "circles", "--device", "cpu:0,cpu", "--mode", "infer",
         "--threads", "1", "--min-run-time", "0.02", "--warmup", "0", "--json", "-", "-q"],
    )  # fmt: skip
    assert bench.exit_code == 0, bench.output
    assert '"device": "cpu"' in bench.stdout and "cpu:0" not in bench.stdout  # one device
    train = runner.invoke(
        cli,
        ["train", "-m", "linear", "-d", "circles", "--device", "cpu:0", "--epochs", "1",
         "--out", str(tmp_path / "run"), "--quiet"],
    )  # fmt: skip
    assert train.exit_code == 0, train.output
    assert Trainer("linear", "circles", device="cpu:0").device == CPU


def test_an_absent_device_is_refused_in_one_line():
    assert unavailable_reason("cpu:1") == (
        "device 'cpu:1' is not available: the CPU is one device, cpu:0"
    )
    assert unavailable_reason("cpu:0") is None
    assert resolve_device("cpu:0") == resolve_device("cpu") == CPU
    if HAS_CUDA:
        assert resolve_device("auto") == torch.device("cuda", torch.cuda.current_device())
        assert resolve_device("cuda").index is not None  # CUDA calls need the index
    else:
        assert unavailable_reason("cuda:1") == (
            "device 'cuda:1' is not available: no CUDA GPU (try --device cpu)"
        )


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("fp32", "fp32"), ("float32", "fp32"), ("float", "fp32"), ("32", "fp32"),
        ("FP32", "fp32"), ("bf16", "bf16"), ("bfloat16", "bf16"), ("fp16", "fp16"),
        ("float16", "fp16"), ("16", "fp16"), ("half", "fp16"),
    ],
)  # fmt: skip
def test_precision_aliases_are_one_table(alias, name):
    assert parse_precision(alias) == name
    assert PRECISION_ALIASES.get(alias.lower()) == name


def test_bench_and_trainer_read_precision_aliases_alike():
    plan = make_plan(Grid("linear", "circles", "auto", "cpu", 8, "bfloat16,32,float", "train"))
    assert plan.config["precisions"] == ["bf16", "fp32"]
    trainer = Trainer("linear", "circles", device="cpu", precision="bfloat16")
    assert trainer.precision == "bf16" and trainer.precision_plugin.autocast_dtype is torch.bfloat16
    for where in (
        lambda: parse_precision("fp8"),
        lambda: Trainer("linear", "circles", device="cpu", precision="fp8"),
        lambda: make_plan(Grid("linear", "circles", "auto", "cpu", 8, "fp8", "train")),
    ):
        with pytest.raises(UsageError) as info:
            where()
        assert str(info.value) == "unknown precision 'fp8'; use one of fp32, bf16, fp16"
