#!/usr/bin/env bash
# Stops the s3rver that start.sh started (by its PID) and, with --rm, removes its data.
#   tests/s3/stop.sh [--rm]        uses $S3RVER_PID and $S3RVER_DIR
set -u
pid=${S3RVER_PID:-}
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
fi
if [ "${1:-}" = "--rm" ] && [ -n "${S3RVER_DIR:-}" ]; then
  case $S3RVER_DIR in */xffl-s3rver-*) rm -rf "$S3RVER_DIR" ;; esac
fi
exit 0
