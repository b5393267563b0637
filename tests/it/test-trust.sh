#!/usr/bin/env bash
# Issue 14's audit, without signatures: nothing damaged is applied, nothing kept is
# deleted (docs/design.md "Trust"). Each block is one bullet of the audit:
#   1. federation.h5 against the federation= digest of the version it is used with
#   2. gc and verify --all stop at a damaged or inconsistent manifest
#   3. strict INDEX parsing (numbers, repeats, deleted lines) even with names recomputed
#   4. tokens= is not a claim; robust algorithms say what they tolerate
#   5. a forged REJECTED or a forged attempt does not stop a good delta
# The federation is unsigned (init --insecure) so that these checks, not the signatures
# of tests/it/test-sign.sh, are what is tested.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
S=$T/store
train() { # store facility [extra...]
  local s=$1 f=$2; shift 2
  $X train --store "$s" --facility "$f" --data "$T/data/*_train_*.bin" --threads 1 "$@"
}
round() { # store: both facilities train, then the aggregator
  train "$1" alpha >/dev/null 2>&1 || fail "train alpha"
  train "$1" beta >/dev/null 2>&1 || fail "train beta"
  $X aggregate --store "$1" --deadline 0 >/dev/null 2>&1 || fail "aggregate"
}
listing() { (cd "$1" && find . -type f | sort); }
# Rewrites a manifest with a python expression on its text (t), names it by its new
# content and, when LATEST named it, moves LATEST: what an intruder who recomputes
# digests does (signatures are what stop that one).
rewrite() { # store key expr
  /usr/bin/python3 - "$@" <<'PY'
import hashlib, os, sys
root, key, expr = sys.argv[1:]
path = os.path.join(root, key)
t = open(path).read()
t = eval(expr)
sha = hashlib.sha256(t.encode()).hexdigest()
d, base = os.path.split(path)
stem = base.rsplit("-", 1)[0]
new = os.path.join(d, stem + "-" + sha[:12])
os.remove(path)
open(new, "w").write(t)
latest = os.path.join(root, "LATEST")
v, idx, s = open(latest).read().split()
if idx == base:
    open(latest, "w").write("%s %s %s\n" % (v, stem + "-" + sha[:12], sha))
print(os.path.relpath(new, root))
PY
}
flip() { # file byte bit
  /usr/bin/python3 -c 'import sys; p,o,b=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]); d=bytearray(open(p,"rb").read()); d[o]^=1<<b; open(p,"wb").write(d)' "$@"
}

mkdir -p "$T/txt"
cp /usr/share/common-licenses/GPL-3 "$T/txt/gpl.txt"
$X data pack "$T/txt/gpl.txt" --out "$T/data" >/dev/null 2>&1
$X init --store "$S" --model tiny --facilities alpha,beta --local-steps 2 --batch 2 --seq-len 16 --lr 0.00123 --insecure \
  >/dev/null 2>&1
round "$S"
round "$S"
cp -r "$S" "$T/v2"   # two rounds, nothing pending: the fixture every block starts from

# 1. federation.h5: one bit of lr, then 50 random bits; every reader refuses with 65
#    naming federation.h5 and writes nothing; restored, the round goes through.
cp "$S/federation.h5" "$T/fed.good"
off=$(/usr/bin/python3 -c 'import struct,sys; print(open(sys.argv[1],"rb").read().index(struct.pack("<d",0.00123)))' "$T/fed.good")
flip "$S/federation.h5" "$off" 0
before=$(listing "$S")
expect_rc 65 train "$S" alpha
grep -q "federation.h5" "$T/err" || { cat "$T/err"; fail "train: the message does not name federation.h5"; }
[ "$(listing "$S")" = "$before" ] || fail "train with a damaged federation.h5 wrote to the store"
cp "$T/fed.good" "$S/federation.h5"
train "$S" alpha >/dev/null 2>&1 || fail "train alpha round 3"
train "$S" beta >/dev/null 2>&1 || fail "train beta round 3"
flip "$S/federation.h5" "$off" 0
before=$(listing "$S")
expect_rc 65 $X aggregate --store "$S" --deadline 0
grep -q "federation.h5" "$T/err" || { cat "$T/err"; fail "aggregate: the message does not name federation.h5"; }
[ "$(listing "$S")" = "$before" ] || fail "aggregate with a damaged federation.h5 wrote (a REJECTED?)"
expect_rc 65 $X verify --all --store "$S"
grep -q "federation.h5" "$T/err" || { cat "$T/err"; fail "verify --all: the message does not name federation.h5"; }
expect_rc 65 $X verify --store "$S"
expect_rc 65 $X reproduce --store "$S" --round 2
expect_rc 65 $X status --store "$S"
size=$(stat -c %s "$T/fed.good")
for i in $(seq 1 50); do
  cp "$T/fed.good" "$S/federation.h5"
  flip "$S/federation.h5" $(( (RANDOM * 32768 + RANDOM) % size )) $((RANDOM % 8))
  set +e; train "$S" alpha --round 3 >"$T/out" 2>"$T/err"; rc=$?; set -e
  [ $rc -eq 65 ] || { cat "$T/err"; fail "train accepted a federation.h5 with a flipped bit (exit $rc, flip $i)"; }
