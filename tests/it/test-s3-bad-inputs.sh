#!/usr/bin/env bash
# Bad inputs against a real S3 protocol stack (issue 17, "What it must show" 3): s3rver behind
# tests/s3/sigv4proxy.py (verifies every V4 signature, S3's answers) behind stunnel4 (HTTPS,
# a test CA). Each case is a test: the exit code the backend defines (docs/design.md "Exit
# codes"), a one-line message (stderr without --verbose) saying what is wrong, and no retry
# loop where retrying cannot help:
#   wrong secret, missing / wrong / expired session token, wrong region      exit 1
#   a request signed 20 minutes ago (the client's clock under faketime; and the
#     server's clock 20 minutes ahead), the message naming the clock            exit 1
#   certificate from another CA (AWS_CA_BUNDLE of another CA; a server certificate of
#     another CA; the system store, which lacks the test CA), immediate        exit 1
#     ("certificate not verified")
#   the system store holding the test CA (unshare -m + bind mount): works     exit 0
#   the test CA in the system's CA directory: works without AWS_CA_BUNDLE,
#     refused with AWS_CA_BUNDLE of another CA (the bundle replaces the system's) exit 1
#   HTTPS endpoint spoken to as HTTP, and HTTP endpoint spoken to as HTTPS     exit 2
#   bucket missing                                                             exit 1
#   endpoint unreachable, after the retry budget                               exit 74
# V4 cases run with XFFL_S3_SIGNATURE=v4; the certificate, protocol, bucket and unreachable
# cases run on v2 (libs3) as well.
set -u
. "$(dirname "$0")/../faults/lib.sh"
[ -x "$X" ] && [ -x "$T" ] || { echo "FAIL: build first (make all): $X, $T"; exit 1; }
export XFFL_S3_SIGNATURE=v4
XFFL_S3_TEST_TLS=1 start_s3
echo "https at $XFFL_S3_ENDPOINT: stunnel4 -> sigv4proxy.py -> s3rver ($(s3_cell))"
CA=$S3_TLS_DIR/ca.pem OTHER=$S3_TLS_DIR/other-ca.pem
"$X" ls --store s3://xffl/ok >/dev/null 2>"$WORK/ok.err" \
  || { fail "the good configuration does not work: $(cat "$WORK/ok.err")"; echo "$fails failed"; exit 1; }

# case NAME WANT_RC PATTERN [env VAR=... ] cmd...: runs it, checks exit code (WANT_RC may be
# "a|b": either), one line, pattern (grep -E); the time it took goes into the PASS line
case_() {
  local name=$1 want=$2 pat=$3 t0 t1 rc lines; shift 3
  t0=$(date +%s.%N)
  timeout 120 "$@" >"$WORK/case.out" 2>"$WORK/case.err"; rc=$?
  t1=$(date +%s.%N)
  lines=$(wc -l <"$WORK/case.err")
  if [[ "|$want|" == *"|$rc|"* ]] && [ "$lines" = 1 ] && grep -qE "$pat" "$WORK/case.err"; then
    pass "$name: exit $rc in $(python3 -c "print(round($t1-$t0,2))") s: $(cat "$WORK/case.err")"
  else
    fail "$name: exit $rc (want $want), $lines line(s), want /$pat/: $(head -c 600 "$WORK/case.err")"
  fi
}
ls_() { "$X" ls --store "${STORE:-s3://xffl/bad}" "$@"; }

# ---- credentials, token, region (V4: checked by the proxy)
case_ "wrong secret" 1 'credentials rejected.*SignatureDoesNotMatch' env AWS_SECRET_ACCESS_KEY=not-the-secret "$X" ls --store s3://xffl/bad
case_ "unknown access key" 1 'credentials rejected.*InvalidAccessKeyId' env AWS_ACCESS_KEY_ID=NOSUCHKEY "$X" ls --store s3://xffl/bad
# a proxy that requires a session token, behind its own stunnel4
tok=$(extra_sigv4proxy --token "tok-$$") || exit 1
tokx=$(extra_sigv4proxy --token "tok-$$" --token-expired) || exit 1
tls_in_front() { local out; out=$("$ROOT/tests/s3/stunnel.sh" --connect "$1" --certs "$S3_TLS_DIR" --dir "$WORK") || return 1
  echo "${out% *}" >>"$WORK/extra.pids"; echo "127.0.0.1:${out#* }"; }
tok=$(tls_in_front "$tok") && tokx=$(tls_in_front "$tokx") || { fail "stunnel4 for the token proxies"; exit 1; }
XFFL_S3_ENDPOINT=$tok AWS_SESSION_TOKEN=tok-$$ "$X" ls --store s3://xffl/bad >/dev/null 2>"$WORK/tok.err" \
  && pass "the right session token is accepted" || fail "right session token: $(cat "$WORK/tok.err")"
case_ "session token missing" 1 'credentials rejected.*InvalidAccessKeyId' env XFFL_S3_ENDPOINT="$tok" "$X" ls --store s3://xffl/bad
case_ "wrong session token" 1 'credentials rejected.*InvalidToken' env XFFL_S3_ENDPOINT="$tok" AWS_SESSION_TOKEN=wrong "$X" ls --store s3://xffl/bad
case_ "expired session token" 1 'ExpiredToken' env XFFL_S3_ENDPOINT="$tokx" AWS_SESSION_TOKEN=tok-$$ "$X" ls --store s3://xffl/bad
case_ "wrong region" 1 "region 'eu-west-3' is wrong" env AWS_REGION=eu-west-3 "$X" ls --store s3://xffl/bad

