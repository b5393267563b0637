#!/usr/bin/env bash
# Crash tests (issue 7, point 4): kill -9 of `xffl train` during its upload and of
# `xffl aggregate` during its write, at XFFL_CRASH_POINTS (default 24) random points.
# After every kill: `verify --all` passes (leftovers are orphans, a warning), LATEST's
# version verifies completely (never partial), re-running the killed job completes the
# round. At the end `gc --grace 0` removes every orphan.
# Slow (a few minutes on 2 cores): `make test-fed-crash` runs it; `make test` skips it.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${XFFL_SLOW:-0}" != 1 ]; then echo "SKIP: slow; run 'make test-fed-crash' (XFFL_SLOW=1)"; exit 0; fi
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
URL=${XFFL_CRASH_STORE:-}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=${URL:-$T/store}
POINTS=${XFFL_CRASH_POINTS:-24}
fail() { echo "FAIL: $*"; exit 1; }
if ! $X train --help >/dev/null 2>&1; then echo "SKIP: xffl train not in this build"; exit 0; fi
mkdir -p "$T/txt/alpha" "$T/txt/beta"
cp /usr/share/common-licenses/GPL-2 "$T/txt/alpha/a.txt"
cp /usr/share/common-licenses/MPL-2.0 "$T/txt/beta/b.txt"
for f in alpha beta; do $X data pack "$T/txt/$f"/* --out "$T/data/$f" >/dev/null 2>&1; done
# small part size: several objects per version and per delta, so kills land between them
$X init --store "$S" --model tiny --facilities alpha,beta --algo fedavg --local-steps 2 --batch 2 --seq-len 32 \
  --part-size 1M --seed 9 >/dev/null 2>&1
train() { $X train --store "$S" --facility "$1" --data "$T/data/$1/*_train_*.bin" --state "$T/state/$1" --threads 1; }
ms() { date +%s%3N; }
latest() { $X status --store "$S" --json | grep -o '"version": [0-9]*' | head -1 | grep -o '[0-9]*$'; }
check() { # after a kill: everything referenced intact, LATEST complete
  $X verify --all --store "$S" >"$T/v.out" 2>"$T/v.err" || { cat "$T/v.out" "$T/v.err"; fail "verify --all after kill $1"; }
  $X verify --store "$S" >/dev/null 2>"$T/v.err" || { cat "$T/v.err"; fail "LATEST incomplete after kill $1"; }
}
# durations of an undisturbed train and aggregate, to spread the kill points
t0=$(ms); train alpha >/dev/null 2>&1; t1=$(ms); train beta >/dev/null 2>&1
t2=$(ms); $X aggregate --store "$S" >/dev/null 2>&1; t3=$(ms)
TT=$(( t1 - t0 )); TA=$(( t3 - t2 ))
echo "train ${TT} ms, aggregate ${TA} ms undisturbed"
killed=0 orphans_seen=0 point=0
while [ $point -lt "$POINTS" ]; do
  # a train killed in its second half (the upload), then the re-run
  d=$(( TT / 2 + RANDOM % (TT / 2 + 1) ))
  train alpha >/dev/null 2>&1 & p=$!
  sleep "$(printf '0.%03d' $(( d % 1000 )))"; [ $d -ge 1000 ] && sleep $(( d / 1000 ))
  kill -9 $p 2>/dev/null && killed=$((killed + 1)) || true
  wait $p 2>/dev/null || true
  point=$((point + 1)); check "train-$point"
  grep -q orphan "$T/v.err" && orphans_seen=$((orphans_seen + 1))
  train alpha >/dev/null 2>&1 || fail "re-run of train after kill $point"
  train beta >/dev/null 2>&1 || fail "train beta"
  before=$(latest)
  # an aggregate killed at a random point of its run, then the re-run
  d=$(( RANDOM % (TA + 1) ))
  $X aggregate --store "$S" >/dev/null 2>&1 & p=$!
  sleep "$(printf '0.%03d' $(( d % 1000 )))"; [ $d -ge 1000 ] && sleep $(( d / 1000 ))
  kill -9 $p 2>/dev/null && killed=$((killed + 1)) || true
  wait $p 2>/dev/null || true
  point=$((point + 1)); check "aggregate-$point"
  grep -q orphan "$T/v.err" && orphans_seen=$((orphans_seen + 1))
  $X aggregate --store "$S" --round $((before + 1)) >/dev/null 2>"$T/a.err" || { cat "$T/a.err"; fail "re-run of aggregate after kill $point"; }
  [ "$(latest)" -eq $((before + 1)) ] || fail "round $((before + 1)) not completed after kill $point"
done
echo "$point kill points, $killed processes killed mid-run, orphans reported after $orphans_seen of them"
$X gc --store "$S" --keep 100 --grace 0 >"$T/gc.out" || fail "gc"
$X verify --all --store "$S" >"$T/v.out" 2>"$T/v.err" || fail "verify --all after gc"
grep -q ' 0 orphans' "$T/v.out" || { cat "$T/v.out" "$T/v.err"; fail "orphans left after gc"; }
tail -1 "$T/gc.out"
for r in $(seq 1 "$(latest)"); do $X reproduce --store "$S" --round "$r" >/dev/null 2>&1 || fail "reproduce round $r"; done
echo "crash tests ok: every round reproduces"
