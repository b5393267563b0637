#!/usr/bin/env bash
# Hugging Face checkpoints in and out (formats/hf.h), against an independent PyTorch
# implementation of transformers' LLaMA (tests/interop/hf_ref.py, Debian's python3-torch):
#   - random-weight GQA checkpoints (fp32 single file; bf16 and fp16 sharded with an index,
#     tied embeddings) imported with `init --from DIR` give the reference's next-token
#     logits within 1e-4 relative (xffl's through build/tests/hf_logits, the CPU backend)
#   - `export --format hf` then `init --from` round trips bit-exactly (fp32) and to the
#     bf16-rounded values (bf16); sharded export; the federation's tokenizer.model copied
#   - a config equal to a preset becomes that preset, any other a custom model; --model
#     must agree
#   - bad inputs exit 65 with one line naming the file and the tensor or field
set -euo pipefail
. "$(dirname "$0")/lib.sh"
L=$PWD/$B/tests/hf_logits
P=/usr/bin/python3
R="$P tests/interop/hf_ref.py"
if ! $P -c 'import torch' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 has no torch (python3-torch)"
  exit 0
fi
IDS="1 5 77 299 3 9 42 0 128 250 17 64"

logits_match() { # $1 dir, $2 store
  $L "$2" "$T/x.f32" $IDS
  $R logits "$1" "$T/r.f32" $IDS
  $R compare "$T/r.f32" "$T/x.f32" 1e-4 || fail "logits of $1 differ from the PyTorch reference"
}

# 1. import: three layouts and dtypes, logits against the reference
$R make "$T/a" --dtype fp32 --seed 1
$X init --quiet --store "$T/s" --from "$T/a" >/dev/null
logits_match "$T/a" "$T/s"
$R make "$T/b" --dtype bf16 --shards 3 --seed 2 --tied
$X init --quiet --store "$T/sb" --from "$T/b" --facilities a,b >/dev/null
logits_match "$T/b" "$T/sb"
$R make "$T/c" --dtype fp16 --shards 2 --seed 3 --config num_key_value_heads=1,rope_theta=10000.0,rms_norm_eps=1e-05
$X init --quiet --store "$T/sc" --from "$T/c" >/dev/null
logits_match "$T/c" "$T/sc"
grep -q "^init_from=$T/a hf [0-9a-f]\{64\}" "$T"/s/versions/v000000/INDEX-* || fail "INDEX does not name the checkpoint"
echo "import: fp32, bf16 (3 shards, tied), fp16 (2 shards, 1 kv head) match the reference"

# 2. round trips
$X export --store "$T/s" --version latest --format hf "$T/e1" >/dev/null
$R same "$T/a" "$T/e1"
grep -q '"__metadata__":{"format":"pt"}' "$T/e1/model.safetensors" || fail "no __metadata__ format pt"
$X init --quiet --store "$T/s1" --from "$T/e1" >/dev/null
$X export --store "$T/s1" --version latest --format hf --shard-size 64K "$T/e1s" >/dev/null
test -f "$T/e1s/model.safetensors.index.json" || fail "--shard-size 64K wrote no index"
$R same "$T/a" "$T/e1s"
$X init --quiet --store "$T/s1s" --from "$T/e1s" >/dev/null
$L "$T/s" "$T/x0.f32" $IDS && $L "$T/s1s" "$T/x1.f32" $IDS
cmp "$T/x0.f32" "$T/x1.f32" || fail "logits changed over an fp32 export/import round trip"
$X export --store "$T/s1s" --version latest --format hf "$T/e1b" >/dev/null
cmp "$T/e1/model.safetensors" "$T/e1b/model.safetensors" || fail "fp32 round trip changed bytes"
$X export --store "$T/s" --version latest --format hf --dtype bf16 "$T/e2" >/dev/null
$R same "$T/a" "$T/e2" --bf16
$X init --quiet --store "$T/s2" --from "$T/e2" >/dev/null
$X export --store "$T/s2" --version latest --format hf "$T/e3" >/dev/null
$R same "$T/e2" "$T/e3"
echo "round trips: fp32 bit-exact (one file and sharded), bf16 to the rounded values"

