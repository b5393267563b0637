#!/usr/bin/env bash
# Issue 14, "What it must show" 2: an intruder with write access to the store and no
# key gets nothing aggregated and no version accepted (docs/design.md "Trust"). Each
# forgery is refused by a signature (or the federation.h5 pin) with a message naming
# the key or the missing signature, and a refused attempt leaves the round open (75).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=$T/cfg   # the default key directory, this test's own
K=$T/cfg/xffl/keys
S=$T/store
train() { $X train --store "$S" --facility "$1" --data "$T/data/*_train_*.bin" --threads 1 "${@:2}"; }
keyid() { openssl pkey -pubin -in "$1" -outform DER | tail -c 32 | sha256sum | cut -c1-16; }
# Rewrites an object: python expression on its text t (signature line included), names
# it by its new content (what a forger who recomputes digests does), prints the new key.
rewrite() { # key expr
  /usr/bin/python3 - "$S" "$@" <<'PY'
import hashlib, os, sys
root, key, expr = sys.argv[1:]
path = os.path.join(root, key)
t = open(path).read()
body = t[: t.rfind("signature=")] if "\nsignature=" in t else t
t = eval(expr)
sha = hashlib.sha256(t.encode()).hexdigest()
d, base = os.path.split(path)
new = os.path.join(d, base.rsplit("-", 1)[0] + "-" + sha[:12])
os.remove(path)
open(new, "w").write(t)
print(os.path.relpath(new, root))
PY
}
# body signed with a private key file: "signature=<key id> <hex>\n"
sign_with() { # keyfile pubfile bodyfile
  printf 'signature=%s %s\n' "$(keyid "$2")" "$(openssl pkeyutl -sign -rawin -inkey "$1" -in "$3" | od -An -v -tx1 | tr -d ' \n')"
}
open_round() { # why: aggregate refuses and the round stays open
  expect_rc 75 $X aggregate --store "$S" --deadline 0
  grep -q "quorum not reached" "$T/err" || { cat "$T/err"; fail "$1: aggregate did not leave the round open"; }
}
commit_of() { ls "$S/rounds/r00000$1/$2/a$3/" | grep '^COMMIT-' | sed "s|^|rounds/r00000$1/$2/a$3/|"; }

mkdir -p "$T/txt"
head -c 20000 /usr/share/common-licenses/GPL-3 >"$T/txt/gpl.txt"
$X data pack "$T/txt/gpl.txt" --out "$T/data" >/dev/null 2>&1
expect_rc 0 $X init --store "$S" --model tiny --facilities alpha,beta --local-steps 2 --batch 2 --seq-len 16
for n in aggregator alpha beta; do
  [ "$(stat -c %a "$K/$n.key")" = 600 ] || fail "$n.key is not mode 600"
done
[ "$(stat -c %a "$K")" = 700 ] || fail "the key directory is not mode 700"
tail -1 "$S"/versions/v000000/INDEX-* | grep -q "^signature=$(keyid "$K/aggregator.pub") " \
  || fail "version 0's INDEX is not signed by the aggregator"
train alpha >/dev/null 2>&1 || fail "train alpha"
train beta >/dev/null 2>&1 || fail "train beta"
tail -1 "$S/$(commit_of 1 alpha 1)" | grep -q "^signature=$(keyid "$K/alpha.pub") " || fail "alpha's COMMIT is unsigned"
expect_rc 0 $X aggregate --store "$S" --deadline 0
cp -r "$S" "$T/v1"
cp -r "$T/cfg" "$T/cfg-after-v1"

# Real sites: the facility makes its pair (keygen), init takes the public half, the
# facility's job its --key; a job holding another key is refused, naming both ids.
mkdir -p "$T/site"
expect_rc 0 $X keygen --out "$T/site/g.key"
[ "$(stat -c %a "$T/site/g.key")" = 600 ] || fail "keygen's private key is not mode 600"
expect_rc 1 $X keygen --out "$T/site/g.key"
expect_rc 0 $X init --store "$T/s2" --model tiny --facilities g --local-steps 2 --batch 2 --seq-len 16 \
  --facility-key "g=$T/site/g.key.pub" --keys "$T/k2"
