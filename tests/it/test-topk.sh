#!/usr/bin/env bash
# The sparse encoding through the CLI (issue 20): init --encoding topk:K, two
# facilities, aggregate, verify, reproduce (aggregation and --train: bit-identical),
# h5dump shows the datasets (indices as gaps: federation.h5 encoding_gaps, the parts'
# index_gaps), and a bad K is refused naming it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
S=$T/store
pack_alpha_beta

expect_rc 2 $X init --store "$T/bad" --model tiny --encoding topk:0
grep -q "topk:0" "$T/err" || fail "a bad K is not named"
expect_rc 2 $X init --store "$T/bad" --model tiny --encoding int8:4
grep -q "int8:4" "$T/err" || fail "a K on an encoding without one is not named"

expect_rc 0 $X init --store "$S" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
  --seq-len 32 --lr 1e-3 --seed 5 --encoding topk:8
h5dump -A "$S/federation.h5" >"$T/fed.txt"
grep -A4 'encoding_k' "$T/fed.txt" | grep -q '(0): 8' || fail "federation.h5 lacks encoding_k 8"
grep -A4 'encoding_gaps' "$T/fed.txt" | grep -q '(0): 1' || fail "a new federation does not store topk indices as gaps"
train() { $X train --store "$S" --facility "$1" --data "$T/data/$1/*_train_*.bin" --state "$T/state/$1" --threads 1 "${@:2}"; }
for r in 1 2; do
  for f in alpha beta; do expect_rc 0 train $f --round $r; done
  expect_rc 0 $X aggregate --store "$S" --round $r
done
part=$(ls "$S"/rounds/r000002/alpha/a1/part-*.h5 | head -1)
h5dump -A "$part" >"$T/part.txt"   # whole, then grep: grep -q on a pipe would end h5dump early (pipefail)
grep -q 'GROUP "index"' "$T/part.txt" || fail "a topk part has no index group"
grep -A4 'ATTRIBUTE "k"' "$T/part.txt" | grep -q '(0): 8' || fail "a topk part does not record k = 8"
grep -A4 'ATTRIBUTE "index_gaps"' "$T/part.txt" | grep -q '(0): 1' || fail "a topk part does not record index_gaps = 1"
expect_rc 0 $X verify --all --store "$S"
for r in 1 2; do
  expect_rc 0 $X reproduce --store "$S" --round $r
  grep -q "^ok round $r" "$T/out" || fail "reproduce round $r"
done
expect_rc 0 $X reproduce --store "$S" --round 2 --train --facility alpha --data "$T/data/alpha/*_train_*.bin" \
  --state "$T/state/alpha" --threads 1
grep -q "delta reproduced" "$T/out" || fail "reproduce --train with topk"

# --encoding-flush N: the last N of --total-rounds keep every entry of a block (k = 256),
# recorded in federation.h5; the rounds before keep K; both reproduce bit for bit.
expect_rc 2 $X init --store "$T/bad" --model tiny --encoding fp32 --total-rounds 3 --encoding-flush 1
grep -q "encoding_flush" "$T/err" || fail "a flush without a k is not named"
expect_rc 2 $X init --store "$T/bad" --model tiny --encoding topk:8 --total-rounds 3 --encoding-flush 4
grep -q "encoding_flush 4" "$T/err" || fail "a flush beyond total_rounds is not named"
F=$T/flush
expect_rc 0 $X init --store "$F" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
  --seq-len 32 --lr 1e-3 --seed 5 --encoding topk:8 --total-rounds 3 --encoding-flush 1
h5dump -A "$F/federation.h5" >"$T/fedf.txt"
grep -A4 'encoding_flush' "$T/fedf.txt" | grep -q '(0): 1' || fail "federation.h5 lacks encoding_flush 1"
trainf() { $X train --store "$F" --facility "$1" --data "$T/data/$1/*_train_*.bin" --state "$T/statef/$1" --threads 1 "${@:2}"; }
for r in 1 2 3; do
  for f in alpha beta; do expect_rc 0 trainf $f --round $r; done
  expect_rc 0 $X aggregate --store "$F" --round $r
done
for r in 2:8 3:256; do
  h5dump -A "$(ls "$F"/rounds/r00000${r%:*}/beta/a1/part-*.h5 | head -1)" >"$T/partf.txt"
  grep -A4 'ATTRIBUTE "k"' "$T/partf.txt" | grep -q "(0): ${r#*:}\$" || fail "round ${r%:*}'s part does not record k = ${r#*:}"
done
expect_rc 0 $X verify --all --store "$F"
expect_rc 0 $X reproduce --store "$F" --round 3
expect_rc 0 $X reproduce --store "$F" --round 3 --train --facility beta --data "$T/data/beta/*_train_*.bin" \
  --state "$T/statef/beta" --threads 1
grep -q "delta reproduced" "$T/out" || fail "reproduce --train of a flush round"
echo "test-topk: ok"
