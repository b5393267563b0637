#!/usr/bin/env bash
# init --local-steps-schedule (issue 21): the schedule is recorded in federation.h5 and
# shown by init and status; each round trains its scheduled steps (a COMMIT's steps=),
# fedavg weighs them, and a federation with it still reproduces bit for bit
# (aggregation and --train, a short round and a full one).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pack_alpha_beta

expect_rc 2 $X init --store "$T/bad" --model tiny --local-steps-schedule 2x0
grep -q "2x0" "$T/err" || fail "a bad schedule is not named"

fed() { # store init-flags...: init, 2 rounds of both facilities, aggregate
  local s=$1; shift
  expect_rc 0 $X init --store "$s" --model tiny --facilities alpha,beta --algo diloco --local-steps 4 --batch 2 \
    --seq-len 32 --lr 1e-3 --seed 5 --total-rounds 2 --keep-inner-state --data-order strided "$@"
  for r in 1 2; do
    for f in alpha beta; do
      expect_rc 0 $X train --store "$s" --facility $f --data "$T/data/$f/*_train_*.bin" --state "$s-state/$f" --threads 1 --round $r
    done
    expect_rc 0 $X aggregate --store "$s" --round $r
  done
}
fed "$T/s" --local-steps-schedule 2x1
fed "$T/p"
expect_rc 0 $X init --dry-run --model tiny --local-steps 4 --local-steps-schedule 2x1
grep -q "H 4 after 2x1" "$T/out" || fail "init --dry-run does not print the schedule"
h5dump -A "$T/s/federation.h5" >"$T/fed-s.txt"
grep -A10 "local_steps_schedule" "$T/fed-s.txt" | grep -q '"2x1"' || fail "federation.h5 lacks local_steps_schedule 2x1"
h5dump -A "$T/p/federation.h5" >"$T/fed-p.txt"
! grep -q 'local_steps_schedule' "$T/fed-p.txt" || fail "no schedule writes an attribute older xffl would not"
steps() { grep -h '^steps=' "$T"/s/rounds/r00000$1/*/a1/COMMIT-* | sort -u; }
[ "$(steps 1)" = "steps=2" ] || fail "round 1 trained $(steps 1), not the schedule's 2 steps"
[ "$(steps 2)" = "steps=4" ] || fail "round 2 trained $(steps 2), not H = 4 steps"
expect_rc 0 $X status --store "$T/s"
grep -q "H=4 after 2x1" "$T/out" || fail "status does not show the schedule"
expect_rc 0 $X status --store "$T/s" --json
grep -q '"local_steps_schedule": "2x1"' "$T/out" || fail "status --json does not show the schedule"
# tokens seen (fedavg's weights): 2 facilities x 2 steps x 2 x 32 tokens, then x 4 steps
grep -q '"round": 1, "done": true, "tokens_seen": 256,' "$T/out" || fail "round 1's tokens do not follow the schedule"
grep -q '"tokens_seen": 768}' "$T/out" || fail "tokens seen do not follow the schedule"
expect_setting_changes_and_reproduces "$T/s" "$T/p" 2 "the schedule"
for r in 1 2; do
  expect_rc 0 $X reproduce --store "$T/s" --round $r --train --facility beta --data "$T/data/beta/*_train_*.bin" \
    --state "$T/s-state/beta" --threads 1
  grep -q "delta reproduced" "$T/out" || fail "reproduce --train of round $r"
done
echo "test-local-steps: ok"
