#!/usr/bin/env bash
# Aggregation GB/s per algorithm and delta encoding GB/s per encoding, against memcpy.
set -euo pipefail
cd "$(dirname "$0")/.."
"${XFFL_BUILD:-build}/bench/aggregate_bench" "${XFFL_AGG_MFLOATS:-16}" 2
