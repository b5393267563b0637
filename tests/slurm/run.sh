#!/usr/bin/env bash
# make test-slurm: installs Slurm 22.05 and munge from Debian if missing, starts a one-node
# cluster (partitions leonardo, karolina, aggregation) in a temporary directory, runs
# tests/slurm/test-*.sh against it (XFFL_SLURM_TESTS="a b" picks some), stops the daemons
# by PID and ends with "N passed, N failed". Needs root (slurmd runs jobs as their user).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${XFFL_BUILD:-build}
export XFFL_BUILD=$BUILD
passed=0; failed=0
tally() { echo; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: test-slurm needs root (slurmd and munged run as root here)"
  tally
fi
[ -x "$BUILD/xffl" ] || { echo "FAIL: $BUILD/xffl not built"; failed=1; tally; }
if ! scripts/slurm-install; then
  echo "FAIL: installing slurmctld, slurmd, slurm-client and munge"; failed=1; tally
fi
dir=$(mktemp -d /tmp/xffl-slurm.XXXXXX)
stopped=0
cleanup() { [ $stopped = 1 ] || scripts/slurm-stop "$dir" >/dev/null 2>&1; [ -n "${XFFL_TEST_KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! scripts/slurm-start "$dir" >/dev/null; then
  echo "FAIL: starting munged, slurmctld and slurmd (scripts/slurm-start)"; failed=1; tally
fi
echo "PASS: one-node Slurm up ($(sinfo --version 2>/dev/null || SLURM_CONF=$dir/slurm.conf sinfo --version))"
passed=$((passed + 1))
. "$dir/env"

tests=${XFFL_SLURM_TESTS:-$(cd tests/slurm && ls test-*.sh | sed 's/\.sh$//' | sort)}
for t in $tests; do
  t=${t%.sh}
  echo "== $t"
  out=$(mktemp)
  start=$SECONDS
  bash "tests/slurm/$t.sh" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASS' "$out"); f=$(grep -c '^FAIL' "$out")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL: $t exited $rc"; failed=$((failed + 1))
  fi
  echo "== $t: $p passed, $f failed ($((SECONDS - start))s)"
  rm -f "$out"
done

pids=$(awk '{print $2}' "$dir/pids")
scripts/slurm-stop "$dir"
stopped=1
alive=""
for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
if [ -z "$alive" ]; then echo "PASS: munged, slurmctld, slurmd stopped by PID ($(echo $pids))"; passed=$((passed + 1))
else echo "FAIL: still running after slurm-stop:$alive"; failed=$((failed + 1)); fi
tally
