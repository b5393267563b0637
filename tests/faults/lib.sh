# Shared by tests/faults/run.sh and tests/it/test-s3.sh (sourced, bash).
# Needs: $XFFL_BUILD (default build). Sets X (xffl), T (store_torture), WORK (temp dir).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${XFFL_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
X=$BUILD/xffl
T=$BUILD/faults/store_torture
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xffl-storetest-XXXXXX")
# federation pins (xffl verify) of this run only: other runs reuse the same s3:// URLs
export XDG_CONFIG_HOME=$WORK/config
# the S3 backend under test: XFFL_S3_SIGNATURE=v2 (libs3) or v4 (the default)
SIG=${XFFL_S3_SIGNATURE:-v4}
PROXY_PID=
fails=0

cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
  [ -n "${S3RVER_PID:-}" ] && "$ROOT/tests/s3/stop.sh" --rm
  rm -rf "$WORK"
}
trap cleanup EXIT

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Starts s3rver (bucket xffl) and exports its settings; exits 0 with SKIP if impossible.
start_s3() {
  local env
  if ! env=$("$ROOT/tests/s3/start.sh" "$@"); then
    echo "SKIP: s3rver could not be installed or started (needs node and npm s3rver@3.7.1)"
    exit 0
  fi
  eval "$env"
}

restart_s3() { # same port and data directory, after a kill
  local env
  env=$("$ROOT/tests/s3/start.sh" --port "$S3RVER_PORT" --dir "$S3RVER_DIR" --bucket -) || return 1
  eval "$env"
}