# ---- a request signed 20 minutes ago
if command -v faketime >/dev/null; then
  case_ "request signed 20 minutes ago (client clock 20 min behind, faketime)" 1 'clock' \
    env FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    faketime -f -20m "$X" ls --store s3://xffl/bad
else
  echo "SKIP: faketime not installed: the client-clock case (the server-clock one runs)"
fi
ahead=$(extra_sigv4proxy --clock-offset 1200) && ahead=$(tls_in_front "$ahead") || { fail "proxy with a clock 20 min ahead"; exit 1; }
case_ "request 20 minutes old to the server (its clock 20 min ahead)" 1 'clock' env XFFL_S3_ENDPOINT="$ahead" "$X" ls --store s3://xffl/bad

# ---- certificates
for sig in v4 v2; do
  case_ "$sig: certificate from another CA (AWS_CA_BUNDLE of another CA)" 1 'certificate.*did not verify.*certificate not verified' \
    env XFFL_S3_SIGNATURE=$sig AWS_CA_BUNDLE="$OTHER" "$X" ls --store s3://xffl/bad
  case_ "$sig: certificate not in the system store (no AWS_CA_BUNDLE)" 1 'certificate.*did not verify' \
    env -u AWS_CA_BUNDLE XFFL_S3_SIGNATURE=$sig "$X" ls --store s3://xffl/bad
done
other=$("$ROOT/tests/s3/stunnel.sh" --connect "127.0.0.1:$S3_PROXY_PORT" --certs "$S3_TLS_DIR" --dir "$WORK" --cert other-server) \
  || { fail "stunnel4 with the other CA's certificate"; exit 1; }
echo "${other% *}" >>"$WORK/extra.pids"
case_ "server certificate signed by another CA" 1 'certificate.*did not verify' \
  env XFFL_S3_ENDPOINT="127.0.0.1:${other#* }" "$X" ls --store s3://xffl/bad
# the system store, in a private mount namespace where it holds the test CA too: no variable needed
if unshare -m --propagation private true 2>/dev/null; then
  for sig in v4 v2; do
    if unshare -m --propagation private -- sh -c 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"' \
         "$S3_TLS_DIR/system-plus-test.pem" env -u AWS_CA_BUNDLE XFFL_S3_SIGNATURE=$sig "$X" ls --store s3://xffl/bad \
         >/dev/null 2>"$WORK/sys.err"; then
      pass "$sig: the test CA in the system store (private mount namespace, bind-mounted bundle) is trusted without AWS_CA_BUNDLE"
    else
      fail "$sig: system store with the test CA: $(cat "$WORK/sys.err")"
    fi
  done
  # the test CA only in the system's CA directory (a hashed file, as openssl rehash leaves
  # it): trusted without AWS_CA_BUNDLE, and not with one, which replaces the system's CAs
  mkdir -p "$WORK/certdir"
  cp /etc/ssl/certs/ca-certificates.crt "$S3_TLS_DIR/ca.pem" "$WORK/certdir/"
  ln -sf ca.pem "$WORK/certdir/$(openssl x509 -hash -noout -in "$S3_TLS_DIR/ca.pem").0"
  in_certdir=(unshare -m --propagation private -- sh -c 'mount --bind "$0" /etc/ssl/certs && exec "$@"' "$WORK/certdir")
  for sig in v4 v2; do
    if "${in_certdir[@]}" env -u AWS_CA_BUNDLE XFFL_S3_SIGNATURE=$sig "$X" ls --store s3://xffl/bad >/dev/null 2>"$WORK/sys.err"; then
      pass "$sig: the test CA in the system's CA directory (bind-mounted) is trusted without AWS_CA_BUNDLE"
    else
      fail "$sig: system CA directory with the test CA: $(cat "$WORK/sys.err")"
    fi
    case_ "$sig: AWS_CA_BUNDLE of another CA, the test CA in the system's CA directory" 1 'certificate.*did not verify' \
      "${in_certdir[@]}" env XFFL_S3_SIGNATURE=$sig AWS_CA_BUNDLE="$OTHER" "$X" ls --store s3://xffl/bad
  done
else
  echo "SKIP: no private mount namespace (unshare -m) here: the system-store cases"
fi

# ---- protocol, bucket, endpoint
# after a reset or a garbled answer the backends probe the endpoint once (storage/tls_probe.c)
# and say which protocol it speaks: exit 2 at once, no retry loop
for sig in v4 v2; do
  case_ "$sig: HTTPS endpoint spoken to as HTTP" 2 'speaks https, not http' \
    env XFFL_S3_SIGNATURE=$sig XFFL_S3_HTTPS=0 "$X" ls --store s3://xffl/bad
  case_ "$sig: HTTP endpoint spoken to as HTTPS" 2 'does not speak https' \
    env XFFL_S3_SIGNATURE=$sig XFFL_S3_ENDPOINT="$S3RVER_ENDPOINT" XFFL_S3_HTTPS=1 "$X" ls --store s3://xffl/bad
done
for sig in v4 v2; do
  case_ "$sig: bucket missing" 1 "bucket 'no-such-bucket' does not exist" \
    env XFFL_S3_SIGNATURE=$sig "$X" ls --store s3://no-such-bucket/p
done
for sig in v4 v2; do XFFL_S3_SIGNATURE=$sig check_unreachable 3; done

echo "$fails failed"
[ $fails = 0 ]
