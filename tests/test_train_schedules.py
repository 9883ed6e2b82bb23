"""Schedules and step options (--scheduler, --warmup-epochs, --clip-grad, --accumulate,
--label-smoothing): checked against torch's own schedulers and a hand-written loop, resumed
bit for bit, and refused before any work when bad."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from test_train_resume import checkpoint_epoch, kill_in_epoch_2
from torch import nn

from zoo.cli import cli
from zoo.train.schedule import Schedule
from zoo.train.trainer import Trainer


def zoo_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def factors(schedule, epochs, spe):
    return [schedule.factor(e, k) for e in range(1, epochs + 1) for k in range(spe)]


def torch_lrs(make, epochs, spe, values=None):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    out = []
    for e in range(epochs):
        for _ in range(spe):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if values is None:
                sched.step()
        if values is not None:
            sched.step(values[e])
    return out


def test_schedules_match_torchs_own():
    epochs, spe = 6, 5
    mine = factors(Schedule("cosine", lr=1, epochs=epochs, steps_per_epoch=spe, warmup_epochs=0),
                   epochs, spe)  # fmt: skip
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, epochs * spe), 6, 5)
    np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-12)

    mine = factors(Schedule("step", lr=1, epochs=epochs, steps_per_epoch=spe, warmup_epochs=0),
                   epochs, spe)  # fmt: skip
    step = torch.optim.lr_scheduler.StepLR
    ref = torch_lrs(lambda o: step(o, 2 * spe, gamma=0.1), epochs, spe)  # every epochs // 3
    np.testing.assert_allclose(mine, ref, rtol=1e-9)

    values = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8]
    plateau = Schedule("plateau", lr=1, epochs=10, steps_per_epoch=1, warmup_epochs=0)
    mine = []
    for e, v in enumerate(values, 1):
        mine.append(plateau.factor(e, 0))
        plateau.end_epoch(v)
    reduce = torch.optim.lr_scheduler.ReduceLROnPlateau
    ref = torch_lrs(lambda o: reduce(o, factor=0.1, patience=2), 10, 1, values)
    np.testing.assert_allclose(mine, ref, rtol=1e-9)

    one = Schedule("onecycle", lr=1, epochs=10, steps_per_epoch=10, warmup_epochs=0)
    lrs = factors(one, 10, 10)
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0)
    assert int(np.argmax(lrs)) == 30 and lrs[-1] < 1e-3  # up for 30% of the run, then down

    warm = Schedule(None, lr=1, epochs=4, steps_per_epoch=4, warmup_epochs=2)
    assert factors(warm, 4, 4) == pytest.approx([k / 8 for k in range(1, 9)] + [1.0] * 8)


def test_the_step_options_match_a_hand_written_loop():
    """SGD with cosine, clipping and label smoothing, against the loop written by hand."""
    X, y = data()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    start = copy.deepcopy(model)
    epochs, batch, clip, eps = 3, 32, 0.05, 0.2
    trainer = Trainer(model, (X, y), epochs=epochs, batch_size=batch, optimizer="sgd", lr=0.5,
                      shuffle=False, scheduler="cosine", clip_grad=clip, label_smoothing=eps,
                      train_metrics=False, quiet=True)  # fmt: skip
    Xtr, ytr = trainer._local.load("train")
    trainer.fit()

    ref = start
    opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    steps = -(-len(ytr) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        for i in range(0, len(ytr), batch):
            xb, yb = Xtr[i : i + batch], ytr[i : i + batch].float()
            loss = loss_fn(ref(xb).squeeze(1), yb * (1 - eps) + eps / 2)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(ref.parameters(), clip)
            opt.step()
            sched.step()
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_accumulating_two_half_batches_is_one_whole_batch():
    X, y = data(256)
    weights = []
    for batch, accumulate in ((32, 1), (16, 2)):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        Trainer(model, (X, y), epochs=2, batch_size=batch, accumulate=accumulate, lr=0.1,
                optimizer="sgd", shuffle=False, train_metrics=False, quiet=True).fit()  # fmt: skip
        weights.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def untimed(history):
    return [{k: v for k, v in r.items() if "seconds" not in k and "_s" not in k} for r in history]


def test_plateau_state_resumes_exactly(tmp_path):
    settings = dict(scheduler="plateau", warmup_epochs=1, accumulate=3, clip_grad=0.5,
                    label_smoothing=0.1, lr=0.05, batch_size=16, quiet=True)  # fmt: skip
    whole = Trainer("mlp", "moons", epochs=4, out=tmp_path / "a", **settings).fit()
    Trainer("mlp", "moons", epochs=2, out=tmp_path / "b", **settings).fit()
    resumed = Trainer.resumed(tmp_path / "b", epochs=4).fit()
    assert untimed(resumed.history) == untimed(whole.history)
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    """onecycle (its rates depend on the whole run), accumulation, clipping, smoothing."""
    flags = ["--model", "mlp", "--dataset", "circles", "--dataset-arg", "n_samples=4000",
             "--batch-size", "8", "--epochs", "3", "--scheduler", "onecycle", "--warmup-epochs",
             "1", "--accumulate", "3", "--clip-grad", "0.5", "--label-smoothing", "0.1",
             "--device", "cpu", "--quiet"]  # fmt: skip
    reference = Trainer(
        "mlp", "circles", dataset_kwargs={"n_samples": 4000}, batch_size=8, epochs=3,
        scheduler="onecycle", warmup_epochs=1, accumulate=3, clip_grad=0.5, label_smoothing=0.1,
        device="cpu", quiet=True,
    ).fit()  # fmt: skip
    run = tmp_path / "killed"
    kill_in_epoch_2(["train", *flags, "--out", str(run)], run)
    assert checkpoint_epoch(run) in (1, 2)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    resumed = load_file(run / "model.safetensors")
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed[key], value), key
    info = json.loads((run / "run.json").read_text())
    assert info["result"]["metrics"] == reference.metrics
    assert info["settings"]["scheduler"] == "onecycle" and info["settings"]["accumulate"] == 3


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--accumulate", "0"], "--accumulate must be a positive integer, got 0"),
        (["--clip-grad", "-1"], "--clip-grad must be a positive norm, got -1.0"),
        (["--scheduler", "linear"], "unknown scheduler 'linear'; use one of cosine, onecycle"),
        (["--warmup-epochs", "5", "--epochs", "5"], "warmup epochs (5) must be fewer than"),
        (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
        (["-d", "diabetes", "--label-smoothing", "0.1"], "is for classification"),
    ],
)
def test_bad_step_options_are_usage_errors_before_any_work(tmp_path, flags, expected):
    out = tmp_path / "run"
    r = zoo_cli("train", "-m", "mlp", "-d", "circles", *flags, "--out", out)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert not out.exists()


def test_the_settings_are_recorded_and_a_recipe_takes_them(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "mlp"\ndataset = "circles"\nepochs = 2\nscheduler = "step"\n'
                      "clip_grad = 1.0\naccumulate = 2\nlabel_smoothing = 0.05\n")  # fmt: skip
    trainer = Trainer.from_recipe(recipe, quiet=True)
    settings = trainer.settings()
    assert (settings["scheduler"], settings["clip_grad"], settings["accumulate"]) == ("step", 1, 2)
    assert settings["label_smoothing"] == 0.05 and settings["warmup_epochs"] == 0


# -- train metrics from the training pass -------------------------------------------------------


def test_train_metrics_come_from_the_training_pass_unless_exact():
    X, y = data(160)
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    start = copy.deepcopy(model)
    trainer = Trainer(model, (X, y), epochs=1, batch_size=16, optimizer="sgd", lr=0.3,
                      shuffle=False, quiet=True)  # fmt: skip
    Xtr, ytr = trainer._local.load("train")
    row = trainer.fit().history[0]

    ref, correct = start, 0  # the hand-written loop, counting hits before each step
    opt = torch.optim.SGD(ref.parameters(), lr=0.3)
    for i in range(0, len(ytr), 16):
        xb, yb = Xtr[i : i + 16], ytr[i : i + 16].float()
        out = ref(xb).squeeze(1)
        correct += int(((out > 0).float() == yb).sum())
        loss = nn.functional.binary_cross_entropy_with_logits(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert row["train_accuracy"] == pytest.approx(correct / len(ytr))

    exact = Trainer(copy.deepcopy(start), (X, y), epochs=1, batch_size=16, optimizer="sgd",
                    lr=0.3, shuffle=False, exact_train_metrics=True, quiet=True)  # fmt: skip
    row = exact.fit().history[0]
    assert row["train_accuracy"] == pytest.approx(exact.evaluate("train")["accuracy"])
    assert row["eval_seconds"] > 0
