#!/usr/bin/env bash
# Starts the S3 test server on 127.0.0.1 and prints shell assignments for the caller to eval:
#   eval "$(tests/s3/start.sh)"                  s3rver: fresh temp dir, free port, bucket "xffl"
#   eval "$(tests/s3/start.sh --sigv4)"          + tests/s3/sigv4proxy.py in front, verifying
#                                                signature V4 (V2 passes on to s3rver)
#   eval "$(tests/s3/start.sh --sigv4 --tls)"    + stunnel4 in front of that: HTTPS with the test
#                                                CA of tests/s3/mkcerts.sh (AWS_CA_BUNDLE)
#   eval "$(tests/s3/start.sh --port P --dir D --bucket -)"   restart s3rver alone, same port/data
#   tests/s3/start.sh --addr 0.0.0.0 ...         s3rver listens beyond loopback (inside a
#                                                network namespace of one's own)
# Options:
#   --sigv4                the verifying proxy; --proxy-arg ARG (repeatable) passes ARG to it
#                          (--region R, --token T, --token-expired, --clock-offset S, --key A:S)
#   --tls                  stunnel4 in front of the outermost server so far
#   --tls-dir D            certificates from D (made there by mkcerts.sh when missing);
#                          default <dir>/tls
#   --tls-cert NAME        the certificate stunnel presents: server (default) or other-server
#                          (signed by the other CA)
# Exports: XFFL_S3_ENDPOINT (host:port of the outermost server), XFFL_S3_HTTPS (0/1),
# AWS_ACCESS_KEY_ID/SECRET (s3rver's S3RVER/S3RVER); S3RVER_PID/PORT/DIR/LOG/BUCKET and
# S3RVER_ENDPOINT (s3rver itself, behind whatever is in front); with --sigv4 S3_PROXY_PID,
# S3_PROXY_PORT, S3_PROXY_LOG (a line per request: method, path, verdict, status); with
# --tls S3_TLS_PID, S3_TLS_PORT, S3_TLS_DIR and AWS_CA_BUNDLE (the test CA).
# Stop with tests/s3/stop.sh (kills those PIDs only). Exit 3 if s3rver cannot be installed,
# stunnel4 or python3-botocore is missing (callers print SKIP).
set -u
here=$(cd "$(dirname "$0")" && pwd)
port=0; dir=""; addr=127.0.0.1; bucket=${S3RVER_BUCKET:-xffl}; sigv4=0; tls=0; tlsdir=""; tlscert=server
proxy_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --bucket) bucket=$2; shift 2 ;;
    --addr) addr=$2; shift 2 ;;
    --sigv4) sigv4=1; shift ;;
    --proxy-arg) proxy_args+=("$2"); shift 2 ;;
    --tls) tls=1; shift ;;
    --tls-dir) tlsdir=$2; shift 2 ;;
    --tls-cert) tlscert=$2; shift 2 ;;
    *) echo "start.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ $sigv4 = 1 ]; then
  /usr/bin/python3 -c 'import botocore.auth' 2>/dev/null \
    || { echo "python3-botocore is not installed (scripts/install-deps)" >&2; exit 3; }
fi
if [ $tls = 1 ]; then
  command -v stunnel4 >/dev/null || { echo "stunnel4 is not installed (scripts/install-deps)" >&2; exit 3; }
fi
"$here/install.sh" || exit $?
[ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/xffl-s3rver-XXXXXX")
mkdir -p "$dir/data"
log=$dir/s3rver.log
# --service-endpoint localhost: <bucket>.s3.localhost is a virtual-hosted bucket (curl and
# libcurl resolve *.localhost to loopback themselves); 127.0.0.1 stays path-style
args=(-d "$dir/data" -a "$addr" -p "$port" --no-vhost-buckets --service-endpoint localhost)
[ "$bucket" = "-" ] || args+=(--configure-bucket "$bucket")
# --openssl-legacy-provider: s3rver's ListObjectsV2 continuation tokens are DES, which
# OpenSSL 3 only has in its legacy provider (without it every truncated v2 listing is a 500)
node --openssl-legacy-provider "$here/node_modules/s3rver/bin/s3rver.js" "${args[@]}" >"$log" 2>&1 &
pid=$!
pids=$pid
started() { # log pattern pid
  local line
  for _ in $(seq 1 200); do
    line=$(grep -m1 "$2" "$1" 2>/dev/null)
    [ -n "$line" ] && { echo "$line"; return 0; }
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
give_up() { # what log
  echo "$1 did not start (log $2):" >&2; cat "$2" >&2
  kill $pids 2>/dev/null
  exit 1
}
line=$(started "$log" 'S3rver listening on' $pid) || give_up s3rver "$log"
p=${line##*:}
front=$addr:$p
echo "export S3RVER_PID=$pid S3RVER_PORT=$p S3RVER_DIR=$dir S3RVER_LOG=$log S3RVER_BUCKET=$bucket S3RVER_ENDPOINT=$addr:$p"
out="export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER"

if [ $sigv4 = 1 ]; then
  plog=$dir/sigv4proxy.log
  /usr/bin/python3 "$here/sigv4proxy.py" --upstream "$front" --log "$plog" "${proxy_args[@]}" \
    >"$dir/sigv4proxy.out" 2>"$dir/sigv4proxy.err" &
  ppid=$!; pids="$pids $ppid"
  line=$(started "$dir/sigv4proxy.out" LISTENING $ppid) || give_up sigv4proxy "$dir/sigv4proxy.err"
  pp=${line##* }
  front=127.0.0.1:$pp
  out="$out S3_PROXY_PID=$ppid S3_PROXY_PORT=$pp S3_PROXY_LOG=$plog"
fi

https=0
if [ $tls = 1 ]; then
  [ -n "$tlsdir" ] || tlsdir=$dir/tls
  tls_out=$("$here/stunnel.sh" --connect "$front" --certs "$tlsdir" --dir "$dir" --cert "$tlscert") \
    || give_up stunnel4 /dev/null
  tpid=${tls_out% *} tp=${tls_out#* }
  pids="$pids $tpid"
  front=127.0.0.1:$tp
  https=1
  out="$out S3_TLS_PID=$tpid S3_TLS_PORT=$tp S3_TLS_DIR=$tlsdir AWS_CA_BUNDLE=$tlsdir/ca.pem"
fi
echo "$out XFFL_S3_ENDPOINT=$front XFFL_S3_HTTPS=$https"
