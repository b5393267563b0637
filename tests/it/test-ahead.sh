#!/usr/bin/env bash
# Training ahead (train --ahead, pipelines/train.h): a facility whose delta for round 2
# is in trains round 3 from its own replay of version 2 while the aggregation job has
# not published it; its COMMIT waits for version 2, names its INDEX and holds the same
# delta as the ordinary job run after version 2. When the published version 2 is not
# the replay (the aggregator left a damaged delta out), the round is trained again
# from it, with the same result as the ordinary job. Without every facility's delta it
# exits 75 after --wait; without a cached version to replay from it is the
# ordinary job; without --state it is a usage error.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$T/config}

pack_alpha_beta
$X init --store "$T/s" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
  --seq-len 32 --lr 1e-3 --seed 5 --encoding int4 >/dev/null 2>&1 || fail "init"
train() { # store state facility [extra...]
  local st=$1 sd=$2 f=$3; shift 3
  $X train --store "$T/$st" --facility "$f" --data "$T/data/$f/*_train_*.bin" --state "$T/$sd/$f" --threads 1 "$@"
}

for f in alpha beta; do train s state $f >/dev/null 2>&1 || fail "train r1 $f"; done
$X aggregate --store "$T/s" >/dev/null 2>&1 || fail "aggregate r1"
for f in alpha beta; do train s state $f >/dev/null 2>&1 || fail "train r2 $f"; done
# round 2's deltas are in, version 2 is not: the starting point of every case below
cp -a "$T/s" "$T/s0"; cp -a "$T/state" "$T/state0"

# --- ahead, then the aggregation: the same delta as the ordinary job after it
train s state alpha --ahead >"$T/ahead.out" 2>"$T/ahead.err" &
pid=$!
for _ in $(seq 100); do grep -q "replayed v000002 ahead" "$T/ahead.err" && break; sleep 0.2; done
grep -q "replayed v000002 ahead of its INDEX from v000001 and 2 deltas" "$T/ahead.err" || { cat "$T/ahead.err"; fail "no replay ahead"; }
[ ! -e "$T/s/versions/v000002" ] || fail "version 2 before the aggregation"
$X aggregate --store "$T/s" >/dev/null 2>&1 || fail "aggregate r2"
wait $pid || { cat "$T/ahead.err"; fail "train --ahead"; }
grep -q "^round 3 a1 " "$T/ahead.out" || fail "ahead result: $(cat "$T/ahead.out")"
c=$(commit_of s 3 alpha)
idx2=$(ls "$T"/s/versions/v000002/INDEX-*); idx2=${idx2#$T/s/}
[ "$(header "$c" base_index)" = "$idx2" ] || fail "COMMIT base_index $(header "$c" base_index), not $idx2"
[ "$(header "$c" download)" = replay ] || fail "download=$(header "$c" download)"
grep -q "is the replay round 3 was trained from" "$T/ahead.err" || fail "no confirmation line"
cp -a "$T/s0" "$T/ctl"; cp -a "$T/state0" "$T/state-ctl"
$X aggregate --store "$T/ctl" >/dev/null 2>&1 || fail "aggregate ctl r2"
train ctl state-ctl alpha >/dev/null 2>&1 || fail "train ctl r3"
diff <(tensors "$c") <(tensors "$(commit_of ctl 3 alpha)") >/dev/null || fail "ahead delta differs from the ordinary job's"
diff <(tensors "$T/state/alpha/base.ref") <(tensors "$T/state-ctl/alpha/base.ref") >/dev/null || fail "cached base differs"
cmp "$T/state/alpha/outer.f32" "$T/state-ctl/alpha/outer.f32" || fail "cached outer state differs"
# the aggregation of round 3 takes it like any other
train s state beta >/dev/null 2>&1 || fail "train r3 beta"
expect_rc 0 $X aggregate --store "$T/s"
expect_rc 0 $X verify --all --store "$T/s"

# --- the published version is not the replay: trained again from it
cp -a "$T/s0" "$T/m"; cp -a "$T/state0" "$T/state-m"
train m state-m alpha --ahead >"$T/m.out" 2>"$T/m.err" &
pid=$!
for _ in $(seq 100); do grep -q "replayed v000002 ahead" "$T/m.err" && break; sleep 0.2; done
part=$(ls "$T"/m/rounds/r000002/beta/a1/part-*.h5 | head -1)
printf '\1' | dd of="$part" bs=1 seek=2000 conv=notrunc 2>/dev/null   # beta's delta, damaged after the replay
$X aggregate --store "$T/m" --quorum 1 >/dev/null 2>&1 || fail "aggregate m r2"
grep -q "^contributor beta" "$T"/m/versions/v000002/INDEX-* && fail "beta's damaged delta was combined"
cp -a "$T/m" "$T/m-ctl"; cp -a "$T/state0" "$T/state-m-ctl"   # v2 as published, alpha's state as before
wait $pid || { cat "$T/m.err"; fail "train --ahead after a mismatch"; }
grep -q "warning: alpha: version 2 is not the replay round 3 was trained from" "$T/m.err" || { cat "$T/m.err"; fail "mismatch not named"; }
rm -rf "$T"/m-ctl/rounds/r000003
train m-ctl state-m-ctl alpha >/dev/null 2>&1 || fail "train m-ctl r3"
diff <(tensors "$(commit_of m 3 alpha)") <(tensors "$(commit_of m-ctl 3 alpha)") >/dev/null \
  || fail "retrained round differs from the ordinary job's"

# --- no cached version 1 (the state directory was lost after round 2's delta): the job
# is what it would be without --ahead (nothing to do until version 2)
cp -a "$T/s0" "$T/l"; cp -a "$T/state0" "$T/state-l"
rm -f "$T"/state-l/alpha/base.* "$T"/state-l/alpha/outer.*
expect_rc 0 train l state-l alpha --ahead
grep -q "cannot train round 3 ahead" "$T/err" || { cat "$T/err"; fail "no 'cannot train ahead' line"; }
grep -q "nothing to do" "$T/err" || { cat "$T/err"; fail "not an ordinary no-op"; }
[ ! -e "$T/l/rounds/r000003" ] || fail "round 3 written without a replay"

# --- not every delta in: 75 after --wait; --ahead without --state: usage
cp -a "$T/s0" "$T/n"; cp -a "$T/state0" "$T/state-n"
rm -rf "$T"/n/rounds/r000002/beta
expect_rc 75 train n state-n alpha --ahead --wait 2
grep -q "1 of 2 facilities have a delta" "$T/err" || { cat "$T/err"; fail "NOT_YET message"; }
expect_rc 2 $X train --store "$T/n" --facility alpha --data "$T/data/alpha/*_train_*.bin" --ahead
grep -q -- "--ahead needs --state" "$T/err" || fail "usage message: $(cat "$T/err")"
echo "ok"
