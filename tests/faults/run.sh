#!/usr/bin/env bash
# make test-faults: the store under faults (issue 4 point 2), each a test, against s3rver
# on loopback. Prints PASS/FAIL per test; exit 1 if any failed. About 1-2 minutes.
#   1 server not running          -> retries, exit 74 naming the endpoint within the deadline
#   2 server killed and restarted during a 256 MiB PUT and a 256 MiB GET -> both complete
#   3 fault-injecting proxy (resets, 503s, truncated bodies, rare stalls and byte flips)
#     for >= 100 operations at >= 20 % faulty requests -> every operation correct, and the
#     store then holds exactly the expected objects, read straight from the server
#   4 object altered on disk behind the server -> exit 65 naming the key
#   5 wrong secret -> exit 1 "credentials rejected", no retries
#   6 missing bucket -> exit 1 naming the bucket; missing variable -> exit 2 naming it
# Environment: XFFL_BUILD (default build), FAULT_OPS (default 150), FAULT_RATE (0.3).
set -u
. "$(dirname "$0")/lib.sh"
[ -x "$X" ] && [ -x "$T" ] || { echo "FAIL: build first (make all): $X, $T"; exit 1; }
start_s3
echo "s3rver at $XFFL_S3_ENDPOINT (pid $S3RVER_PID; $(s3_cell))"

check_unreachable 6

# 2. kill -9 and restart during a 256 MiB transfer, once while uploading, once downloading
big=$WORK/big.bin
head -c $((256 << 20)) /dev/urandom >"$big"
sha=$(sha256sum "$big" | cut -c1-64)
size_of() { stat -c %s "$@" 2>/dev/null | sort -n | tail -1; }
kill_restart_during() { # $1 = pid of the transfer, $2 = label, $3 = a command printing the bytes moved so far
  local pid=$1 label=$2 moved=$3 n
  # kill once the transfer is under way (16 MiB moved), however fast this machine is
  for _ in $(seq 1 400); do
    n=$($moved); [ "${n:-0}" -gt $((16 << 20)) ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  kill -0 "$pid" 2>/dev/null || echo "note: $label finished before the kill"
  kill -9 "$S3RVER_PID"; wait "$S3RVER_PID" 2>/dev/null
  sleep 2
  restart_s3 || { fail "$label: s3rver did not restart"; return 1; }
}
# bytes s3rver holds of the upload (its partial file, or multipart parts), and of the download
bytes0=$(s3_bytes)
put_moved() { echo $(( $(s3_bytes) - bytes0 )); }
get_moved() { size_of "$WORK"/big.out*; }
"$T" --verbose --store s3://xffl/t-big put big.bin "$big" >"$WORK/put.out" 2>"$WORK/put.err" &
tp=$!
kill_restart_during $tp "256 MiB PUT" put_moved
wait $tp; rc=$?
if [ $rc = 0 ] && grep -q retry "$WORK/put.err"; then
  pass "s3rver killed and restarted during a 256 MiB PUT: completed after $(grep -c retry "$WORK/put.err") retries $(cat "$WORK/put.out")"
else
  fail "256 MiB PUT across a restart: rc=$rc"; tail -3 "$WORK/put.err"
fi
"$T" --verbose --store s3://xffl/t-big get big.bin "$WORK/big.out" "$sha" >"$WORK/get.out" 2>"$WORK/get.err" &
tp=$!
kill_restart_during $tp "256 MiB GET" get_moved
wait $tp; rc=$?
if [ $rc = 0 ] && cmp -s "$big" "$WORK/big.out" && grep -q retry "$WORK/get.err"; then
  pass "s3rver killed and restarted during a 256 MiB GET: completed bit-exact after $(grep -c retry "$WORK/get.err") retries $(cat "$WORK/get.out")"
else
  fail "256 MiB GET across a restart: rc=$rc"; tail -3 "$WORK/get.err"
fi
rm -f "$big" "$WORK/big.out"

# 3. the fault-injecting proxy
ops=${FAULT_OPS:-150}
rate=${FAULT_RATE:-0.3}
if start_proxy --rate "$rate" --stall-share 0.03 --max-stalls 2 --flip-share 0.05 --stall-seconds 20 --seed 7; then
  real=$XFFL_S3_ENDPOINT
  XFFL_S3_ENDPOINT=$PROXY_ENDPOINT "$T" --verbose --retries 12 --retry-deadline 120 --store s3://xffl/t-proxy \
    random --ops "$ops" --seed 3 --max-size 400000 --manifest "$WORK/expected.txt" >"$WORK/torture.out" 2>"$WORK/torture.err"
  rc=$?
  stop_proxy
  stats=$(cat "$WORK/proxy.json" 2>/dev/null)
  share=$(python3 -c "import json,sys; s=json.loads(sys.argv[1]); print(round(s['faults']/max(1,s['requests']),3))" "$stats")
  "$T" --store s3://xffl/t-proxy check --manifest "$WORK/expected.txt" >"$WORK/check.out" 2>"$WORK/check.err"
  crc=$?
  if [ $rc = 0 ] && [ $crc = 0 ] && python3 -c "import sys; sys.exit(0 if $share >= 0.20 else 1)"; then
    pass "fault proxy: $ops operations all correct with $share of requests faulty $stats; $(cat "$WORK/torture.out"); direct check $(cat "$WORK/check.out")"
  else
    fail "fault proxy: rc=$rc check=$crc share=$share $stats"; grep -v retry "$WORK/torture.err" | tail -5; cat "$WORK/check.err"
  fi
  XFFL_S3_ENDPOINT=$real
fi

check_altered
check_wrong_secret
check_missing_bucket
check_missing_env

echo "$fails failed"
[ $fails = 0 ]
