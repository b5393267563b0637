#!/usr/bin/env bash
# The test infrastructure of the V4 cells checked on its own, with clients that are not xffl:
# tests/s3/sigv4proxy.py (in front of s3rver, which does not check V4 signatures) must let
# correctly signed requests through and refuse every wrong one as S3 does, or a V4 test
# behind it could not fail. Clients: s3cmd in V4 mode (--signature-v2 off) and curl
# --aws-sigv4, two V4 signers independent of the proxy's botocore; a request with an
# unsigned header is built with botocore. Each case is a PASS/FAIL line:
#   good credentials (s3cmd put/ls/get bit-exact, curl), wrong secret, unknown key, session
#   token required (right, missing, wrong, expired), wrong region, a request 20 minutes
#   old (the proxy's clock 20 min ahead; and the client's clock 20 min behind under
#   faketime), a body whose SHA-256 is not the signed one (refused, nothing stored, the
#   previous object intact), unsigned x-amz-* header, anonymous request, V2 passed on to
#   s3rver (good and bad secret), a 256 MiB upload streamed (proxy memory bounded), and the
#   same over HTTPS through stunnel4 with the test CA (another CA's bundle refused).
set -u
. "$(dirname "$0")/../faults/lib.sh"
command -v s3cmd >/dev/null || { echo "SKIP: s3cmd not installed (scripts/install-deps)"; exit 0; }
XFFL_S3_TEST_PROXY=1 XFFL_S3_TEST_TLS=0 start_s3
echo "s3rver at $S3RVER_ENDPOINT, verifying proxy at $XFFL_S3_ENDPOINT"
cfg() { # file endpoint [extra config lines...]
  local f=$1 ep=$2; shift 2
  cat >"$f" <<CFG
[default]
access_key = S3RVER
secret_key = S3RVER
host_base = $ep
host_bucket = $ep
use_https = False
signature_v2 = False
bucket_location = us-east-1
CFG
  for l in "$@"; do echo "$l" >>"$f"; done
}
s3c() { s3cmd -c "$1" --no-progress "${@:2}"; }
cv4() { # curl, signature V4 (curl 7.88 needs x-amz-content-sha256 given: it does not send it)
  curl -sS --aws-sigv4 "aws:amz:${REGION:-us-east-1}:s3" --user "S3RVER:${SECRET:-S3RVER}" "$@"
}
code_of() { grep -o '<Code>[A-Za-z0-9]*</Code>' "$1" | head -1 | sed 's/<[^>]*>//g'; }
EP=$XFFL_S3_ENDPOINT
head -c 3000001 /dev/urandom >"$WORK/obj"
head -c 3000001 /dev/zero >"$WORK/zeros"
sha_obj=$(sha256sum "$WORK/obj" | cut -c1-64)

# 1 good credentials: s3cmd V4 put, ls, get; curl V4 get
cfg "$WORK/good.cfg" "$EP"
s3c "$WORK/good.cfg" put "$WORK/obj" s3://xffl/p/obj >/dev/null 2>"$WORK/e1" \
  && s3c "$WORK/good.cfg" ls -r s3://xffl/p/ >"$WORK/ls1" 2>>"$WORK/e1" \
  && s3c "$WORK/good.cfg" get s3://xffl/p/obj "$WORK/back" >/dev/null 2>>"$WORK/e1" \
  && cv4 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o "$WORK/back2" "http://$EP/xffl/p/obj" 2>>"$WORK/e1"
n_ok=$(grep -c ' v4-ok 200' "$S3_PROXY_LOG")
if cmp -s "$WORK/obj" "$WORK/back" && cmp -s "$WORK/obj" "$WORK/back2" && grep -q 's3://xffl/p/obj' "$WORK/ls1" && [ "$n_ok" -ge 4 ]; then
  pass "good V4 credentials: s3cmd put/ls/get and curl --aws-sigv4 get bit-exact ($n_ok requests verified)"
else
  fail "good V4 credentials: $(tail -3 "$WORK/e1") ($n_ok verified)"; cat "$S3_PROXY_LOG"
fi

