#!/usr/bin/env bash
# A facility job killed by the scheduler mid-round (scancel while it trains) is recovered
# by the next `xffl submit` with nothing lost: its chain behind it is cancelled
# (afterok + --kill-on-invalid-dep), the aggregator keeps requeueing meanwhile, the new
# submission starts at LATEST+1 by itself, the other facility's committed work is used
# as it is (one attempt per round), versions 1 and 2 complete and verify.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fedlib.sh"
W=$(mktemp -d /tmp/xffl-slurm-rec.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
# 250 local steps: long enough (seconds, progress every 50) to be caught in the middle of training.
fed_setup "$W" 250 || { fail "federation set-up (data pack, init)"; exit 1; }

agg=$(submit_aggregate "$W" 2); set -- $agg; a1=$1 a2=$2
kar=$(submit_train "$W" karolina 2); set -- $kar; k1=$1 k2=$2
leo=$(submit_train "$W" leonardo 2); set -- $leo; l1=$1 l2=$2
log="$W/logs/xffl-train-leonardo-r1-$l1.out"
end=$((SECONDS + 120))
until grep -q 'step [0-9]*/250' "$log" 2>/dev/null || [ $SECONDS -ge $end ]; do sleep 0.2; done
killed_at=$(grep -o 'step [0-9]*/250' "$log" | tail -1)
scancel "$l1"
check "leonardo r1 cancelled while training ($killed_at)" eval '[ -n "$killed_at" ] && ! grep -q '\''step 250/250\|committed rounds'\'' "$log"'
s=$(wait_job "$l1" 60)
check "leonardo r1 ends CANCELLED ($s)" [ "$s" = CANCELLED ]
s=$(wait_job "$l2" 60)
check "leonardo r2 is cancelled with it (afterok can never be met) ($s)" eval '[ "$s" = CANCELLED ] || [ "$s" = GONE ]'
check "no COMMIT from the killed attempt" sh -c "! ls '$W'/store/rounds/r000001/leonardo/a*/COMMIT-* >/dev/null 2>&1"
st=$(job_state "$a1")
# waiting: pending, running, or between two attempts (a step that exits 75 requeues its
# job, which passes through COMPLETING)
check "the aggregator's chain is still waiting ($st)" eval 'case "$st" in PENDING|RUNNING|COMPLETING|REQUEUED) true;; *) false;; esac'
s=$(wait_job "$k1" 120)
check "karolina r1 completed meanwhile ($s)" [ "$s" = COMPLETED ]

# The next submission: no --first-round, it resumes at LATEST+1 = 1.
leo=$(submit_train "$W" leonardo 2); set -- $leo; n1=$1 n2=$2
check "resubmission starts at round 1 by itself" grep -q 'train round 1' "$W/submit.err"
all_ok=1
for j in $n1 $a1 $k2 $n2 $a2; do
  s=$(wait_job "$j" 300)
  note "job $j $(job_field "$j" JobName): $s, restarts $(job_field "$j" Restarts), exit $(job_field "$j" ExitCode)"
  [ "$s" = COMPLETED ] || all_ok=0
done
check "resubmitted chain, aggregator and karolina all completed" [ $all_ok = 1 ]
check "versions 1 and 2 have both facilities" [ "$(contributors "$W" 1)|$(contributors "$W" 2)" = "karolina leonardo|karolina leonardo" ]
check "karolina's work was not redone (one attempt per round)" [ "$(attempts "$W" 1 karolina)|$(attempts "$W" 2 karolina)" = "a1|a1" ]
check "leonardo committed rounds 1 and 2 once each" [ "$(ls "$W"/store/rounds/r000001/leonardo/a*/COMMIT-* | wc -l)|$(ls "$W"/store/rounds/r000002/leonardo/a*/COMMIT-* | wc -l)" = "1|1" ]
check "xffl verify --all passes" verify_all "$W"
if [ -n "${XFFL_TEST_VERBOSE:-}" ] || [ $T_FAILED = 1 ]; then show_logs "$W/logs"; fi
exit 0