done
cp "$T/fed.good" "$S/federation.h5"
expect_rc 0 $X aggregate --store "$S" --deadline 0
[ "$(cut -d' ' -f1 "$S/LATEST")" = v000003 ] || fail "restored federation.h5: round 3 did not complete"
! ls "$S"/rounds/r000003/*/*/REJECTED-* >/dev/null 2>&1 || fail "a good delta was rejected"

# 2. gc after a damaged manifest: one character of an old INDEX, or a contributor's
#    folder removed: verify --all exits 65 and gc deletes nothing.
for damage in index folder; do
  G=$T/gc-$damage
  cp -r "$T/v2" "$G"
  round "$G"
  if [ $damage = index ]; then
    idx=$(ls "$G"/versions/v000001/INDEX-*)
    grep -q '^tokens_seen=128$' "$idx" || { cat "$idx"; fail "fixture: v1's tokens_seen is not 128"; }
    sed -i 's/^tokens_seen=128$/tokens_seen=129/' "$idx"
  else
    rm -r "$G/rounds/r000002/beta"
  fi
  expect_rc 65 $X verify --all --store "$G"
  before=$(listing "$G")
  expect_rc 65 $X gc --store "$G" --keep 10 --grace 0
  [ "$(listing "$G")" = "$before" ] || fail "gc deleted objects after a damaged manifest ($damage)"
done
# an honest gc still works, and its result verifies (the oldest kept version's round
# is gone with the version before it)
G=$T/gc-ok
cp -r "$T/v2" "$G"
round "$G"
expect_rc 0 $X gc --store "$G" --keep 2 --grace 0
[ ! -e "$G/versions/v000001" ] || [ -z "$(ls "$G/versions/v000001")" ] || fail "gc --keep 2 kept v1"
expect_rc 0 $X verify --all --store "$G"
round "$G"
expect_rc 0 $X gc --store "$G" --keep 2 --grace 0
expect_rc 0 $X verify --all --store "$G"

# 3. strict INDEX parsing, with the INDEX renamed to its new content and LATEST moved
for case in "t.replace('\nround=2\n','\nround=2AAAA\n')" \
            "t.replace('\nround=2\n','\nround=02\n')" \
            "t.replace('\nparts=1\n','\nparts=+1\n')" \
            "''.join(l for l in t.splitlines(True) if not l.startswith('contributor beta '))" \
            "t + [l for l in t.splitlines(True) if l.startswith('object ')][0]" \
            "t.replace('\nalgorithm=', '\nalgorithm=fedavg\nalgorithm=', 1)" \
            "t.replace('\ntokens_seen=256\n','\ntokens_seen=257\n')"; do
  V=$T/strict
  rm -rf "$V"; cp -r "$T/v2" "$V"
  key=$(cd "$V" && ls versions/v000002/INDEX-*)
  rewrite "$V" "$key" "$case" >/dev/null
  expect_rc 65 $X verify --store "$V"
  expect_rc 65 $X verify --all --store "$V"
  expect_rc 65 train "$V" alpha
done

