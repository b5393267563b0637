#!/usr/bin/env bash
# make bench BENCH=s3: PUT and GET MB/s of a 1 GiB version (4 parts of 256 MiB, --jobs 4)
# through the store interface, for each S3 backend over HTTP and HTTPS, each next to curl
# moving the same 4 objects in one stream, one after another, on the same path in the same run:
#   s3_put / s3_get  (fields signature v2|v4, protocol http|https)
#     v2: xffl's libs3 backend -> s3rver; ref: curl, unsigned requests (s3rver takes them)
#     v4: xffl's V4 backend -> tests/s3/sigv4proxy.py (verifies every signature) -> s3rver;
#         ref: curl --aws-sigv4 on the same proxy. Over http with the body's SHA-256 in
#         x-amz-content-sha256 (from sha256sum, before the clock, as ours comes from the
#         pipelines' manifests): S3 refuses UNSIGNED-PAYLOAD over plain http, and the
#         proxy checks the body against it for both. Over https UNSIGNED-PAYLOAD, as
#         ours. curl_unsigned_MBps (v4 http): curl with UNSIGNED-PAYLOAD anyway, which
#         the proxy lets through unhashed, the reference before 2026-12-02
#     https: stunnel4 with the test CA in front of either (curl --cacert, AWS_CA_BUNDLE;
#         libs3 does not verify certificates: see docs/design.md "Storage")
#   s3_proxy_overhead_put / _get   curl through the verifying proxy vs curl straight to
#         s3rver, same objects: what the V4 cells' proxy costs (ratio 1 = nothing)
#   store_file_put / _get          file:// next to dd bs=4M conv=fsync of the same files
# Ours include what the store does on every transfer: SHA-256 of each GET, fsync + rename
# of each file; for each PUT, v2: a HEAD (size) and the ETag against the file's MD5; v4
# over http: the file's SHA-256 signed (the proxy checks the body), over https: the ETag
# against the file's MD5 (storage/file_md5s.c). The GET references write the files and
# sync them too. jobs1_MBps: ours with --jobs 1.
# BENCH_S3_MB (default 1024) sets the version size; BENCH_S3_CELLS (default
# "v2-http v2-https v4-http v4-https") the cells; BENCH_S3_TRIES (default 3) how many
# alternating tries each side gets (its best counts); BENCH_S3_SETTLE (default 2) the
# seconds of rest after the sync before each timed transfer (a PUT also starts from an
# empty bucket). About 3 minutes per cell here.
set -u
cd "$(dirname "$0")/.."
BUILD=${XFFL_BUILD:-build}
SB=$BUILD/bench/store_bench
[ -x "$SB" ] || { echo "bench s3: build first ($SB)" >&2; exit 1; }
total_mb=${BENCH_S3_MB:-1024}
part_mb=$((total_mb / 4))
cells=${BENCH_S3_CELLS:-v2-http v2-https v4-http v4-https}
TRIES=${BENCH_S3_TRIES:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/xffl-bench-s3-XXXXXX")
S3RVER_PID= S3_PROXY_PID= S3_TLS_PID=
stop_servers() { [ -n "$S3RVER_PID" ] && tests/s3/stop.sh --rm; S3RVER_PID= S3_PROXY_PID= S3_TLS_PID=; }
cleanup() { stop_servers; rm -rf "$work"; }
trap cleanup EXIT
export XDG_CONFIG_HOME=$work/config
export AWS_SHARED_CREDENTIALS_FILE=$work/none AWS_CONFIG_FILE=$work/none
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION
part_sha=()
for k in 0 1 2 3; do
  head -c $((part_mb << 20)) /dev/urandom >"$work/part-$k"
  part_sha[$k]=$(sha256sum "$work/part-$k" | cut -c1-64)
done
# the parts' 1 GiB of dirty pages reach the disk now, not during the first cell's tries
sync
bytes=$((4 * (part_mb << 20)))
now() { date +%s.%N; }
# Every timed transfer starts from the same state: no dirty pages being written back,
# and for a PUT an empty bucket. Without it each try inherited the write-back and page
# cache of the GiBs the tries before it stored, and the later tries of either side ran
# 10-30 % slower than the first (docs/storage.md "Benchmark").
SETTLE=${BENCH_S3_SETTLE:-2}
settle() { sync; sleep "$SETTLE"; }
empty_bucket() { rm -rf "$S3RVER_DIR/data/xffl/"*; settle; }
mbps() { python3 -c "import sys; print(round($bytes/1e6/($2-$1),1))"; }
# every try of both sides, in the order they ran, beside the best that counts
tries_json() { local IFS=,; printf '"tries_MBps": [%s], "ref_tries_MBps": [%s]' "${all[*]}" "${all_ref[*]}"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0 ? a : b) }'; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
line() { # bench value ref_name ref extra-json
  python3 -c "
import json,sys
v,r=float(sys.argv[2]),float(sys.argv[4])
d={'bench':sys.argv[1],'value':v,'unit':'MB/s','ref_name':sys.argv[3],'ref':r,'ratio':round(v/r,3) if r else None}
d.update(json.loads(sys.argv[5]))
print(json.dumps(d))" "$@"
}
common="\"bytes\": $bytes, \"parts\": 4, \"machine\": \"$(nproc) cores, shared\""
# a build without the V4 backend does not know XFFL_S3_SIGNATURE: its v4 cells are skipped
has_v4=0; grep -q XFFL_S3_SIGNATURE "$BUILD/xffl" 2>/dev/null && has_v4=1

