#!/usr/bin/env bash
# Two full rounds of a tiny two-facility federation (leonardo, karolina) on a file://
# store, driven only through `xffl submit` and sbatch: the aggregator's chain and
# leonardo's chain first, karolina's chain late, so aggregate r1 (quorum missing) and
# leonardo r2 (version 1 missing) meet exit 75 and requeue; then every job completes,
# versions 1 and 2 exist with both facilities in them, `xffl verify --all` passes. The
# aggregator's chain keeps its cache (--state), so its round-2 job reads version 1 there.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fedlib.sh"
W=$(mktemp -d /tmp/xffl-slurm-fed.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
fed_setup "$W" 3 || { fail "federation set-up (data pack, init)"; exit 1; }

agg=$(submit_aggregate "$W" 2 --state "$W/agg-state")
leo=$(submit_train "$W" leonardo 2)
check "submit: aggregator chain of 2 jobs" [ "$(echo "$agg" | wc -w)" = 2 ]
check "submit: leonardo chain of 2 jobs" [ "$(echo "$leo" | wc -w)" = 2 ]
set -- $agg; a1=$1 a2=$2
set -- $leo; l1=$1 l2=$2
check "submit: round 2 jobs depend on round 1 (afterok)" eval '[ "$(job_field "$l2" Dependency | sed '\''s/(.*//'\'')" = "afterok:$l1" ] && [ "$(job_field "$a2" Dependency | sed '\''s/(.*//'\'')" = "afterok:$a1" ]'

# Karolina is late: wait until leonardo's round 2 has met "version 1 not there" and requeued.
end=$((SECONDS + 180))
while [ $SECONDS -lt $end ]; do
  r=$(job_field "$l2" Restarts); ra=$(job_field "$a1" Restarts)
  [ "${r:-0}" -ge 1 ] && [ "${ra:-0}" -ge 1 ] && break
  sleep 1
done
check "leonardo r2 met exit 75 (no version 1) and requeued before karolina submitted (restarts ${r:-0})" [ "${r:-0}" -ge 1 ]
check "aggregate r1 met exit 75 (no quorum) and requeued (restarts $(job_field "$a1" Restarts))" [ "$(job_field "$a1" Restarts)" -ge 1 ]
check "nothing aggregated without karolina" [ ! -e "$W/store/versions/v000001" ]
kar=$(submit_train "$W" karolina 2)
set -- $kar; k1=$1 k2=$2

all_ok=1
for j in $l1 $k1 $a1 $l2 $k2 $a2; do
  s=$(wait_job "$j" 300)
  note "job $j $(job_field "$j" JobName): $s, restarts $(job_field "$j" Restarts), exit $(job_field "$j" ExitCode)"
  [ "$s" = COMPLETED ] || all_ok=0
done
check "all six jobs completed" [ $all_ok = 1 ]
check "version 1 exists with leonardo and karolina" [ "$(contributors "$W" 1)" = "karolina leonardo" ]
check "version 2 exists with leonardo and karolina" [ "$(contributors "$W" 2)" = "karolina leonardo" ]
check "LATEST names version 2" grep -q '^v000002 ' "$W/store/LATEST"
check "one attempt per facility per round" [ "$(attempts "$W" 1 leonardo)|$(attempts "$W" 1 karolina)|$(attempts "$W" 2 leonardo)|$(attempts "$W" 2 karolina)" = "a1|a1|a1|a1" ]
check "xffl verify --all passes" verify_all "$W"
check "the aggregator's --state holds version 2, the one it wrote last" grep -q '^v000002 versions/v000002/INDEX-' "$W/agg-state/base.ref"
check "each job logged where the template says (<log-dir>/<job name>-<job id>.out)" eval '[ -s "$W/logs/xffl-train-leonardo-r1-$l1.out" ] && [ -s "$W/logs/xffl-aggregate-r2-$a2.out" ] && [ -s "$W/logs/xffl-train-karolina-r2-$k2.out" ]'
check "a requeue is in the logs ('not yet (exit 75); requeued')" grep -q 'not yet (exit 75); requeued' "$W/logs/xffl-train-leonardo-r2-$l2.out"
check "status shows version 2" sh -c "'$XFFL' status --store 'file://$W/store' 2>/dev/null | grep -q 'v000002\|version 2'"
if [ -n "${XFFL_TEST_VERBOSE:-}" ] || [ $T_FAILED = 1 ]; then show_logs "$W/logs"; fi
exit 0
