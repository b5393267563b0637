#!/usr/bin/env bash
# The signature-V4 backend's own behaviour against s3rver (issue 17), part of `make test`:
#   - a multipart upload (parts of 5 MiB) comes back byte-identical and s3cmd (V4) reads it
#   - an upload killed midway leaves no visible object
#   - gc on a server that cannot list multipart uploads: a 'not supported' note, exit 0
#   - the secret key and the session token appear nowhere in a --verbose run's output
#   - https spoken to a plain http server: one line, exit 2, no retry; bad settings name
#     their variable
#   - through stunnel with a CA made here: v4 and v2 verify certificates (AWS_CA_BUNDLE),
#     another CA is exit 1 at once, http to the TLS port exit 2
# V4 signatures themselves are checked against botocore in tests/unit/test_sigv4.c
# (s3rver lets any V4 signature of a known key through).
set -u
. "$(dirname "$0")/../faults/lib.sh"
[ -x "$X" ] && [ -x "$T" ] || { echo "FAIL: build first (make all): $X, $T"; exit 1; }
export XFFL_S3_SIGNATURE=v4
start_s3
echo "s3rver at $XFFL_S3_ENDPOINT (pid $S3RVER_PID)"

# 1. multipart: 23 MiB + 5 bytes in parts of 5 MiB (5 parts), 2 at a time
big=$WORK/mp.bin
head -c $((23 * 1048576 + 5)) /dev/urandom >"$big"
sha=$(sha256sum "$big" | cut -c1-64)
XFFL_S3_MULTIPART_THRESHOLD=6M XFFL_S3_PART_SIZE=5M "$T" --verbose --jobs 2 --store s3://xffl/mp put mp.bin "$big" \
  >"$WORK/mp.out" 2>"$WORK/mp.err"
rc=$?
parts=$(grep -c 'PUT /xffl/mp/mp.bin?partNumber=' "$WORK/mp.err")
# connections are kept: 7 requests (start, 5 parts, complete) on 2 threads, at most 2 connects
newc=$(grep -c 'new connection' "$WORK/mp.err"); reused=$(grep -c 'connection reused' "$WORK/mp.err")
"$T" --store s3://xffl/mp get mp.bin "$WORK/mp.back" "$sha" >/dev/null 2>"$WORK/mp.get.err"
grc=$?
cat >"$WORK/s3cfg" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $XFFL_S3_ENDPOINT
host_bucket = $XFFL_S3_ENDPOINT
use_https = False
signature_v2 = False
CFG
s3ok=skipped
if command -v s3cmd >/dev/null; then
  s3cmd -c "$WORK/s3cfg" --no-progress get s3://xffl/mp/mp.bin "$WORK/mp.s3cmd" >/dev/null 2>&1 \
    && cmp -s "$big" "$WORK/mp.s3cmd" && s3ok=yes || s3ok=no
fi
if [ $rc = 0 ] && [ "$parts" = 5 ] && [ $grc = 0 ] && cmp -s "$big" "$WORK/mp.back" && [ $s3ok != no ] \
   && [ "$newc" -le 2 ] && [ "$reused" -ge 5 ]; then
  pass "multipart upload of 23 MiB in $parts parts of 5 MiB on 2 threads ($newc connections for $((newc + reused)) requests): byte-identical back; s3cmd (v4) fetches it: $s3ok"
else
  fail "multipart: rc=$rc parts=$parts get=$grc s3cmd=$s3ok connections=$newc reused=$reused"; tail -3 "$WORK/mp.err" "$WORK/mp.get.err"
fi
rm -f "$WORK/mp.back" "$WORK/mp.s3cmd"

# 2. an upload killed midway (after its first part went up): no object is visible
head -c $((64 * 1048576)) /dev/urandom >"$big"
XFFL_S3_MULTIPART_THRESHOLD=6M XFFL_S3_PART_SIZE=5M "$T" --verbose --jobs 1 --store s3://xffl/kill put k.bin "$big" \
  >/dev/null 2>"$WORK/kill.err" &
tp=$!
for _ in $(seq 1 500); do
  grep -q 'partNumber=2' "$WORK/kill.err" 2>/dev/null && break
  kill -0 $tp 2>/dev/null || break
  sleep 0.02
done
kill -9 $tp 2>/dev/null; wait $tp 2>/dev/null
"$T" --store s3://xffl/kill list "" >"$WORK/kill.list" 2>&1
lrc=$?
"$X" ls --json --store s3://xffl/kill >/dev/null 2>&1
if grep -q 'partNumber=2' "$WORK/kill.err" && [ $lrc = 0 ] && ! grep -q 'k.bin' "$WORK/kill.list" \
   && ! s3cmd -c "$WORK/s3cfg" ls s3://xffl/kill/ 2>/dev/null | grep -q k.bin; then
  pass "upload killed after its first part: no object k.bin is visible (listing: $(wc -l <"$WORK/kill.list") keys)"
else
  fail "killed upload: list rc=$lrc: $(cat "$WORK/kill.list")"; tail -2 "$WORK/kill.err"
