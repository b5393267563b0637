#!/usr/bin/env bash
# Replayed aggregation (pipelines/download.h): with int4 deltas a facility that keeps
# --state rebuilds each new version from the one it trained on and the round's deltas
# (COMMIT download=replay, fewer bytes than the XOR update beside the version), with
# the same delta and version digests as facilities that lose their state before every
# round (full downloads); the outer state cached for it (outer.f32) follows the
# versions; a damaged outer.f32 or a missing delta part falls back to the full version;
# a federation without outer state (fedavg) replays too. A facility's own delta comes
# from the parts it kept in --state DIR/sent/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$T/config}

pack_alpha_beta

init() { # run algo
  $X init --store "$T/$1" --model tiny --facilities alpha,beta --algo "$2" --local-steps 3 --batch 2 \
    --seq-len 32 --lr 1e-3 --seed 5 --encoding int4 >/dev/null 2>&1 || fail "init $1"
}
train() { # run facility [extra...]
  local run=$1 f=$2; shift 2
  $X train --store "$T/$run" --facility "$f" --data "$T/data/$f/*_train_*.bin" --state "$T/state-$run/$f" \
    --threads 1 "$@"
}
index_of() { ls "$T/$1/versions/v$(printf %06d "$2")/"INDEX-*; }
# the stored bytes of version $2's update in run $1 (parts and manifest)
update_bytes() {
  local u; u=$(ls "$T/$1/versions/v$(printf %06d "$2")/"UPDATE-from-*)
  awk -v m="$(stat -c %s "$u")" '$1 == "object" {s += $3} END {print s + m}' "$u"
}

init keep diloco; init lose diloco
for r in 1 2 3; do
  for run in keep lose; do
    [ "$run" = lose ] && rm -f "$T"/state-lose/*/base.* "$T"/state-lose/*/outer.*   # the cache is lost
    for f in alpha beta; do
      train "$run" "$f" >"$T/$run.$f.$r.out" 2>"$T/$run.$f.$r.err" || { cat "$T/$run.$f.$r.err"; fail "train $run $f r$r"; }
    done
    $X aggregate --store "$T/$run" --threads 2 >/dev/null 2>&1 || fail "aggregate $run r$r"
  done
  for f in alpha beta; do
    k=$(commit_of keep $r $f); l=$(commit_of lose $r $f)
    want=$([ $r -eq 1 ] && echo full || echo replay)
    [ "$(header "$k" download)" = "$want" ] || { cat "$T/keep.$f.$r.err"; fail "keep r$r $f: download=$(header "$k" download), expected $want"; }
    [ "$(header "$l" download)" = full ] || fail "lose r$r $f: download=$(header "$l" download), expected full"
    diff <(grep '^tensor ' "$k") <(grep '^tensor ' "$l") >/dev/null || fail "r$r $f: delta digests differ (replay vs full)"
    if [ $r -ge 2 ]; then
      grep -q "fetched v$(printf %06d $((r - 1))) by replaying its aggregation from v$(printf %06d $((r - 2))) and 2 deltas" \
        "$T/keep.$f.$r.err" || fail "no replay log line: $(cat "$T/keep.$f.$r.err")"
      kb=$(header "$k" download_bytes); ub=$(update_bytes keep $((r - 1))); lb=$(header "$l" download_bytes)
      [ "$kb" -lt "$ub" ] || fail "r$r $f: replay $kb bytes, not fewer than the update's $ub"
      # its own delta comes from --state DIR/sent/, not the store: one delta's parts
      other=$([ $f = alpha ] && echo beta || echo alpha)
      ob=$(header "$(commit_of keep $((r - 1)) $other)" bytes)
      [ "$kb" -lt $(( 2 * ob )) ] || fail "r$r $f: replay $kb bytes, the other's delta is $ob: its own downloaded too?"
      ls "$T/state-keep/$f/sent/"part-*.h5 >/dev/null || fail "no sent/ parts in $f's state"
      echo "round $r $f: replay $kb bytes, update $ub bytes, full $lb bytes"
    fi
  done
  diff <(grep '^tensor ' "$(index_of keep $r)") <(grep '^tensor ' "$(index_of lose $r)") >/dev/null || fail "v$r digests differ"
done
# the cache: v2's model and outer state (diloco's momentum), each named by v2's INDEX
for c in base outer; do
  [ -f "$T/state-keep/alpha/$c.f32" ] || fail "no $c.f32 in --state"
  grep -q "^v000002 versions/v000002/INDEX-" "$T/state-keep/alpha/$c.ref" || fail "$c.ref: $(cat "$T/state-keep/alpha/$c.ref")"
done

