#!/usr/bin/env bash
# Storage against a real S3 protocol server (s3rver on loopback), part of `make test`
# and `make test-s3` (issue 4 points 1 and 3, and the quick error paths of point 2):
#   - the CUnit store suite on s3:// (the same tests as on file://)
#   - objects written by xffl are ordinary S3 objects: s3cmd lists and fetches them, and
#     xffl reads what s3cmd wrote
#   - xffl ls / pull / cp on s3 (where the version code is built)
#   - server down (exit 74), wrong secret (exit 1), missing bucket, missing variable,
#     object altered behind the server (exit 65)
# The slow faults (kill/restart mid-transfer, fault proxy) are in `make test-faults`.
set -u
. "$(dirname "$0")/../faults/lib.sh"
[ -x "$X" ] && [ -x "$T" ] || { echo "FAIL: build first (make all): $X, $T"; exit 1; }
start_s3
echo "s3rver at $XFFL_S3_ENDPOINT (pid $S3RVER_PID)"

# 1. the store suite on s3
if XFFL_TEST_S3_URL=s3://xffl/unit "$BUILD/xffl_tests" store >"$WORK/suite.out" 2>&1 \
   && grep -q 'Suite: store_s3' "$WORK/suite.out" && ! grep -q 'SKIP' "$WORK/suite.out"; then
  pass "store suite on file:// and s3://: $(tail -1 "$WORK/suite.out")"
else
  fail "store suite on s3"; tail -30 "$WORK/suite.out"
fi

# 2. interop with another S3 client (s3cmd, signature v2, path-style, no https)
if command -v s3cmd >/dev/null; then
  cat >"$WORK/s3cfg" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $XFFL_S3_ENDPOINT
host_bucket = $XFFL_S3_ENDPOINT
use_https = False
signature_v2 = True
check_ssl_certificate = False
CFG
  s3c() { s3cmd -c "$WORK/s3cfg" --no-progress "$@"; }
  mkdir -p "$WORK/interop"
  ok=1
  for i in 0 1 2; do
    head -c $((100000 * (i + 1) + i)) /dev/urandom >"$WORK/interop/part-$i"
    "$T" --store s3://xffl/interop put "versions/v000001/part-00$i.h5" "$WORK/interop/part-$i" >/dev/null || ok=0
  done
  listed=$(s3c ls -r s3://xffl/interop/ 2>"$WORK/s3cmd.err" | grep -c 'part-00')
  for i in 0 1 2; do
    s3c get "s3://xffl/interop/versions/v000001/part-00$i.h5" "$WORK/interop/back-$i" >/dev/null 2>>"$WORK/s3cmd.err" || ok=0
    cmp -s "$WORK/interop/part-$i" "$WORK/interop/back-$i" || ok=0
  done
  # and the other way: what s3cmd wrote, xffl reads (verified)
  head -c 123457 /dev/urandom >"$WORK/interop/from-s3cmd"
  s3c put "$WORK/interop/from-s3cmd" s3://xffl/interop/from-s3cmd >/dev/null 2>>"$WORK/s3cmd.err" || ok=0
  "$T" --store s3://xffl/interop get from-s3cmd "$WORK/interop/from-s3cmd.back" \
    "$(sha256sum "$WORK/interop/from-s3cmd" | cut -c1-64)" >/dev/null 2>>"$WORK/s3cmd.err" || ok=0
  if [ $ok = 1 ] && [ "$listed" = 3 ]; then
    pass "s3cmd lists ($listed) and fetches bit-exact the objects xffl wrote; xffl reads what s3cmd wrote"
  else
    fail "s3cmd interop: ok=$ok listed=$listed"; tail -5 "$WORK/s3cmd.err"
  fi
else
  echo "SKIP: s3cmd not installed (apt-get install s3cmd): interop check"
fi

# 3. xffl ls on s3
if "$X" ls --store s3://xffl/interop >"$WORK/ls.out" 2>"$WORK/ls.err" && grep -q 'v000001 .* 3 objects' "$WORK/ls.out" \
   && "$X" ls --json --store s3://xffl/interop | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["versions"][0]["objects"]==3 and d["other_objects"]==1'; then
  pass "xffl ls on s3: $(grep v000001 "$WORK/ls.out" | tr -s ' ')"
else
  fail "xffl ls on s3"; cat "$WORK/ls.out" "$WORK/ls.err"
fi

# 4. quick error paths
check_unreachable 3
check_wrong_secret
check_missing_bucket
check_missing_env
check_altered

echo "$fails failed"
[ $fails = 0 ]
