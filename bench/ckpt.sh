#!/usr/bin/env bash
# ckpt_write / ckpt_read on a 1.2 GB model (300 M parameters) at the default zstd
# level, against a plain write+fsync and an O_DIRECT read of the same bytes.
# XFFL_BENCH_CKPT_ARGS passes options to build/bench/ckpt_bench (e.g. "--level 3").
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
exec "$B/bench/ckpt_bench" ${XFFL_BENCH_CKPT_ARGS:-}
