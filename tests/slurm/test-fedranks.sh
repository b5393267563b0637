#!/usr/bin/env bash
# Issue 15 point 4: a two-round federation in which leonardo trains with 2 ranks (2 tasks
# of train.sbatch, srun --mpi=pmix, two xffl ranks over Open MPI) and karolina with 1.
# Round 1 of leonardo is hit by `kill -9` of one rank mid-step: the job fails, no COMMIT;
# the resubmission completes both rounds, which aggregate and `verify --all`; the
# 2-rank COMMIT records ranks=2 and `reproduce --train` gives its digests again.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fedlib.sh"
W=$(mktemp -d /tmp/xffl-slurm-fedranks.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
mkdir -p "$W/tmp" && export TMPDIR=$W/tmp # the killed rank's temporary files go with W
# Open MPI refuses root unless told; sbatch --export=ALL carries these into the job.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# 250 local steps; the first leonardo chain's last rank stops itself (SIGSTOP) in the
# middle of step 100 (XFFL_TEST_STOP_AT, carried by sbatch --export=ALL), and the test
# kills it there: mid-step whatever the machine's speed (250 steps of `tiny` on 2 ranks
# take well under a second here, too short to catch by watching the log).
fed_setup "$W" 250 || { fail "federation set-up (data pack, init)"; exit 1; }

agg=$(submit_aggregate "$W" 2); set -- $agg; a1=$1 a2=$2
kar=$(submit_train "$W" karolina 2); set -- $kar; k1=$1 k2=$2
leo=$(XFFL_TEST_STOP_AT=100 submit_train "$W" leonardo 2 --tasks-per-node 2); set -- $leo; l1=$1 l2=$2
check "submit: leonardo's jobs have 2 tasks" [ "$(job_field "$l1" NumTasks)" = 2 ]
# the job's xffl processes (its ranks), by PID from Slurm, until one of them has stopped
end=$((SECONDS + 180)) ranks="" stopped=""
while [ -z "$stopped" ] && [ $SECONDS -lt $end ]; do
  sleep 0.2
  ranks=""
  for p in $(scontrol listpids "$l1" 2>/dev/null | awk 'NR > 1 {print $1}'); do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = xffl ] || continue
    ranks="$ranks $p"
    [ "$(awk '{print $3}' /proc/"$p"/stat 2>/dev/null)" = T ] && stopped=$p
  done
done
set -- $ranks
check "leonardo r1 runs 2 xffl ranks (pids$ranks)" [ $# = 2 ]
check "one rank stopped itself mid-step (pid ${stopped:-none})" [ -n "$stopped" ]
[ -n "$stopped" ] && kill -9 "$stopped" 2>/dev/null
killed_at="step 100/250, between its backward and the exchange"
s=$(wait_job "$l1" 90)
check "kill -9 of one rank at $killed_at: the job fails ($s, exit $(job_field "$l1" ExitCode))" [ "$s" = FAILED ]
check "no COMMIT from the killed attempt" sh -c "! ls '$W'/store/rounds/r000001/leonardo/a*/COMMIT-* >/dev/null 2>&1"
s=$(wait_job "$l2" 60)
check "leonardo r2 is cancelled with it ($s)" eval '[ "$s" = CANCELLED ] || [ "$s" = GONE ]'

leo=$(submit_train "$W" leonardo 2 --tasks-per-node 2); set -- $leo; n1=$1 n2=$2
all_ok=1
for j in $n1 $k1 $a1 $n2 $k2 $a2; do
  s=$(wait_job "$j" 400)
  note "job $j $(job_field "$j" JobName): $s, restarts $(job_field "$j" Restarts), exit $(job_field "$j" ExitCode)"
  [ "$s" = COMPLETED ] || all_ok=0
done
check "resubmitted leonardo (2 ranks), karolina (1) and the aggregator complete both rounds" [ $all_ok = 1 ]
check "versions 1 and 2 have leonardo and karolina" \
  eval '[ "$(contributors "$W" 1)|$(contributors "$W" 2)" = "karolina leonardo|karolina leonardo" ]'
check "xffl verify --all passes" verify_all "$W"
commit_of() { ls "$W"/store/rounds/$(printf 'r%06d' "$1")/"$2"/a*/COMMIT-* 2>/dev/null | tail -1; }
rk() { sed -n 's/^ranks=//p' "$(commit_of "$1" "$2")" 2>/dev/null | head -1; }
check "leonardo's COMMITs record ranks=2, karolina's ranks=1 ($(rk 1 leonardo) $(rk 2 leonardo) $(rk 1 karolina))" \
  eval '[ "$(rk 1 leonardo)|$(rk 2 leonardo)|$(rk 1 karolina)" = "2|2|1" ]'
for r in 1 2; do
  check "reproduce --train of leonardo's 2-rank round $r matches its COMMIT" \
    "$XFFL" reproduce --store "file://$W/store" --round $r --train --facility leonardo \
    --data "$W/data-leonardo/leonardo_train_*.bin" --state "$W/state-leonardo"
done
if [ -n "${XFFL_TEST_VERBOSE:-}" ] || [ $T_FAILED = 1 ]; then show_logs "$W/logs"; fi
exit 0
