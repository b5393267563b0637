#!/usr/bin/env bash
# train_cpu_text (issue 5 point 3): the `small` model trained through the CLI for a few
# hundred steps on English text Debian ships (/usr/share/common-licenses, 14 licences,
# ~260 KB; the last 10% of each held out), then evaluated on the held-out bytes and
# sampled, once per precision this CPU has (fp32, and bf16 where it has bf16 units: then a
# last line compares the two validation losses, target within 1%). value = validation loss in nats per byte (target < 2.5; uniform is ln 256 =
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
# Each precision this CPU has (fp32; bf16 with bf16 units) trains from the same init
# on the same data; the bf16 run's validation loss must be within 1% of the fp32 run's.
modes=fp32
[ -n "$(grep -ow 'avx512_bf16\|amx_bf16' /proc/cpuinfo | head -1)" ] &&
  [ "${XFFL_CPU_BF16:-1}" != 0 ] && modes="fp32 bf16"
for mode in $modes; do
  $X init --store "$T/s-$mode" --model small --local-steps "$STEPS" --batch "$BATCH" --seq-len "$SEQ" --lr 2e-3 \
    --min-lr 2e-4 --warmup 20 --seed 1 >/dev/null
  start=$(date +%s)
  $X train --store "$T/s-$mode" --facility local --data "$T/data/lic_train_*.bin" --threads "$TH" \
    --precision "$mode" >/dev/null
  secs=$(( $(date +%s) - start ))
  $X aggregate --store "$T/s-$mode" >/dev/null 2>&1
  loss=$($X eval --json --store "$T/s-$mode" --data "$T/data/lic_val_*.bin" --seq-len "$SEQ" --threads "$TH" 2>/dev/null |
    sed 's/.*"loss":\([0-9.]*\).*/\1/')
  echo "$loss" >"$T/loss-$mode"
  $X sample --store "$T/s-$mode" --prompt "The " --temperature 0.8 --seed 1 --tokens 300 --threads "$TH" 2>/dev/null >"$T/sample"
  echo "--- sample ($mode, temperature 0.8) ---" >&2
  cat "$T/sample" >&2
  cat $files | tr -c 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | sort -u >"$T/vocab"
  known=$(tr -c 'A-Za-z' '\n' <"$T/sample" | tr 'A-Z' 'a-z' | awk 'length > 1' | sort |
    join - "$T/vocab" | wc -l)
  total=$(tr -c 'A-Za-z' '\n' <"$T/sample" | awk 'length > 1' | wc -l)
  awk -v l="$loss" -v k="$known" -v n="$total" -v s="$STEPS" -v b="$BATCH" -v q="$SEQ" -v sec="$secs" -v m="$mode" 'BEGIN{
    printf "{\"bench\":\"train_cpu_text\",\"mode\":\"%s\",\"value\":%.4f,\"unit\":\"nats/byte\",\"ref_name\":\"uniform\",\"ref\":%.4f,\"ratio\":%.3f,\"target\":2.5,\"pass\":%s,\"steps\":%d,\"batch\":%d,\"seq_len\":%d,\"train_s\":%d,\"words_known\":%.3f}\n",
      m, l, log(256), l / log(256), (l < 2.5 ? "true" : "false"), s, b, q, sec, (n ? k / n : 0) }'
done
if [ -f "$T/loss-bf16" ]; then
  awk -v a="$(cat "$T/loss-fp32")" -v b="$(cat "$T/loss-bf16")" -v s="$STEPS" 'BEGIN{
    d = (b - a) / a; if (d < 0) ad = -d; else ad = d
    printf "{\"bench\":\"train_cpu_text_bf16\",\"value\":%.4f,\"unit\":\"relative\",\"ref_name\":\"fp32 validation loss\",\"ref\":%.4f,\"bf16_loss\":%.4f,\"target\":0.01,\"pass\":%s,\"steps\":%d}\n",
      d, a, b, (ad <= 0.01 ? "true" : "false"), s }'
fi