[ ! -e "$T/k2/g.key" ] || fail "init made a key for a facility whose public key it was given"
expect_rc 1 $X train --store "$T/s2" --facility g --data "$T/data/*_train_*.bin" --key "$K/alpha.key"
grep -q "$(keyid "$K/alpha.pub")" "$T/err" || { cat "$T/err"; fail "a job with the wrong key: not named"; }
expect_rc 0 $X train --store "$T/s2" --facility g --data "$T/data/*_train_*.bin" --threads 1 --key "$T/site/g.key"
expect_rc 0 $X aggregate --store "$T/s2" --deadline 0 --keys "$T/k2"

# A group-readable private key is refused, naming it (exit 1).
chmod 640 "$K/alpha.key"
expect_rc 1 train alpha
grep -q "$K/alpha.key" "$T/err" || { cat "$T/err"; fail "the group-readable key is not named"; }
chmod 600 "$K/alpha.key"

# Round 2: beta trains honestly; alpha's attempts are forged one after the other.
train beta >/dev/null 2>&1 || fail "train beta round 2"
train alpha >/dev/null 2>&1 || fail "train alpha round 2"
good=$(commit_of 2 alpha 1)
cp -r "$S/rounds/r000002/alpha/a1" "$T/alpha-a1"

# 1. unsigned: the signature line removed, the name recomputed
rewrite "$good" 'body' >/dev/null
open_round "unsigned delta"
grep -q "no signature" "$T/err" || { cat "$T/err"; fail "unsigned: no 'no signature'"; }
grep -q "$(keyid "$K/alpha.pub")" "$T/err" || { cat "$T/err"; fail "unsigned: the key is not named"; }
rej=$(ls "$S/rounds/r000002/alpha/a1/" | grep '^REJECTED-')
tail -1 "$S/rounds/r000002/alpha/a1/$rej" | grep -q "^signature=$(keyid "$K/aggregator.pub") " \
  || fail "the REJECTED is not signed by the aggregator"

# 2. signed with beta's key (the attempt moved to a2 after the rejection)
mkdir -p "$S/rounds/r000002/alpha/a2"
cp "$T/alpha-a1"/part-* "$S/rounds/r000002/alpha/a2/"
c=$(ls "$T/alpha-a1" | grep '^COMMIT-')
sed -e '/^signature=/d' -e 's|/alpha/a1/|/alpha/a2/|g' -e 's/^attempt=1$/attempt=2/' "$T/alpha-a1/$c" >"$T/body"
cp "$T/body" "$S/rounds/r000002/alpha/a2/COMMIT-x"
sign_with "$K/beta.key" "$K/beta.pub" "$T/body" >>"$S/rounds/r000002/alpha/a2/COMMIT-x"
rewrite rounds/r000002/alpha/a2/COMMIT-x 't' >/dev/null
open_round "beta's key"
grep -q "signed by key $(keyid "$K/beta.pub"), not by key $(keyid "$K/alpha.pub")" "$T/err" \
  || { cat "$T/err"; fail "another facility's key: not named"; }