# 2 wrong secret, unknown key
cfg "$WORK/bad.cfg" "$EP" "secret_key = not-the-secret"
s3c "$WORK/bad.cfg" ls s3://xffl/ >/dev/null 2>"$WORK/e2"; rc=$?
SECRET=wrong cv4 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://$EP/xffl/p/obj" >"$WORK/x2" 2>&1
if [ $rc != 0 ] && grep -q SignatureDoesNotMatch "$WORK/e2" && [ "$(code_of "$WORK/x2")" = SignatureDoesNotMatch ]; then
  pass "wrong secret: 403 SignatureDoesNotMatch to s3cmd (exit $rc) and curl"
else
  fail "wrong secret: s3cmd rc=$rc $(tail -1 "$WORK/e2"); curl: $(cat "$WORK/x2")"
fi
cfg "$WORK/nokey.cfg" "$EP" "access_key = NOSUCHKEY"
s3c "$WORK/nokey.cfg" ls s3://xffl/ >/dev/null 2>"$WORK/e2b"; rc=$?
[ $rc != 0 ] && grep -q InvalidAccessKeyId "$WORK/e2b" && pass "unknown access key: 403 InvalidAccessKeyId (s3cmd exit $rc)" \
  || fail "unknown access key: rc=$rc $(tail -1 "$WORK/e2b")"

# 3 session token required
tp=$(extra_sigv4proxy --token TOKEN-42) || exit 1
tpe=$(extra_sigv4proxy --token TOKEN-42 --token-expired) || exit 1
cfg "$WORK/tok.cfg" "$tp" "access_token = TOKEN-42"
cfg "$WORK/notok.cfg" "$tp"
cfg "$WORK/badtok.cfg" "$tp" "access_token = TOKEN-41"
cfg "$WORK/exptok.cfg" "$tpe" "access_token = TOKEN-42"
s3c "$WORK/tok.cfg" ls s3://xffl/p/ >"$WORK/t1" 2>&1; r1=$?
s3c "$WORK/notok.cfg" ls s3://xffl/p/ >"$WORK/t2" 2>&1; r2=$?
s3c "$WORK/badtok.cfg" ls s3://xffl/p/ >"$WORK/t3" 2>&1; r3=$?
s3c "$WORK/exptok.cfg" ls s3://xffl/p/ >"$WORK/t4" 2>&1; r4=$?
if [ $r1 = 0 ] && grep -q obj "$WORK/t1" && [ $r2 != 0 ] && grep -q InvalidAccessKeyId "$WORK/t2" \
   && [ $r3 != 0 ] && grep -q InvalidToken "$WORK/t3" && [ $r4 != 0 ] && grep -q ExpiredToken "$WORK/t4"; then
  pass "session token: right one lists; missing 403 InvalidAccessKeyId; wrong 400 InvalidToken; expired 400 ExpiredToken"
else
  fail "session token: rc $r1/$r2/$r3/$r4: $(tail -1 "$WORK/t1") | $(tail -1 "$WORK/t2") | $(tail -1 "$WORK/t3") | $(tail -1 "$WORK/t4")"
fi
# and a token where none is issued
s3c "$WORK/good.cfg" --access_token=TOKEN-42 ls s3://xffl/p/ >"$WORK/t5" 2>&1; r5=$?
[ $r5 != 0 ] && grep -q InvalidToken "$WORK/t5" && pass "a session token where none is issued: 400 InvalidToken" \
  || fail "unexpected token: rc=$r5 $(tail -1 "$WORK/t5")"

# 4 wrong region (curl: s3cmd follows the <Region> of the answer and retries)
REGION=eu-west-3 cv4 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://$EP/xffl/p/obj" >"$WORK/x4" 2>&1
if [ "$(code_of "$WORK/x4")" = AuthorizationHeaderMalformed ] && grep -q "region 'eu-west-3' is wrong; expecting 'us-east-1'" "$WORK/x4"; then
  pass "wrong region: 400 AuthorizationHeaderMalformed naming both regions"
else
  fail "wrong region: $(cat "$WORK/x4")"
fi

# 5 a request 20 minutes old: the server's clock 20 min ahead, or the client's 20 min behind
sp=$(extra_sigv4proxy --clock-offset 1200) || exit 1
cfg "$WORK/skew.cfg" "$sp"
s3c "$WORK/skew.cfg" ls s3://xffl/p/ >"$WORK/s1" 2>&1; r1=$?
sp2=$(extra_sigv4proxy --clock-offset 840) || exit 1   # 14 minutes: still inside S3's 15
cfg "$WORK/skew2.cfg" "$sp2"
s3c "$WORK/skew2.cfg" ls s3://xffl/p/ >"$WORK/s2" 2>&1; r2=$?
if [ $r1 != 0 ] && grep -q RequestTimeTooSkewed "$WORK/s1" && [ $r2 = 0 ]; then
  pass "request 20 min older than the server's clock: 403 RequestTimeTooSkewed (14 min: accepted)"
