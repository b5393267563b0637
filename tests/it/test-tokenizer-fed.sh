#!/usr/bin/env bash
# The federation's tokenizer (issue 16): `init --tokenizer` records the model's SHA-256
# in federation.h5 (format_version 2; a byte-level federation stays version 1, with no
# such attribute) and keeps the file in the store as tokenizer.model; verify --all
# checks it; train and eval refuse shards packed with another tokenizer or byte-level
# (exit 65 naming the shard and both tokenizers); sample encodes the prompt and decodes
# the continuation with it, as SentencePiece itself decodes the same ids (/usr/bin/python3
# with Debian's python3-sentencepiece).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
CHECK=$PWD/tests/tokenizer/sp_check.py
if [ ! -x $PY ] || ! $PY -c 'import sentencepiece, h5py' 2>/dev/null; then
  echo "SKIP: needs Debian's python3-sentencepiece and python3-h5py (scripts/install-deps)"; exit 0
fi
cd "$T"
expect() { # rc, then the command; its stderr in err
  local want=$1; shift
  set +e; "$@" >out 2>err; local rc=$?; set -e
  [ $rc -eq "$want" ] || { cat out err; fail "$*: exit $rc, wanted $want"; }
}
attr() { $PY -c 'import h5py,sys; a=h5py.File(sys.argv[1],"r").attrs; v=a.get(sys.argv[2]); print("" if v is None else (v.decode() if isinstance(v, bytes) else v))' "$1" "$2"; }

# two LLaMA-style models of the same vocabulary (so only the digest tells them apart)
$PY "$CHECK" train /usr/share/common-licenses m 1000 llama
$PY "$CHECK" train /usr/share/common-licenses m2 1000 extra_ws
SHA=$(sha256sum m.model | cut -d' ' -f1)
SHA2=$(sha256sum m2.model | cut -d' ' -f1)
C=/usr/share/common-licenses
COMMON=(--model tiny --local-steps 2 --batch 2 --seq-len 32 --seed 3)

echo "== init --tokenizer: the vocabulary from the model, its digest in federation.h5, the file in the store"
$X -q init --store s "${COMMON[@]}" --facilities a,b --tokenizer m.model >/dev/null
[ "$(attr s/federation.h5 tokenizer_sha256)" = "$SHA" ] || fail "federation.h5 does not record the tokenizer's sha256"
[ "$(attr s/federation.h5 format_version)" = 2 ] || fail "a federation with a tokenizer is not format_version 2"
[ "$(attr s/federation.h5 vocab_size)" = 1000 ] || fail "--vocab was not taken from the tokenizer"
cmp m.model s/tokenizer.model || fail "the store's tokenizer.model is not the file"
$X verify --all s | grep -q '^ok:' || fail "verify --all"
$X ls --store s | grep -q '^tokenizer.model ' || fail "ls does not show tokenizer.model"
# --vocab must agree; a file that is not a SentencePiece BPE model is refused
expect 65 $X init --store s2 "${COMMON[@]}" --vocab 2000 --tokenizer m.model
grep -q "vocabulary of 1000" err && grep -q "2000" err || { cat err; fail "the vocabulary message"; }
expect 65 $X init --store s2 "${COMMON[@]}" --tokenizer m.vocab
grep -q "m.vocab" err || { cat err; fail "a bad tokenizer's message does not name the file"; }
[ ! -e s2/federation.h5 ] || fail "a refused init wrote federation.h5"
# write-once: init again (same tokenizer or another) leaves the store as it was
expect 1 $X init --store s "${COMMON[@]}" --facilities a,b --tokenizer m2.model
cmp m.model s/tokenizer.model || fail "a second init replaced tokenizer.model"
# the byte-level default is unchanged: format_version 1, no attribute, no file
$X -q init --store sb "${COMMON[@]}" >/dev/null
[ "$(attr sb/federation.h5 format_version)" = 1 ] || fail "a byte-level federation.h5 is not format_version 1"
[ -z "$(attr sb/federation.h5 tokenizer_sha256)" ] || fail "a byte-level federation.h5 names a tokenizer"
[ ! -e sb/tokenizer.model ] || fail "a byte-level federation stored a tokenizer"
$X ls --store sb | grep -q tokenizer && fail "ls shows a tokenizer in a byte-level store"

