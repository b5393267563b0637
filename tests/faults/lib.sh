# Shared by tests/faults/run.sh and tests/it/test-s3.sh (sourced, bash).
# Needs: $XFFL_BUILD (default build). Sets X (xffl), T (store_torture), WORK (temp dir).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${XFFL_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
X=$BUILD/xffl
T=$BUILD/faults/store_torture
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xffl-storetest-XXXXXX")
# temporary files of the processes the tests start and kill (which cannot remove their
# own) go with WORK
mkdir -p "$WORK/tmp" && export TMPDIR=$WORK/tmp
# federation pins (xffl verify) of this run only: other runs reuse the same s3:// URLs
export XDG_CONFIG_HOME=$WORK/config
PROXY_PID=
fails=0

cleanup() {
  stop_proxy
  local p
  for p in $(cat "$WORK/extra.pids" 2>/dev/null); do kill "$p" 2>/dev/null; done
  [ -n "${S3RVER_PID:-}" ] && "$ROOT/tests/s3/stop.sh" --rm
  rm -rf "$WORK"
}
trap cleanup EXIT

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The signature the backend uses: XFFL_S3_SIGNATURE as xffl reads it (v4 unless v2); v2
# for a build without the V4 backend (one that does not know the variable).
s3_signature() {
  if ! grep -q XFFL_S3_SIGNATURE "$X" 2>/dev/null; then echo v2; return; fi
  case ${XFFL_S3_SIGNATURE:-} in v2) echo v2 ;; *) echo v4 ;; esac
}
# the S3 backend under test: XFFL_S3_SIGNATURE=v2 (libs3) or v4 (the default)
SIG=$(s3_signature)

# Starts s3rver (bucket xffl) and exports its settings; exits 0 with SKIP if impossible.
# The test matrix (tests/s3/matrix.sh) picks what stands in front of it:
#   signature v4 (XFFL_S3_SIGNATURE unset, empty or v4), or XFFL_S3_TEST_PROXY=1:
#     tests/s3/sigv4proxy.py, which verifies every V4 signature (s3rver does not)
#   XFFL_S3_TEST_TLS=1: stunnel4 with the test CA (AWS_CA_BUNDLE), certificates from
#     XFFL_S3_TEST_TLS_DIR when set (the matrix makes them first, to bind-mount a system
#     bundle holding the test CA for libs3: see tests/s3/matrix.sh); XFFL_S3_TEST_SYSTEM_CA=1
#     then leaves AWS_CA_BUNDLE unset, so the system store is what trusts it
# XFFL_S3_TEST_PROXY_ARGS: extra arguments for the proxy (words).
start_s3() {
  local env args=()
  if [ "$(s3_signature)" = v4 ] || [ "${XFFL_S3_TEST_PROXY:-0}" = 1 ]; then
    args+=(--sigv4)
    S3_VERIFYING=1
    for a in ${XFFL_S3_TEST_PROXY_ARGS:-}; do args+=(--proxy-arg "$a"); done
  fi
  if [ "${XFFL_S3_TEST_TLS:-0}" = 1 ]; then
    args+=(--tls)
    [ -n "${XFFL_S3_TEST_TLS_DIR:-}" ] && args+=(--tls-dir "$XFFL_S3_TEST_TLS_DIR")
  fi
  if ! env=$("$ROOT/tests/s3/start.sh" "${args[@]}" "$@"); then
    echo "SKIP: the S3 test server could not be started (needs node and npm s3rver@3.7.1; python3-botocore and stunnel4 for the V4 and HTTPS cells)"
    exit 0
  fi
  eval "$env"
  # XFFL_S3_TEST_SYSTEM_CA=1: trust the test CA only through the system store (the matrix
  # bind-mounts a bundle holding it in a private mount namespace), not AWS_CA_BUNDLE
  [ "${XFFL_S3_TEST_SYSTEM_CA:-0}" = 1 ] && unset AWS_CA_BUNDLE
  # a user's own AWS profile never stands in for the test's credentials
  export AWS_SHARED_CREDENTIALS_FILE=$WORK/no-aws-credentials AWS_CONFIG_FILE=$WORK/no-aws-config
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION
  S3_FRONT=$XFFL_S3_ENDPOINT S3_FRONT_HTTPS=$XFFL_S3_HTTPS
}

# An s3cmd configuration for the server under test: signature V4 unless the cell is V2 (so
# the verifying proxy checks s3cmd's signatures too), HTTPS with the test CA.
s3cmd_config() { # file
  cat >"$1" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $XFFL_S3_ENDPOINT
host_bucket = $XFFL_S3_ENDPOINT
use_https = $([ "$XFFL_S3_HTTPS" = 1 ] && echo True || echo False)
signature_v2 = $([ "$(s3_signature)" = v2 ] && echo True || echo False)
bucket_location = us-east-1
ca_certs_file = ${AWS_CA_BUNDLE:-}
check_ssl_certificate = True
CFG
}

