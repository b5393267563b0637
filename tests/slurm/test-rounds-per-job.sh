#!/usr/bin/env bash
# `xffl submit --rounds-per-job K`: one train job trains K rounds in one process
# (`train --round R --rounds K`), waiting for each version, and one aggregation job
# K rounds (`aggregate --round R --rounds K`). Three rounds: leonardo in one job of 3,
# karolina in jobs of 2 and 1, the aggregator in jobs of 2 and 1; every job completes,
# versions 1-3 hold both facilities, one attempt each, `verify --all` passes.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fedlib.sh"
W=$(mktemp -d /tmp/xffl-slurm-rpj.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
fed_setup "$W" 2 || { fail "federation set-up (data pack, init)"; exit 1; }

agg=$(submit_aggregate "$W" 3 --rounds-per-job 2)
leo=$(submit_train "$W" leonardo 3 --rounds-per-job 3)
kar=$(submit_train "$W" karolina 3 --rounds-per-job 2)
check "submit: leonardo's 3 rounds in 1 job" [ "$(echo "$leo" | wc -w)" = 1 ]
check "submit: karolina's 3 rounds in 2 jobs" [ "$(echo "$kar" | wc -w)" = 2 ]
check "submit: the aggregator's 3 rounds in 2 jobs" [ "$(echo "$agg" | wc -w)" = 2 ]
set -- $kar; k1=$1 k2=$2
check "submit: karolina's second job depends on the first (afterok)" \
  eval '[ "$(job_field "$k2" Dependency | sed '\''s/(.*//'\'')" = "afterok:$k1" ]'
all_ok=1
for j in $leo $kar $agg; do
  s=$(wait_job "$j" 300)
  note "job $j $(job_field "$j" JobName): $s, restarts $(job_field "$j" Restarts), exit $(job_field "$j" ExitCode)"
  [ "$s" = COMPLETED ] || all_ok=0
done
check "all five jobs completed" [ $all_ok = 1 ]
for v in 1 2 3; do
  check "version $v exists with leonardo and karolina" [ "$(contributors "$W" $v)" = "karolina leonardo" ]
done
check "one attempt per facility per round" \
  [ "$(for r in 1 2 3; do echo "$(attempts "$W" $r leonardo) $(attempts "$W" $r karolina)"; done | tr '\n' ' ')" = "a1 a1 a1 a1 a1 a1 " ]
check "leonardo's one job reported rounds 1, 2 and 3" \
  [ "$(grep -ho '^round [0-9]* a1' "$W/logs/xffl-train-leonardo-r1-$leo.out" | awk '{print $2}' | tr '\n' ' ')" = "1 2 3 " ]
check "karolina's second job trained round 3 only" [ -s "$W/logs/xffl-train-karolina-r3-$k2.out" ]
set -- $agg; a1=$1
check "the aggregator's first job wrote versions 1 and 2" \
  eval 'grep -q "^v000001 karolina leonardo" "$W/logs/xffl-aggregate-r1-$a1.out" && grep -q "^v000002 karolina leonardo" "$W/logs/xffl-aggregate-r1-$a1.out"' 
check "xffl verify --all passes" verify_all "$W"
if [ -n "${XFFL_TEST_VERBOSE:-}" ] || [ $T_FAILED = 1 ]; then show_logs "$W/logs"; fi
exit 0