echo "== train and eval: shards of the federation's tokenizer only"
$X -q data pack --tokenizer m.model --out d "$C/GPL-3" "$C/Apache-2.0" >/dev/null
$X -q data pack --tokenizer m2.model --out d2 "$C/GPL-3" >/dev/null
$X -q data pack --out db "$C/GPL-3" >/dev/null
expect 65 $X train --store s --facility b --data 'd2/*_train_*.bin' --state st-b
grep -q "d2/data_train_0000.bin" err && grep -q "m2.model (sha256 ${SHA2:0:12}" err &&
  grep -q "sha256 ${SHA:0:12}" err || { cat err; fail "the refusal does not name the shard and both tokenizers"; }
expect 65 $X train --store s --facility b --data 'db/*_train_*.bin' --state st-b
grep -q "db/data_train_0000.bin was packed with the byte-level tokenizer" err || { cat err; fail "byte-level shards"; }
expect 65 $X eval --store s --data 'd2/*_val_*.bin'
grep -q "d2/data_val_0000.bin" err || { cat err; fail "eval's refusal does not name the shard"; }
# and the other way round: a byte-level federation refuses SentencePiece shards
expect 65 $X train --store sb --facility local --data 'd/*_train_*.bin' --state st-l
grep -q "the federation uses the byte-level tokenizer" err || { cat err; fail "sentencepiece shards on bytes"; }
$X -q train --store s --facility a --data 'd/*_train_*.bin' --state st-a >/dev/null
$X -q train --store s --facility b --data 'd/*_train_*.bin' --state st-b >/dev/null
$X -q aggregate --store s >/dev/null
$X -q eval --store s --data 'd/*_val_*.bin' | grep -q '^v000001: loss' || fail "eval on the federation's shards"
$X verify --all s | grep -q '^ok: 2 versions' || fail "verify --all after a round"

echo "== sample: SentencePiece in, SentencePiece out"
for args in "--temperature 0" "--temperature 0.9 --seed 7"; do
  # shellcheck disable=SC2086
  $X -v sample --store s --prompt "The licensee may" --tokens 24 $args >out 2>err || { cat err; fail "sample $args"; }
  grep '^xffl sample: prompt ids: ' err | sed 's/.*ids: //' >prompt.ids
  grep '^xffl sample: sampled ids: ' err | sed 's/.*ids: //' >sampled.ids
  $PY - m.model "The licensee may" prompt.ids sampled.ids out <<'EOF'
import sys
import sentencepiece as spm
model, prompt, pf, sf, outf = sys.argv[1:]
sp = spm.SentencePieceProcessor(model_file=model)
p = [int(x) for x in open(pf).read().split()]
s = [int(x) for x in open(sf).read().split()]
assert p == sp.encode(prompt), ("prompt ids", p, sp.encode(prompt))
assert len(s) == 24, s
ours = open(outf, "rb").read()
assert ours.endswith(b"\n")
want = sp.decode(p + s)
got = ours[:-1].decode("utf-8", errors="replace")
assert got == want, (got, want)
print("sample: %d prompt ids as SentencePiece encodes them, %d sampled ids decoded as SentencePiece does: %r"
      % (len(p), len(s), want[len(prompt):]))
EOF
done
# the byte-level federation still samples bytes: N tokens are N bytes
$X -q sample --store sb --prompt "ab" --tokens 5 --temperature 0 >out
[ "$(head -c 7 out | wc -c)" = 7 ] && [ "$(wc -c <out)" = 8 ] || fail "byte-level sample is not prompt + 5 bytes"

echo "== verify --all: the tokenizer damaged, missing, or where none belongs"
cp s/tokenizer.model keep.model
printf 'x' >>s/tokenizer.model
expect 65 $X verify --all s
grep -q "tokenizer.model" err || { cat err; fail "verify --all does not name a damaged tokenizer.model"; }
expect 65 $X sample --store s --prompt "a" --tokens 2
rm s/tokenizer.model
expect 65 $X verify --all s
grep -q "has no tokenizer.model" err || { cat err; fail "verify --all does not name a missing tokenizer.model"; }
cp keep.model s/tokenizer.model
$X verify --all s >/dev/null || fail "verify --all once restored"
cp m.model sb/tokenizer.model
expect 65 $X verify --all sb
grep -q "records no tokenizer" err || { cat err; fail "verify --all accepts a stray tokenizer.model"; }
echo "PASS"
