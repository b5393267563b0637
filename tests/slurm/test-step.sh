#!/usr/bin/env bash
# xffl-step under a real Slurm, with a step script standing in for xffl whose exit codes
# are chosen per attempt: 75/74 requeue with the delay asked (and keep afterok
# dependents waiting), the deadline fails the job and cancels its dependents, another
# code fails at once, credentials files are checked for mode 600 and exported.
# Needs SLURM_CONF of a running cluster (tests/slurm/run.sh starts one).
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/xffl-slurm-step.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
mkdir -p "$W/logs"
# flaky.sh CODE N FILE: exits CODE the first N times (appending each attempt's time to FILE), then 0.
cat >"$W/flaky.sh" <<'S'
#!/bin/sh
date +%s >>"$3"
[ "$(wc -l <"$3")" -le "$2" ] && exit "$1"
exit 0
S
chmod +x "$W/flaky.sh"
step="$SLURM_DIR_T/xffl-step"
sub() { # name env-assignments... -- step args...
  local name=$1; shift
  local envs="ALL"
  while [ "$1" != -- ]; do envs="$envs,$1"; shift; done
  shift
  sbatch --parsable --job-name="$name" --requeue --open-mode=append --output="$W/logs/%x-%j.out" \
    --export="$envs,XFFL_LOG_DIR=$W/logs" "$step" -- "$@"
}
dep() { sbatch --parsable --job-name="dep-$1" --dependency=afterok:"$1" --kill-on-invalid-dep=yes \
  --output="$W/logs/%x-%j.out" --wrap "date +%s >$W/dep-$1"; }

# 1. exit 75 twice, then 0; 3 s between attempts.
j1=$(sub requeue75 XFFL_REQUEUE_DELAY=3 XFFL_DEADLINE=300 -- "$W/flaky.sh" 75 2 "$W/a1") || fail "sbatch requeue75"
d1=$(dep "$j1")
# 2. exit 74 (store unreachable) once.
j2=$(sub requeue74 XFFL_REQUEUE_DELAY=1 XFFL_DEADLINE=300 -- "$W/flaky.sh" 74 1 "$W/a2")
# 2b. more requeues than Slurm's MaxBatchRequeue (5, which caps launch failures only).
j7=$(sub manyrequeues XFFL_REQUEUE_DELAY=1 XFFL_DEADLINE=300 -- "$W/flaky.sh" 75 6 "$W/a7")
# 3. always 75: deadline 5 s with 2 s between attempts.
j3=$(sub deadline XFFL_REQUEUE_DELAY=2 XFFL_DEADLINE=5 -- "$W/flaky.sh" 75 999 "$W/a3")
d3=$(dep "$j3")
# 4. any other code fails at once (65: bad data).
j4=$(sub bad65 XFFL_REQUEUE_DELAY=1 -- "$W/flaky.sh" 65 999 "$W/a4")
d4=$(dep "$j4")
# 5. credentials: readable by others -> refused; mode 600 -> exported to the step.
printf 'export AWS_ACCESS_KEY_ID=ak\nAWS_SECRET_ACCESS_KEY="s3 cr3t"\n# comment\n' >"$W/creds-open"
chmod 644 "$W/creds-open"
cp "$W/creds-open" "$W/creds-ok" && chmod 600 "$W/creds-ok"
j5=$(sub credsopen XFFL_CREDENTIALS="$W/creds-open" -- sh -c 'exit 0')
j6=$(sub credsok XFFL_CREDENTIALS="$W/creds-ok" -- sh -c 'test "$AWS_SECRET_ACCESS_KEY" = "s3 cr3t" && test "$AWS_ACCESS_KEY_ID" = ak')

s1=$(wait_job "$j1" 90)
check "75 twice then 0: job completes ($s1)" [ "$s1" = COMPLETED ]
check "75 twice then 0: three attempts" [ "$(wc -l <"$W/a1" 2>/dev/null)" = 3 ]
check "75 twice then 0: Slurm counts 2 restarts" [ "$(job_field "$j1" Restarts)" = 2 ]
gaps_ok=1
prev=""
while read -r t; do
  [ -n "$prev" ] && { g=$((t - prev)); note "gap between attempts: ${g}s (delay 3)"; [ $g -ge 3 ] && [ $g -le 40 ] || gaps_ok=0; }
  prev=$t
done <"$W/a1"
check "requeued attempts start no sooner than the delay asked (3 s)" [ $gaps_ok = 1 ]
check "requeue logged in the job's log" [ "$(grep -c 'requeued to start again in 3s' "$W"/logs/requeue75-"$j1".out)" = 2 ]
sd1=$(wait_job "$d1" 30)
check "afterok dependent waited through the requeues and ran ($sd1)" eval '[ "$sd1" = COMPLETED ] && [ "$(cat "$W/dep-$j1" 2>/dev/null || echo 0)" -ge "$(tail -1 "$W/a1")" ]'
s2=$(wait_job "$j2" 60)
check "74 once then 0: job completes after one requeue ($s2)" eval '[ "$s2" = COMPLETED ] && [ "$(wc -l <"$W/a2")" = 2 ]'
s7=$(wait_job "$j7" 150)
check "75 six times: 7 attempts, 6 restarts, completes ($s7)" eval '[ "$s7" = COMPLETED ] && [ "$(wc -l <"$W/a7")" = 7 ] && [ "$(job_field "$j7" Restarts)" = 6 ]'
s3=$(wait_job "$j3" 60)
check "always 75: job fails at the deadline ($s3)" [ "$s3" = FAILED ]
n3=$(wc -l <"$W/a3")
check "always 75: 2-4 attempts within a 5 s deadline ($n3)" eval '[ "$n3" -ge 2 ] && [ "$n3" -le 4 ]'
check "always 75: the log says the deadline passed" grep -q "would pass the 5s deadline: failing the job" "$W"/logs/deadline-"$j3".out
sd3=$(wait_job "$d3" 30)
check "always 75: the dependent is cancelled ($sd3)" eval '[ "$sd3" = CANCELLED ] || [ "$sd3" = GONE ]'
s4=$(wait_job "$j4" 30)
check "exit 65: job fails at once, no requeue ($s4)" eval '[ "$s4" = FAILED ] && [ "$(wc -l <"$W/a4")" = 1 ] && [ "$(job_field "$j4" ExitCode)" = 65:0 ]'
sd4=$(wait_job "$d4" 30)
check "exit 65: the dependent is cancelled ($sd4)" eval '[ "$sd4" = CANCELLED ] || [ "$sd4" = GONE ]'
s5=$(wait_job "$j5" 30)
check "credentials file with mode 644 is refused ($s5)" eval '[ "$s5" = FAILED ] && grep -q "mode 644: others can read it; run '\''chmod 600" "$W"/logs/credsopen-"$j5".out'
s6=$(wait_job "$j6" 30)
check "credentials file with mode 600 is exported to the step ($s6)" [ "$s6" = COMPLETED ]
if [ -n "${XFFL_TEST_VERBOSE:-}" ] || [ $T_FAILED = 1 ]; then show_logs "$W/logs"; fi
exit 0
