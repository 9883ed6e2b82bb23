#!/usr/bin/env bash
# Exercise the CUDA paths of the bench harness (and a short `zoo train`) on a GPU machine.
#
#   benchmarks/gpu_check.sh DIR
#
# Needs only this checkout and a Python with torch (CUDA build) and zoo's other dependencies;
# it installs zoo itself (editable, no network needed when the dependencies are there). Each
# step's stdout/stderr/exit code, the bench JSON/CSV/PNG, exported weights, the harness
# accuracy figures and summary.json (every check, ok or not) land in DIR. A failing step does
# not stop the others; the exit code is 0 only when every check passed. About 3 minutes on
# one H200, pip install included; it ends within ZOO_GPU_CHECK_BUDGET seconds (285) in any
# case: each step's timeout is cut to the time left, and a step with none left is skipped
# (its checks fail, saying so). The steps new since the last GPU run go first.
#
# ZOO_GPU_CHECK_DEVICE=cpu runs the same steps on the CPU, to check the script itself on a
# machine without a GPU (the CUDA-only checks are then left out); ZOO_GPU_CHECK_IMAGE=64 and
# ZOO_GPU_CHECK_BATCH=2 shrink the synthetic 3x224x224, batch-32 rows for such a dry run;
# ZOO_GPU_CHECK_INSTALL=0 leaves out the pip install where zoo is installed from here already.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: benchmarks/gpu_check.sh DIR" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
DEV="${ZOO_GPU_CHECK_DEVICE:-cuda}"
STEP_TIMEOUT="${ZOO_GPU_CHECK_STEP_TIMEOUT:-150}"  # seconds per step: a hang fails one step
BUDGET="${ZOO_GPU_CHECK_BUDGET:-285}"  # seconds for the whole script (bash's SECONDS)
IMG="${ZOO_GPU_CHECK_IMAGE:-224}"  # synthetic input 3 x IMG x IMG
SBATCH="${ZOO_GPU_CHECK_BATCH:-32}"  # batch size of the synthetic rows
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
cd "$ROOT"

# -- install zoo from this checkout (without touching torch & co when they are present) ------
echo "== install zoo (editable) from $ROOT with $PY"
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_RETRIES=1 PIP_TIMEOUT=20
DEPS="import torch, torchvision, pluggy, click, safetensors, numpy, sklearn, matplotlib"
install_zoo() {  # offline with the installed setuptools, else with an isolated build env
    "$PY" -m pip install --no-deps --no-build-isolation -e . \
        || "$PY" -m pip install --no-deps -e .
}
if [ "${ZOO_GPU_CHECK_INSTALL:-1}" = 0 ]; then  # zoo is installed from here already
    echo "   skipped (ZOO_GPU_CHECK_INSTALL=0)"
elif ! install_zoo >"$OUT/pip.log" 2>&1 || ! "$PY" -c "$DEPS" >>"$OUT/pip.log" 2>&1; then
    echo "   zoo or its dependencies not installed yet: pip install -e . (needs network)"
    "$PY" -m pip install -e . >>"$OUT/pip.log" 2>&1 || true
fi
INSTALLED="import os, sys, zoo, importlib.metadata as md
sys.exit(not (os.path.realpath(zoo.__file__).startswith(sys.argv[1] + os.sep)
              and md.entry_points(group='zoo')))"
if ! (cd / && "$PY" -c "$INSTALLED" "$ROOT"); then  # from /: not the checkout's ./zoo
    echo "zoo from $ROOT is not installed (with its plugins); see $OUT/pip.log" >&2
    exit 2
fi
if [ "$DEV" = "cuda" ]; then
    if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
        echo "no CUDA device visible to torch" >&2
        exit 3
    fi
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
fi

