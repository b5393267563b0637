#!/usr/bin/env bash
# train_cpu: `small` at batch 8 x 256 tokens, 2 threads (XFFL_BENCH_THREADS), in each of
# xffl's precisions (fp32; bf16 where the CPU has bf16 units) and PyTorch's (eager fp32,
# eager bf16 autocast: bench/train_cpu_torch.py, Debian's python3-torch) on the same
# model, batch, threads and machine in the same run. Every trainer: median step time over
# XFFL_BENCH_STEPS (12) steps after warm-up. One JSON line per trainer and mode, each
# naming the CPU (model, avx512_bf16, amx_bf16); xffl's lines also carry GFLOP/s against
# the step's GEMMs at the model's shapes in the same precision, measured in the same run
# (ratio, target >= 0.5). A last line compares the fastest modes (target >= 1.2; on a CPU
# without bf16 units, or XFFL_BENCH_ISA=avx2 below, xffl's fastest against PyTorch fp32); its
# cpu_ratio compares the lowest CPU seconds per step (cpu_step_s, the median of each
# trainer's), which a machine shared with other jobs disturbs less than the wall clock.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
TH=${XFFL_BENCH_THREADS:-2}
STEPS=${XFFL_BENCH_STEPS:-12}
# OpenMP's wait policy as a job with its own cores has it (libgomp's default: workers spin
# a while before they sleep), for every trainer alike; the tests and the shared-machine
# benches set passive instead (README, "Threads on shared nodes"), which costs xffl's
# many short parallel regions ~5 % here. OMP_WAIT_POLICY, when set, is kept and named.
[ "${XFFL_BENCH_OMP_PASSIVE:-}" = 1 ] && unset OMP_WAIT_POLICY
policy=${OMP_WAIT_POLICY:-default}
# the PyTorch reference needs Debian's python3-torch: the bench's own setup installs it
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  scripts/install-deps >&2 || { echo "train_cpu: python3-torch is missing and could not be installed" >&2; exit 1; }
fi
flag() { grep -qw "$1" /proc/cpuinfo && echo true || echo false; }
# XFFL_BENCH_ISA=avx2: every trainer as on a CPU without bf16 units or AVX-512 (the target
# there is 1.2x PyTorch fp32): OpenBLAS's Haswell kernels (both trainers' fp32 GEMMs),
# oneDNN and ATen capped at AVX2, xffl's bf16 mode off. An emulation: the same caches and
# memory, slower kernels.
emulated=none
if [ "${XFFL_BENCH_ISA:-}" = avx2 ]; then
  export OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 XFFL_CPU_BF16=0
  emulated=avx2
  flag() { echo false; }
elif [ -n "${XFFL_BENCH_ISA:-}" ]; then
  echo "train_cpu: XFFL_BENCH_ISA is avx2 or unset, not '$XFFL_BENCH_ISA'" >&2
  exit 2
fi
# the name goes into JSON and a sed replacement: no quotes, backslashes, slashes or ampersands
model=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //' | tr -d '"\\/&')
cpu="\"cpu\":\"$model\",\"avx512_bf16\":$(flag avx512_bf16),\"amx_bf16\":$(flag amx_bf16),\"emulated_isa\":\"$emulated\",\"omp_wait_policy\":\"$policy\""
out=$(mktemp)
trap 'rm -f "$out"' EXIT
tag() { sed "s/}\$/,$cpu}/" | tee -a "$out"; }
for mode in fp32 bf16; do
  "$B/bench/train_cpu" small 8 256 "$TH" "$STEPS" 1 auto "$mode" | tag
done
# the small preset's dimensions (libckpt/model.c): dim layers heads kv_heads hidden vocab
# (capped at AVX2, oneDNN 2.6 has no bf16 matmul: PyTorch's autocast fails there, so fp32 only)
/usr/bin/python3 bench/train_cpu_torch.py 288 6 6 6 768 256 8 256 "$TH" "$STEPS" fp32 $([ $emulated = avx2 ] || echo bf16) |
  sed 's/"preset_dims":\[[0-9,]*\]/"preset":"small"/' | tag >/dev/null
grep train_cpu_torch "$out"
/usr/bin/python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
x = [r for r in rows if r["bench"] == "train_cpu" and "tokens_per_s" in r]
t = [r for r in rows if r["bench"] == "train_cpu_torch"]
# with bf16 units: the fastest against the fastest; without: against PyTorch fp32
units = x[0]["avx512_bf16"] or x[0]["amx_bf16"]
bx = max(x, key=lambda r: r["tokens_per_s"])
bt = max(t if units else [r for r in t if r["mode"] == "fp32"], key=lambda r: r["tokens_per_s"])
ratio = bx["tokens_per_s"] / bt["tokens_per_s"]
# CPU seconds per step (median): on a shared machine less disturbed than the wall clock
cx, ct = min(r["cpu_step_s"] for r in x), min(r["cpu_step_s"] for r in t)
print(json.dumps({"bench": "train_cpu_vs_torch", "value": round(ratio, 3), "unit": "x", "target": 1.2,
                  "pass": ratio >= 1.2, "xffl_mode": bx["mode"], "xffl_tokens_per_s": bx["tokens_per_s"],
                  "torch_mode": bt["mode"], "torch_tokens_per_s": bt["tokens_per_s"],
                  "cpu_ratio": round(ct / cx, 3), "gemm_ratio": bx.get("ratio"), "threads": bx["threads"], "cpu": bx["cpu"],
                  "avx512_bf16": bx["avx512_bf16"], "amx_bf16": bx["amx_bf16"], "emulated_isa": bx["emulated_isa"]},
                 separators=(",", ":")))
EOF
