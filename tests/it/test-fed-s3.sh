#!/usr/bin/env bash
# The federation flow against s3rver (issue 7, point 5): init, concurrent train jobs,
# two aggregators at once per round (one version, identical bytes), int8 deltas with
# error feedback, verify --all, reproduce every round (and --train), gc.
set -u
. "$(dirname "$0")/../faults/lib.sh"
if ! "$X" train --help >/dev/null 2>&1 || ! "$X" data pack --help >/dev/null 2>&1; then
  echo "FAIL: xffl train / data pack --help failed"; exit 1
fi
start_s3
echo "s3rver at $XFFL_S3_ENDPOINT ($(s3_cell))"
S=s3://xffl/fed
export HDF5_PLUGIN_PATH=$BUILD/plugins
die() { fail "$*"; exit 1; }
mkdir -p "$WORK/txt/alpha" "$WORK/txt/beta"
cp /usr/share/common-licenses/GPL-3 "$WORK/txt/alpha/a.txt"
cp /usr/share/common-licenses/Apache-2.0 "$WORK/txt/beta/b.txt"
for f in alpha beta; do "$X" data pack "$WORK/txt/$f"/* --out "$WORK/data/$f" >/dev/null 2>&1 || die "data pack"; done
"$X" init --store "$S" --model tiny --facilities alpha,beta --algo fedadam --local-steps 2 --batch 2 --seq-len 32 \
  --encoding int8 >/dev/null 2>&1 || die "init on s3"
train() { "$X" train --store "$S" --facility "$1" --data "$WORK/data/$1/*_train_*.bin" --state "$WORK/state/$1" \
  --threads 1 "${@:2}"; }
for r in 1 2; do
  log0=$(wc -l <"$S3RVER_LOG")
  train alpha --round $r >"$WORK/a.out" 2>&1 & pa=$!
  train beta --round $r >"$WORK/b.out" 2>&1 & pb=$!
  wait $pa && wait $pb || { cat "$WORK/a.out" "$WORK/b.out"; die "train round $r on s3"; }
  # LATEST names the base version's INDEX with its digest: trust checks, the federation's
  # settings and the download each look at it, and the store is asked once a job
  # (store_get_immutable). s3rver logs a request as "KEY 200 TIME SIZE" (a PUT's: 0b).
  n=$(tail -n +$((log0 + 1)) "$S3RVER_LOG" | grep "fed/versions/v00000$((r - 1))/INDEX-[0-9a-f]* 200 " |
      grep -vc " 0b$" || true)
  [ "$n" = 2 ] && pass "round $r: two train jobs fetched the base version's INDEX once each" \
    || fail "round $r: two train jobs fetched the base version's INDEX $n times, not 2"
  "$X" aggregate --store "$S" --round $r --threads 1 >"$WORK/g1" 2>&1 & p1=$!
  "$X" aggregate --store "$S" --round $r --threads 2 >"$WORK/g2" 2>&1 & p2=$!
  wait $p1 && wait $p2 || { cat "$WORK/g1" "$WORK/g2"; die "aggregate round $r on s3"; }
done
pass "two rounds on s3 (int8 deltas with error feedback, fedadam, two aggregators per round)"
n=$("$X" ls --store "$S" --keys 2>/dev/null | grep -c 'versions/v000002/INDEX-' || true)
[ "$n" = 1 ] && pass "two aggregators wrote one version" || fail "versions/v000002 holds $n INDEXes"
"$X" verify --all --store "$S" >"$WORK/v.out" 2>&1 && pass "verify --all on s3: $(tail -1 "$WORK/v.out")" \
  || { cat "$WORK/v.out"; fail "verify --all on s3"; }
for r in 1 2; do
  "$X" reproduce --store "$S" --round $r >"$WORK/r.out" 2>&1 && pass "reproduce round $r on s3" \
    || { cat "$WORK/r.out"; fail "reproduce round $r on s3"; }
done
"$X" reproduce --store "$S" --round 2 --train --facility beta --data "$WORK/data/beta/*_train_*.bin" \
  --state "$WORK/state/beta" --threads 1 >"$WORK/rt.out" 2>&1 && pass "reproduce --train (int8 + residual) on s3" \
  || { cat "$WORK/rt.out"; fail "reproduce --train on s3"; }
"$X" gc --store "$S" --keep 1 --grace 0 >"$WORK/gc.out" 2>&1 && "$X" verify --all --store "$S" >/dev/null 2>&1 \
  && pass "gc --keep 1 on s3: $(tail -1 "$WORK/gc.out")" || { cat "$WORK/gc.out"; fail "gc on s3"; }
check_proxy_saw_v4
[ $fails -eq 0 ]
