#!/usr/bin/env bash
# train_cpu: `small` at batch 8 x 256 tokens, 2 threads: GFLOP/s of training against
# OpenBLAS sgemm 2048^3 in the same run, tokens/s, peak RSS against the analytic size.
set -euo pipefail
cd "$(dirname "$0")/.."
"${XFFL_BUILD:-build}/bench/train_cpu" small 8 256 "${XFFL_BENCH_THREADS:-2}" 8