# 3. a COMMIT replayed from round 1 (alpha's own signature, another round)
mkdir -p "$S/rounds/r000002/alpha/a3"
cp "$S"/rounds/r000001/alpha/a1/* "$S/rounds/r000002/alpha/a3/"
open_round "replayed COMMIT"
grep -q "r000002/alpha/a3" "$T/err" || { cat "$T/err"; fail "the replayed COMMIT was not refused"; }

# 4. the delta scaled by 0.9 after signing, every digest recomputed: the signature fails
mkdir -p "$S/rounds/r000002/alpha/a4"
/usr/bin/python3 - "$T/alpha-a1" "$S/rounds/r000002/alpha/a4" <<'PY'
import hashlib, os, re, sys, shutil, h5py, numpy as np
src, dst = sys.argv[1:]
commit = [f for f in os.listdir(src) if f.startswith("COMMIT-")][0]
t = open(os.path.join(src, commit)).read().replace("/alpha/a1/", "/alpha/a4/").replace("\nattempt=1\n", "\nattempt=4\n")
for f in os.listdir(src):
    if not f.startswith("part-"):
        continue
    p = os.path.join(dst, f)
    shutil.copy(os.path.join(src, f), p)
    with h5py.File(p, "r+") as h:
        def scale(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
                obj[...] = obj[...] * np.float32(0.9)
        h.visititems(scale)
    d = open(p, "rb").read()
    sha = hashlib.sha256(d).hexdigest()
    t = re.sub(r"object (\S*%s) \d+ [0-9a-f]{64}" % re.escape(f), lambda m: "object %s %d %s" % (m.group(1), len(d), sha), t)
sha = hashlib.sha256(t.encode()).hexdigest()
open(os.path.join(dst, "COMMIT-" + sha[:12]), "w").write(t)
PY
open_round "scaled by 0.9"
grep -q "signature by key $(keyid "$K/alpha.pub") does not verify" "$T/err" \
  || { cat "$T/err"; fail "the scaled delta was not refused by the signature"; }

# 5. a forged REJECTED beside alpha's next, good attempt (content-named, unsigned): ignored
train alpha >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "train alpha after the forgeries"; }
a=$(grep -o 'a[0-9]* rounds/r000002/alpha/a[0-9]*/COMMIT-[0-9a-f]*' "$T/out" | awk '{print $2}')
[ -n "$a" ] || { cat "$T/out"; fail "train alpha wrote no new attempt"; }
dir=$(dirname "$a")
printf 'commit=%s\nreason=forged\n' "$a" >"$T/rej"
sha=$(sha256sum "$T/rej" | cut -c1-12)
cp "$T/rej" "$S/$dir/REJECTED-$sha"
expect_rc 0 $X aggregate --store "$S" --deadline 0
grep -q "no signature" "$T/err" || { cat "$T/err"; fail "the forged REJECTED was not reported unsigned"; }
grep -q "accepted alpha" "$T/err" || { cat "$T/err"; fail "the good delta was not accepted past the forged REJECTED"; }

# 6. a forged INDEX and LATEST (version 3 from version 2's INDEX, unsigned; then signed
#    with alpha's key): train, verify and reproduce refuse with 65
idx=$(ls "$S/versions/v000002/" | grep '^INDEX-')
cp -r "$S" "$T/good2"
for how in unsigned alpha; do
  rm -rf "$S" && cp -r "$T/good2" "$S"
  sed -e '/^signature=/d' "$S/versions/v000002/$idx" >"$T/body"
  [ $how = alpha ] && sign_with "$K/alpha.key" "$K/alpha.pub" "$T/body" >>"$T/body"
  sha=$(sha256sum "$T/body" | cut -d' ' -f1)
  rm "$S/versions/v000002/$idx"
  cp "$T/body" "$S/versions/v000002/INDEX-${sha:0:12}"
  echo "v000002 INDEX-${sha:0:12} $sha" >"$S/LATEST"
  want=$([ $how = alpha ] && echo "signed by key $(keyid "$K/alpha.pub"), not by key $(keyid "$K/aggregator.pub")" \
         || echo "no signature (expected one by key $(keyid "$K/aggregator.pub"))")
  expect_rc 65 train alpha
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "train took a forged INDEX ($how)"; }
  expect_rc 65 $X verify --store "$S"
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "verify took a forged INDEX ($how)"; }
  expect_rc 65 $X reproduce --store "$S" --round 2
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "reproduce took a forged INDEX ($how)"; }
  # and the read-only commands that use the version's weights
  expect_rc 65 $X eval --store "$S" --data "$T/data/*_train_*.bin" --threads 1
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "eval took a forged INDEX ($how)"; }
  expect_rc 65 $X sample --store "$S" --prompt "x" --tokens 2 --threads 1
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "sample took a forged INDEX ($how)"; }
  expect_rc 65 $X export --store "$S" --version 2 --format llama2c "$T/forged.bin"
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "export llama2c took a forged INDEX ($how)"; }
  expect_rc 65 $X export --store "$S" --version 2 --format hf "$T/forged-hf"
  grep -qF "$want" "$T/err" || { cat "$T/err"; fail "export hf took a forged INDEX ($how)"; }
  [ ! -e "$T/forged.bin" ] || fail "export wrote a forged version ($how)"
  expect_rc 65 $X aggregate --store "$S" --deadline 0
