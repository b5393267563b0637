#!/usr/bin/env bash
# memplan: `base` at 1 x 1024 tokens on one cpu rank: the memory plan's per-rank total
# (train --dry-run) against the measured peak RSS minus the RSS before the model is
# allocated; target within 10 %. Two ranks need the multi-rank training loop (issue 15).
set -euo pipefail
cd "$(dirname "$0")/.."
"${XFFL_BUILD:-build}/bench/memplan" base 1 1024 "${XFFL_BENCH_THREADS:-2}" 1
