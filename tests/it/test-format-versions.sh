#!/usr/bin/env bash
# docs/design.md "Format versions": a reader refuses a version newer than it knows with
# exit 65 and a message naming the file and the version, for a checkpoint part, a delta
# part and federation.h5 (h5py, Debian's /usr/bin/python3, bumps the attribute: the
# files are otherwise intact). The unbumped copies still read.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  echo "SKIP: needs Debian's python3-h5py (scripts/install-deps installs it)"; exit 0
fi
# one past the newest version each reader knows: parts read up to 1, federation.h5 up to 5
V=2
bump() { /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r+"); f.attrs["format_version"]=int(sys.argv[2]); f.close()' "$1" "$V"; }
expect65() { # what, then the command
  local what=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ $rc -eq 65 ] || { cat "$T/err"; fail "$what: exit $rc, wanted 65"; }
  grep -q "format_version $V" "$T/err" || { cat "$T/err"; fail "$what: the message does not name format_version $V"; }
}

$X init --store "$T/s" --model tiny --facilities a --local-steps 2 --batch 2 --seq-len 16 >/dev/null 2>&1
$X data pack /usr/share/common-licenses/GPL-3 --out "$T/d" >/dev/null 2>&1
$X -q train --store "$T/s" --facility a --data "$T/d/*_train_*.bin" --state "$T/st" >/dev/null
part=$(ls "$T"/s/versions/v000000/part-000-*.h5)
delta=$(ls "$T"/s/rounds/r000001/a/a1/part-000-*.h5)

for f in "$part" "$delta"; do
  $X verify "$f" >/dev/null || fail "$f does not verify before the bump"
done
cp "$part" "$T/part.h5"; bump "$T/part.h5"
expect65 "checkpoint part" $X verify "$T/part.h5"
grep -q "part.h5" "$T/err" || fail "the checkpoint part's message does not name the file"
cp "$delta" "$T/delta.h5"; bump "$T/delta.h5"
expect65 "delta part" $X verify "$T/delta.h5"
grep -q "delta.h5" "$T/err" || fail "the delta part's message does not name the file"
$X status --store "$T/s" >/dev/null || fail "status does not read the unbumped federation.h5"
# init signs (3); a setting a reader of 1-3 lacks (here the strided data order) makes it 5
fv() { /usr/bin/python3 -c 'import h5py,sys; print(int(h5py.File(sys.argv[1],"r").attrs["format_version"]))' "$1"; }
[ "$(fv "$T/s/federation.h5")" = 3 ] || fail "a signed federation.h5 is format_version $(fv "$T/s/federation.h5"), wanted 3"
$X init --store "$T/s5" --model tiny --facilities a --local-steps 2 --batch 2 --seq-len 16 --data-order strided >/dev/null 2>&1
[ "$(fv "$T/s5/federation.h5")" = 5 ] || fail "a signed strided federation.h5 is format_version $(fv "$T/s5/federation.h5"), wanted 5"
$X status --store "$T/s5" >/dev/null || fail "status does not read a version 5 federation.h5"
V=6; cp -r "$T/s" "$T/s2"; bump "$T/s2/federation.h5"
# a changed federation.h5 is refused by its digest before its format is read: record the
# bumped file's digest in version 0's INDEX (renamed, LATEST moved) to reach the check
/usr/bin/python3 - "$T/s2" <<'PY'
import hashlib, glob, os, sys
root = sys.argv[1]
fed = hashlib.sha256(open(os.path.join(root, "federation.h5"), "rb").read()).hexdigest()
idx = glob.glob(os.path.join(root, "versions/v000000/INDEX-*"))[0]
t = "".join("federation=%s\n" % fed if l.startswith("federation=") else l for l in open(idx).read().splitlines(True))
sha = hashlib.sha256(t.encode()).hexdigest()
os.remove(idx)
open(os.path.join(root, "versions/v000000/INDEX-" + sha[:12]), "w").write(t)
open(os.path.join(root, "LATEST"), "w").write("v000000 INDEX-%s %s\n" % (sha[:12], sha))
PY
expect65 "federation.h5" $X status --store "$T/s2"
grep -q "federation.h5" "$T/err" || fail "the federation.h5 message does not name it"
echo "newer format versions refused, naming the file"