# 4. tokens= is not a claim: an absurd value in a COMMIT (renamed to its content) is
#    neither a weight nor added to tokens_seen
V=$T/tokens
cp -r "$T/v2" "$V"
train "$V" alpha >/dev/null 2>&1 || fail "train alpha (tokens)"
train "$V" beta >/dev/null 2>&1 || fail "train beta (tokens)"
key=$(cd "$V" && ls rounds/r000003/alpha/a1/COMMIT-*)
rewrite "$V" "$key" "t.replace('\ntokens=64\n','\ntokens=9223372036854775807\n')" >/dev/null
expect_rc 0 $X aggregate --store "$V" --deadline 0
grep -q '^tokens_seen=384$' "$V"/versions/v000003/INDEX-* || { grep tokens_seen "$V"/versions/v000003/INDEX-*; fail "tokens_seen is not 3 rounds of 2 facilities x 2 steps x 2 x 16"; }
expect_rc 0 $X verify --all --store "$V"
#    robust algorithms that would exclude nobody at the quorum are refused at init
expect_rc 2 $X init --store "$T/r1" --model tiny --facilities a,b,c --algo trimmed
grep -q "excludes no facility" "$T/err" || { cat "$T/err"; fail "trimmed of 3 at 0.1: no clear refusal"; }
expect_rc 2 $X init --store "$T/r2" --model tiny --facilities a,b --algo median
expect_rc 2 $X init --store "$T/r3" --model tiny --facilities a,b,c,d --quorum 2 --algo median
[ ! -e "$T/r1" ] && [ ! -e "$T/r2" ] && [ ! -e "$T/r3" ] || fail "a refused init wrote a store"
expect_rc 0 $X init --store "$T/r4" --model tiny --facilities a,b,c --algo median
expect_rc 0 $X init --store "$T/r5" --model tiny --facilities a,b,c,d --algo trimmed --trim-fraction 0.25
#    per-delta clipping is a setting of federation.h5
expect_rc 0 $X init --store "$T/r6" --model tiny --facilities a,b,c --algo median --delta-clip 2
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); assert f.attrs["delta_clip"]==2.0; assert "delta_clip" not in h5py.File(sys.argv[2],"r").attrs' \
    "$T/r6/federation.h5" "$T/r4/federation.h5" || fail "delta_clip not recorded in federation.h5 (or recorded when unset)"
fi
expect_rc 2 $X init --store "$T/r7" --model tiny --delta-clip -1
#    the delta filter too: on by default (3) for median and trimmed and with --delta-clip,
#    off (and absent from the file) for the others and with --delta-filter 0
expect_rc 0 $X init --store "$T/r8" --model tiny --facilities a,b,c --algo median --delta-filter 0
expect_rc 0 $X init --store "$T/r10" --model tiny --facilities a,b,c
expect_rc 0 $X init --store "$T/r11" --model tiny --facilities a,b,c --delta-clip 2
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  /usr/bin/python3 -c 'import h5py,sys
a = [h5py.File(p, "r").attrs for p in sys.argv[1:]]
assert [x.get("delta_filter") for x in a] == [3.0, 3.0, 3.0, None, None, 3.0], [x.get("delta_filter") for x in a]' \
    "$T/r4/federation.h5" "$T/r5/federation.h5" "$T/r6/federation.h5" "$T/r8/federation.h5" "$T/r10/federation.h5" \
    "$T/r11/federation.h5" || fail "delta_filter default (median, trimmed, --delta-clip: 3; else and --delta-filter 0: absent) not as recorded"
fi
#    below 1 it would leave out honest deltas: refused
expect_rc 2 $X init --store "$T/r9" --model tiny --delta-filter 0.5
grep -q "delta_filter" "$T/err" || { cat "$T/err"; fail "--delta-filter 0.5: no refusal naming delta_filter"; }
#    and a round with it: an authorised facility sending its delta x -100 is left out,
#    named, and the version is the round of the other two; reproduce rebuilds it
F=$T/filter
$X init --store "$F" --model tiny --facilities alpha,beta,gamma --local-steps 2 --batch 2 --seq-len 16 \
  --delta-filter 3 >/dev/null 2>&1
