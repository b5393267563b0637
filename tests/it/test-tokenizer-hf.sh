#!/usr/bin/env bash
# Issue 16, point 3, end to end: text packed with a SentencePiece tokenizer.model (a
# LLaMA-style BPE model trained here, as test-tokenizer.sh does), a federation made from
# a Hugging Face directory (random weights, GQA, written by tests/interop/hf_ref.py)
# with that tokenizer, two facilities train one round, aggregate, `export --format hf`,
# and the exported directory loads in the PyTorch reference (tests/interop/hf_ref.py)
# with the trained weights (its logits on SentencePiece's ids of a held-out sentence are
# xffl's for version 1, within 1e-4) and the same tokenizer.model, which SentencePiece
# loads with config.json's vocabulary; a damaged tokenizer.model is not exported.
# Needs the Hugging Face import/export (init --from DIR, export --format hf) and
# /usr/bin/python3 with python3-torch and python3-sentencepiece; skips without them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
L=$PWD/$B/tests/hf_logits
P=/usr/bin/python3
R="$P $PWD/tests/interop/hf_ref.py"
CHECK=$PWD/tests/tokenizer/sp_check.py
if [ ! -f tests/interop/hf_ref.py ] || [ ! -x "$L" ] || ! $X export --help 2>&1 | grep -q -- '--format hf'; then
  echo "SKIP: needs the Hugging Face import/export (init --from DIR, export --format hf)"; exit 0
fi
if [ ! -x $P ] || ! $P -c 'import torch, sentencepiece' 2>/dev/null; then
  echo "SKIP: needs /usr/bin/python3 with python3-torch and python3-sentencepiece"; exit 0
fi
cd "$T"
C=/usr/share/common-licenses
V=512

# the tokenizer, the pretrained checkpoint (its vocabulary the tokenizer's), the text
$P "$CHECK" train $C m $V llama
$R make hf --seed 5 --config vocab_size=$V
$X -q data pack --tokenizer m.model --out da $C/GPL-3 >/dev/null
$X -q data pack --tokenizer m.model --out db $C/Apache-2.0 $C/MPL-2.0 >/dev/null

# a checkpoint of another vocabulary does not take this tokenizer
$R make hf300 --seed 6
rc=0; $X -q init --store sx --from hf300 --tokenizer m.model 2>err || rc=$?
[ $rc = 65 ] && grep -q "vocabulary of $V, but the model's is 300" err || { cat err; fail "vocabulary mismatch: rc $rc"; }

$X -q init --store s --from hf --tokenizer m.model --facilities a,b --local-steps 2 --batch 2 --seq-len 32 >/dev/null
cmp m.model s/tokenizer.model || fail "the store does not hold the tokenizer"
$X -q train --store s --facility a --data 'da/*_train_*.bin' --state st-a --threads 1 >/dev/null
$X -q train --store s --facility b --data 'db/*_train_*.bin' --state st-b --threads 1 >/dev/null
$X -q aggregate --store s --round 1 >/dev/null
$X verify --all s | grep -q '^ok: 2 versions' || fail "verify --all"
$X -q export --store s --version 1 --format hf e >/dev/null

cmp m.model e/tokenizer.model || fail "the export's tokenizer.model is not the federation's"
$R same hf e >/dev/null 2>&1 && fail "the export holds the imported weights: nothing trained"
# SentencePiece's ids of a sentence no shard holds; the reference and xffl agree on them
IDS=$($P - e <<'EOF'
import json, sys
import sentencepiece as spm
d = sys.argv[1]
sp = spm.SentencePieceProcessor(model_file=d + "/tokenizer.model")
cfg = json.load(open(d + "/config.json"))
assert sp.vocab_size() == cfg["vocab_size"], (sp.vocab_size(), cfg["vocab_size"])
json.load(open(d + "/tokenizer_config.json"))
print(" ".join(str(i) for i in sp.encode("Federated training of a language model across two facilities.")[:16]))
EOF
)
$L s x.f32 $IDS
$R logits e r.f32 $IDS
$R compare r.f32 x.f32 1e-4 || fail "the exported model's logits are not version 1's"
# the export ships only the tokenizer federation.h5 names
printf 'x' >>s/tokenizer.model
rc=0; $X -q export --store s --version 1 --format hf e2 2>err || rc=$?
[ $rc = 65 ] && grep -q "tokenizer.model" err || { cat err; fail "export of a damaged tokenizer.model: rc $rc"; }
echo "end to end: SentencePiece shards, init --from a Hugging Face directory --tokenizer, one round of two"
echo "facilities, export --format hf: the reference loads the trained weights and the same tokenizer.model"
echo "PASS"
