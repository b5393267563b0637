#!/usr/bin/env bash
# The sparse encoding through the CLI (issue 20): init --encoding topk:K, two
# facilities, aggregate, verify, reproduce (aggregation and --train: bit-identical),
# h5dump shows the datasets, and a bad K is refused naming it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
S=$T/store
mkdir -p "$T/txt/alpha" "$T/txt/beta"
cp /usr/share/common-licenses/GPL-3 "$T/txt/alpha/gpl.txt"
cp /usr/share/common-licenses/Apache-2.0 "$T/txt/beta/apache.txt"
for f in alpha beta; do $X data pack "$T/txt/$f"/* --out "$T/data/$f" --val-fraction 0.1 >/dev/null 2>&1; done

expect_rc 2 $X init --store "$T/bad" --model tiny --encoding topk:0
grep -q "topk:0" "$T/err" || fail "a bad K is not named"
expect_rc 2 $X init --store "$T/bad" --model tiny --encoding int8:4
grep -q "int8:4" "$T/err" || fail "a K on an encoding without one is not named"

expect_rc 0 $X init --store "$S" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
  --seq-len 32 --lr 1e-3 --seed 5 --encoding topk:8
h5dump -A "$S/federation.h5" >"$T/fed.txt"
grep -A4 'encoding_k' "$T/fed.txt" | grep -q '(0): 8' || fail "federation.h5 lacks encoding_k 8"
train() { $X train --store "$S" --facility "$1" --data "$T/data/$1/*_train_*.bin" --state "$T/state/$1" --threads 1 "${@:2}"; }
for r in 1 2; do
  for f in alpha beta; do expect_rc 0 train $f --round $r; done
  expect_rc 0 $X aggregate --store "$S" --round $r
done
part=$(ls "$S"/rounds/r000002/alpha/a1/part-*.h5 | head -1)
h5dump -A "$part" >"$T/part.txt"   # whole, then grep: grep -q on a pipe would end h5dump early (pipefail)
grep -q 'GROUP "index"' "$T/part.txt" || fail "a topk part has no index group"
grep -A4 'ATTRIBUTE "k"' "$T/part.txt" | grep -q '(0): 8' || fail "a topk part does not record k = 8"
expect_rc 0 $X verify --all --store "$S"
for r in 1 2; do
  expect_rc 0 $X reproduce --store "$S" --round $r
  grep -q "^ok round $r" "$T/out" || fail "reproduce round $r"
done
expect_rc 0 $X reproduce --store "$S" --round 2 --train --facility alpha --data "$T/data/alpha/*_train_*.bin" \
  --state "$T/state/alpha" --threads 1
grep -q "delta reproduced" "$T/out" || fail "reproduce --train with topk"
echo "test-topk: ok"