# round 4 from damaged inputs: each falls back to the full version
cp -a "$T/keep" "$T/bad"; cp -a "$T/state-keep" "$T/state-bad"
printf '\1' | dd of="$T/state-bad/alpha/outer.f32" bs=1 seek=4096 conv=notrunc 2>/dev/null
expect_rc 0 train bad alpha
grep -q "warning: $T/state-bad/alpha/outer.f32: digest .*damaged cache.*downloading the full version" "$T/err" ||
  { cat "$T/err"; fail "damaged outer.f32 not named"; }
[ "$(header "$(commit_of bad 4 alpha)" download)" = full ] || fail "damaged outer.f32: not a full download"
rm -f "$T"/state-lose/*/base.* "$T"/state-lose/*/outer.*
train lose alpha >/dev/null 2>&1 || fail "train lose alpha r4"
diff <(grep '^tensor ' "$(commit_of bad 4 alpha)") <(grep '^tensor ' "$(commit_of lose 4 alpha)") >/dev/null \
  || fail "round 4 after a damaged outer.f32: delta digests differ from the full download's"
# ... and the full download brought the outer state back: the next round replays again
grep -q "^v000003 " "$T/state-bad/alpha/outer.ref" || fail "outer.ref after a full download: $(cat "$T/state-bad/alpha/outer.ref")"
# the other facility's delta part missing from the store (beta's own is in its sent/)
part=$(ls "$T"/bad/rounds/r000003/alpha/a1/part-*.h5 | head -1)
rm "$part"
expect_rc 0 train bad beta
[ "$(header "$(commit_of bad 4 beta)" download)" = full ] || fail "missing delta part: not a full download"
grep -q "$(basename "$part")" "$T/err" || { cat "$T/err"; fail "missing delta part not named"; }

# fedavg keeps no outer state: replay from the model alone
init fa fedavg
for r in 1 2; do
  for f in alpha beta; do train fa "$f" >/dev/null 2>"$T/fa.$f.$r.err" || { cat "$T/fa.$f.$r.err"; fail "train fa $f r$r"; }; done
  $X aggregate --store "$T/fa" >/dev/null 2>&1 || fail "aggregate fa r$r"
done
[ "$(header "$(commit_of fa 2 alpha)" download)" = replay ] || { cat "$T/fa.alpha.2.err"; fail "fedavg r2: not a replay"; }
[ ! -e "$T/state-fa/alpha/outer.ref" ] || fail "fedavg: an outer.ref"
expect_rc 0 $X verify --all --store "$T/keep"

# aggregate --no-update: no UPDATE beside the version; a facility with its cache still
# replays, one without it downloads in full, and the version is the same bits
init nu diloco
for r in 1 2; do
  for f in alpha beta; do train nu "$f" >/dev/null 2>&1 || fail "train nu $f r$r"; done
  $X aggregate --store "$T/nu" --no-update >/dev/null 2>&1 || fail "aggregate nu r$r"
done
ls "$T"/nu/versions/v00000[12]/UPDATE-* >/dev/null 2>&1 && fail "--no-update wrote an UPDATE"
[ "$(header "$(commit_of nu 2 alpha)" download)" = replay ] || fail "--no-update r2: not a replay"
# with no update to weigh it against, the replay reads each round-1 COMMIT once: both
# COMMITs and beta's parts (alpha's own are in its sent/)
want=$(( $(stat -c %s "$(commit_of nu 1 alpha)") + $(stat -c %s "$(commit_of nu 1 beta)") +
         $(awk '$1 == "object" {s += $3} END {print s}' "$(commit_of nu 1 beta)") ))
[ "$(header "$(commit_of nu 2 alpha)" download_bytes)" = "$want" ] ||
  fail "--no-update r2: downloaded $(header "$(commit_of nu 2 alpha)" download_bytes) bytes, want $want"
rm -f "$T"/state-nu/beta/base.* "$T"/state-nu/beta/outer.*
train nu beta --round 3 >/dev/null 2>&1 || fail "train nu beta r3"
[ "$(header "$(commit_of nu 3 beta)" download)" = full ] || fail "--no-update without the cache: not full"
init nu2 diloco
for r in 1 2; do
  for f in alpha beta; do train nu2 "$f" >/dev/null 2>&1 || fail "train nu2 $f r$r"; done
  $X aggregate --store "$T/nu2" >/dev/null 2>&1 || fail "aggregate nu2 r$r"
done
diff <(grep '^tensor ' "$T"/nu/versions/v000002/INDEX-*) <(grep '^tensor ' "$T"/nu2/versions/v000002/INDEX-*) >/dev/null ||
  fail "--no-update changed version 2"
echo "ok"
