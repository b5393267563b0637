#!/usr/bin/env bash
# train_cpu_text (issue 5 point 3, issue 18): the `small` model trained through the CLI for
# a few hundred steps on English text Debian ships (/usr/share/common-licenses, 14
# licences, ~260 KB; the last 10% of each held out), then evaluated on the held-out bytes
# and sampled, once per precision this CPU has (fp32, and bf16 where it has bf16 units)
# and per init seed (XFFL_TEXT_SEEDS, default 3: seeds 1..N). One line per precision:
# value = mean validation loss over the seeds in nats per byte (target < 2.5; uniform is
# ln 256 = 5.545), losses = each seed's, spread = max - min; words_known = fraction of the
# seed-1 sample's words (letters only) that occur in the training text: word-like text
# scores high (the sample goes to stderr). With bf16, a last line compares the two
# precisions' means (target within 1%), beside the spread of each: at 300 steps one
# trajectory's validation loss moves by a few % with any change of rounding (a seed, or
# bf16's thread count), so a single pair of runs cannot tell a bias from noise.
# XFFL_TEXT_STEPS (300), XFFL_TEXT_BATCH (8), XFFL_TEXT_SEQ (128), XFFL_BENCH_THREADS (2),
# XFFL_TEXT_SEEDS (3).
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
SEEDS=${XFFL_TEXT_SEEDS:-3}
case $SEEDS in '' | *[!0-9]* | 0) echo "train_cpu_text: XFFL_TEXT_SEEDS must be a positive integer" >&2; exit 2 ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
files=$(find /usr/share/common-licenses -type f | sort)
[ -n "$files" ] || { echo "SKIP: no /usr/share/common-licenses" >&2; exit 0; }
# shellcheck disable=SC2086
$X data pack $files --out "$T/data" --name lic --val-fraction 0.1 >&2
# shellcheck disable=SC2086
cat $files | tr -c 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | sort -u >"$T/vocab"
# Each precision this CPU has (fp32; bf16 with bf16 units) trains from the same inits on
# the same data; the mean of bf16's validation losses must be within 1% of fp32's.
modes=fp32
[ -n "$(grep -ow 'avx512_bf16\|amx_bf16' /proc/cpuinfo | head -1)" ] &&
  [ "${XFFL_CPU_BF16:-1}" != 0 ] && modes="fp32 bf16"
for mode in $modes; do
  : >"$T/loss-$mode"
  secs=0 known=0 total=0
  for seed in $(seq 1 "$SEEDS"); do
    S=$T/s-$mode-$seed
    $X init --store "$S" --model small --local-steps "$STEPS" --batch "$BATCH" --seq-len "$SEQ" --lr 2e-3 \
      --min-lr 2e-4 --warmup 20 --seed "$seed" >/dev/null
    start=$(date +%s)
    $X train --store "$S" --facility local --data "$T/data/lic_train_*.bin" --threads "$TH" \
      --precision "$mode" >/dev/null
    secs=$((secs + $(date +%s) - start))
    $X aggregate --store "$S" >/dev/null 2>&1
    $X eval --json --store "$S" --data "$T/data/lic_val_*.bin" --seq-len "$SEQ" --threads "$TH" 2>/dev/null |
      sed 's/.*"loss":\([0-9.]*\).*/\1/' >>"$T/loss-$mode"
    echo "train_cpu_text: $mode seed $seed: validation loss $(tail -1 "$T/loss-$mode")" >&2
    if [ "$seed" = 1 ]; then
      $X sample --store "$S" --prompt "The " --temperature 0.8 --seed 1 --tokens 300 --threads "$TH" 2>/dev/null >"$T/sample"
      echo "--- sample ($mode, seed 1, temperature 0.8) ---" >&2
      cat "$T/sample" >&2
      known=$(tr -c 'A-Za-z' '\n' <"$T/sample" | tr 'A-Z' 'a-z' | awk 'length > 1' | sort |
        join - "$T/vocab" | wc -l)
      total=$(tr -c 'A-Za-z' '\n' <"$T/sample" | awk 'length > 1' | wc -l)
    fi
    rm -rf "$S"
  done
  awk -v k="$known" -v n="$total" -v s="$STEPS" -v b="$BATCH" -v q="$SEQ" -v sec="$secs" -v m="$mode" '
    { l[NR] = $1; sum += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
    END {
      mean = sum / NR; list = ""
      for (i = 1; i <= NR; i++) list = list (i > 1 ? "," : "") sprintf("%.4f", l[i])
      printf "{\"bench\":\"train_cpu_text\",\"mode\":\"%s\",\"value\":%.4f,\"unit\":\"nats/byte\",\"ref_name\":\"uniform\",\"ref\":%.4f,\"ratio\":%.3f,\"target\":2.5,\"pass\":%s,\"seeds\":%d,\"losses\":[%s],\"spread\":%.4f,\"steps\":%d,\"batch\":%d,\"seq_len\":%d,\"train_s\":%d,\"words_known\":%.3f}\n",
        m, mean, log(256), mean / log(256), (mean < 2.5 ? "true" : "false"), NR, list, hi - lo, s, b, q, sec, (n ? k / n : 0) }' \
    "$T/loss-$mode"
done
if [ -s "$T/loss-bf16" ]; then
  # se: the standard error of the difference of the two means (relative to fp32's mean),
  # from the seeds' sample variances; significant: the difference exceeds 2 se
  paste "$T/loss-fp32" "$T/loss-bf16" | awk -v s="$STEPS" '
    { a += $1; b += $2; a2 += $1 * $1; b2 += $2 * $2
      if (NR == 1 || $1 < alo) alo = $1; if (NR == 1 || $1 > ahi) ahi = $1
      if (NR == 1 || $2 < blo) blo = $2; if (NR == 1 || $2 > bhi) bhi = $2 }
    END {
      n = NR; ma = a / n; mb = b / n; d = (mb - ma) / ma; ad = d < 0 ? -d : d
      va = n > 1 ? (a2 - n * ma * ma) / (n - 1) : 0; vb = n > 1 ? (b2 - n * mb * mb) / (n - 1) : 0
      if (va < 0) va = 0; if (vb < 0) vb = 0
      se = sqrt(va / n + vb / n) / ma
      printf "{\"bench\":\"train_cpu_text_bf16\",\"value\":%.4f,\"unit\":\"relative\",\"ref_name\":\"fp32 mean validation loss\",\"ref\":%.4f,\"bf16_loss\":%.4f,\"target\":0.01,\"pass\":%s,\"seeds\":%d,\"fp32_spread\":%.4f,\"bf16_spread\":%.4f,\"se\":%.4f,\"significant\":%s,\"steps\":%d}\n",
        d, ma, mb, (ad <= 0.01 ? "true" : "false"), n, (ahi - alo) / ma, (bhi - blo) / mb, se,
        (n > 1 && ad > 2 * se ? "true" : "false"), s }'
fi