run() {  # run NAME CMD...: CMD's stdout/stderr/exit code kept in DIR/NAME.{txt,err,rc}
    local name="$1" rc=0 left=$((BUDGET - SECONDS - 10))  # 10 s kept for the checks
    shift
    echo "== $name"
    if [ "$left" -lt 5 ]; then
        echo "skipped: the ${BUDGET}s budget was spent (after ${SECONDS}s)" | tee "$OUT/$name.err"
        : >"$OUT/$name.txt"
        echo 124 >"$OUT/$name.rc"
        return
    fi
    timeout "$((left < STEP_TIMEOUT ? left : STEP_TIMEOUT))" "$@" \
        >"$OUT/$name.txt" 2>"$OUT/$name.err" || rc=$?
    echo "$rc" >"$OUT/$name.rc"
    echo "   exit $rc (${SECONDS}s so far)"
}

# 0. New since the last GPU run, so first: synthetic input (resnet18 and mobilenet-v3-small at
#    3x224x224: FLOPs, %peak), channels-last, torch.compile (one infer row: compiling costs
#    tens of seconds), and merge of the three results.
SHAPE="3x${IMG}x${IMG}"
run bench_synthetic "$PY" -m zoo bench --model resnet18,mobilenet-v3-small --input-shape "$SHAPE" \
    --device "$DEV" --precision fp32,bf16 --mode infer,train --batch-size "$SBATCH" \
    --json "$OUT/bench_synthetic.json"
run bench_chlast "$PY" -m zoo bench --model resnet18 --input-shape "$SHAPE" --device "$DEV" \
    --precision bf16 --mode infer,train --batch-size "$SBATCH" --channels-last \
    --json "$OUT/bench_chlast.json"
run bench_compile "$PY" -m zoo bench --model resnet18 --input-shape "$SHAPE" --device "$DEV" \
    --precision bf16 --mode infer --batch-size "$SBATCH" --compile --channels-last \
    --json "$OUT/bench_compile.json"
run bench_merge "$PY" -m zoo bench merge "$OUT/bench_synthetic.json" "$OUT/bench_chlast.json" \
    "$OUT/bench_compile.json" --json "$OUT/bench_merged.json" --plot "$OUT/bench_merged.png"
cat "$OUT/bench_merge.txt"

# 1. Every mode at fp32, bf16 and fp16 on one model, the GPU beside the CPU, with export.
run bench_modes "$PY" -m zoo bench --model tinyvgg --dataset digits --device "$DEV",cpu \
    --precision fp32,bf16,fp16 --mode infer,train,fit --batch-size 64,1024 --epochs 2 \
    --json "$OUT/bench_modes.json" --csv "$OUT/bench_modes.csv" --plot "$OUT/bench_modes.png" \
    --export "$OUT/weights"

# 2. Several models, datasets and losses, each combination in its own process, on an
#    explicitly indexed device (cuda:0).
ISO_DEV="$DEV"
if [ "$DEV" = "cuda" ]; then ISO_DEV="cuda:0"; fi
run bench_isolate "$PY" -m zoo bench --model 'mlp,tinyvgg' --dataset digits,breast-cancer \
    --loss auto,bce --device "$ISO_DEV" --precision fp32,bf16 --mode infer,train --isolate \
    --json "$OUT/bench_isolate.json"

# 3. Out of memory: cap the process to a sliver of the GPU; the batch size must decay.
if [ "$DEV" = "cuda" ]; then
    ZOO_BENCH_CUDA_MEMORY_FRACTION=0.002 run bench_oom "$PY" -m zoo bench --model tinyvgg \
        --dataset digits --device "$DEV" --mode infer,train --batch-size 262144 \
        --json "$OUT/bench_oom.json"
fi

# 4. compare (a file with itself: nothing regressed, exit 0).
run compare "$PY" -m zoo bench compare "$OUT/bench_modes.json" "$OUT/bench_modes.json"

# 5. The trainer on the device.
run train "$PY" -m zoo train --model tinyvgg --dataset digits --device "$DEV" --precision bf16 \
    --epochs 2 --out "$OUT/train_run" --json

