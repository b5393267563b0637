#!/usr/bin/env bash
# train --rounds N (pipelines/train.h, pipe_train_rounds): N rounds in one process give
# the deltas and versions of N separate jobs, bit for bit, waiting for each version
# (and with --ahead, training ahead of it); one result line a round; 75 when a version
# does not come within --wait, after the rounds before it are committed; a round hands
# the next its model and the state it wrote, in memory, with the same bits. --keep-rounds 1
# leaves only the latest round's inputs in --state DIR, and reproduce --train names a
# round whose inputs are gone. aggregate --rounds N writes the versions of N jobs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$T/config}

pack_alpha_beta
init_ab c
for s in m a w; do cp -a "$T/c" "$T/$s"; done
train() { train_ab "$@"; }

# --- the control: one job a round
for r in 1 2 3; do
  for f in alpha beta; do train c $f >/dev/null 2>&1 || fail "train c r$r $f"; done
  $X aggregate --store "$T/c" >/dev/null 2>&1 || fail "aggregate c r$r"
done

# --- each facility one process for 3 rounds, the aggregation beside them; again ahead
run_rounds() { # store jobs|one [extra...]: the aggregation as a job a round, or one process
  local st=$1 agg=$2; shift 2
  for f in alpha beta; do train "$st" $f --rounds 3 --poll 0.1 "$@" >"$T/$st.$f.out" 2>"$T/$st.$f.err" & eval "p_$f=\$!"; done
  if [ "$agg" = one ]; then
    $X aggregate --store "$T/$st" --round 1 --rounds 3 --deadline 120 --poll 0.1 >"$T/$st.aggout" 2>>"$T/$st.agg" ||
      { cat "$T/$st.agg" "$T/$st".*.err; fail "aggregate $st --rounds 3"; }
    [ "$(cat "$T/$st.aggout")" = "$(printf 'v%06d alpha beta\n' 1 2 3)" ] || fail "aggregate --rounds 3 printed: $(cat "$T/$st.aggout")"
  else
    for r in 1 2 3; do
      $X aggregate --store "$T/$st" --round $r --deadline 120 --poll 0.1 >/dev/null 2>>"$T/$st.agg" ||
        { cat "$T/$st.agg" "$T/$st".*.err; fail "aggregate $st r$r"; }
    done
  fi
  wait "$p_alpha" || { cat "$T/$st.alpha.err"; fail "train --rounds 3 $* (alpha)"; }
  wait "$p_beta" || { cat "$T/$st.beta.err"; fail "train --rounds 3 $* (beta)"; }
  for f in alpha beta; do
    [ "$(grep -c "^round [123] a1 rounds/" "$T/$st.$f.out")" = 3 ] || { cat "$T/$st.$f.out"; fail "$st $f: not 3 result lines"; }
    for r in 1 2 3; do
      diff <(tensors "$(commit_of "$st" $r $f)") <(tensors "$(commit_of c $r $f)") >/dev/null ||
        fail "$st: $f's delta for round $r differs from the separate job's"
    done
  done
  for v in 1 2 3; do
    diff <(tensors "$(ls "$T/$st"/versions/v00000$v/INDEX-*)") <(tensors "$(ls "$T"/c/versions/v00000$v/INDEX-*)") >/dev/null ||
      fail "$st: version $v differs from the separate jobs'"
  done
  cmp "$T/state-$st/alpha/inner.bin" "$T/state-c/alpha/inner.bin" || fail "$st: inner state differs"
}
run_rounds m jobs --keep-rounds 1
grep -q "waiting for version 1" "$T/m.alpha.err" "$T/m.beta.err" || fail "no wait for version 1 logged"
[ "$(cd "$T/state-c/alpha" && echo r0*)" = "r000001 r000002 r000003" ] || fail "the default keeps every round's inputs"
[ "$(cd "$T/state-m/alpha" && echo r0*)" = r000003 ] || fail "--keep-rounds 1 kept $(ls "$T/state-m/alpha")"
reproduce_train() { $X reproduce --store "$T/m" --round "$1" --train --facility alpha --data "$T/data/alpha/*_train_*.bin" \
  --state "$T/state-m/alpha" --threads 1; }
expect_rc 0 reproduce_train 3
expect_rc 1 reproduce_train 2
grep -q "state-m/alpha/r000002: no inputs of round 2 kept there (removed by train --keep-rounds" "$T/err" ||
  { cat "$T/err"; fail "reproduce --train of a pruned round: message"; }
expect_rc 2 train m alpha --keep-rounds some
run_rounds a one --ahead --verbose
grep -q "replayed v000001 ahead" "$T/a.alpha.err" "$T/a.beta.err" || fail "--rounds --ahead did not train ahead"
# rounds 2 and 3 took the AdamW state and residual the round before wrote, in memory
for what in "AdamW state" residual; do
  [ "$(grep -c "the round before's $what, in memory" "$T/a.alpha.err")" = 2 ] || fail "--rounds: $what not handed over"
done
[ "$(grep -c "the model of the run before, set again" "$T/a.alpha.err")" = 2 ] || fail "--rounds: the model made again"
expect_rc 0 $X verify --all --store "$T/a"

# --- no aggregation: round 1 is committed, then 75 naming the version not published
train w beta >/dev/null 2>&1 || fail "train w beta"
expect_rc 75 train w alpha --rounds 2 --wait 1
grep -q "^round 1 a1 rounds/" "$T/out" || fail "round 1 not reported before the wait: $(cat "$T/out")"
grep -q "version 1 not published after 1 s" "$T/err" || { cat "$T/err"; fail "NOT_YET message"; }
expect_rc 2 train w alpha --rounds 0
# --- aggregate --rounds 2: version 1 from the two deltas there, then 75 for round 2's
# quorum, with round 1's line printed before
expect_rc 75 $X aggregate --store "$T/w" --rounds 2 --deadline 1 --poll 0.1
[ "$(cat "$T/out")" = "v000001 alpha beta" ] || fail "aggregate --rounds 2 printed: $(cat "$T/out")"
expect_rc 2 $X aggregate --store "$T/w" --rounds 0
echo "ok"