train "$F" alpha >/dev/null 2>&1 || fail "train alpha (delta filter)"
train "$F" beta --data "$T/data/*_val_*.bin" >/dev/null 2>&1 || fail "train beta (delta filter)"
XFFL_BENCH_ATTACK=negate100:gamma train "$F" gamma >/dev/null 2>&1 || fail "train gamma (delta filter)"
expect_rc 0 $X aggregate --store "$F" --deadline 0
grep -q "gamma left out (distance" "$T/err" && ! grep -q "alpha left out\|beta left out" "$T/err" ||
  { cat "$T/err"; fail "aggregate did not leave out (only) gamma's delta x -100"; }
expect_rc 0 $X reproduce --store "$F" --round 1
#    and a round with it: the longer of two deltas is scaled to the median (their mean)
#    norm; reproduce rebuilds the same bytes
C=$T/clip
$X init --store "$C" --model tiny --facilities alpha,beta --local-steps 2 --batch 2 --seq-len 16 --delta-clip 1 \
  >/dev/null 2>&1
train "$C" alpha >/dev/null 2>&1 || fail "train alpha (delta clip)"
train "$C" beta --data "$T/data/*_val_*.bin" >/dev/null 2>&1 || fail "train beta (delta clip)"
expect_rc 0 $X aggregate --store "$C" --deadline 0
grep -q "1 of 2 deltas clipped" "$T/err" || { cat "$T/err"; fail "aggregate did not clip the longer delta"; }
expect_rc 0 $X reproduce --store "$C" --round 1

# 5. a REJECTED whose name is not its content is no verdict: the delta is aggregated;
#    a forged attempt written first does not make train a no-op
V=$T/forged
cp -r "$T/v2" "$V"
train "$V" alpha >/dev/null 2>&1 || fail "train alpha (forged REJECTED)"
train "$V" beta >/dev/null 2>&1 || fail "train beta (forged REJECTED)"
ck=$(cd "$V" && ls rounds/r000003/alpha/a1/COMMIT-*)
printf 'commit=%s\nreason=forged\n' "$ck" >"$V/rounds/r000003/alpha/a1/REJECTED-000000000000"
expect_rc 0 train "$V" alpha
grep -q 'nothing to do' "$T/err" || { cat "$T/out" "$T/err"; fail "a forged REJECTED made train start another attempt"; }
expect_rc 0 $X aggregate --store "$V" --deadline 0
[ "$(cut -d' ' -f1 "$V/LATEST")" = v000003 ] || fail "a forged REJECTED stopped the round"
grep -q "^contributor alpha $ck\$" "$V"/versions/v000003/INDEX-* || fail "alpha's delta was not used"
expect_rc 65 $X verify --all --store "$V"
grep -q "REJECTED-000000000000" "$T/err" || { cat "$T/err"; fail "verify --all does not name the forged REJECTED"; }
rm "$V/rounds/r000003/alpha/a1/REJECTED-000000000000"
mkdir -p "$V/rounds/r000004/alpha/a1"
printf 'format=xffl-commit\nround=4\nfacility=alpha\n' >"$T/forged.txt"
sha=$(sha256sum "$T/forged.txt" | cut -c1-12)
cp "$T/forged.txt" "$V/rounds/r000004/alpha/a1/COMMIT-$sha"
expect_rc 0 train "$V" alpha
! grep -q 'nothing to do' "$T/err" || { cat "$T/err"; fail "a forged attempt made train a no-op"; }
grep -q '^round 4 a2 ' "$T/out" || { cat "$T/out"; fail "train did not write attempt a2 beside the forged a1"; }
train "$V" beta >/dev/null 2>&1 || fail "train beta round 4"
expect_rc 0 $X aggregate --store "$V" --deadline 0
ls "$V"/rounds/r000004/alpha/a1/REJECTED-* >/dev/null 2>&1 || fail "the forged attempt was not rejected"
grep -q "^contributor alpha rounds/r000004/alpha/a2/" "$V"/versions/v000004/INDEX-* || fail "alpha's a2 not used"
echo "trust: damaged federation.h5, manifests, forged verdicts and claims refused"
