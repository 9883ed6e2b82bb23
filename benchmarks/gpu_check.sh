#!/usr/bin/env bash
# Exercise the CUDA paths of the bench harness (and a short `zoo train`) on a GPU machine.
#
#   benchmarks/gpu_check.sh DIR
#
# Everything it measures lands in DIR: bench JSON/CSV/PNG, exported weights, the harness
# accuracy figures, each command's stdout/stderr, and summary.json with the checks. Exit 0
# when every check passed. It installs zoo (editable, no network needed when torch & co are
# already installed) if `import zoo` fails.
#
# ZOO_GPU_CHECK_DEVICE=cpu runs the same commands on the CPU, to check the script itself on a
# machine without a GPU (the CUDA-only assertions are then skipped).
set -uo pipefail

OUT="${1:?usage: benchmarks/gpu_check.sh DIR}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
DEV="${ZOO_GPU_CHECK_DEVICE:-cuda}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$ROOT" || exit 2

if ! "$PY" -c "import zoo.benchmark" >/dev/null 2>&1; then
    echo "zoo is not importable: installing it (editable) from $ROOT"
    "$PY" -m pip install --no-deps --no-build-isolation -e . >"$OUT/pip.log" 2>&1 \
        || "$PY" -m pip install -e . >>"$OUT/pip.log" 2>&1 \
        || { echo "pip install failed; see $OUT/pip.log"; exit 2; }
fi
if [ "$DEV" = "cuda" ]; then
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)" \
        || { echo "no CUDA device visible to torch"; exit 3; }
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
fi

status=0
run() {  # run NAME ARGS...: python -m zoo ARGS, stdout/stderr kept in DIR/NAME.{txt,err}
    local name="$1"
    shift
    echo "== $name: zoo $*"
    "$PY" -m zoo "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
    local rc=$?
    echo "   exit $rc"
    echo "$rc" >"$OUT/$name.rc"
    return 0
}

# 1. Every mode at fp32, bf16 and fp16 on one model, the GPU beside the CPU, with export.
run bench_modes bench --model tinyvgg --dataset digits --device "$DEV",cpu \
    --precision fp32,bf16,fp16 --mode infer,train,fit --batch-size 64,1024 --epochs 2 \
    --json "$OUT/bench_modes.json" --csv "$OUT/bench_modes.csv" --plot "$OUT/bench_modes.png" \
    --export "$OUT/weights"

# 2. Several models, datasets and losses, each combination in its own process.
run bench_isolate bench --model 'mlp,tinyvgg' --dataset digits,breast-cancer \
    --loss auto,bce --device "$DEV" --precision fp32,bf16 --mode infer,train --isolate \
    --json "$OUT/bench_isolate.json"

# 3. Out of memory: cap this process to a sliver of the GPU; the batch size must decay.
if [ "$DEV" = "cuda" ]; then
    export ZOO_BENCH_CUDA_MEMORY_FRACTION=0.002
    run bench_oom bench --model tinyvgg --dataset digits --device "$DEV" --mode infer,train \
        --batch-size 262144 --min-run-time 0.5 --json "$OUT/bench_oom.json"
    unset ZOO_BENCH_CUDA_MEMORY_FRACTION
fi

# 4. compare (same file: nothing regressed, exit 0).
run compare bench compare "$OUT/bench_modes.json" "$OUT/bench_modes.json"

# 5. The trainer on the GPU.
run train train --model tinyvgg --dataset digits --device "$DEV" --precision bf16 --epochs 2 \
    --out "$OUT/train_run" --json

# 6. Harness vs torch.utils.benchmark on the GPU (figures only, no pass/fail).
echo "== harness_accuracy"
"$PY" benchmarks/harness_accuracy.py --device "$DEV" --batch-size 1024 --pairs 5 \
    --json "$OUT/harness_accuracy.json" >"$OUT/harness_accuracy.txt" 2>"$OUT/harness_accuracy.err"
cat "$OUT/harness_accuracy.txt"

"$PY" - "$OUT" "$DEV" <<'PYCHECK' || status=1
import json
import sys
from pathlib import Path

out, dev = Path(sys.argv[1]), sys.argv[2]
checks = {}


def check(name, ok, detail=""):
    checks[name] = {"ok": bool(ok), "detail": detail}
    print(f"ok   {name}" if ok else f"FAIL {name}: {detail}")


def rc(name):
    return int((out / f"{name}.rc").read_text())


def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {"rows": [], "skipped": []}


modes = load("bench_modes")
check("bench_modes exit 0", rc("bench_modes") == 0, (out / "bench_modes.err").read_text()[-300:])
rows = [r for r in modes["rows"] if r["device"] == dev]
errors = [f"{r['precision']} {r['mode']} b{r['batch_size']}: {r['error']}" for r in modes["rows"] if r["error"]]
check("bench_modes no row errors", not errors, "; ".join(errors)[:500])
want_prec = {"fp32", "bf16", "fp16"} if dev == "cuda" else {"fp32", "bf16"}
check("bench_modes precisions on device", {r["precision"] for r in rows} == want_prec)
check("bench_modes modes", {r["mode"] for r in rows} == {"infer", "train", "fit"})
check("bench_modes exported weights", all(Path(r["export"]).exists() for r in rows if r["mode"] == "fit"))
if dev == "cuda":
    check("cuda rows name the GPU", all("cpu" not in (r["device_name"] or "").lower() for r in rows),
          str({r["device_name"] for r in rows}))
    check("cuda peak memory from max_memory_allocated",
          all(r["memory_kind"] == "cuda_max_allocated" and r["peak_memory_bytes"] > 0 for r in rows))
    fits = {r["precision"]: r["metric"] for r in rows if r["mode"] == "fit" and r["batch_size"] == 64}
    check("fit reaches accuracy > 0.5 at every precision", all(v and v > 0.5 for v in fits.values()), str(fits))
    infer = {(r["precision"], r["batch_size"]): r["samples_per_s"] for r in modes["rows"] if r["mode"] == "infer"}
    print("infer samples/s:", json.dumps({f"{p} b{b}": v for (p, b), v in infer.items()}))

iso = load("bench_isolate")
check("bench_isolate exit 0", rc("bench_isolate") == 0, (out / "bench_isolate.err").read_text()[-300:])
check("bench_isolate rows", len(iso["rows"]) > 0 and not any(r["error"] for r in iso["rows"]),
      "; ".join(str(r["error"]) for r in iso["rows"] if r["error"])[:500])
check("bench_isolate bce ran on mlp/breast-cancer",
      any(r["loss"] == "bce" and r["dataset"] == "breast-cancer" for r in iso["rows"]))

oom = load("bench_oom")
if dev == "cuda":
    decayed = [r for r in oom["rows"] if r["effective_batch_size"] and r["effective_batch_size"] < r["batch_size"]]
    check("oom decays the batch size", rc("bench_oom") == 0 and len(decayed) == len(oom["rows"]) > 0,
          "; ".join(f"{r['mode']}: {r['note']} / {r['error']}" for r in oom["rows"]))

check("compare of a file with itself exits 0", rc("compare") == 0)
check("zoo train on the device exits 0", rc("train") == 0, (out / "train.err").read_text()[-300:])

summary = {"device": dev, "checks": checks, "passed": all(c["ok"] for c in checks.values())}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print("all checks passed" if summary["passed"] else "SOME CHECKS FAILED")
sys.exit(0 if summary["passed"] else 1)
PYCHECK
exit $status
