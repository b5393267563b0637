#!/usr/bin/env bash
# Downloads as updates (issue 20, point 2): a 3-round federation where the facilities
# keep --state fetches rounds 2 and 3 as updates from the version they trained on
# (COMMIT download=update, fewer bytes), and gives the same delta and version digests
# as the same federation whose facilities lose their state directory before every
# round (full downloads); a corrupted update part or cached base falls back to the full
# version with a warning naming the file; verify --all checks the updates, gc removes
# them with their versions, reproduce still matches.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$T/config}

pack_alpha_beta

for run in keep lose; do
  $X init --store "$T/$run" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
    --seq-len 32 --lr 1e-3 --seed 5 >/dev/null 2>&1 || fail "init $run"
done
train() { # run facility [extra...]
  local run=$1 f=$2; shift 2
  $X train --store "$T/$run" --facility "$f" --data "$T/data/$f/*_train_*.bin" --state "$T/state-$run/$f" \
    --threads 1 "$@"
}

for r in 1 2 3; do
  for run in keep lose; do
    [ "$run" = lose ] && rm -rf "$T/state-lose"   # the state directory is lost before every round
    for f in alpha beta; do
      train "$run" "$f" >"$T/$run.$f.$r.out" 2>"$T/$run.$f.$r.err" || { cat "$T/$run.$f.$r.err"; fail "train $run $f r$r"; }
    done
    $X aggregate --store "$T/$run" >/dev/null 2>&1 || fail "aggregate $run r$r"
  done
  for f in alpha beta; do
    k=$(commit_of keep $r $f); l=$(commit_of lose $r $f)
    want=$([ $r -eq 1 ] && echo full || echo update)
    [ "$(header "$k" download)" = "$want" ] || fail "keep r$r $f: download=$(header "$k" download), expected $want"
    [ "$(header "$l" download)" = full ] || fail "lose r$r $f: download=$(header "$l" download), expected full"
    grep -q "download $want [0-9]* bytes" "$T/keep.$f.$r.out" || fail "train result line: $(cat "$T/keep.$f.$r.out")"
    grep -q "fetched v$(printf %06d $((r - 1))) .*bytes" "$T/keep.$f.$r.err" || fail "no download log line: $(cat "$T/keep.$f.$r.err")"
    # the same delta digests with either download
    diff <(grep '^tensor ' "$k") <(grep '^tensor ' "$l") >/dev/null || fail "r$r $f: delta digests differ (update vs full)"
    kb=$(header "$k" download_bytes); lb=$(header "$l" download_bytes)
    if [ $r -ge 2 ]; then
      [ "$kb" -lt "$lb" ] || fail "r$r $f: update $kb bytes, not fewer than the full $lb"
      echo "round $r $f: update $kb bytes, full $lb bytes"
    fi
  done
  diff <(grep '^tensor ' "$T"/keep/versions/v$(printf %06d $r)/INDEX-*) \
       <(grep '^tensor ' "$T"/lose/versions/v$(printf %06d $r)/INDEX-*) >/dev/null || fail "v$r digests differ"
  ls "$T"/keep/versions/v$(printf %06d $r)/UPDATE-from-v$(printf %06d $((r - 1)))-* >/dev/null || fail "no update beside v$r"
done
[ -f "$T/state-keep/alpha/base.f32" ] && [ -f "$T/state-keep/alpha/base.ref" ] || fail "no cached base in --state"
grep -q "^v000002 versions/v000002/INDEX-" "$T/state-keep/alpha/base.ref" || fail "base.ref: $(cat "$T/state-keep/alpha/base.ref")"

# round 4 (alpha) from damaged inputs: each falls back to the full version, naming the file
cp -a "$T/keep" "$T/bad"; cp -a "$T/state-keep" "$T/state-bad"
up=$(ls "$T"/bad/versions/v000003/update-*.h5 | head -1)
/usr/bin/python3 - "$up" <<'EOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0xff; open(p, 'wb').write(b)
EOF
expect_rc 0 train bad alpha
grep -q "warning: versions/v000003/$(basename "$up").*downloading the full version" "$T/err" || { cat "$T/err"; fail "damaged update part not named"; }
[ "$(header "$(commit_of bad 4 alpha)" download)" = full ] || fail "damaged update: not a full download"
train lose alpha >/dev/null 2>&1 || fail "train lose alpha r4"
diff <(grep '^tensor ' "$(commit_of bad 4 alpha)") <(grep '^tensor ' "$(commit_of lose 4 alpha)") >/dev/null \
  || fail "round 4 after a damaged update: delta digests differ from the full download's"
printf '\1' | dd of="$T/state-bad/beta/base.f32" bs=1 seek=4096 conv=notrunc 2>/dev/null
expect_rc 0 train bad beta
grep -q "warning: $T/state-bad/beta/base.f32: digest .*damaged cache.*downloading the full version" "$T/err" || { cat "$T/err"; fail "damaged cache not named"; }
[ "$(header "$(commit_of bad 4 beta)" download)" = full ] || fail "damaged cache: not a full download"
# the damaged part is found by verify --all, naming it
expect_rc 65 $X verify --all --store "$T/bad"
grep -q "$(basename "$up")" "$T/out" "$T/err" || fail "verify --all did not name the damaged update part"

# an update part on its own: verify reads every dataset's digest, show lists the words
up3=$(ls "$T"/keep/versions/v000003/update-*.h5 | head -1)
expect_rc 0 $X verify "$up3"
grep -q "(xffl-update)" "$T/out" || fail "verify of an update part: $(cat "$T/out")"
expect_rc 0 $X show "$up3"
grep -q "^xor/.*uint32" "$T/out" || fail "show of an update part: $(cat "$T/out")"
expect_rc 65 $X verify "$up"
# verify --all checks each update, ls and show are not confused, reproduce matches
expect_rc 0 $X verify --all --store "$T/keep"
grep -q "3 updates verified" "$T/out" || fail "verify --all: $(cat "$T/out")"
expect_rc 0 $X ls --store "$T/keep"
grep -q "v000003\*" "$T/out" || fail "ls: $(cat "$T/out")"
expect_rc 0 $X show --store "$T/keep"
expect_rc 0 $X reproduce --store "$T/keep" --round 3
grep -q "^ok round 3" "$T/out" || fail "reproduce round 3"
expect_rc 0 $X reproduce --store "$T/keep" --round 3 --train --facility alpha --data "$T/data/alpha/*_train_*.bin" \
  --state "$T/state-keep/alpha" --threads 1
grep -q "delta reproduced" "$T/out" || fail "reproduce --train"
# cp copies the updates with their versions: byte-identical
expect_rc 0 $X cp --from "$T/keep" --to "$T/copy"
diff -r -x rounds -x 'put.tmp.lock' "$T/keep" "$T/copy" >/dev/null || fail "cp: the copy differs"
# gc removes updates with their versions, keeps those of kept versions
expect_rc 0 $X gc --store "$T/keep" --keep 2 --grace 0
! ls "$T"/keep/versions/v000001/UPDATE-* >/dev/null 2>&1 || fail "gc kept v1's update"
ls "$T"/keep/versions/v000003/UPDATE-* "$T"/keep/versions/v000003/update-*.h5 >/dev/null || fail "gc removed v3's update"
expect_rc 0 $X verify --all --store "$T/keep"
grep -q "0 orphans" "$T/out" || fail "after gc: $(cat "$T/out")"
echo "ok"
