#!/usr/bin/env bash
# xffl submit's command line: help, usage errors (exit 2), --dry-run (the sbatch lines,
# nothing queued), the first round read from LATEST, credentials mode, sbatch refusing a
# job (exit 1, naming what was queued), --after and --json on a real submission.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fedlib.sh"
W=$(mktemp -d /tmp/xffl-slurm-sub.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
sub() { "$XFFL" submit --scheduler slurm "$@" >"$W/out" 2>"$W/err"; }
T=(--role train --store "file://$W/store" --facility leonardo --data "$W/d/*.bin" --state "$W/st")

"$XFFL" submit --help >"$W/help"; rc=$?
check "--help exits 0 and names the exit codes" eval '[ $rc = 0 ] && grep -q "^exit codes: 0 every job submitted" "$W/help"'
sub --role train --rounds 2 --store x; rc=$?
check "train without --facility/--data/--state: exit 2 naming them" eval '[ $rc = 2 ] && grep -q "needs --facility NAME, --data GLOB and --state DIR" "$W/err"'
"$XFFL" submit --scheduler pbs --role aggregate --rounds 1 --store x 2>"$W/err"; rc=$?
check "unknown scheduler: exit 2" eval '[ $rc = 2 ] && grep -q "unknown scheduler .pbs." "$W/err"'
sub --role aggregate --rounds 0 --store x; rc=$?
check "--rounds 0: exit 2" [ $rc = 2 ]
sub --role aggregate --rounds 1 --store x --facility a; rc=$?
check "--facility with --role aggregate: exit 2" [ $rc = 2 ]

before=$(squeue -h | wc -l)
sub "${T[@]}" --rounds 3 --first-round 4 --partition leonardo --gpus-per-node 4 --time 1:00:00 --dry-run -- --threads 2; rc=$?
check "--dry-run: exit 0, three sbatch lines, nothing queued" eval '[ $rc = 0 ] && [ "$(grep -c "^sbatch " "$W/out")" = 3 ] && [ "$(squeue -h | wc -l)" = "$before" ]'
check "--dry-run: rounds 4, 5, 6 named on the train command line" \
  eval '[ "$(grep -o -- "--round [0-9]*" "$W/out" | tr "\n" " ")" = "--round 4 --round 5 --round 6 " ]'
check "--dry-run: jobs after the first depend on the one before (afterok, kill-on-invalid-dep)" \
  eval '[ "$(grep -c -- "--dependency=afterok:<job of round [45]>. --kill-on-invalid-dep=yes" "$W/out")" = 2 ] && ! head -1 "$W/out" | grep -q dependency'
check "--dry-run: one task per GPU, partition, time, requeue, append-mode log in the log dir" \
  eval 'grep -q -- "--gpus-per-node=4 --ntasks-per-node=4 --partition=leonardo --time=1:00:00" "$W/out" && grep -q -- "--requeue" "$W/out" && grep -q -- "--output=$PWD/xffl-logs/%x-%j.out --open-mode=append" "$W/out"'
check "--dry-run: step arguments after -- reach the train command" eval 'grep -q -- "--round 6 --threads 2$" "$W/out"'

sub "${T[@]}" --rounds 1 --dry-run; rc=$?
check "no --first-round and no LATEST: exit 1 saying to init" eval '[ $rc = 1 ] && grep -q "has no LATEST" "$W/err"'
mkdir -p "$W/d"
"$XFFL" init --store "file://$W/store" --model tiny --facilities leonardo,karolina >/dev/null 2>&1
sub "${T[@]}" --rounds 1 --dry-run; rc=$?
check "no --first-round: the chain starts at LATEST+1 (round 1)" eval '[ $rc = 0 ] && grep -q -- "--round 1$" "$W/out"'
printf 'AWS_SECRET_ACCESS_KEY=x\n' >"$W/creds"; chmod 644 "$W/creds"
sub "${T[@]}" --rounds 1 --credentials "$W/creds" --dry-run; rc=$?
check "credentials file readable by others: exit 1 before any sbatch" eval '[ $rc = 1 ] && grep -q "mode 644" "$W/err" && [ ! -s "$W/out" ]'

sub "${T[@]}" --rounds 2 --partition nosuchpartition --log-dir "$W/logs"; rc=$?
check "sbatch refuses the job: exit 1 with sbatch's reason, nothing queued" \
  eval '[ $rc = 1 ] && grep -qi "invalid partition" "$W/err" && grep -q "0 of 2 jobs are queued" "$W/err"'

held=$(sbatch --parsable --hold --output=/dev/null --wrap true)
"$XFFL" --json submit --scheduler slurm --role aggregate --rounds 2 --store "file://$W/store" --partition aggregation \
  --after "$held" --log-dir "$W/logs" >"$W/out" 2>"$W/err"; rc=$?
j1=$(sed -n '1s/.*"job": \([0-9]*\).*/\1/p' "$W/out"); j2=$(sed -n '2s/.*"job": \([0-9]*\).*/\1/p' "$W/out")
check "--json: one object per job with job, name, round, rounds, after" \
  eval '[ $rc = 0 ] && grep -q "\"name\": \"xffl-aggregate-r1\", \"round\": 1, \"rounds\": 1, \"after\": $held}" "$W/out" && [ -n "$j2" ]'
check "--after: the first job waits for the given job" eval '[ "$(job_field "$j1" Dependency | sed "s/(.*//")" = "afterok:$held" ]'
check "--after: the second waits for the first" eval '[ "$(job_field "$j2" Dependency | sed "s/(.*//")" = "afterok:$j1" ]'
check "jobs name the store, round and xffl binary (XFFL_BIN exported)" \
  eval 'scontrol show job "$j1" | grep -q "Command=$T_ROOT/pipelines/slurm/aggregate.sbatch --store file://$W/store --round 1"'
scancel "$held" "$j1" "$j2"
exit 0
