#!/usr/bin/env bash
# train --precision (issue 18): the COMMIT records the precision, oneDNN's version and the
# ISA; fp32 and bf16 give different deltas, each reproduced by `reproduce --train` from
# the recorded precision (whatever the default here); bf16 on a CPU without bf16 units
# (or with XFFL_CPU_BF16=0) fails naming the cause, and auto is then fp32.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$T/txt"
cp /usr/share/common-licenses/GPL-3 "$T/txt/gpl.txt"
$X data pack "$T/txt/gpl.txt" --out "$T/data" --val-fraction 0.1 >/dev/null 2>&1 || fail "data pack"
$X init --store "$T/s0" --model tiny --facilities a --local-steps 4 --batch 4 --seq-len 32 --lr 1e-3 --seed 3 \
  >/dev/null 2>&1 || fail "init"
train() {
  local name=$1; shift
  cp -r "$T/s0" "$T/$name"
  $X train --store "$T/$name" --facility a --data "$T/data/*_train_*.bin" --state "$T/st-$name" --threads 2 "$@" \
    >"$T/$name.out" 2>"$T/$name.err" || { cat "$T/$name.err"; fail "train $name"; }
  grep -h '^tensor' "$T/$name"/rounds/r000001/a/a1/COMMIT-* | sha256sum | cut -c1-16
}
header() { grep -h "^$2=" "$T/$1"/rounds/r000001/a/a1/COMMIT-* | cut -d= -f2; }
reproduce() {
  $X aggregate --store "$T/$1" >/dev/null 2>&1 || fail "aggregate $1"
  $X reproduce --store "$T/$1" --round 1 --train --facility a --data "$T/data/*_train_*.bin" --state "$T/st-$1" \
    >"$T/r-$1.out" 2>&1 || { cat "$T/r-$1.out"; fail "reproduce --train of $1"; }
}
fp32=$(train fp32 --precision fp32)
[ "$(header fp32 precision)" = fp32 ] || fail "COMMIT lacks precision=fp32"
[ -n "$(header fp32 onednn)" ] && [ -n "$(header fp32 isa)" ] || fail "COMMIT lacks onednn= and isa="
# with the units hidden: auto is fp32 (the same delta), bf16 is refused
[ "$(XFFL_CPU_BF16=0 train hidden)" = "$fp32" ] || fail "auto without bf16 units is not fp32"
[ "$(header hidden precision)" = fp32 ] || fail "auto without bf16 units recorded $(header hidden precision)"
cp -r "$T/s0" "$T/no"
rc=0; XFFL_CPU_BF16=0 $X train --store "$T/no" --facility a --data "$T/data/*_train_*.bin" --precision bf16 \
  >/dev/null 2>"$T/e" || rc=$?
[ "$rc" = 1 ] && grep -q 'no bf16 units' "$T/e" || { cat "$T/e"; fail "--precision bf16 without units: rc $rc"; }
rc=0; $X train --store "$T/no" --facility a --data "$T/data/*_train_*.bin" --precision fp16 >/dev/null 2>"$T/e" || rc=$?
[ "$rc" = 2 ] && grep -q "fp16" "$T/e" || { cat "$T/e"; fail "--precision fp16: rc $rc"; }
if ! grep -qw 'avx512_bf16\|amx_bf16' /proc/cpuinfo; then
  reproduce fp32
  echo "precision: fp32 recorded and reproduced; bf16 refused without units (SKIP bf16 training: no bf16 units)"
  exit 0
fi
bf16=$(train bf16 --precision bf16)
[ "$(header bf16 precision)" = bf16 ] || fail "COMMIT lacks precision=bf16"
[ "$bf16" != "$fp32" ] || fail "bf16 gave fp32's delta"
[ "$(train auto)" = "$bf16" ] || fail "auto on a CPU with bf16 units is not bf16"
[ "$(train bf16b --precision bf16)" = "$bf16" ] || fail "bf16 training is not deterministic"
# reproduce --train follows each COMMIT's recorded precision, not this machine's default
reproduce fp32
reproduce bf16
XFFL_CPU_BF16=0 $X reproduce --store "$T/bf16" --round 1 --train --facility a --data "$T/data/*_train_*.bin" \
  --state "$T/st-bf16" >"$T/r.out" 2>&1 && fail "reproduce --train of a bf16 COMMIT ran without bf16 units"
grep -q 'no bf16 units' "$T/r.out" || { cat "$T/r.out"; fail "reproduce without units: no reason given"; }
echo "precision: fp32 and bf16 recorded, different, deterministic and reproduced; bf16 refused without units"
