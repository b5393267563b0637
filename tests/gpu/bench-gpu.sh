#!/usr/bin/env bash
# make bench-gpu: training tokens/s, MFU and peak memory of xffl's CUDA backend next to PyTorch
# (eager and torch.compile, tests/torch_ref.py) with the same model, micro-batch and optimizer
# on the same GPU in the same run. Per configuration, one JSON line per trainer on stdout,
# the form of docs/gpu-bench.jsonl:
#   {"bench": "train_gpu", "trainer": "xffl"|"torch_eager"|"torch_compile", "model", "batch",
#    "seq_len", "tokens_per_s", "mfu", "peak_mem_gb", "gpu", "date", ...}
# the xffl line adds ratio_eager and ratio_compile (tokens/s over theirs), the attention path
# and the step's forward/backward/optimizer split. Progress and raw lines go to stderr.
# Configurations run in the order given, most important first, so a run cut short by its time
# limit still has them; a configuration whose memory plan does not fit the device is skipped
# (xffl_gpu_bench prints SKIP), and so are its PyTorch runs.
#   XFFL_GPU_BENCH   the bench binary (make sets it)
#   XFFL_TORCH_PYTHON  python with PyTorch (default python3)
#   XFFL_BENCH_GPU_CONFIGS  "model:batch:seq[:recompute] ..." (default below: 1b at 4 x 1024,
#       2 x 2048, 1 x 4096 (4096 tokens a step each), 7b at 1 x 4096 with recomputation, base)
#   XFFL_BENCH_RUN_LIMIT  seconds for each of the three runs of a configuration (default 150)
set -u
cd "$(dirname "$0")/../.."
BENCH=${XFFL_GPU_BENCH:-build/gpu/xffl_gpu_bench}
PY=${XFFL_TORCH_PYTHON:-python3}
CONFIGS=${XFFL_BENCH_GPU_CONFIGS:-"1b:4:1024 1b:2:2048 1b:1:4096 7b:1:4096:recompute base:8:1024"}
LIMIT=${XFFL_BENCH_RUN_LIMIT:-150}
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
rc=0
for c in $CONFIGS; do
  IFS=: read -r model batch seq rec <<<"$c"
  steps=10 warmup=3
  [ "$model" = 7b ] && steps=5 warmup=2 # 7b: ~0.5 s a step; its host-side init dominates anyway
  recflag=; [ "${rec:-}" = recompute ] && recflag=--recompute
  echo "bench-gpu: $model, $batch x $seq ${recflag:+(recompute)}" >&2
  ours=$(timeout "$LIMIT" "$BENCH" --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" --warmup "$warmup" \
    $recflag) || { echo "  xffl: failed or timed out (rc $?)" >&2; rc=1; continue; }
  echo "  xffl:          ${ours:-(skipped)}" >&2
  case $ours in SKIP:*) echo "$ours"; exit 0 ;; "") continue ;; esac
  eager=$(timeout "$LIMIT" "$PY" tests/torch_ref.py --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" \
    --warmup "$warmup" --mode eager $recflag | tail -1)
  echo "  torch eager:   $eager" >&2
  compiled=$(timeout "$LIMIT" "$PY" tests/torch_ref.py --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" \
    --warmup "$warmup" --mode compile $recflag | tail -1)
  echo "  torch compile: $compiled" >&2
  OURS=$ours EAGER=$eager COMPILED=$compiled DATE=$DATE "$PY" - <<'PYEOF' || rc=1
import json, os
def load(v):
    try:
        d = json.loads(v)
        return d if isinstance(d, dict) and d.get("value") else None
    except Exception:
        return None
o, e, c = load(os.environ["OURS"]), load(os.environ.get("EAGER", "")), load(os.environ.get("COMPILED", ""))
gpu = o["device"].split(",")[0]
def line(trainer, d, extra):
    r = {"bench": "train_gpu", "trainer": trainer, "model": o["model"], "batch": o["batch"], "seq_len": o["seq"],
         "tokens_per_s": d["value"], "mfu": d.get("mfu"), "peak_mem_gb": d.get("peak_mem_gb"), "gpu": gpu,
         "date": os.environ["DATE"], "recompute": o.get("recompute", 0), "step_ms": d.get("step_ms")}
    r.update(extra)
    print(json.dumps(r))
line("xffl", o, {"ratio_eager": round(o["value"] / e["value"], 3) if e else None,
                 "ratio_compile": round(o["value"] / c["value"], 3) if c else None,
                 "attention": o.get("attention"), "forward_ms": o.get("forward_ms"),
                 "backward_ms": o.get("backward_ms"), "optimizer_ms": o.get("optimizer_ms"),
                 "loss_first": o.get("loss_first"), "loss_last": o.get("loss_last")})
for name, d in (("torch_eager", e), ("torch_compile", c)):
    if d:
        line(name, d, {"torch": d.get("torch"), "loss_last": d.get("loss_last")})
PYEOF
done
exit $rc