else
  fail "clock skew: rc 20min=$r1 14min=$r2: $(tail -1 "$WORK/s1") | $(tail -1 "$WORK/s2")"
fi
if command -v faketime >/dev/null; then
  FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f -20m s3cmd -c "$WORK/good.cfg" --no-progress ls s3://xffl/p/ >"$WORK/s3" 2>&1; r3=$?
  [ $r3 != 0 ] && grep -q RequestTimeTooSkewed "$WORK/s3" && pass "client clock 20 min behind (faketime): 403 RequestTimeTooSkewed" \
    || fail "faketime -20m: rc=$r3 $(tail -1 "$WORK/s3")"
else
  echo "SKIP: faketime not installed: the client-side clock case (the server-side one ran)"
fi

# 6 a body whose SHA-256 is not the signed one: refused, nothing stored, the old object kept
cv4 -H "x-amz-content-sha256: $sha_obj" -T "$WORK/zeros" "http://$EP/xffl/p/new" >"$WORK/x6" 2>&1
cv4 -H "x-amz-content-sha256: $sha_obj" -T "$WORK/zeros" "http://$EP/xffl/p/obj" >"$WORK/x6b" 2>&1
cv4 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o /dev/null -w '%{http_code}' "http://$EP/xffl/p/new" >"$WORK/h6" 2>&1
s3c "$WORK/good.cfg" get --force s3://xffl/p/obj "$WORK/back6" >/dev/null 2>&1
cv4 -H "x-amz-content-sha256: $sha_obj" -T "$WORK/obj" "http://$EP/xffl/p/right" >"$WORK/x6c" 2>&1
if [ "$(code_of "$WORK/x6")" = XAmzContentSHA256Mismatch ] && [ "$(code_of "$WORK/x6b")" = XAmzContentSHA256Mismatch ] \
   && [ "$(cat "$WORK/h6")" = 404 ] && cmp -s "$WORK/obj" "$WORK/back6" && [ ! -s "$WORK/x6c" ] \
   && ! ls "$S3RVER_DIR/data/xffl/p/" | grep -q partial; then
  pass "body not matching its signed SHA-256: 400 XAmzContentSHA256Mismatch, no object stored, the previous one intact (the matching body stored)"
else
  fail "body digest: $(code_of "$WORK/x6")/$(code_of "$WORK/x6b") new=$(cat "$WORK/h6") $(cat "$WORK/x6c")"; ls -la "$S3RVER_DIR/data/xffl/p/"
fi

# 7 an x-amz-* header sent but not signed (botocore signs, then the header is added)
/usr/bin/python3 - "$EP" >"$WORK/x7" 2>&1 <<'PY'
import sys, http.client
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
ep = sys.argv[1]
req = AWSRequest(method="GET", url=f"http://{ep}/xffl/p/obj")
S3SigV4Auth(Credentials("S3RVER", "S3RVER"), "s3", "us-east-1").add_auth(req)
h = dict(req.headers.items()); h["x-amz-meta-added"] = "after signing"
c = http.client.HTTPConnection(ep); c.request("GET", "/xffl/p/obj", headers=h); r = c.getresponse()
print(r.status); print(r.read().decode(errors="replace")[:400])
PY
if head -1 "$WORK/x7" | grep -q 403 && [ "$(code_of "$WORK/x7")" = AccessDenied ] && grep -q 'x-amz-meta-added' "$WORK/x7"; then
  pass "unsigned x-amz-meta header: 403 AccessDenied naming it"
else
  fail "unsigned header: $(cat "$WORK/x7")"
fi

# 8 anonymous
curl -sS "http://$EP/xffl/p/obj" >"$WORK/x8" 2>&1
[ "$(code_of "$WORK/x8")" = AccessDenied ] && pass "anonymous request: 403 AccessDenied" || fail "anonymous: $(head -c 300 "$WORK/x8")"

