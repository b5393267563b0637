#!/usr/bin/env bash
# --state DIR moves on with the COMMIT (pipelines/train_job.h, TRAIN_STATE_NEXT): a
# train job killed right after its COMMIT, before its state moved on, leaves the state
# after the round in DIR/next/; the next job finishes the move, and the facility's
# next round is the one an undisturbed job trains (same delta, cursor, AdamW state and
# residual). Staged state without a COMMIT (killed before it) is dropped and the round
# trains again from the old state, with the same result.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$T/config}

pack_alpha_beta
init_ab c
train() { train_ab "$@"; }
same_state() { # store-a store-b: alpha's cursor, AdamW state and residual
  for f in cursor inner.bin residual.f32; do
    cmp -s "$T/state-$1/alpha/$f" "$T/state-$2/alpha/$f" || fail "alpha's $f in state-$1 differs from state-$2's"
  done
}
for f in alpha beta; do train c $f >/dev/null 2>&1 || fail "train r1 $f"; done
$X aggregate --store "$T/c" >/dev/null 2>&1 || fail "aggregate r1"
for s in k d; do cp -a "$T/c" "$T/$s"; cp -a "$T/state-c" "$T/state-$s"; done

# --- the control: rounds 2 and 3 undisturbed
for f in alpha beta; do train c $f >/dev/null 2>&1 || fail "train c r2 $f"; done
$X aggregate --store "$T/c" >/dev/null 2>&1 || fail "aggregate c r2"
train c alpha >/dev/null 2>&1 || fail "train c r3"

# --- killed after the COMMIT: the next job finishes the move
expect_rc 137 env XFFL_TEST_KILL_AFTER_COMMIT=1 $X train --store "$T/k" --facility alpha \
  --data "$T/data/alpha/*_train_*.bin" --state "$T/state-k/alpha" --threads 1
c2=$(commit_of k 2 alpha)
diff <(tensors "$c2") <(tensors "$(commit_of c 2 alpha)") >/dev/null || fail "round 2 delta differs"
[ -f "$T/state-k/alpha/next/round" ] || fail "no staged state after the kill"
cmp -s "$T/state-k/alpha/cursor" "$T/state-d/alpha/cursor" || fail "the cursor moved before the kill"
train k beta >/dev/null 2>&1 || fail "train k r2 beta"
$X aggregate --store "$T/k" >/dev/null 2>&1 || fail "aggregate k r2"
expect_rc 0 train k alpha
grep -q "round 2 a1 was committed by a job stopped before its state moved on" "$T/err" || { cat "$T/err"; fail "no recovery line"; }
[ ! -e "$T/state-k/alpha/next" ] || fail "next/ left after the recovery"
diff <(tensors "$(commit_of k 3 alpha)") <(tensors "$(commit_of c 3 alpha)") >/dev/null ||
  fail "round 3 after the kill differs from the undisturbed run's"
[ "$(header "$(commit_of k 3 alpha)" cursor)" = "$(header "$(commit_of c 3 alpha)" cursor)" ] || fail "round 3 cursor"
same_state k c

# --- staged state without its COMMIT (killed before it): dropped, the round again
expect_rc 137 env XFFL_TEST_KILL_AFTER_COMMIT=1 $X train --store "$T/d" --facility alpha \
  --data "$T/data/alpha/*_train_*.bin" --state "$T/state-d/alpha" --threads 1
rm "$(commit_of d 2 alpha)"
expect_rc 0 train d alpha
grep -q "round 2 a1 has no COMMIT: its staged state" "$T/err" || { cat "$T/err"; fail "no drop line"; }
diff <(tensors "$(commit_of d 2 alpha)") <(tensors "$(commit_of c 2 alpha)") >/dev/null || fail "round 2 again differs"
for f in inner.bin residual.f32; do
  cmp -s "$T/state-d/alpha/$f" "$T/state-c/alpha/r000003/$f" || fail "alpha's $f after round 2 again differs"
done
[ "$(cat "$T/state-d/alpha/cursor")" = "$(header "$(commit_of c 3 alpha)" cursor)" ] || fail "cursor after round 2 again"
echo "ok"
