#!/usr/bin/env bash
# Robust aggregation with one sign-flipping, scaled attacker among 5 facilities:
# fedavg vs coordinate-wise median vs trimmed mean (relative error of the update).
set -euo pipefail
cd "$(dirname "$0")/.."
"${XFFL_BUILD:-build}/bench/byzantine_bench" 5 10 1
