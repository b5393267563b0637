#!/usr/bin/env bash
# Storage against a real S3 protocol server (s3rver on loopback), part of `make test`
# and `make test-s3` (issue 4 points 1 and 3, and the quick error paths of point 2):
#   - the CUnit store suite on s3:// (the same tests as on file://)
#   - objects written by xffl are ordinary S3 objects: s3cmd lists and fetches them, and
#     xffl reads what s3cmd wrote
#   - xffl ls / pull / cp on s3: a federation copied file -> s3 -> file is byte-identical,
#     verifies on s3, pulls into a directory h5dump opens; an altered part is exit 65
#     (cp copies federation.h5, versions and LATEST; round deltas stay where they were)
#   - server down (exit 74), wrong secret (exit 1), missing bucket, missing variable,
#     object altered behind the server (exit 65)
# The slow faults (kill/restart mid-transfer, fault proxy) are in `make test-faults`.
set -u
. "$(dirname "$0")/../faults/lib.sh"
[ -x "$X" ] && [ -x "$T" ] || { echo "FAIL: build first (make all): $X, $T"; exit 1; }
start_s3
echo "s3rver at $XFFL_S3_ENDPOINT (pid $S3RVER_PID; $(s3_cell))"

# 1. the store suite on s3
if XFFL_TEST_S3_URL=s3://xffl/unit "$BUILD/xffl_tests" store >"$WORK/suite.out" 2>&1 \
   && grep -q 'Suite: store_s3' "$WORK/suite.out" && ! grep -q 'SKIP' "$WORK/suite.out"; then
  pass "store suite on file:// and s3://: $(tail -1 "$WORK/suite.out")"
else
  fail "store suite on s3"; tail -30 "$WORK/suite.out"
fi

