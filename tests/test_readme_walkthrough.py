"""The README's transfer-learning walk-through runs as written (issue 12).

Every ``$`` line of the block after ``<!-- walkthrough -->`` runs in a shell, in order, in a
fresh folder with its own zoo home; each must exit 0, and every other line of the block
(what the README shows it printing) must appear in that command's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough() -> list[tuple[str, list[str]]]:
    """``[(command, [lines it is shown printing])]`` from the README's walk-through block."""
    text = README.read_text()
    block = re.search(r"<!-- walkthrough -->\n```console\n(.*?)```", text, re.S)
    assert block, "README has no walk-through block"
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip():
            steps[-1][1].append(line.strip())
    return steps


def test_the_walkthrough_runs_as_written(tmp_path):
    steps = walkthrough()
    assert [c.split()[1] for c, _ in steps if c.startswith("zoo ")][:4] == [
        "train", "evaluate", "predict", "predict",
    ]  # fmt: skip
    env = {
        **os.environ,
        "ZOO_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("ZOO_REGISTRY", None)
    for command, shown in steps:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, (command, output)
        lines = [" ".join(line.split()) for line in output.splitlines()]
        for want in shown:
            assert " ".join(want.split()) in lines, (command, want, output)
        if "--proba" in command:
            probs = [float(v) for v in done.stdout.split()]
            assert len(probs) == 3 and all(0.0 <= p <= 1.0 for p in probs)
    assert (tmp_path / "my-registry" / "mlp.cancer-head.md").is_file()
