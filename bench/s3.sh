#!/usr/bin/env bash
# make bench BENCH=s3: PUT and GET MB/s of a 1 GiB version (4 parts of 256 MiB, --jobs 4)
# through the store interface, against s3rver on loopback and against file://, each
# next to a reference measured in the same run on the same bytes:
#   s3_put / s3_get            ref: curl, one stream, the same 4 objects one after another
#                              (unsigned requests, which s3rver accepts; GET then sync)
#   store_file_put / _get      ref: dd bs=4M conv=fsync of the same 4 files, one after another
# Ours include what the store does on every transfer: SHA-256 of each GET, a HEAD after
# each PUT (size + ETag check), fsync + rename of each file. jobs1_MBps: ours, --jobs 1.
# BENCH_S3_MB (default 1024) sets the version size. About 1-2 minutes.
set -u
cd "$(dirname "$0")/.."
BUILD=${XFFL_BUILD:-build}
SB=$BUILD/bench/store_bench
[ -x "$SB" ] || { echo "bench s3: build first ($SB)" >&2; exit 1; }
total_mb=${BENCH_S3_MB:-1024}
part_mb=$((total_mb / 4))
work=$(mktemp -d "${TMPDIR:-/tmp}/xffl-bench-s3-XXXXXX")
S3RVER_PID=
cleanup() { [ -n "$S3RVER_PID" ] && tests/s3/stop.sh --rm; rm -rf "$work"; }
trap cleanup EXIT
for k in 0 1 2 3; do head -c $((part_mb << 20)) /dev/urandom >"$work/part-$k"; done
bytes=$((4 * (part_mb << 20)))
now() { date +%s.%N; }
mbps() { python3 -c "import sys; print(round($bytes/1e6/($2-$1),1))"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
line() { # bench value ref_name ref extra-json
  python3 -c "
import json,sys
v,r=float(sys.argv[2]),float(sys.argv[4])
d={'bench':sys.argv[1],'value':v,'unit':'MB/s','ref_name':sys.argv[3],'ref':r,'ratio':round(v/r,3) if r else None}
d.update(json.loads(sys.argv[5]))
print(json.dumps(d))" "$@"
}
common="\"bytes\": $bytes, \"parts\": 4"

# ---- s3 (s3rver on loopback)
if env=$(tests/s3/start.sh 2>"$work/s3rver.err"); then
  eval "$env"
  url=s3://xffl/bench
  put=$("$SB" --store "$url" --jobs 4 put "$work" 4) || exit 1
  t0=$(now)
  for k in 0 1 2 3; do curl -sf -H 'Expect:' -T "$work/part-$k" "http://$XFFL_S3_ENDPOINT/xffl/bench-curl/part-$k" >/dev/null || exit 1; done
  t1=$(now); curl_put=$(mbps "$t0" "$t1")
  put1=$("$SB" --store "$url-j1" --jobs 1 put "$work" 4) || exit 1
  line s3_put "$(field "$put" MBps)" curl_single_stream_put "$curl_put" \
    "{$common, \"jobs\": 4, \"seconds\": $(field "$put" seconds), \"jobs1_MBps\": $(field "$put1" MBps), \"server\": \"s3rver 3.7.1, 127.0.0.1\"}"
  get=$("$SB" --store "$url" --jobs 4 get "$work" 4) || exit 1
  rm -f "$work"/got-*
  t0=$(now)
  for k in 0 1 2 3; do curl -sf -o "$work/curl-$k" "http://$XFFL_S3_ENDPOINT/xffl/bench-curl/part-$k" || exit 1; done
  sync -f "$work/curl-0" 2>/dev/null || sync
  t1=$(now); curl_get=$(mbps "$t0" "$t1")
  cmp -s "$work/part-3" "$work/curl-3" || { echo "bench s3: curl GET returned other bytes" >&2; exit 1; }
  rm -f "$work"/curl-*
  get1=$("$SB" --store "$url" --jobs 1 get "$work" 4) || exit 1
  rm -f "$work"/got-*
  line s3_get "$(field "$get" MBps)" curl_single_stream_get "$curl_get" \
    "{$common, \"jobs\": 4, \"seconds\": $(field "$get" seconds), \"jobs1_MBps\": $(field "$get1" MBps), \"verified\": \"sha256 + byte count\", \"server\": \"s3rver 3.7.1, 127.0.0.1\"}"
  tests/s3/stop.sh --rm; S3RVER_PID=
else
  echo "bench s3: SKIP s3_put/s3_get: s3rver unavailable ($(tail -1 "$work/s3rver.err"))" >&2
fi

# ---- file:// next to dd with fsync
t0=$(now)
for k in 0 1 2 3; do dd if="$work/part-$k" of="$work/dd-$k" bs=4M conv=fsync status=none || exit 1; done
t1=$(now); dd_mbps=$(mbps "$t0" "$t1")
rm -f "$work"/dd-*
put=$("$SB" --store "file://$work/store" --jobs 4 put "$work" 4) || exit 1
line store_file_put "$(field "$put" MBps)" dd_fsync "$dd_mbps" "{$common, \"jobs\": 4, \"seconds\": $(field "$put" seconds)}"
get=$("$SB" --store "file://$work/store" --jobs 4 get "$work" 4) || exit 1
line store_file_get "$(field "$get" MBps)" dd_fsync "$dd_mbps" "{$common, \"jobs\": 4, \"seconds\": $(field "$get" seconds), \"verified\": \"sha256\"}"
