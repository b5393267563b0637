# shellcheck shell=bash disable=SC2034
# Shared helpers of the Slurm and cron tests (sourced). Each check prints "PASS: what" or
# "FAIL: what"; the driver counts those lines.
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XFFL_BUILD=${XFFL_BUILD:-build}
XFFL="$T_ROOT/$XFFL_BUILD/xffl"
export HDF5_PLUGIN_PATH="$T_ROOT/$XFFL_BUILD/plugins"
SLURM_DIR_T="$T_ROOT/pipelines/slurm"

pass() { echo "PASS: $*"; }
T_FAILED=0
fail() { echo "FAIL: $*"; T_FAILED=1; }
# check "what" command...: PASS when the command succeeds.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
note() { echo "  .. $*"; }

# A job's field from `scontrol show job -o` (records stay MinJobAge=600 s after the end).
job_field() { # job field
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}
job_state() { job_field "$1" JobState; }
# Waits until job leaves PENDING/RUNNING/... ; prints its final state (or TIMEOUT-WAITING).
wait_job() { # job timeout_s
  local end=$((SECONDS + $2)) st
  while [ $SECONDS -lt $end ]; do
    st=$(job_state "$1")
    case "$st" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) echo "$st"; return 0 ;;
      "") echo GONE; return 0 ;;
    esac
    sleep 1
  done
  echo "STILL-$st"
}
# Waits until job is RUNNING (prints 0) or gives up.
wait_running() { # job timeout_s
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    [ "$(job_state "$1")" = RUNNING ] && return 0
    sleep 0.2
  done
  return 1
}
show_logs() { # dir
  for f in "$1"/*.out; do [ -f "$f" ] && { echo "  --- $f"; tail -25 "$f" | sed 's/^/  | /'; }; done
}
