#!/usr/bin/env bash
# init --data-order (issue 21): strided is recorded in federation.h5 (files, the
# default, leaves the file as older xffl wrote it), changes what the facilities train
# on, and a strided federation still reproduces bit for bit (aggregation and --train).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pack_alpha_beta

expect_rc 2 $X init --store "$T/bad" --model tiny --data-order shuffled
grep -q "shuffled" "$T/err" || fail "an unknown data order is not named"

fed() { # store order: init, 2 rounds of both facilities, aggregate
  expect_rc 0 $X init --store "$1" --model tiny --facilities alpha,beta --algo diloco --local-steps 4 --batch 2 \
    --seq-len 32 --lr 1e-3 --seed 5 --total-rounds 2 --keep-inner-state --data-order "$2"
  for r in 1 2; do
    for f in alpha beta; do
      expect_rc 0 $X train --store "$1" --facility $f --data "$T/data/$f/*_train_*.bin" --state "$1-state/$f" --threads 1 --round $r
    done
    expect_rc 0 $X aggregate --store "$1" --round $r
  done
}
fed "$T/s" strided
fed "$T/f" files
h5dump -A "$T/s/federation.h5" >"$T/fed-s.txt"
grep -A4 'data_strided' "$T/fed-s.txt" | grep -q '(0): 1' || fail "federation.h5 lacks data_strided 1"
h5dump -A "$T/f/federation.h5" >"$T/fed-f.txt"
! grep -q 'data_strided' "$T/fed-f.txt" || fail "the default order writes an attribute older xffl would not"
expect_setting_changes_and_reproduces "$T/s" "$T/f" 2 "the strided order"
expect_rc 0 $X reproduce --store "$T/s" --round 2 --train --facility beta --data "$T/data/beta/*_train_*.bin" \
  --state "$T/s-state/beta" --threads 1
grep -q "delta reproduced" "$T/out" || fail "reproduce --train of a strided round"
echo "test-data-order: ok"