# On the cells with the verifying proxy: every request it saw was signature V4 and verified
# (none passed as V2 or anonymous), so a V4 test cannot pass by speaking V2. Prints a summary.
check_proxy_saw_v4() {
  [ -n "${S3_PROXY_LOG:-}" ] || return 0
  [ "$(s3_signature)" = v4 ] || return 0
  local ok other
  ok=$(grep -c ' v4-ok ' "$S3_PROXY_LOG")
  other=$(grep -c -E ' (v2-pass|anon-pass) ' "$S3_PROXY_LOG")
  if [ "$ok" -gt 0 ] && [ "$other" = 0 ]; then
    pass "the V4-verifying proxy checked $ok requests' signatures, none V2 or anonymous ($(awk '{print $4}' "$S3_PROXY_LOG" | sort | uniq -c | tr -s ' ' | tr '\n' ' '))"
  else
    fail "V4 cell: the proxy saw $ok V4-verified and $other V2/anonymous requests"
  fi
}

# Another verifying proxy (tests/s3/sigv4proxy.py) on the same s3rver with its own settings
# (--key AKID:SECRET, --token T, --token-expired, --region R, --clock-offset S); prints its
# host:port. Stopped at exit (its PID is kept in a file: this runs in $(...)).
extra_sigv4proxy() {
  local out=$WORK/sigv4proxy-$RANDOM$RANDOM
  /usr/bin/python3 "$ROOT/tests/s3/sigv4proxy.py" --upstream "$S3RVER_ENDPOINT" --log "$out.log" "$@" \
    >"$out.out" 2>"$out.err" &
  echo $! >>"$WORK/extra.pids"
  for _ in $(seq 1 100); do
    grep -q LISTENING "$out.out" 2>/dev/null && { echo "127.0.0.1:$(awk '/LISTENING/{print $2}' "$out.out")"; return 0; }
    sleep 0.05
  done
  echo "sigv4proxy.py $* did not start: $(cat "$out.err")" >&2
  return 1
}

# What the test runs on, for its output: "v4, https via stunnel4 + sigv4proxy".
s3_cell() {
  local what="$(s3_signature)"
  [ "$XFFL_S3_HTTPS" = 1 ] && what="$what, https" || what="$what, http"
  [ "$XFFL_S3_HTTPS" = 1 ] && what="$what (CA: ${AWS_CA_BUNDLE:-the system store})"
  [ -n "${S3_PROXY_PID:-}" ] && what="$what, V4-verifying proxy"
  echo "$what"
}

restart_s3() { # same port and data directory, after a kill; the servers in front keep running
  local env
  env=$("$ROOT/tests/s3/start.sh" --port "$S3RVER_PORT" --dir "$S3RVER_DIR" --bucket -) || return 1
  eval "$env"
  export XFFL_S3_ENDPOINT=$S3_FRONT XFFL_S3_HTTPS=$S3_FRONT_HTTPS
}

# Bytes stored under s3rver's data directory for the bucket (objects, partial uploads, parts).
s3_bytes() { du -sb "$S3RVER_DIR/data/${1:-xffl}" 2>/dev/null | cut -f1; }

# Starts tests/faults/faultproxy.py behind the TLS terminator (its faults are in the HTTP
# stream) and in front of the V4-verifying proxy or s3rver; sets PROXY_ENDPOINT (where a
# client goes: a second stunnel4 in front of it on the HTTPS cells), PROXY_PORT, PROXY_PID.
start_proxy() {
  local up=${S3RVER_ENDPOINT:-$XFFL_S3_ENDPOINT}
  [ -n "${S3_PROXY_PORT:-}" ] && up=127.0.0.1:$S3_PROXY_PORT
  python3 "$ROOT/tests/faults/faultproxy.py" --upstream "$up" --stats "$WORK/proxy.json" "$@" \
    >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
  PROXY_PID=$!
  PROXY_PORT=
  for _ in $(seq 1 100); do
    PROXY_PORT=$(awk '/LISTENING/{print $2}' "$WORK/proxy.out")
    [ -n "$PROXY_PORT" ] && break
    sleep 0.1
  done
  [ -n "$PROXY_PORT" ] || { echo "fault proxy did not start:"; cat "$WORK/proxy.err"; return 1; }
  PROXY_ENDPOINT=127.0.0.1:$PROXY_PORT
  if [ "${XFFL_S3_HTTPS:-0}" = 1 ]; then
    local out
    out=$("$ROOT/tests/s3/stunnel.sh" --connect "$PROXY_ENDPOINT" --certs "$S3_TLS_DIR" --dir "$WORK") \
      || { echo "stunnel4 in front of the fault proxy did not start"; return 1; }
    PROXY_TLS_PID=${out% *}
    PROXY_ENDPOINT=127.0.0.1:${out#* }
  fi
}
stop_proxy() {
  [ -n "${PROXY_TLS_PID:-}" ] && { kill "$PROXY_TLS_PID" 2>/dev/null; wait "$PROXY_TLS_PID" 2>/dev/null; }
  [ -n "$PROXY_PID" ] && { kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; }
  PROXY_PID= PROXY_TLS_PID=
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