fi
rm -f "$big"

# 3. gc where the server cannot list multipart uploads: noted, not an error
if "$X" init --store "$WORK/fed" --model tiny --local-steps 2 >/dev/null 2>&1 \
   && "$X" cp --from "$WORK/fed" --to s3://xffl/gc >/dev/null 2>&1; then
  "$X" --verbose gc --store s3://xffl/gc --keep 1 >"$WORK/gc.out" 2>"$WORK/gc.err"
  rc=$?
  if [ $rc = 0 ] && grep -q 'listing multipart uploads is not supported' "$WORK/gc.err"; then
    pass "gc on s3rver (no ListMultipartUploads): exit 0, noted: $(grep -o 'listing multipart uploads is not supported by [^ ]*' "$WORK/gc.err" | head -1)"
  else
    fail "gc on s3rver: rc=$rc"; tail -3 "$WORK/gc.err"
  fi
else
  fail "gc: could not make a federation on s3"
fi

# 4. no secret in any output, --verbose included (a session token is sent too)
secret="sEcReT-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
token="ToKeN-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo hello >"$WORK/small"
# a verifying proxy that knows this secret and requires this token: the runs must succeed
# with them (so both were used), and print neither
sec_ep=$(extra_sigv4proxy --key "S3RVER:$secret" --token "$token") || fail "verifying proxy for the secret test"
XFFL_S3_ENDPOINT=${sec_ep:-$XFFL_S3_ENDPOINT}
AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token "$X" --verbose ls --store s3://xffl/mp >"$WORK/sec.out" 2>&1
AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token "$T" --verbose --store s3://xffl/sec put s "$WORK/small" >>"$WORK/sec.out" 2>&1
AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token "$T" --verbose --store s3://xffl/sec get s "$WORK/small.back" >>"$WORK/sec.out" 2>&1
AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token XFFL_S3_HTTPS=1 "$X" --verbose ls --store s3://xffl/mp >>"$WORK/sec.out" 2>&1
n=$(wc -l <"$WORK/sec.out")
if [ "$n" -ge 5 ] && cmp -s "$WORK/small" "$WORK/small.back" && ! grep -q -e "$secret" -e "$token" "$WORK/sec.out" \
   && grep -q 'session token' "$WORK/sec.out"; then
  pass "secret key and session token in no output of --verbose runs ($n lines checked, requests succeeded)"
else
  fail "secrets in output or runs failed: $(grep -c -e "$secret" -e "$token" "$WORK/sec.out") lines with a secret"; tail -3 "$WORK/sec.out"
fi
XFFL_S3_ENDPOINT=$S3_FRONT

# 5. https spoken to a plain http server: one line, exit 2, at once
t0=$(date +%s.%N)
XFFL_S3_HTTPS=1 "$X" --verbose ls --store s3://xffl/x >/dev/null 2>"$WORK/tls.err"
rc=$?
el=$(python3 -c "print(round($(date +%s.%N)-$t0,2))")
XFFL_S3_SIGNATURE=v2 XFFL_S3_HTTPS=1 "$X" ls --store s3://xffl/x >/dev/null 2>"$WORK/tls2.err"
rc2=$?
if [ $rc = 2 ] && grep -q 'does not speak https' "$WORK/tls.err" && ! grep -q retry "$WORK/tls.err" \
   && [ $rc2 = 2 ] && grep -q 'does not speak https' "$WORK/tls2.err"; then
  pass "https to an http endpoint: exit 2 in ${el}s, no retry (v2 too): $(tail -1 "$WORK/tls.err")"
else
  fail "https to an http endpoint: rc=$rc v2 rc=$rc2"; tail -1 "$WORK/tls.err" "$WORK/tls2.err"
fi

# 6. bad settings: exit 2 naming the variable, before any request
ok=1
for kv in XFFL_S3_SIGNATURE=v3 XFFL_S3_ADDRESSING=vhost AWS_CA_BUNDLE=/nonexistent.pem XFFL_S3_PART_SIZE=1M; do
  env "$kv" "$X" ls --store s3://xffl/x >/dev/null 2>"$WORK/bad.err"
  rc=$?
  [ $rc = 2 ] && grep -q "${kv%%=*}" "$WORK/bad.err" || { ok=0; echo "$kv: rc=$rc $(cat "$WORK/bad.err")"; }
done
env -u XFFL_S3_ENDPOINT AWS_ENDPOINT_URL=ftp://x "$X" ls --store s3://xffl/x >/dev/null 2>"$WORK/bad.err"
[ $? = 2 ] && grep -q AWS_ENDPOINT_URL "$WORK/bad.err" || { ok=0; echo "AWS_ENDPOINT_URL=ftp: $(cat "$WORK/bad.err")"; }
# AWS_ENDPOINT_URL alone reaches the same server
env -u XFFL_S3_ENDPOINT -u XFFL_S3_HTTPS AWS_ENDPOINT_URL=http://$XFFL_S3_ENDPOINT "$T" --store s3://xffl/mp list "" \
  >"$WORK/url.out" 2>&1 && grep -q mp.bin "$WORK/url.out" || { ok=0; echo "AWS_ENDPOINT_URL: $(cat "$WORK/url.out")"; }
