#!/usr/bin/env bash
# train_cpu_text (issue 5 point 3): the `small` model trained through the CLI for a few
# hundred steps on English text Debian ships (/usr/share/common-licenses, 14 licences,
# ~260 KB; the last 10% of each held out), then evaluated on the held-out bytes and
# sampled. value = validation loss in nats per byte (target < 2.5; uniform is ln 256 =
# 5.545). words_known = fraction of the sampled words (letters only) that occur in the
# training text: word-like text scores high. The sample goes to stderr.
# XFFL_TEXT_STEPS (300), XFFL_TEXT_BATCH (8), XFFL_TEXT_SEQ (128), XFFL_BENCH_THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
# spinning OpenMP threads crawl when the cores are shared with other jobs
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
STEPS=${XFFL_TEXT_STEPS:-300}
BATCH=${XFFL_TEXT_BATCH:-8}
SEQ=${XFFL_TEXT_SEQ:-128}
TH=${XFFL_BENCH_THREADS:-2}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
files=$(find /usr/share/common-licenses -type f | sort)
[ -n "$files" ] || { echo "SKIP: no /usr/share/common-licenses" >&2; exit 0; }
# shellcheck disable=SC2086
$X data pack $files --out "$T/data" --name lic --val-fraction 0.1 >&2
$X init --store "$T/s" --model small --local-steps "$STEPS" --batch "$BATCH" --seq-len "$SEQ" --lr 2e-3 \
  --min-lr 2e-4 --warmup 20 --seed 1 >/dev/null
start=$(date +%s)
$X train --store "$T/s" --facility local --data "$T/data/lic_train_*.bin" --threads "$TH" >/dev/null
secs=$(( $(date +%s) - start ))
$X aggregate --store "$T/s" >/dev/null 2>&1
loss=$($X eval --json --store "$T/s" --data "$T/data/lic_val_*.bin" --seq-len "$SEQ" --threads "$TH" 2>/dev/null |
  sed 's/.*"loss":\([0-9.]*\).*/\1/')
$X sample --store "$T/s" --prompt "The " --temperature 0.8 --seed 1 --tokens 300 --threads "$TH" 2>/dev/null >"$T/sample"
echo "--- sample (temperature 0.8) ---" >&2
cat "$T/sample" >&2
cat $files | tr -c 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | sort -u >"$T/vocab"
known=$(tr -c 'A-Za-z' '\n' <"$T/sample" | tr 'A-Z' 'a-z' | awk 'length > 1' | sort |
  join - "$T/vocab" | wc -l)
total=$(tr -c 'A-Za-z' '\n' <"$T/sample" | awk 'length > 1' | wc -l)
awk -v l="$loss" -v k="$known" -v n="$total" -v s="$STEPS" -v b="$BATCH" -v q="$SEQ" -v sec="$secs" 'BEGIN{
  printf "{\"bench\":\"train_cpu_text\",\"value\":%.4f,\"unit\":\"nats/byte\",\"ref_name\":\"uniform\",\"ref\":%.4f,\"ratio\":%.3f,\"target\":2.5,\"pass\":%s,\"steps\":%d,\"batch\":%d,\"seq_len\":%d,\"train_s\":%d,\"words_known\":%.3f}\n",
    l, log(256), l / log(256), (l < 2.5 ? "true" : "false"), s, b, q, sec, (n ? k / n : 0) }'