# 6. Harness vs torch.utils.benchmark on the device (figures, no pass/fail on their values).
run harness_accuracy "$PY" benchmarks/harness_accuracy.py --device "$DEV" --batch-size 1024 \
    --pairs 5 --json "$OUT/harness_accuracy.json"
cat "$OUT/harness_accuracy.txt"

status=0
"$PY" - "$OUT" "$DEV" "$IMG" "$SECONDS" "$BUDGET" <<'PYCHECK' || status=1
import json
import sys
from pathlib import Path

out, dev = Path(sys.argv[1]), sys.argv[2]
image, seconds, budget = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
checks = {}


def check(name, test):
    """Record one check; a check that raises fails with the exception as its detail."""
    try:
        result = test()
        ok, detail = result if isinstance(result, tuple) else (result, "")
    except Exception as exc:  # a missing file or field fails this check only
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    checks[name] = {"ok": bool(ok), "detail": str(detail)[:500]}
    print(f"ok   {name}" if ok else f"FAIL {name}: {str(detail)[:500]}")


def exit_ok(name):
    rc = int((out / f"{name}.rc").read_text())
    return rc == 0, f"exit {rc}: {(out / f'{name}.err').read_text()[-300:]}"


def rows(name):
    return json.loads((out / f"{name}.json").read_text())["rows"]


def no_errors(name):
    bad = [
        f"{r['mode']} {r['precision']} b{r['batch_size']}: {r['error']}"
        for r in rows(name)
        if r["error"]
    ]
    return not bad, "; ".join(bad)


def on_dev(name):
    return [r for r in rows(name) if r["device"] == dev]


def modes_precisions():
    want = {"fp32", "bf16", "fp16"} if dev == "cuda" else {"fp32", "bf16"}
    got = {r["precision"] for r in on_dev("bench_modes")}
    return got == want, f"want {sorted(want)}, got {sorted(got)}"


def fit_accuracy():
    fits = {r["precision"]: r["metric"] for r in on_dev("bench_modes")
            if r["mode"] == "fit" and r["batch_size"] == 64}
    return bool(fits) and all((v or 0) > 0.5 for v in fits.values()), fits


def gpu_names():
    names = {r["device_name"] for r in on_dev("bench_modes")}
    return bool(names) and all(n and "cpu" not in n.lower() for n in names), names


def gpu_faster_than_cpu():
    speed = {r["device"]: r["samples_per_s"] for r in rows("bench_modes")
             if r["mode"] == "infer" and r["precision"] == "fp32" and r["batch_size"] == 1024}
    return (speed.get(dev) or 0) > (speed.get("cpu") or float("inf")), speed


def oom_decayed():
    oom = rows("bench_oom")
    ok = len(oom) == 2 and all(
        r["effective_batch_size"] and r["effective_batch_size"] < r["batch_size"] for r in oom
    )
    return ok, "; ".join(f"{r['mode']}: {r['note']} / {r['error']}" for r in oom)


check("bench_modes exit 0", lambda: exit_ok("bench_modes"))
check("bench_modes no row errors", lambda: no_errors("bench_modes"))
check("bench_modes precisions on the device", modes_precisions)
check("bench_modes modes on the device",
      lambda: {r["mode"] for r in on_dev("bench_modes")} == {"infer", "train", "fit"})
check("bench_modes exported weights", lambda: all(
    r["export"] and Path(r["export"]).exists() for r in on_dev("bench_modes") if r["mode"] == "fit"))