if [ $ok = 1 ]; then pass "bad XFFL_S3_SIGNATURE/ADDRESSING/PART_SIZE, AWS_CA_BUNDLE, AWS_ENDPOINT_URL: exit 2 naming each; AWS_ENDPOINT_URL=http://host:port works"; else fail "bad settings"; fi

# 7. HTTPS through stunnel with a CA made here: both backends verify the certificate
#    (v2 too: storage/curl_verify.c), AWS_CA_BUNDLE names the site CA, another CA's
#    certificate is exit 1 at once, plain http to the TLS port is exit 2
if command -v stunnel >/dev/null && command -v openssl >/dev/null; then
  tls=$WORK/tls; mkdir -p "$tls"
  for ca in ca other; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/$ca.key" -out "$tls/$ca.pem" -days 2 -subj "/CN=xffl test $ca" 2>/dev/null
  done
  openssl req -newkey rsa:2048 -nodes -keyout "$tls/srv.key" -out "$tls/srv.csr" -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/ext"
  openssl x509 -req -in "$tls/srv.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -out "$tls/srv.pem" -days 2 \
    -extfile "$tls/ext" 2>/dev/null
  cat "$tls/srv.pem" "$tls/srv.key" >"$tls/full.pem"
  tp=$(free_port)
  printf 'foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:%s\nconnect = %s\ncert = %s\n' "$tp" "$XFFL_S3_ENDPOINT" "$tls/full.pem" >"$tls/st.conf"
  stunnel "$tls/st.conf" >"$tls/st.log" 2>&1 &
  ST_PID=$!
  PROXY_PID=$ST_PID # lib.sh's cleanup stops it if this script dies
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$tp) 2>/dev/null && break; sleep 0.1; done
  ok=1; notes=""
  for sig in v4 v2; do
    XFFL_S3_SIGNATURE=$sig XFFL_S3_ENDPOINT=127.0.0.1:$tp XFFL_S3_HTTPS=1 AWS_CA_BUNDLE=$tls/ca.pem \
      "$T" --store s3://xffl/mp list "" >"$tls/ok.out" 2>&1 && grep -q mp.bin "$tls/ok.out" || { ok=0; echo "$sig site CA: $(cat "$tls/ok.out")"; }
    XFFL_S3_SIGNATURE=$sig XFFL_S3_ENDPOINT=127.0.0.1:$tp XFFL_S3_HTTPS=1 AWS_CA_BUNDLE=$tls/other.pem \
      "$X" --verbose ls --store s3://xffl/mp >/dev/null 2>"$tls/bad.err"
    rc=$?
    { [ $rc = 1 ] && grep -q 'did not verify.*(certificate not verified)' "$tls/bad.err" && ! grep -q retry "$tls/bad.err"; } \
      || { ok=0; echo "$sig other CA: rc=$rc $(tail -1 "$tls/bad.err")"; }
    XFFL_S3_SIGNATURE=$sig XFFL_S3_ENDPOINT=127.0.0.1:$tp XFFL_S3_HTTPS=1 env -u AWS_CA_BUNDLE \
      "$X" ls --store s3://xffl/mp >/dev/null 2>"$tls/sys.err"
    [ $? = 1 ] && grep -q 'did not verify' "$tls/sys.err" || { ok=0; echo "$sig system CAs: $(tail -1 "$tls/sys.err")"; }
  done
  for sig in v4 v2; do
    XFFL_S3_SIGNATURE=$sig XFFL_S3_ENDPOINT=127.0.0.1:$tp XFFL_S3_HTTPS=0 "$X" ls --store s3://xffl/mp >/dev/null 2>"$tls/plain.err"
    rc=$?
    [ $rc = 2 ] && grep -q 'speaks https, not http' "$tls/plain.err" || { ok=0; echo "$sig http to https: rc=$rc $(cat "$tls/plain.err")"; }
  done
  env -u XFFL_S3_ENDPOINT -u XFFL_S3_HTTPS AWS_ENDPOINT_URL=https://localhost:$tp AWS_CA_BUNDLE=$tls/ca.pem \
    "$T" --store s3://xffl/mp list "" >"$tls/url.out" 2>&1 && grep -q mp.bin "$tls/url.out" || { ok=0; echo "AWS_ENDPOINT_URL https: $(cat "$tls/url.out")"; }
  kill $ST_PID 2>/dev/null; wait $ST_PID 2>/dev/null; PROXY_PID=
  if [ $ok = 1 ]; then
    pass "https (stunnel, test CA): v4 and v2 list with AWS_CA_BUNDLE; another CA or the system CAs: exit 1 'did not verify', no retry; http to the TLS port: exit 2 (v4 and v2): $(cat "$tls/plain.err")"
  else
    fail "https checks"
  fi
else
  echo "SKIP: https checks: stunnel or openssl missing (apt-get install stunnel4 openssl)"
fi

echo "$fails failed"
[ $fails = 0 ]
