#!/usr/bin/env bash
# Stops what start.sh started, by PID (stunnel4, the verifying proxy, s3rver) and, with
# --rm, removes s3rver's data directory (and the TLS material made inside it).
#   tests/s3/stop.sh [--rm]     uses $S3_TLS_PID, $S3_PROXY_PID, $S3RVER_PID, $S3RVER_DIR
set -u
stop_pid() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
}
stop_pid "${S3_TLS_PID:-}"
stop_pid "${S3_PROXY_PID:-}"
stop_pid "${S3RVER_PID:-}"
if [ "${1:-}" = "--rm" ] && [ -n "${S3RVER_DIR:-}" ]; then
  case $S3RVER_DIR in */xffl-s3rver-*) rm -rf "$S3RVER_DIR" ;; esac
fi
exit 0
