#!/usr/bin/env bash
# Issue 14, "crashes on damaged HDF5": a delta part whose layout message declares chunks
# wider than the tensor (a 32x64 tensor with 32x65600 chunks) killed verify and aggregate
# with SIGSEGV inside H5Dread. Now verify exits 65 naming the dataset, and aggregate,
# given it behind a COMMIT whose digests were recomputed (what a facility holding a valid
# key can send), writes a REJECTED naming the part and waits for a good delta (75);
# verify --version, given such a checkpoint part behind a rewritten INDEX and LATEST, 65.
# The parts are crafted with h5py (Debian's /usr/bin/python3, tests/interop/hostile_part.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  echo "SKIP: needs Debian's python3-h5py (scripts/install-deps installs it)"; exit 0
fi
H="/usr/bin/python3 tests/interop/hostile_part.py"
run() { # want, then the command
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ $rc -eq "$want" ] || { cat "$T/out" "$T/err"; fail "'$*' exited $rc, wanted $want"; }
}

# --insecure: the crafted parts go in behind re-digested COMMITs and INDEXes (an
# authorised facility could sign such a part; tests/it/test-sign.sh covers forgers)
$X init --insecure --store "$T/s" --model tiny --facilities a,b --local-steps 2 --batch 2 --seq-len 16 >/dev/null 2>&1
$X data pack /usr/share/common-licenses/GPL-3 --out "$T/d" >/dev/null 2>&1
$X -q train --store "$T/s" --facility a --data "$T/d/*_train_*.bin" --state "$T/st" >/dev/null
delta=$(ls "$T"/s/rounds/r000001/a/a1/part-000-*.h5)
commit=$(ls "$T"/s/rounds/r000001/a/a1/COMMIT-*)
W=delta/layers.0.attention.wk.weight
# chunks 250 wide: they fit the one-byte dimensions of the 1.10 format's layout message
# (docs/design.md "HDF5 files"); wider than any of tiny's tensors all the same
N=250

$H chunk "$delta" "$T/wide.h5" $W $N
run 65 $X verify "$T/wide.h5"
grep -q "$W: chunk dimension 1 is $N" "$T/err" || { cat "$T/err"; fail "verify does not name the chunk layout"; }

$H forge "$commit" "$delta" "$T/wide.h5" >/dev/null
run 75 $X aggregate --store "$T/s" --deadline 0
rej=$(ls "$T"/s/rounds/r000001/a/a1/REJECTED-* 2>/dev/null) || fail "no REJECTED for the crafted delta"
grep -q "part-000-.*chunk dimension 1 is $N" "$rej" || { cat "$rej"; fail "the REJECTED does not name the part"; }

# verify --version (and --all) parse a version's parts in a child first too
part=$(ls "$T"/s/versions/v000000/part-000-*.h5)
W=model/layers.0.attention.wk.weight
$H chunk "$part" "$T/wide-ckpt.h5" $W $N
$H forge "$(ls "$T"/s/versions/v000000/INDEX-*)" "$part" "$T/wide-ckpt.h5" >/dev/null
run 65 $X verify --store "$T/s" --version 0
grep -q "part-000-.*$W: chunk dimension 1 is $N" "$T/err" || { cat "$T/err"; fail "verify --version does not name the part"; }
echo "crafted chunk layouts: verify 65, aggregate REJECTED naming the part"
