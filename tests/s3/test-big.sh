#!/usr/bin/env bash
# make test-s3-big (issue 17, "What it must show" 2; in .ci/run, not make test): a 6 GiB
# object, generated on the fly (AES-128-CTR keystream of a fixed key: deterministic, not
# kept), goes up through xffl's V4 backend as a multipart upload -- s3rver behind the
# V4-verifying proxy, every part's signature and body SHA-256 checked -- and comes back
# byte-identical (store get verifies the SHA-256 of all 6 GiB; sizes compared); first an
# upload of it killed midway (kill -9 of the uploader once >= 1 GiB of parts went up)
# leaves no visible object. Needs ~20 GiB free under TMPDIR (the file, s3rver's parts and
# the object it assembles); prints SKIP with less.
# Environment: BIG_GIB (default 6), XFFL_S3_TEST_TLS=1 for https, XFFL_BUILD.
set -u
. "$(dirname "$0")/../faults/lib.sh"
[ -x "$X" ] && [ -x "$T" ] || { echo "FAIL: build first (make all): $X, $T"; exit 1; }
gib=${BIG_GIB:-6}
need=$((gib * 3 + 2))
free=$(df -P -BG "${TMPDIR:-/tmp}" | awk 'NR==2{sub("G","",$4); print $4}')
if [ "${free:-0}" -lt $need ]; then
  echo "SKIP: $free GiB free under ${TMPDIR:-/tmp}, the ${gib} GiB multipart test needs $need"; exit 0
fi
command -v openssl >/dev/null || { echo "SKIP: openssl not found (the generator)"; exit 0; }
export XFFL_S3_SIGNATURE=v4
start_s3
echo "s3rver at $XFFL_S3_ENDPOINT ($(s3_cell)); ${free} GiB free"
big=$WORK/big.bin
bytes=$((gib << 30))
gen() { openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 </dev/zero 2>/dev/null | head -c $bytes; }
t0=$(date +%s)
sha=$(gen | tee "$big" | sha256sum | cut -c1-64)
echo "generated $gib GiB in $(( $(date +%s) - t0 )) s, sha256 $sha"
[ "$(stat -c %s "$big")" = $bytes ] || { fail "generator wrote $(stat -c %s "$big") bytes"; exit 1; }
part_mb=$(( gib >= 4 ? 64 : 16 ))
export XFFL_S3_PART_SIZE=${part_mb}M XFFL_S3_MULTIPART_THRESHOLD=64M
nparts=$(( (bytes + (part_mb << 20) - 1) / (part_mb << 20) ))

# 1. killed midway (after 1 GiB of parts, or a quarter of a smaller BIG_GIB): no visible object
s3_before=$(s3_bytes)
kill_at=$(( bytes / 4 < (1 << 30) ? bytes / 4 : (1 << 30) ))
"$T" --verbose --jobs 4 --store s3://xffl/big put killed.bin "$big" >/dev/null 2>"$WORK/kill.err" &
tp=$!
for _ in $(seq 1 3000); do
  [ $(( $(s3_bytes) - s3_before )) -gt $kill_at ] && break
  kill -0 $tp 2>/dev/null || break
  sleep 0.1
done
if kill -0 $tp 2>/dev/null; then
  moved=$(( ($(s3_bytes) - s3_before) >> 20 ))
  kill -9 $tp; wait $tp 2>/dev/null
  sleep 1
  "$T" --store s3://xffl/big list "" >"$WORK/kill.list" 2>&1; lrc=$?
  "$X" ls --keys --store s3://xffl/big >"$WORK/kill.ls" 2>&1
  if [ $lrc = 0 ] && ! grep -q killed.bin "$WORK/kill.list" "$WORK/kill.ls" \
     && grep -q 'uploads' "$S3_PROXY_LOG" && ! grep -q 'POST /xffl/big/killed.bin?uploadId=[^ ]* v4-ok 200' "$S3_PROXY_LOG"; then
    pass "upload of $gib GiB killed (kill -9) after ${moved} MiB of parts: no visible object (listing: $(grep -c . "$WORK/kill.list") keys), never completed"
  else
    fail "killed upload: list rc=$lrc: $(cat "$WORK/kill.list" "$WORK/kill.ls" | head -5)"
  fi
else
  fail "the upload finished or died before $((kill_at >> 20)) MiB went up: $(tail -3 "$WORK/kill.err")"
fi

# 2. the whole object up as a multipart upload, and back verified
mark=$(wc -l <"$S3_PROXY_LOG")
t0=$(date +%s.%N)
"$T" --verbose --jobs 4 --store s3://xffl/big put big.bin "$big" >"$WORK/put.out" 2>"$WORK/put.err"; rc=$?
t1=$(date +%s.%N)
tail -n +$((mark + 1)) "$S3_PROXY_LOG" >"$WORK/put.proxy"
parts=$(grep -c 'PUT /xffl/big/big.bin?partNumber=[0-9]*&uploadId=[^ ]* v4-ok 200' "$WORK/put.proxy")
completed=$(grep -c 'POST /xffl/big/big.bin?uploadId=[^ ]* v4-ok 200' "$WORK/put.proxy")
single=$(grep -c 'PUT /xffl/big/big.bin v4-ok' "$WORK/put.proxy")
if [ $rc = 0 ] && [ "$parts" -ge "$nparts" ] && [ "$completed" = 1 ] && [ "$single" = 0 ]; then
  pass "$gib GiB up as one multipart upload: $parts parts of $part_mb MiB (each signature and body digest verified by the proxy), completed once, $(python3 -c "print(round($bytes/1e6/($t1-$t0),1))") MB/s"
else
  fail "multipart put: rc=$rc parts=$parts (want $nparts) completed=$completed single=$single: $(grep -v ' s3 ' "$WORK/put.err" | tail -3)"
fi
size=$("$T" --store s3://xffl/big list "" 2>/dev/null | awk '$2=="big.bin"{print $1}')
rm -f "$big"   # only its digest is needed now; frees the space for the download
t0=$(date +%s.%N)
"$T" --jobs 4 --store s3://xffl/big get big.bin "$WORK/back.bin" "$sha" >"$WORK/get.out" 2>"$WORK/get.err"; rc=$?
t1=$(date +%s.%N)
bsize=$(stat -c %s "$WORK/back.bin" 2>/dev/null)
bsha=$([ -f "$WORK/back.bin" ] && sha256sum "$WORK/back.bin" | cut -c1-64)
rm -f "$WORK/back.bin"
if [ $rc = 0 ] && [ "$bsize" = $bytes ] && [ "$bsha" = "$sha" ]; then
  [ "$size" = $bytes ] || fail "the listing says big.bin is ${size:-missing} bytes, not $bytes"
  pass "$gib GiB back byte-identical (sha256 checked by the store and again here, $bsize bytes, listed $size) at $(python3 -c "print(round($bytes/1e6/($t1-$t0),1))") MB/s"
else
  fail "get: rc=$rc size=$bsize sha=$bsha (want $sha): $(tail -2 "$WORK/get.err")"
fi
echo "$fails failed"
[ $fails = 0 ]
