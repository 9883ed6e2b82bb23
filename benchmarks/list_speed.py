"""How fast is listing? `zoo list` against torchvision's and timm's model listings.

Each contender runs in a fresh interpreter (what a user at a shell pays), interleaved
(zoo, torchvision, timm, zoo, ...) so machine noise hits all of them alike. Two figures per
contender: the whole command's wall time, and the in-process time of import + listing
(interpreter start-up excluded). Goal: zoo at least 10x faster than both.

    python benchmarks/list_speed.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

IN_PROCESS = {
    "zoo list": "import zoo; names = zoo.list_models() + zoo.list_losses() + zoo.list_datasets()",
    "torchvision.models.list_models()": "import torchvision.models as m; names = m.list_models()",
    "timm.list_models()": "import timm; names = timm.list_models()",
}
TEMPLATE = (
    "import time; t0 = time.perf_counter(); {code}; print(time.perf_counter() - t0, len(names))"
)


def run_once(code: str) -> tuple[float, float, int]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", TEMPLATE.format(code=code)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    inner, count = out.stdout.split()
    return wall, float(inner), int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {k: [] for k in IN_PROCESS}
    inner: dict[str, list[float]] = {k: [] for k in IN_PROCESS}
    counts: dict[str, int] = {}
    cli: list[float] = []
    for _ in range(args.rounds):
        for name, code in IN_PROCESS.items():
            wall, t, count = run_once(code)
            walls[name].append(wall)
            inner[name].append(t)
            counts[name] = count
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, check=True)
        cli.append(time.perf_counter() - start)

    zoo_wall = statistics.median(walls["zoo list"])
    zoo_inner = statistics.median(inner["zoo list"])
    print(f"rounds: {args.rounds} (medians; interleaved, fresh interpreter each)")
    print(f"{'contender':36} {'entries':>7} {'wall ms':>9} {'import+list ms':>15} "
          f"{'wall ratio':>10} {'in-proc ratio':>13}")  # fmt: skip
    for name in IN_PROCESS:
        w, t = statistics.median(walls[name]), statistics.median(inner[name])
        print(
            f"{name:36} {counts[name]:7d} {w * 1e3:9.1f} {t * 1e3:15.1f} "
            f"{w / zoo_wall:9.1f}x {t / zoo_inner:12.1f}x"
        )
    print(f"{'`python -m zoo list` (whole CLI)':36} {'':7} {statistics.median(cli) * 1e3:9.1f}")


if __name__ == "__main__":
    main()
