#!/usr/bin/env bash
# One bounded pass of every GPU check, for a lent GPU machine whose time is counted:
# builds the GPU binaries (CUDA toolkit + libc only), runs make test-gpu's binary and
# make bench-gpu's script, each under its own time limit, and leaves every log in
# $OUT (default /tmp/xffl-gpu-check) so a run cut short still tells what it reached.
# $OUT/gpu-bench.jsonl is the bench's JSON lines, what docs/gpu-bench.jsonl is replaced with.
# Budget: ~1 min build (-j all cores), tests <= 150 s, bench <= 370 s: under the 600 s one
# device command may run. The bench's configurations go in priority order (1b at 4 x 1024
# first), each run under XFFL_BENCH_RUN_LIMIT (150 s); what the limit cuts off can be run
# next with XFFL_BENCH_GPU_CONFIGS="7b:1:4096:recompute base:8:1024" make bench-gpu.
#   XFFL_GPU_TEST_LIMIT  seconds for the tests (150)   XFFL_GPU_BENCH_LIMIT  for the bench (370)
set -u
cd "$(dirname "$0")/../.."
O=${OUT:-/tmp/xffl-gpu-check}
mkdir -p "$O"
B=${BUILD:-build}
{
  nvidia-smi -L; nvcc --version | tail -1; gcc --version | head -1
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
} >"$O/env.txt" 2>&1
cat "$O/env.txt"
t0=$(date +%s)
make --no-print-directory -j"$(nproc)" XFFL_WERROR=0 BUILD="$B" "$B/gpu/xffl_gpu_tests" "$B/gpu/xffl_gpu_bench" \
  >"$O/build.log" 2>&1
echo "build: rc=$? in $(( $(date +%s) - t0 ))s"; tail -3 "$O/build.log"
t0=$(date +%s)
timeout "${XFFL_GPU_TEST_LIMIT:-150}" "$B/gpu/xffl_gpu_tests" >"$O/test-gpu.log" 2>&1
echo "test-gpu: rc=$? in $(( $(date +%s) - t0 ))s"; tail -60 "$O/test-gpu.log"
t0=$(date +%s)
XFFL_GPU_BENCH=$B/gpu/xffl_gpu_bench timeout "${XFFL_GPU_BENCH_LIMIT:-370}" bash tests/gpu/bench-gpu.sh \
  >"$O/bench-gpu.json" 2>"$O/bench-gpu.err"
echo "bench-gpu: rc=$? in $(( $(date +%s) - t0 ))s"; cat "$O/bench-gpu.json"; tail -30 "$O/bench-gpu.err"
grep '^{' "$O/bench-gpu.json" >"$O/gpu-bench.jsonl" || true