# curl, one stream: PUT or GET the 4 parts one after another; prints MB/s
# $1 put|get  $2 base URL (scheme://host:port/bucket/prefix)  $3 signing: none, v4 (as S3
# takes it: a PUT's SHA-256 signed over http) or v4-unsigned (UNSIGNED-PAYLOAD everywhere)
curl_stream() {
  local op=$1 base=$2 sign=$3 t0 t1 args=(-sSf --http1.1)
  # curl 7.88 signs a removed header ("Expect:") as present and empty: V4 keeps Expect
  if [ "$sign" = v4 ] || [ "$sign" = v4-unsigned ]; then
    args+=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
  else
    args+=(-H 'Expect:')
  fi
  [ -n "${AWS_CA_BUNDLE:-}" ] && args+=(--cacert "$AWS_CA_BUNDLE")
  t0=$(now)
  for k in 0 1 2 3; do
    local pay=()  # what V4 signs as the payload: the part's SHA-256 over http (S3 wants it)
    if [ "$sign" = v4 ] && [ "$op" = put ] && [ "${base%%://*}" = http ]; then
      pay=(-H "x-amz-content-sha256: ${part_sha[$k]}")
    elif [ "$sign" != none ]; then
      pay=(-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
    fi
    if [ "$op" = put ]; then
      curl "${args[@]}" "${pay[@]}" -T "$work/part-$k" "$base/part-$k" >/dev/null || return 1
    else
      curl "${args[@]}" "${pay[@]}" -o "$work/curl-$k" "$base/part-$k" || return 1
    fi
  done
  [ "$op" = get ] && { sync -f "$work/curl-0" 2>/dev/null || sync; }
  t1=$(now)
  if [ "$op" = get ]; then
    cmp -s "$work/part-3" "$work/curl-3" || { echo "bench s3: curl GET returned other bytes" >&2; return 1; }
    rm -f "$work"/curl-*
  fi
  mbps "$t0" "$t1"
}

for cell in $cells; do
  sig=${cell%-*} proto=${cell#*-}
  if [ "$sig" = v4 ] && [ $has_v4 = 0 ]; then
    echo "bench s3: SKIP $cell: this build has no signature-V4 backend" >&2; continue
  fi
  args=(); [ "$sig" = v4 ] && args+=(--sigv4); [ "$proto" = https ] && args+=(--tls)
  if ! env=$(tests/s3/start.sh "${args[@]}" 2>"$work/start.err"); then
    echo "bench s3: SKIP $cell: test server unavailable ($(tail -1 "$work/start.err"))" >&2; continue
  fi
  eval "$env"
  scheme=http; [ "$XFFL_S3_HTTPS" = 1 ] && scheme=https
  sign=none; [ "$sig" = v4 ] && sign=v4
  server="s3rver 3.7.1$([ "$sig" = v4 ] && echo ' behind sigv4proxy.py')$([ "$proto" = https ] && echo ' behind stunnel4'), 127.0.0.1"
  export XFFL_S3_SIGNATURE=$sig
  url=s3://xffl/bench
  # ours (--jobs 4), curl and ours (--jobs 1) in turn, TRIES times, each side its best:
  # this host's throughput drifts by 10-30 % between single runs of a few seconds
  put=0 curl_put=0 put1=0 secs=0 unsigned_put=0 all=() all_ref=()
  for i in $(seq "$TRIES"); do
    empty_bucket
    o=$("$SB" --store "$url" --jobs 4 put "$work" 4) || { echo "bench s3: $cell put failed" >&2; exit 1; }
    [ "$(best "$put" "$(field "$o" MBps)")" = "$put" ] || { put=$(field "$o" MBps); secs=$(field "$o" seconds); }
    all+=("$(field "$o" MBps)")
    empty_bucket
    c=$(curl_stream put "$scheme://$XFFL_S3_ENDPOINT/xffl/bench-curl" $sign) || { echo "bench s3: $cell curl put failed" >&2; exit 1; }
    curl_put=$(best "$curl_put" "$c"); all_ref+=("$c")
    empty_bucket
    o=$("$SB" --store "$url-j1" --jobs 1 put "$work" 4) || exit 1
    put1=$(best "$put1" "$(field "$o" MBps)")
    if [ "$cell" = v4-http ]; then
      empty_bucket
      c=$(curl_stream put "$scheme://$XFFL_S3_ENDPOINT/xffl/bench-curl-u" v4-unsigned) || exit 1
      unsigned_put=$(best "$unsigned_put" "$c")
    fi
  done
  extra=; [ "$cell" = v4-http ] && extra=", \"curl_unsigned_MBps\": $unsigned_put"
  line s3_put "$put" curl_single_stream_put "$curl_put" \
    "{$common, $(tries_json), \"signature\": \"$sig\", \"protocol\": \"$proto\", \"jobs\": 4, \"seconds\": $secs, \"jobs1_MBps\": $put1$extra, \"tries\": $TRIES, \"server\": \"$server\"}"
  # what the GETs read, stored again untimed (each PUT above started from an empty bucket)
  empty_bucket
  "$SB" --store "$url" --jobs 4 put "$work" 4 >/dev/null || exit 1
  curl_stream put "$scheme://$XFFL_S3_ENDPOINT/xffl/bench-curl" $sign >/dev/null || exit 1
  get=0 curl_get=0 get1=0 secs=0 all=() all_ref=()
  for i in $(seq "$TRIES"); do
    settle
    o=$("$SB" --store "$url" --jobs 4 get "$work" 4) || { echo "bench s3: $cell get failed" >&2; exit 1; }
    [ "$(best "$get" "$(field "$o" MBps)")" = "$get" ] || { get=$(field "$o" MBps); secs=$(field "$o" seconds); }
    all+=("$(field "$o" MBps)")
    rm -f "$work"/got-*
    settle
    c=$(curl_stream get "$scheme://$XFFL_S3_ENDPOINT/xffl/bench-curl" $sign) || { echo "bench s3: $cell curl get failed" >&2; exit 1; }
    curl_get=$(best "$curl_get" "$c"); all_ref+=("$c")
    settle
    o=$("$SB" --store "$url" --jobs 1 get "$work" 4) || exit 1
    get1=$(best "$get1" "$(field "$o" MBps)")
    rm -f "$work"/got-*
  done
  line s3_get "$get" curl_single_stream_get "$curl_get" \
    "{$common, $(tries_json), \"signature\": \"$sig\", \"protocol\": \"$proto\", \"jobs\": 4, \"seconds\": $secs, \"jobs1_MBps\": $get1, \"tries\": $TRIES, \"verified\": \"sha256 + byte count\", \"server\": \"$server\"}"
  if [ "$cell" = v4-http ]; then  # the verifying proxy's own cost, curl on both paths
    empty_bucket
    raw_put=$(AWS_CA_BUNDLE= curl_stream put "http://$S3RVER_ENDPOINT/xffl/bench-raw" v4-unsigned) || exit 1
    settle
    via_put=$(curl_stream put "http://$XFFL_S3_ENDPOINT/xffl/bench-via" v4-unsigned) || exit 1
    settle
    line s3_proxy_overhead_put "$via_put" curl_straight_to_s3rver_put "$raw_put" "{$common, \"through\": \"tests/s3/sigv4proxy.py\"}"
    raw_get=$(AWS_CA_BUNDLE= curl_stream get "http://$S3RVER_ENDPOINT/xffl/bench-raw" v4-unsigned) || exit 1
    settle
    via_get=$(curl_stream get "http://$XFFL_S3_ENDPOINT/xffl/bench-raw" v4-unsigned) || exit 1
    line s3_proxy_overhead_get "$via_get" curl_straight_to_s3rver_get "$raw_get" "{$common, \"through\": \"tests/s3/sigv4proxy.py\"}"
  fi
  unset XFFL_S3_SIGNATURE AWS_CA_BUNDLE
  stop_servers
done

# ---- file:// next to dd with fsync
settle
t0=$(now)
for k in 0 1 2 3; do dd if="$work/part-$k" of="$work/dd-$k" bs=4M conv=fsync status=none || exit 1; done
t1=$(now); dd_mbps=$(mbps "$t0" "$t1")
rm -f "$work"/dd-*
settle
put=$("$SB" --store "file://$work/store" --jobs 4 put "$work" 4) || exit 1
line store_file_put "$(field "$put" MBps)" dd_fsync "$dd_mbps" "{$common, \"jobs\": 4, \"seconds\": $(field "$put" seconds)}"
settle
get=$("$SB" --store "file://$work/store" --jobs 4 get "$work" 4) || exit 1
line store_file_get "$(field "$get" MBps)" dd_fsync "$dd_mbps" "{$common, \"jobs\": 4, \"seconds\": $(field "$get" seconds), \"verified\": \"sha256\"}"