check("fit at b64 reaches accuracy > 0.5 at every precision", fit_accuracy)
if dev == "cuda":
    check("cuda rows name the GPU", gpu_names)
    check("cuda peak memory from max_memory_allocated", lambda: on_dev("bench_modes") and all(
        r["memory_kind"] == "cuda_max_allocated" and (r["peak_memory_bytes"] or 0) > 0
        for r in on_dev("bench_modes")))
    check("fp16 train rows ran (GradScaler)", lambda: any(
        r["mode"] == "train" and r["precision"] == "fp16" and r["samples_per_s"]
        for r in on_dev("bench_modes")))
    check("cuda infers faster than cpu at b1024 fp32", gpu_faster_than_cpu)

check("bench_isolate exit 0", lambda: exit_ok("bench_isolate"))
check("bench_isolate no row errors", lambda: no_errors("bench_isolate"))
check("bench_isolate ran bce on mlp/breast-cancer", lambda: any(
    r["loss"] == "bce" and r["dataset"] == "breast-cancer" for r in rows("bench_isolate")))
if dev == "cuda":
    check("bench_oom exit 0", lambda: exit_ok("bench_oom"))
    check("oom decays the batch size", oom_decayed)
check("compare of a file with itself exits 0", lambda: exit_ok("compare"))


def resnet_gmacs():
    # torchvision's resnet18 at 224x224: 1.82 GMACs a sample (forward), about in proportion
    # to the image's area at other sizes
    scale = (image / 224) ** 2
    got = [r["gmacs"] / r["effective_batch_size"] for r in rows("bench_synthetic")
           if r["model"] == "resnet18" and r["mode"] == "infer"]
    return got and all(1.7 * scale < g < 1.95 * scale for g in got), got


for name in ("bench_synthetic", "bench_chlast", "bench_compile", "bench_merge"):
    check(f"{name} exit 0", lambda name=name: exit_ok(name))
for name in ("bench_synthetic", "bench_chlast", "bench_compile"):
    check(f"{name} no row errors", lambda name=name: no_errors(name))
check("synthetic rows record their input", lambda: all(
    r["input"] == "synthetic" and r["input_shape"] == [3, image, image]
    for r in rows("bench_synthetic")))
check("resnet18 GMACs from the flop counter", resnet_gmacs)
if dev == "cuda":
    check("%peak on the device's rows", lambda: all(
        r["peak_fraction"] is not None and 0 < r["peak_fraction"] < 1
        for r in on_dev("bench_synthetic")), [r["device_name"] for r in on_dev("bench_synthetic")])
check("channels-last rows say so", lambda: all(r["channels_last"] for r in rows("bench_chlast")))
check("compiled rows say so", lambda: all(
    r["compile"] and r["compile_mode"] == "default" for r in rows("bench_compile")))
check("zoo train on the device exits 0", lambda: exit_ok("train"))
check("harness_accuracy exits 0", lambda: exit_ok("harness_accuracy"))
check(f"steps ended within the {budget}s budget", lambda: (seconds <= budget, f"{seconds}s"))

figures = {}
try:
    figures = json.loads((out / "harness_accuracy.json").read_text())
    modes = json.loads((out / "bench_modes.json").read_text())["rows"]
    figures["infer_samples_per_s"] = {
        f"{r['device']} {r['precision']} b{r['batch_size']}": r["samples_per_s"]
        for r in modes if r["mode"] == "infer"
    }
    figures["synthetic"] = {
        f"{r['model']} {r['mode']} {r['precision']} b{r['batch_size']}"
        f"{' chlast' * bool(r['channels_last'])}{' compile' * bool(r['compile'])}": {
            k: r[k] for k in ("samples_per_s", "gmacs", "flops_per_s", "peak_fraction")
        }
        for name in ("bench_synthetic", "bench_chlast", "bench_compile")
        for r in rows(name)
    }
except Exception as exc:
    print(f"(figures incomplete: {exc})")
passed = all(c["ok"] for c in checks.values())
summary = {"device": dev, "passed": passed, "seconds": seconds, "checks": checks,
           "figures": figures}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print("all checks passed" if passed else "SOME CHECKS FAILED")
sys.exit(0 if passed else 1)
PYCHECK
exit "$status"