# 2. interop with another S3 client (s3cmd, path-style; signature V4 through the verifying
#    proxy on the V4 cells, V2 on the V2 cells; https with the test CA on the HTTPS cells)
if command -v s3cmd >/dev/null; then
  s3cmd_config "$WORK/s3cfg"
  s3c() { s3cmd -c "$WORK/s3cfg" --no-progress "$@"; }
  mkdir -p "$WORK/interop"
  ok=1
  for i in 0 1 2; do
    head -c $((100000 * (i + 1) + i)) /dev/urandom >"$WORK/interop/part-$i"
    "$T" --store s3://xffl/interop put "versions/v000001/part-00$i.h5" "$WORK/interop/part-$i" >/dev/null || ok=0
  done
  listed=$(s3c ls -r s3://xffl/interop/ 2>"$WORK/s3cmd.err" | grep -c 'part-00')
  for i in 0 1 2; do
    s3c get "s3://xffl/interop/versions/v000001/part-00$i.h5" "$WORK/interop/back-$i" >/dev/null 2>>"$WORK/s3cmd.err" || ok=0
    cmp -s "$WORK/interop/part-$i" "$WORK/interop/back-$i" || ok=0
  done
  # and the other way: what s3cmd wrote, xffl reads (verified)
  head -c 123457 /dev/urandom >"$WORK/interop/from-s3cmd"
  s3c put "$WORK/interop/from-s3cmd" s3://xffl/interop/from-s3cmd >/dev/null 2>>"$WORK/s3cmd.err" || ok=0
  "$T" --store s3://xffl/interop get from-s3cmd "$WORK/interop/from-s3cmd.back" \
    "$(sha256sum "$WORK/interop/from-s3cmd" | cut -c1-64)" >/dev/null 2>>"$WORK/s3cmd.err" || ok=0
  if [ $ok = 1 ] && [ "$listed" = 3 ]; then
    pass "s3cmd ($(s3_signature), $([ "$XFFL_S3_HTTPS" = 1 ] && echo https || echo http)) lists ($listed) and fetches bit-exact the objects xffl wrote; xffl reads what s3cmd wrote"
  else
    fail "s3cmd interop: ok=$ok listed=$listed"; tail -5 "$WORK/s3cmd.err"
  fi
else
  echo "SKIP: s3cmd not installed (apt-get install s3cmd): interop check"
fi

# 3. xffl ls on s3
if "$X" ls --store s3://xffl/interop >"$WORK/ls.out" 2>"$WORK/ls.err" && grep -q 'v000001 .* 3 objects' "$WORK/ls.out" \
   && "$X" ls --json --store s3://xffl/interop | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["versions"][0]["objects"]==3 and d["other_objects"]==1'; then
  pass "xffl ls on s3: $(grep v000001 "$WORK/ls.out" | tr -s ' ')"
else
  fail "xffl ls on s3"; cat "$WORK/ls.out" "$WORK/ls.err"
fi

# 4. a federation copied file:// -> s3:// -> file://, pulled from s3, verified on both
src=$WORK/fed
if "$X" init --store "$src" --model small --part-size 4M --local-steps 2 >"$WORK/init.out" 2>&1; then
  nver=$(ls "$src/versions" | wc -l)
  ok=1
  "$X" cp --from "$src" --to s3://xffl/fed >"$WORK/cp1.out" 2>"$WORK/cp1.err" || { ok=0; cat "$WORK/cp1.err"; }
  "$X" verify --store s3://xffl/fed >"$WORK/verify.out" 2>&1 || { ok=0; cat "$WORK/verify.out"; }
  "$X" cp --from s3://xffl/fed --to "file://$WORK/back" >"$WORK/cp2.out" 2>"$WORK/cp2.err" || { ok=0; cat "$WORK/cp2.err"; }
  diff -r -x rounds "$src" "$WORK/back" >/dev/null || { ok=0; echo "copied back store differs"; diff -r -x rounds "$src" "$WORK/back" | head -5; }
  again=$("$X" cp --json --from "$src" --to s3://xffl/fed 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects_copied"])')
  [ "$again" = 0 ] || { ok=0; echo "second cp copied $again objects"; }
  s3cmd_listed=$(command -v s3cmd >/dev/null && s3c ls -r s3://xffl/fed/ 2>/dev/null | grep -c 'versions/')
  "$X" pull --store s3://xffl/fed --version latest "$WORK/pulled" >"$WORK/pull.out" 2>"$WORK/pull.err" || { ok=0; cat "$WORK/pull.err"; }
  part=$(ls "$WORK/pulled"/part-000-*.h5 2>/dev/null | head -1)
  if [ -n "$part" ] && command -v h5dump >/dev/null; then
    HDF5_PLUGIN_PATH=$BUILD/plugins h5dump -d /model/norm.weight "$part" >"$WORK/h5dump.out" 2>&1 \
      || HDF5_PLUGIN_PATH=$BUILD/plugins h5dump -H "$part" >"$WORK/h5dump.out" 2>&1 || { ok=0; echo "h5dump failed on $part"; tail -3 "$WORK/h5dump.out"; }
  else
    ok=0; echo "pull left no part"
  fi
  "$X" verify "$part" >/dev/null 2>&1 || { ok=0; echo "xffl verify $part failed"; }
  if [ $ok = 1 ]; then
    pass "cp file->s3->file ($nver version(s); byte-identical; s3 copy verifies; re-run copies nothing; s3cmd sees ${s3cmd_listed:-?} objects), pull from s3 opens in h5dump: $(cat "$WORK/pull.out")"
  else
    fail "cp/pull/verify on s3"
  fi
  # cp of every version: a tiny federation with a second version, trained by one round of
  # `xffl simulate` where train is built, else made by hand (an INDEX for v000001 naming
  # v000000's parts); byte-identical round trip, LATEST the newest; --version 0 into an
  # empty store gives a LATEST that verifies
  fed2=$WORK/fed2
  trained=0
  "$X" init --store "$fed2" --model tiny --local-steps 2 >/dev/null 2>&1 || fail "xffl init of a tiny federation"
  if "$X" train --help >/dev/null 2>&1 && "$X" data --help >/dev/null 2>&1; then
    for i in $(seq 1 200); do echo "the quick brown fox $i jumps over the lazy dog"; done >"$WORK/a.txt"
    if "$X" data pack "$WORK/a.txt" --out "$WORK/data" >/dev/null 2>&1 \
       && timeout 120 "$X" simulate --store "$fed2" --facilities local --rounds 1 --data "$WORK/data/*_train_*.bin" >/dev/null 2>"$WORK/sim.err"; then
      trained=1
    else
      echo "note: simulate failed, using a hand-made second version: $(tail -1 "$WORK/sim.err" 2>/dev/null)"
    fi
  fi
  if [ ! -d "$fed2/versions/v000001" ]; then
    idx0=$(ls "$fed2"/versions/v000000/INDEX-*)
    mkdir -p "$fed2/versions/v000001"
    sed 's/^version=0$/version=1/' "$idx0" >"$WORK/idx1"
    sha1=$(sha256sum "$WORK/idx1" | cut -c1-64)
    cp "$WORK/idx1" "$fed2/versions/v000001/INDEX-${sha1:0:12}"
    printf 'v000001 INDEX-%s %s\n' "${sha1:0:12}" "$sha1" >"$fed2/LATEST"
  fi
  ok=1
  "$X" cp --from "$fed2" --to s3://xffl/fed2 >/dev/null 2>"$WORK/cp3.err" || { ok=0; cat "$WORK/cp3.err"; }
  "$X" cp --from s3://xffl/fed2 --to "$WORK/back2" >/dev/null 2>"$WORK/cp4.err" || { ok=0; cat "$WORK/cp4.err"; }
  diff -r -x rounds "$fed2" "$WORK/back2" >/dev/null || { ok=0; echo "two-version round trip differs"; }
  "$X" ls --json --store s3://xffl/fed2 | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["versions"])==2 and d["latest"].startswith("v000001"), d' || ok=0
  "$X" cp --version 0 --from s3://xffl/fed2 --to "$WORK/only0" >/dev/null 2>"$WORK/cp5.err" || { ok=0; cat "$WORK/cp5.err"; }
  grep -q '^v000000 ' "$WORK/only0/LATEST" && [ ! -d "$WORK/only0/versions/v000001" ] || { ok=0; echo "--version 0: wrong LATEST or extra version"; }
  "$X" verify --store "$WORK/only0" >/dev/null 2>&1 || { ok=0; echo "--version 0 copy does not verify"; }
  if [ $trained = 1 ]; then
    "$X" verify --store s3://xffl/fed2 >/dev/null 2>&1 || { ok=0; echo "s3 copy of the trained v000001 does not verify"; }
  fi
  how=$([ $trained = 1 ] && echo "v000001 trained by simulate, verifies on s3" || echo "v000001 hand-made")
  if [ $ok = 1 ]; then pass "cp of all versions (2; $how) file->s3->file byte-identical, LATEST v000001; cp --version 0 verifies"; else fail "cp of several versions"; fi

  # the same version with a part altered on disk behind the server: pull is exit 65 naming the key
  key=$(grep -o 'versions/v000000/part-[^ ]*' "$src"/versions/v000000/INDEX-* | head -1)
  "$X" cp --from "$src" --to s3://xffl/fed-bad --version 0 >/dev/null 2>&1
  obj=$S3RVER_DIR/data/xffl/fed-bad/$key._S3rver_object
  if [ -f "$obj" ]; then
    python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=1; open(p,'wb').write(b)" "$obj"
    "$X" pull --store s3://xffl/fed-bad --version 0 "$WORK/pulled-bad" >/dev/null 2>"$WORK/pullbad.err"; rc=$?
    "$X" verify --store s3://xffl/fed-bad >/dev/null 2>"$WORK/verifybad.err"; vrc=$?
    if [ $rc = 65 ] && grep -q "$key" "$WORK/pullbad.err" && [ $vrc = 65 ]; then
      pass "part altered behind s3rver: xffl pull exit 65 naming $key; xffl verify exit 65"
    else
      fail "altered part: pull rc=$rc verify rc=$vrc: $(cat "$WORK/pullbad.err")"
    fi
  else
    fail "altered part: s3rver object file for $key not found"
  fi
else
  fail "xffl init of a tiny federation failed: $(tail -2 "$WORK/init.out")"
fi

# 5. virtual-hosted addressing: the bucket in the host name, xffl.s3.localhost (libcurl
#    resolves *.localhost to loopback; s3rver runs with --service-endpoint localhost; the
#    test certificate names *.s3.localhost); what it wrote, path-style reads back
vport=${XFFL_S3_ENDPOINT##*:}
vh() { XFFL_S3_ENDPOINT=s3.localhost:$vport XFFL_S3_ADDRESSING=virtual "$@"; }
head -c 100001 /dev/urandom >"$WORK/vh.bin"
vsha=$(sha256sum "$WORK/vh.bin" | cut -c1-64)
if vh "$T" --store s3://xffl/vhost put a/vh.bin "$WORK/vh.bin" >/dev/null 2>"$WORK/vh.err" \
   && vh "$T" --store s3://xffl/vhost list "" >"$WORK/vh.list" 2>>"$WORK/vh.err" && grep -q '^100001 a/vh.bin$' "$WORK/vh.list" \
   && vh "$T" --store s3://xffl/vhost get a/vh.bin "$WORK/vh.back" "$vsha" >/dev/null 2>>"$WORK/vh.err" \
   && "$T" --store s3://xffl/vhost get a/vh.bin "$WORK/vh.back2" "$vsha" >/dev/null 2>>"$WORK/vh.err" \
   && { [ -z "${S3_PROXY_LOG:-}" ] || [ "$(s3_signature)" = v2 ] || grep -q 'PUT /vhost/a/vh.bin v4-ok 200' "$S3_PROXY_LOG"; }; then
  pass "virtual-hosted addressing (xffl.s3.localhost:$vport): put, list, verified get; path-style reads the same object"
else
  fail "virtual-hosted addressing: $(tail -3 "$WORK/vh.err")"
fi

# 6. quick error paths
check_unreachable 3
check_wrong_secret
check_missing_bucket
check_missing_env
check_altered
# libs3 (V2) refuses objects over 4 GiB; the V4 backend uploads them in parts (make test-s3-big)
[ "$(s3_signature)" = v2 ] && check_too_big
check_proxy_saw_v4

echo "$fails failed"
[ $fails = 0 ]
