"""Whole process: ``zoo train`` against a hand-written script doing the same work.

Both are real processes started the same way (``python ...``), alternating, so the comparison
counts everything a user waits for: interpreter start, imports, loading the data, five epochs
of TinyVGG (hidden 64) on scikit-learn's digits with Adam (lr 1e-3, batch 32), an evaluation
of the test split after every epoch with a per-epoch line, and the weights saved as
safetensors at the end. zoo additionally loads its plugins, writes its run directory
(checkpoint each epoch, ``run.json``, metrics files, a loss plot) — the price of the tool;
``zoo --no-plot`` is timed beside it to show what drawing the curves costs.

    python benchmarks/whole_process.py [--rounds 3] [--epochs 5] [--json F]

The goal (issue 14) is a zoo/script ratio of the medians within 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# The script a PyTorch user would write for the same job (the classic workflow of the seed
# notes): same split (80/20 stratified, seed 42), same standardisation (train pixel mean/std),
# same model, optimizer, batch size, shuffling and per-epoch test evaluation.
HAND_WRITTEN = textwrap.dedent(
    """
    import sys, time
    import numpy as np, torch
    from torch import nn
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    epochs, out = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 1, 8, 8)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
    mean, std = Xtr.mean(), Xtr.std()
    Xtr = torch.as_tensor((Xtr - mean) / std, dtype=torch.float32)
    Xte = torch.as_tensor((Xte - mean) / std, dtype=torch.float32)
    ytr, yte = torch.as_tensor(ytr), torch.as_tensor(yte)

    def block(c_in, hidden=64):
        return nn.Sequential(
            nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )

    model = nn.Sequential(block(1), block(64), nn.Flatten(), nn.Linear(64 * 2 * 2, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total = correct = 0.0
        for idx in torch.randperm(len(Xtr)).split(32):
            xb, yb = Xtr[idx], ytr[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        model.eval()
        with torch.inference_mode():
            logits = model(Xte)
            test_loss = loss_fn(logits, yte).item()
            test_acc = (logits.argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch}/{epochs} train_loss {total / len(ytr):.4f} "
              f"train_accuracy {correct / len(ytr):.4f} test_loss {test_loss:.4f} "
              f"test_accuracy {test_acc:.4f} {time.perf_counter() - start:.2f}s", flush=True)
    save_file(model.state_dict(), out)
    """
)


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times: dict[str, list[float]] = {"script": [], "zoo": [], "zoo --no-plot": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train_digits.py"
        script.write_text(HAND_WRITTEN)
        for r in range(args.rounds):
            out = Path(tmp) / f"run{r}"
            zoo = [sys.executable, "-m", "zoo", "train", "--model", "tinyvgg", "--dataset",
                   "digits", "--epochs", str(args.epochs), "--threads", "1"]  # fmt: skip
            commands = {
                "script": [sys.executable, str(script), str(args.epochs), f"{out}.safetensors"],
                "zoo": [*zoo, "--out", str(out)],
                "zoo --no-plot": [*zoo, "--out", f"{out}-no-plot", "--no-plot"],
            }
            order = list(commands) if r % 2 == 0 else list(reversed(commands))
            for name in order:
                times[name].append(_wall(commands[name], env))
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "epochs": args.epochs,
        "rounds": args.rounds,
        "wall_s": times,
        "median_s": median,
        "ratio_zoo_over_script": median["zoo"] / median["script"],
        "ratio_zoo_no_plot_over_script": median["zoo --no-plot"] / median["script"],
    }
    print(f"{'':14} {'median s':>9}  runs")
    for name, values in times.items():
        print(f"{name:14} {median[name]:9.2f}  " + " ".join(f"{v:.2f}" for v in values))
    print(
        f"zoo / script (medians): {result['ratio_zoo_over_script']:.3f}  (goal <= 1.05); "
        f"with --no-plot: {result['ratio_zoo_no_plot_over_script']:.3f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
