#!/usr/bin/env bash
# make test-cron: the cron wrapper (pipelines/cron/xffl-cron) fired repeatedly and
# concurrently, as a timer does when a run outlasts its period: two firings of each of
# three crontab lines (train leonardo, train karolina, aggregate) every 0.3 s until three
# rounds are done. Checks: versions 1-3 complete with both facilities, one attempt per
# facility per round, each round committed and each version written exactly once, no
# outcome other than done / not yet (75) / lock busy, verify --all passes. First, the
# wrapper's exit-code mapping and lock on their own. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/slurm/lib.sh
. tests/slurm/fedlib.sh
cron="$T_ROOT/pipelines/cron/xffl-cron"
W=$(mktemp -d /tmp/xffl-cron.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
out=$W/results
# Default lock files (named after the command line) go to XDG_RUNTIME_DIR: keep them in W.
export XDG_RUNTIME_DIR=$W
tally() {
  local p f
  p=$(grep -c '^PASS' "$out"); f=$(grep -c '^FAIL' "$out")
  echo; echo "$p passed, $f failed"; [ "$f" -eq 0 ]
}
exec > >(tee "$out") 2>&1
if [ ! -x "$XFFL" ]; then fail "$XFFL not built"; sleep 0.1; tally; exit 1; fi

# --- the wrapper alone --------------------------------------------------------------
"$cron" --log "$W/unit.log" -- sh -c 'exit 75'; rc=$?
check "exit 75 (not yet) is 'nothing to do': exit 0" eval '[ $rc = 0 ] && grep -q "nothing to do yet (exit 75)" "$W/unit.log"'
"$cron" --log "$W/unit.log" -- sh -c 'exit 74'; rc=$?
check "exit 74 (store unreachable) stays 74" [ $rc = 74 ]
"$cron" --log "$W/unit.log" -- sh -c 'exit 65'; rc=$?
check "exit 65 (bad data) stays 65" [ $rc = 65 ]
flock "$W/held.lock" sleep 3 &
holder=$!
sleep 0.5
start=$SECONDS
"$cron" --lock "$W/held.lock" --log "$W/unit.log" -- touch "$W/ran"; rc=$?
check "lock held by a previous run: exit 0 at once, step not run" \
  eval '[ $rc = 0 ] && [ ! -e "$W/ran" ] && [ $((SECONDS - start)) -le 1 ] && grep -q "previous run still going" "$W/unit.log"'
wait "$holder"
"$cron" --lock "$W/held.lock" --log "$W/unit.log" -- touch "$W/ran"; rc=$?
check "lock free again: the step runs" eval '[ $rc = 0 ] && [ -e "$W/ran" ]'
printf 'AWS_SECRET_ACCESS_KEY=x\n' >"$W/creds" && chmod 640 "$W/creds"
"$cron" --log "$W/unit.log" --credentials "$W/creds" -- true; rc=$?
check "credentials readable by the group are refused" eval '[ $rc != 0 ] && grep -q "mode 640" "$W/unit.log"'

# --- three rounds from a fast, overlapping timer -----------------------------------
fed_setup "$W" 3 || { fail "federation set-up (data pack, init)"; tally; exit 1; }
S="file://$W/store"
mkdir -p "$W/rc"
n=0
pids=()
fire() { # name command...
  local name=$1; shift
  n=$((n + 1))
  ( "$cron" --log "$W/cron-$name.log" -- "$@"; echo $? >"$W/rc/$name-$n" ) &
  pids+=($!)
}
end=$((SECONDS + 240))
ticks=0
while [ $SECONDS -lt $end ] && ! grep -q '^v000003 ' "$W/store/LATEST" 2>/dev/null; do
  for _ in 1 2; do
    for f in leonardo karolina; do
      fire "train-$f" "$XFFL" train --store "$S" --facility "$f" --data "$W/data-$f/${f}_train_*.bin" \
        --state "$W/state-$f" --threads 1
    done
    fire aggregate "$XFFL" aggregate --store "$S" --threads 1
  done
  ticks=$((ticks + 1))
  sleep 0.3
done
# Not a bare `wait`: it would also wait for the tee behind stdout.
wait "${pids[@]}"
note "$ticks timer ticks, $n wrapper runs"
check "three rounds done (LATEST $(cut -d' ' -f1 "$W/store/LATEST"))" grep -q '^v00000[3-9] ' "$W/store/LATEST"
for v in 1 2 3; do
  check "version $v has leonardo and karolina" [ "$(contributors "$W" $v)" = "karolina leonardo" ]
done
bad=$(cat "$W"/rc/* | grep -vx 0 | sort | uniq -c | tr '\n' ' ')
check "every wrapper run exited 0 ($n runs${bad:+; others: $bad})" [ -z "$bad" ]
logs="$W/cron-train-leonardo.log $W/cron-train-karolina.log $W/cron-aggregate.log"
outcomes=$(cat $logs | grep -o 'done (exit 0)\|nothing to do yet (exit 75)\|previous run still going\|failed (exit [0-9]*)\|store unreachable (exit 74)' | sort | uniq -c | tr '\n' ';')
note "outcomes: $outcomes"
check "no outcome other than done, not yet (75), lock busy" eval '! grep -q "failed (exit\|store unreachable" $logs'
check "the timer really overlapped runs (lock busy seen)" grep -q 'previous run still going' $logs
check "some runs were 'not yet' (75)" grep -q 'nothing to do yet (exit 75)' $logs
same=1
for r in 1 2 3; do
  for f in leonardo karolina; do
    a=$(attempts "$W" $r $f)
    c=$(grep -c "^round $r a1 rounds/r00000$r/$f/a1/COMMIT-" "$W/cron-train-$f.log")
    note "round $r $f: attempts '$a', committed $c time(s)"
    [ "$a" = a1 ] && [ "$c" = 1 ] || same=0
  done
  w=$(grep -c "^v00000$r " "$W/cron-aggregate.log")
  note "version $r written $w time(s)"
  [ "$w" = 1 ] || same=0
done
check "no duplicate work: one attempt and one commit per facility per round, one write per version" [ $same = 1 ]
check "xffl verify --all passes" verify_all "$W"
if [ $T_FAILED = 1 ] || [ -n "${XFFL_TEST_VERBOSE:-}" ]; then
  for l in $logs; do echo "  --- $l"; grep -v 'previous run still going' "$l" | tail -30 | sed 's/^/  | /'; done
fi
sleep 0.1
tally
