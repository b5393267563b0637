#!/usr/bin/env bash
# `make demo`, shortened (3 rounds of 8 local steps) in a temporary directory (issue 7,
# points 1 and 2): the demo runs, prints its table, verify --all passes on its store,
# `xffl reproduce` recomputes every round bit for bit, `reproduce --train` re-runs each
# facility's training of the last round and matches its delta digests, and running the
# demo again resumes instead of starting over.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for c in train data eval sample; do
  $X $c --help >/dev/null 2>&1 || { echo "FAIL: xffl $c --help failed"; exit 1; }
done
[ -x /usr/bin/python3 ] || { echo "SKIP: the demo's table needs /usr/bin/python3"; exit 0; }
export XFFL_DEMO_DIR=$T/demo XFFL_DEMO_ROUNDS=3 XFFL_DEMO_STEPS=8
scripts/demo >"$T/out" 2>"$T/err" || { tail -30 "$T/err"; fail "demo"; }
grep -q '^3  *v000003 ' "$T/out" || { cat "$T/out"; fail "demo table lacks round 3"; }
grep -q '^ok: 4 versions' "$T/out" || { cat "$T/out"; fail "verify --all in the demo"; }
S=$T/demo/store
for r in 1 2 3; do
  $X reproduce --store "$S" --round $r >"$T/r.out" 2>&1 || { cat "$T/r.out"; fail "reproduce round $r"; }
  grep -q 'identical INDEX' "$T/r.out" || { cat "$T/r.out"; fail "round $r INDEX bytes differ"; }
done
for f in copyrights licenses; do
  $X reproduce --store "$S" --round 3 --train --facility $f --data "$T/demo/data/$f/*_train_*.bin" \
    --state "$T/demo/state/$f" >"$T/r.out" 2>&1 || { cat "$T/r.out"; fail "reproduce --train $f"; }
done
XFFL_DEMO_ROUNDS=3 scripts/demo >"$T/out2" 2>"$T/err2" || fail "demo again"
grep -q 'round [0-9]: both facilities train' "$T/err2" && fail "the second run trained again instead of resuming"
echo "demo: 3 rounds, table, verify --all, every round reproduced, --train for both facilities, resume"
