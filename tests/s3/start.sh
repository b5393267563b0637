#!/usr/bin/env bash
# Starts s3rver on 127.0.0.1 and prints shell assignments for the caller to eval:
#   eval "$(tests/s3/start.sh)"      # fresh temp dir, free port, bucket "xffl"
#   eval "$(tests/s3/start.sh --port P --dir D)"   # restart on the same port/data
#   tests/s3/start.sh --addr 0.0.0.0 ...           # listen beyond loopback (inside a
#                                                  # network namespace of one's own)
# Exports XFFL_S3_ENDPOINT, XFFL_S3_HTTPS=0, AWS_ACCESS_KEY_ID/SECRET (s3rver's
# S3RVER/S3RVER), S3RVER_PID, S3RVER_DIR, S3RVER_PORT, S3RVER_LOG. Stop with
# tests/s3/stop.sh (kills that PID only). Exit 3 if s3rver cannot be installed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
port=0; dir=""; addr=127.0.0.1; bucket=${S3RVER_BUCKET:-xffl}
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --bucket) bucket=$2; shift 2 ;;
    --addr) addr=$2; shift 2 ;;
    *) echo "start.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
"$here/install.sh" || exit $?
[ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/xffl-s3rver-XXXXXX")
mkdir -p "$dir/data"
log=$dir/s3rver.log
args=(-d "$dir/data" -a "$addr" -p "$port" --no-vhost-buckets)
[ "$bucket" = "-" ] || args+=(--configure-bucket "$bucket")
node "$here/node_modules/s3rver/bin/s3rver.js" "${args[@]}" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  line=$(grep -m1 'S3rver listening on' "$log" 2>/dev/null)
  [ -n "$line" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
if [ -z "${line:-}" ]; then
  echo "s3rver did not start (log $log):" >&2; cat "$log" >&2
  kill $pid 2>/dev/null
  exit 1
fi
p=${line##*:}
echo "export XFFL_S3_ENDPOINT=$addr:$p XFFL_S3_HTTPS=0 AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER"
echo "export S3RVER_PID=$pid S3RVER_PORT=$p S3RVER_DIR=$dir S3RVER_LOG=$log S3RVER_BUCKET=$bucket"