# Starts tests/faults/faultproxy.py in front of s3rver; sets PROXY_PORT, PROXY_PID.
start_proxy() {
  python3 "$ROOT/tests/faults/faultproxy.py" --upstream "$XFFL_S3_ENDPOINT" --stats "$WORK/proxy.json" "$@" \
    >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
  PROXY_PID=$!
  PROXY_PORT=
  for _ in $(seq 1 100); do
    PROXY_PORT=$(awk '/LISTENING/{print $2}' "$WORK/proxy.out")
    [ -n "$PROXY_PORT" ] && return 0
    sleep 0.1
  done
  echo "fault proxy did not start:"; cat "$WORK/proxy.err"; return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- cheap error-path checks (each a test) ----------------------------------------

# Nothing listening: retries, then exit 74 naming the endpoint, within the deadline.
check_unreachable() {
  local port t0 t1 rc deadline=${1:-4}
  port=$(free_port)
  t0=$(date +%s.%N)
  XFFL_S3_ENDPOINT=127.0.0.1:$port "$X" --verbose ls --store s3://xffl/x --retries 100 --retry-deadline "$deadline" \
    >"$WORK/unreach.out" 2>"$WORK/unreach.err"
  rc=$?
  t1=$(date +%s.%N)
  local el retries
  el=$(python3 -c "print(round($t1-$t0,1))")
  retries=$(grep -c 'retry' "$WORK/unreach.err")
  if [ $rc = 74 ] && grep -q "127.0.0.1:$port" <(tail -1 "$WORK/unreach.err") && [ "$retries" -ge 3 ] \
     && python3 -c "import sys; sys.exit(0 if $el <= $deadline + 3 else 1)"; then
    pass "server not running: exit 74 after $retries retries in ${el}s (deadline ${deadline}s): $(tail -1 "$WORK/unreach.err")"
  else
    fail "server not running: rc=$rc retries=$retries elapsed=${el}s"; tail -3 "$WORK/unreach.err"
  fi
}

# A wrong secret is refused at once (no retries), exit 1, "credentials rejected".
check_wrong_secret() {
  local t0 t1 rc
  if [ "$SIG" = v4 ] && [ -z "${S3_VERIFYING:-}" ]; then
    echo "SKIP: wrong secret with signature v4: s3rver lets any V4 signature of a known key through (S3_VERIFYING=1 when a verifying proxy is in front)"
    return
  fi
  t0=$(date +%s.%N)
  AWS_SECRET_ACCESS_KEY=not-the-secret "$X" --verbose ls --store s3://xffl/x >/dev/null 2>"$WORK/auth.err"
  rc=$?
  t1=$(date +%s.%N)
  local el; el=$(python3 -c "print(round($t1-$t0,2))")
  # immediate: no retry at all (the time bound only guards against a hang on a loaded machine)
  if [ $rc = 1 ] && grep -q 'credentials rejected' "$WORK/auth.err" && ! grep -q retry "$WORK/auth.err" \
     && python3 -c "import sys; sys.exit(0 if $el < 5 else 1)"; then
    pass "wrong secret: exit 1 in ${el}s: $(cat "$WORK/auth.err")"
  else
    fail "wrong secret: rc=$rc elapsed=${el}s: $(cat "$WORK/auth.err")"
  fi
}

check_missing_bucket() {
  "$X" ls --store s3://no-such-bucket/p >/dev/null 2>"$WORK/bucket.err"
  local rc=$?
  if [ $rc = 1 ] && grep -q "bucket 'no-such-bucket' does not exist" "$WORK/bucket.err"; then
    pass "missing bucket: exit 1: $(cat "$WORK/bucket.err")"
  else
    fail "missing bucket: rc=$rc: $(cat "$WORK/bucket.err")"
  fi
}

check_missing_env() {
  env -u AWS_SECRET_ACCESS_KEY "$X" ls --store s3://xffl/p >/dev/null 2>"$WORK/env.err"
  local rc=$?
  if [ $rc = 2 ] && grep -q 'AWS_SECRET_ACCESS_KEY is not set' "$WORK/env.err"; then
    pass "missing variable: exit 2 naming it"
  else
    fail "missing variable: rc=$rc: $(cat "$WORK/env.err")"
  fi
}

# An object altered on disk behind the server: a verified read is exit 65 naming the key.
check_altered() {
  local key=alter/obj.bin f sha obj rc
  f=$WORK/alter.bin
  head -c 200000 /dev/urandom >"$f"
  sha=$(sha256sum "$f" | cut -c1-64)
  "$T" --store s3://xffl/t-alter put "$key" "$f" >/dev/null || { fail "altered: upload failed"; return; }
  obj=$S3RVER_DIR/data/xffl/t-alter/alter/obj.bin._S3rver_object
  [ -f "$obj" ] || { fail "altered: s3rver object file $obj not found"; return; }
  python3 - "$obj" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read()); b[1000] ^= 0xFF
open(p, 'wb').write(b)
PY
  "$T" --store s3://xffl/t-alter get "$key" "$WORK/alter.out" "$sha" >/dev/null 2>"$WORK/alter.err"
  rc=$?
  if [ $rc = 65 ] && grep -q "$key" "$WORK/alter.err" && grep -q 'sha256 mismatch' "$WORK/alter.err" && [ ! -e "$WORK/alter.out" ]; then
    pass "object altered behind the server: exit 65: $(cat "$WORK/alter.err")"
  else
    fail "altered: rc=$rc: $(cat "$WORK/alter.err")"
  fi
}

# Objects over 4 GiB are refused before any request (v2: libs3 2.0 has no multipart upload).
check_too_big() {
  if [ "$SIG" = v4 ]; then
    echo "SKIP: 5 GiB object refused: only libs3 (v2) has the 4 GiB limit; v4 uploads it in parts"
    return
  fi
  truncate -s 5G "$WORK/huge.bin"
  "$T" --store s3://xffl/t-huge put huge.bin "$WORK/huge.bin" >/dev/null 2>"$WORK/huge.err"
  local rc=$?
  rm -f "$WORK/huge.bin"
  if [ $rc = 1 ] && grep -q '4 GiB' "$WORK/huge.err"; then
    pass "5 GiB object refused: $(cat "$WORK/huge.err")"
  else
    fail "5 GiB object: rc=$rc: $(cat "$WORK/huge.err")"
  fi
}