# 9 signature V2 goes on to s3rver, which checks it
cfg "$WORK/v2.cfg" "$EP" "signature_v2 = True"
cfg "$WORK/v2bad.cfg" "$EP" "signature_v2 = True" "secret_key = not-the-secret"
s3c "$WORK/v2.cfg" get --force s3://xffl/p/obj "$WORK/back9" >/dev/null 2>"$WORK/e9"; r1=$?
s3c "$WORK/v2bad.cfg" ls s3://xffl/p/ >/dev/null 2>"$WORK/e9b"; r2=$?
if [ $r1 = 0 ] && cmp -s "$WORK/obj" "$WORK/back9" && [ $r2 != 0 ] && grep -q SignatureDoesNotMatch "$WORK/e9b" \
   && grep -q ' v2-pass 403' "$S3_PROXY_LOG"; then
  pass "signature V2 passed on to s3rver: good secret reads bit-exact, wrong secret 403 from s3rver"
else
  fail "V2 pass-through: rc $r1/$r2 $(tail -1 "$WORK/e9") $(tail -1 "$WORK/e9b")"
fi

# 10 a 256 MiB body streams through (signed SHA-256, Expect: 100-continue): bounded memory
head -c $((256 << 20)) /dev/urandom >"$WORK/big"
sha_big=$(sha256sum "$WORK/big" | cut -c1-64)
t0=$(date +%s.%N)
cv4 -H "x-amz-content-sha256: $sha_big" -T "$WORK/big" "http://$EP/xffl/p/big" >"$WORK/x10" 2>&1
t1=$(date +%s.%N)
cv4 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o "$WORK/big.back" "http://$EP/xffl/p/big" 2>>"$WORK/x10"
hwm=$(awk '/VmHWM/{print $2}' "/proc/$S3_PROXY_PID/status")
if [ ! -s "$WORK/x10" ] && cmp -s "$WORK/big" "$WORK/big.back" && [ "${hwm:-999999}" -lt $((128 << 10)) ]; then
  pass "256 MiB PUT and GET through the proxy bit-exact in $(python3 -c "print(round($t1-$t0,1))") s; proxy peak RSS $((hwm >> 10)) MiB"
else
  fail "256 MiB through the proxy: $(head -c 300 "$WORK/x10") peak RSS ${hwm} KiB"
fi
rm -f "$WORK/big" "$WORK/big.back"

# 11 HTTPS: stunnel4 with the test CA in front of the proxy
if command -v stunnel4 >/dev/null; then
  out=$("$ROOT/tests/s3/stunnel.sh" --connect "$EP" --certs "$WORK/tls" --dir "$WORK") || { fail "stunnel4 did not start"; out=; }
  if [ -n "$out" ]; then
    echo "${out% *}" >>"$WORK/extra.pids"
    hp=127.0.0.1:${out#* }
    cfg "$WORK/tls.cfg" "$hp" "use_https = True" "ca_certs_file = $WORK/tls/ca.pem" "check_ssl_certificate = True"
    cfg "$WORK/tlsother.cfg" "$hp" "use_https = True" "ca_certs_file = $WORK/tls/other-ca.pem" "check_ssl_certificate = True"
    s3c "$WORK/tls.cfg" get --force s3://xffl/p/obj "$WORK/back11" >/dev/null 2>"$WORK/e11"; r1=$?
    s3c "$WORK/tlsother.cfg" ls s3://xffl/p/ >/dev/null 2>"$WORK/e11b"; r2=$?
    cv4 --cacert "$WORK/tls/ca.pem" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o "$WORK/back11c" "https://$hp/xffl/p/obj" 2>>"$WORK/e11"
    if [ $r1 = 0 ] && cmp -s "$WORK/obj" "$WORK/back11" && cmp -s "$WORK/obj" "$WORK/back11c" && [ $r2 != 0 ] \
       && grep -qi 'certificate' "$WORK/e11b"; then
      pass "https (stunnel4, test CA): s3cmd V4 and curl read bit-exact; a bundle of another CA refused: $(grep -i -m1 certificate "$WORK/e11b" | cut -c1-120)"
    else
      fail "https: rc $r1/$r2: $(tail -2 "$WORK/e11") | $(tail -1 "$WORK/e11b")"
    fi
  fi
else
  echo "SKIP: stunnel4 not installed: the https case"
fi

echo "$fails failed"
[ $fails = 0 ]
