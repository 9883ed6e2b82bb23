"""How fast is listing? `zoo list` against torchvision's and timm's model listings.

Each contender runs in a fresh interpreter (what a user at a shell pays), interleaved
(zoo, torchvision, timm, zoo, ...) so machine noise hits all of them alike. Two figures per
contender: the whole command's wall time, and the in-process time of import + listing
(interpreter start-up excluded). Goal: zoo at least 10x faster than both.

Then large listings, each in a fresh interpreter: `zoo list pretrained` with a local registry
(``$ZOO_REGISTRY``) of 100 / 1,000 / 10,000 entries, and `zoo list models` with a plugin of
10,000 models. Goal: 10,000 of either well under a second.

    python benchmarks/list_speed.py [--rounds 7] [--sizes 100,1000,10000] [--only-large]
        [--baseline CHECKOUT]

``--baseline CHECKOUT`` times another checkout's large listings in the same rounds, each run
paired with one of this checkout (before/after a change: ``git worktree add /tmp/before
HEAD``). Or run the whole script against another checkout with ``PYTHONPATH=CHECKOUT`` (the
subprocesses run outside this directory, so that checkout's ``zoo`` is the one imported).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def write_registry(root: Path, n: int) -> Path:
    """A local registry of ``n`` entries for zoo's own ``mlp`` (all sharing one small file)."""
    root.mkdir(parents=True)
    data = b"weights"
    (root / "w.safetensors").write_bytes(data)
    ref = {"url": "w.safetensors", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    entries = [
        {
            "name": f"mlp.t{i}",
            "model": "mlp",
            "plugin": "workflow",
            "dist": "zoo",
            "kwargs": {"in_features": 4, "num_classes": 3},
            "files": [ref],
            "metrics": {"accuracy": 0.9, "loss": 0.3},
            "dataset": "iris",
        }  # fmt: skip
        for i in range(n)
    ]
    (root / "index.json").write_text(json.dumps({"schema": 2, "entries": entries}))
    return root


def write_plugin(site: Path, n: int) -> Path:
    """An installed plugin (dist-info + module) registering ``n`` models."""
    info = site / "bench_many-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-many\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[zoo]\nbench_many = bench_many\n")
    (site / "bench_many.py").write_text(
        "import zoo\n\n@zoo.hookimpl\ndef register_models(register):\n"
        f"    for i in range({n}):\n"
        "        register(f'many-{i}', 'bench_many:Model', task='multiclass')\n"
    )
    return site


LISTED = {  # in-process: import + the listing itself (no output formatting)
    "pretrained": "import zoo.hub.index as h; names = h.pretrained_listing()",
    "models": "import zoo; names = zoo.list_models()",
}


def large_listings(sizes: list[int], rounds: int, baseline: str | None = None) -> None:
    """Median wall time of `zoo list pretrained` (a local registry of N entries) and of
    `zoo list models` with a plugin of the largest N models, each in a fresh interpreter; the
    command's CPU time (user + sys: what a busy machine disturbs least); and the in-process
    time of import + listing (no output formatting). With ``baseline`` (another checkout),
    each run of this checkout is paired with one of that one, in the same rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # bytecode is written (an installed package has it): the untimed first round writes it
        skip = ("ZOO_", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        env["ZOO_HOME"] = str(base / "home")
        cases = []
        for n in sizes:
            registry = write_registry(base / f"reg{n}", n)
            cases.append((f"zoo list pretrained ({n:,} entries)", "pretrained",
                          {**env, "ZOO_REGISTRY": str(registry)}))  # fmt: skip
        site = write_plugin(base / "site", max(sizes))
        cases.append((f"zoo list models (+{max(sizes):,} plugin models)", "models",
                      _with_path(env, str(site))))  # fmt: skip
        checkouts = {"before": baseline, "after": None} if baseline else {"": None}
        times: dict[tuple[str, str], dict[str, list[float]]] = {}
        rows: dict[str, int] = {}
        for round_ in range(rounds + 1):
            for name, kind, case_env in cases:
                for label, checkout in checkouts.items():
                    run_env = _with_path(case_env, checkout) if checkout else case_env
                    got = times.setdefault((name, label), {"wall": [], "cpu": [], "inner": []})
                    if round_ == 0:
                        got = {"wall": [], "cpu": [], "inner": []}  # the untimed first round
                    before = _children_cpu()
                    start = time.perf_counter()
                    out = subprocess.run(
                        [sys.executable, "-m", "zoo", "list", kind], capture_output=True,
                        text=True, env=run_env, cwd=tmp, check=True,
                    )  # fmt: skip
                    got["wall"].append(time.perf_counter() - start)
                    got["cpu"].append(_children_cpu() - before)
                    rows[name] = len(out.stdout.splitlines()) - 2  # header and rule
                    code = TEMPLATE.format(code=LISTED[kind])
                    out = subprocess.run(
                        [sys.executable, "-c", code], capture_output=True, text=True,
                        env=run_env, cwd=tmp, check=True,
                    )  # fmt: skip
                    got["inner"].append(float(out.stdout.split()[0]))
    print(f"\nlarge listings, rounds: {rounds} (medians, fresh interpreter each)")
    print(f"{'command':48} {'':6} {'rows':>7} {'wall ms':>9} {'cpu ms':>8} {'import+list ms':>15}")
    for name, *_ in cases:
        for label in checkouts:
            t = {k: statistics.median(v) * 1e3 for k, v in times[name, label].items()}
            print(f"{name:48} {label:6} {rows[name]:7d} {t['wall']:9.1f} {t['cpu']:8.1f} "
                  f"{t['inner']:15.1f}")  # fmt: skip


def _with_path(env: dict[str, str], first: str) -> dict[str, str]:
    """``env`` with ``first`` at the front of ``PYTHONPATH``."""
    paths = [first, env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default="100,1000,10000", help="Pretrained registry sizes.")
    parser.add_argument("--only-large", action="store_true", help="Skip the contenders.")
    parser.add_argument(
        "--baseline", metavar="CHECKOUT", help="Also time this checkout's large listings."
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    if not args.only_large:
        contenders(args.rounds)
    large_listings(sizes, args.rounds, args.baseline)


def contenders(rounds: int) -> None:
    """zoo's listing against torchvision's and timm's."""
    args = argparse.Namespace(rounds=rounds)
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