# 3. tokenizer.model from the store (the key `init --tokenizer` writes)
head -c 1000 /dev/urandom >"$T/s/tokenizer.model"
$X export --store "$T/s" --version latest --format hf --json "$T/e4" | grep -q '"tokenizer":true' || fail "tokenizer not reported"
cmp "$T/s/tokenizer.model" "$T/e4/tokenizer.model" || fail "tokenizer.model not copied"
grep -q LlamaTokenizer "$T/e4/tokenizer_config.json" || fail "tokenizer_config.json names no tokenizer"
echo "export: the federation's tokenizer.model copied"

# 4. presets and --model
$R make "$T/tiny" --config hidden_size=64,intermediate_size=160,num_attention_heads=4,num_key_value_heads=2,vocab_size=256,max_position_embeddings=64,rms_norm_eps=1e-05,rope_theta=10000.0
$X init --dry-run --from "$T/tiny" 2>/dev/null | grep -q '^model tiny:' || fail "tiny's config is not the tiny preset"
$X init --dry-run --from "$T/a" 2>/dev/null | grep -q '^model custom:' || fail "a custom config is not custom"
$X init --quiet --store "$T/st" --model tiny --from "$T/tiny" >/dev/null
rc=0; $X init --quiet --store "$T/sx" --model tiny --from "$T/a" 2>"$T/err" || rc=$?
[ $rc = 65 ] && grep -q "is not --model tiny" "$T/err" || { cat "$T/err"; fail "--model disagreeing with config.json: rc $rc"; }
rc=0; $X init --quiet --store "$T/sx" --vocab 300 --from "$T/a" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "--vocab without --model: rc $rc"
$X verify --store "$T/s" >/dev/null
echo "presets: tiny recognised, custom kept in federation.h5, --model must agree"

# 5. the custom model trains: two facilities, one round, aggregate; the export loads in
#    the reference with the trained weights (its logits are xffl's for version 1)
mkdir -p "$T/txt"
for i in 1 2 3 4; do head -c 20000 README.md | tail -c 12000 >"$T/txt/f$i.txt"; done
$X data pack "$T/txt"/* --out "$T/data" >/dev/null 2>&1
$X init --quiet --store "$T/sf" --from "$T/a" --facilities a,b --local-steps 2 --batch 2 --seq-len 16 >/dev/null
for f in a b; do $X train --quiet --store "$T/sf" --facility $f --data "$T/data/*.bin" --threads 1 >/dev/null; done
$X aggregate --quiet --store "$T/sf" --round 1 >/dev/null
$X export --store "$T/sf" --version 1 --format hf "$T/ef" 2>/dev/null >/dev/null
$R same "$T/a" "$T/ef" >/dev/null 2>&1 && fail "version 1 has the imported weights: nothing trained"
logits_match "$T/ef" "$T/sf"
echo "custom model: trained one federated round from federation.h5's config, exported, matches the reference"

# 6. bad inputs: exit 65, one line naming the file and the tensor or field
bad() { # $1 damage, $2 pattern the message must hold
  rm -rf "$T/d" "$T/sd"
  cp -r "$T/d0" "$T/d"
  $R damage "$T/d" "$1"
  rc=0; $X init --quiet --store "$T/sd" --from "$T/d" 2>"$T/err" || rc=$?
  [ $rc = 65 ] || { cat "$T/err"; fail "$1: rc $rc, want 65"; }
  [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "$2" "$T/err" || { cat "$T/err"; fail "$1: message lacks '$2'"; }
  [ ! -e "$T/sd/federation.h5" ] || fail "$1: federation.h5 written for a bad checkpoint"
}
$R make "$T/d0" --seed 4
bad truncate 'model.safetensors: tensor "lm_head.weight": data_offsets end at'
bad overlap 'model.safetensors: tensor "model.layers.0.self_attn.k_proj.weight": data_offsets begin at .* overlaps'
bad dtype 'k_proj.weight": data_offsets .* shape and dtype F16 need'
bad shape 'k_proj.weight": data_offsets .* shape and dtype F32 need'
bad headlen 'model.safetensors: header length'
bad hidden 'model.embed_tokens.weight" has shape \[300, 48\], but config.json needs \[300, 64\] (vocab_size x hidden_size)'
bad layers 'model.layers.1.input_layernorm.weight" is beyond config.json num_hidden_layers 1'
bad morelayers 'model.layers.2.input_layernorm.weight" is missing'
echo "bad inputs: exit 65 naming file and tensor or field"
echo "test-hf: ok"
