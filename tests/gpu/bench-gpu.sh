#!/usr/bin/env bash
# make bench-gpu: train_gpu tokens/s and MFU for base and 1b, each next to PyTorch (eager and
# torch.compile, tests/torch_ref.py) with the same model and batch on the same GPU in the same
# run. One JSON line per model on stdout: our figures, ref = PyTorch eager, ratio = ours /
# eager, torch_compile beside it. Progress and the raw lines go to stderr.
#   XFFL_GPU_BENCH   the bench binary (make sets it)
#   XFFL_TORCH_PYTHON  python with PyTorch (default python3)
#   XFFL_BENCH_GPU_CONFIGS  "model:batch:seq ..." (default "base:8:1024 1b:4:1024")
set -u
cd "$(dirname "$0")/../.."
BENCH=${XFFL_GPU_BENCH:-build/gpu/xffl_gpu_bench}
PY=${XFFL_TORCH_PYTHON:-python3}
CONFIGS=${XFFL_BENCH_GPU_CONFIGS:-"base:8:1024 1b:4:1024"}
rc=0
for c in $CONFIGS; do
  IFS=: read -r model batch seq <<<"$c"
  echo "bench-gpu: $model, $batch x $seq" >&2
  ours=$("$BENCH" --model "$model" --batch "$batch" --seq "$seq" --steps 10 --warmup 3) || { rc=1; continue; }
  echo "  xffl:          $ours" >&2
  case $ours in SKIP:*) echo "$ours"; exit 0 ;; esac
  eager=$("$PY" tests/torch_ref.py --model "$model" --batch "$batch" --seq "$seq" --mode eager | tail -1)
  echo "  torch eager:   $eager" >&2
  compiled=$("$PY" tests/torch_ref.py --model "$model" --batch "$batch" --seq "$seq" --mode compile | tail -1)
  echo "  torch compile: $compiled" >&2
  OURS=$ours EAGER=$eager COMPILED=$compiled "$PY" - <<'EOF' || rc=1
import json, os
ours = json.loads(os.environ["OURS"])
def load(v):
    try:
        return json.loads(v)
    except Exception:
        return None
e, c = load(os.environ.get("EAGER", "")), load(os.environ.get("COMPILED", ""))
ours["ref_name"] = "torch_eager"
ours["ref"] = e["value"] if e else None
ours["ratio"] = round(ours["value"] / e["value"], 3) if e else None
ours["ref_mfu"] = e["mfu"] if e else None
ours["torch_compile"] = c["value"] if c else None
ours["torch_compile_mfu"] = c["mfu"] if c else None
ours["ratio_compile"] = round(ours["value"] / c["value"], 3) if c else None
print(json.dumps(ours))
EOF
done
exit $rc