done
rm -rf "$S" && cp -r "$T/good2" "$S"
expect_rc 0 $X eval --store "$S" --data "$T/data/*_train_*.bin" --threads 1
expect_rc 0 $X reproduce --store "$S" --round 2 --federation "$(sha256sum "$S/federation.h5" | cut -d' ' -f1)"
expect_rc 65 $X reproduce --store "$S" --round 2 --federation "$(printf '%064d' 0)"
grep -q "given with --federation" "$T/err" || { cat "$T/err"; fail "reproduce --federation: another digest taken"; }

# 6b. a kept version naming a COMMIT that its facility never signed (its signature line
#     taken off, the INDEX re-pointed and signed with the aggregator's key: what a
#     compromised or buggy aggregator could write): verify --all and gc refuse, naming it
ck=$(grep '^contributor alpha ' "$S/versions/v000002/$idx" | cut -d' ' -f3)
nk=$(rewrite "$ck" 'body')
sed -e '/^signature=/d' -e "s|^contributor alpha $ck\$|contributor alpha $nk|" "$S/versions/v000002/$idx" >"$T/body"
grep -q "^contributor alpha $nk\$" "$T/body" || fail "test setup: INDEX not re-pointed"
sign_with "$K/aggregator.key" "$K/aggregator.pub" "$T/body" >>"$T/body"
sha=$(sha256sum "$T/body" | cut -d' ' -f1)
rm "$S/versions/v000002/$idx"
cp "$T/body" "$S/versions/v000002/INDEX-${sha:0:12}"
echo "v000002 INDEX-${sha:0:12} $sha" >"$S/LATEST"
want="no signature (expected one by key $(keyid "$K/alpha.pub"))"
expect_rc 65 $X verify --all --store "$S"
grep -qF "$want" "$T/err" && grep -qF "$nk" "$T/err" || { cat "$T/err"; fail "verify --all took an unsigned COMMIT"; }
n=$(find "$S" -type f | wc -l)
expect_rc 65 $X gc --store "$S" --keep 10 --grace 0
grep -qF "$want" "$T/err" || { cat "$T/err"; fail "gc took an unsigned COMMIT"; }
[ "$(find "$S" -type f | wc -l)" = "$n" ] || fail "gc deleted objects of a store whose kept version names an unsigned COMMIT"
rm -rf "$S" && cp -r "$T/good2" "$S"
expect_rc 0 $X verify --all --store "$S"
expect_rc 0 $X gc --store "$S" --keep 10 --grace 0 --dry-run

# 7. a changed federation.h5: the intruder replaces the whole store with a federation
#    of its own (unsigned, version 0, LATEST: every digest consistent). The facility
#    pinned the first in its --state DIR, the aggregator and verify in the key directory.
train alpha --state "$T/state" >/dev/null 2>&1 || fail "train alpha round 3 with --state"
rm -rf "$S"
$X init --store "$S" --model tiny --facilities alpha,beta --local-steps 2 --batch 2 --seq-len 16 --lr 0.1 \
  --insecure --keys "$T/intruder" >/dev/null 2>&1 || fail "the intruder's init"
# (its init re-pinned the key directory, as the one who makes a federation does: restore ours)
cp -r "$T/cfg-after-v1" "$T/cfg.tmp" && rm -rf "$T/cfg" && mv "$T/cfg.tmp" "$T/cfg"
expect_rc 65 train alpha --state "$T/state"
grep -q "federation.h5 changed" "$T/err" || { cat "$T/err"; fail "train took a changed federation.h5"; }
expect_rc 65 $X aggregate --store "$S" --deadline 0
grep -q "federation.h5 changed" "$T/err" || { cat "$T/err"; fail "aggregate took a changed federation.h5"; }
expect_rc 65 $X verify --store "$S"
grep -q "federation.h5 changed" "$T/err" || { cat "$T/err"; fail "verify took a changed federation.h5"; }
expect_rc 65 $X eval --store "$S" --data "$T/data/*_train_*.bin" --threads 1
grep -q "federation.h5 changed" "$T/err" || { cat "$T/err"; fail "eval took a changed federation.h5"; }
$X status --store "$S" >"$T/out" 2>&1 || true
echo "test-sign: ok"
