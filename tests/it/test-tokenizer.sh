#!/usr/bin/env bash
# The SentencePiece tokenizer (text/sentencepiece.h) against SentencePiece itself
# (/usr/bin/python3 with Debian's python3-sentencepiece, the C++ library):
#  (a) a LLaMA-style BPE model trained here on /usr/share/common-licenses (identity
#      normalizer, byte fallback, split digits): the same ids on texts it was not trained
#      on (scripts, whitespace runs, bytes that are not UTF-8), through `xffl data pack`
#      and through the library;
#  (b) LLaMA-2's own vocabulary and merge order (npm llama-tokenizer-js) rebuilt as a
#      tokenizer.model: the same ids as SentencePiece, and as the JS tokenizer;
#  (c) decode(encode(text)) gives the text back byte for byte (valid UTF-8), and what
#      SentencePiece's decode gives for the rest;
#  (d) models that are not SentencePiece BPE with the identity normalizer, or are
#      damaged, or too large for uint16 shards: exit 65 naming the file.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${XFFL_BUILD:-build}
X=$PWD/$BUILD/xffl
TB=$PWD/$BUILD/bench/tokenizer_bench
PY=/usr/bin/python3
CHECK=$PWD/tests/tokenizer/sp_check.py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

$PY "$CHECK" train /usr/share/common-licenses m 4000 llama
$PY "$CHECK" texts t
texts=(t/*)
valid=()
for f in t/*.txt; do
  # literal U+2581 is SentencePiece's space: it decodes as ' ', by design
  grep -q $'\xe2\x96\x81' "$f" || valid+=("$f")
done

echo "== (a) trained LLaMA-style model, library"
"$TB" ids m.model "${texts[@]}" > ours.ids
$PY "$CHECK" compare m.model ours.ids "${texts[@]}"

echo "== (a) trained model through xffl data pack (one text per file, no bos/eos)"
"$X" data pack --tokenizer m.model --out packed --val-fraction 0 "${texts[@]}"
$PY "$CHECK" shard m.model packed/data_train_0000.bin "${texts[@]}"
[ "$(cut -d' ' -f1 packed/data_tokenizer.sha256)" = "$(sha256sum m.model | cut -d' ' -f1)" ]
grep -q '  m.model$' packed/data_tokenizer.sha256
# --bos/--eos: <s> first, </s> last, the text between unchanged
"$X" data pack --tokenizer m.model --out be --val-fraction 0 --bos --eos t/s00.txt
$PY - <<'EOF'
import struct
raw = open("be/data_train_0000.bin", "rb").read()
n = struct.unpack("<i", raw[8:12])[0]
toks = struct.unpack("<%dH" % n, raw[1024:1024 + 2 * n])
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file="m.model")
assert list(toks) == [sp.bos_id()] + sp.encode(open("t/s00.txt", "rb").read()) + [sp.eos_id()], toks
print("--bos --eos: <s> text </s>")
EOF
# the byte-level default writes no tokenizer record
"$X" data pack --out bytes --val-fraction 0 t/s00.txt
[ ! -e bytes/data_tokenizer.sha256 ]

echo "== (c) round trips"
"$TB" roundtrip m.model "${valid[@]}"
"$TB" decode m.model "${texts[@]}" > ours.dec
$PY "$CHECK" decoded m.model ours.dec "${texts[@]}"

echo "== (a) model variants: each SentencePiece option the encoder follows"
for v in extra_ws no_fallback ws_suffix across_ws no_prefix; do
  $PY "$CHECK" train /usr/share/common-licenses "$v" 2000 "$v"
  "$TB" ids "$v.model" "${texts[@]}" > "$v.ids"
  echo -n "$v: "; $PY "$CHECK" compare "$v.model" "$v.ids" "${texts[@]}"
  "$TB" decode "$v.model" "${texts[@]}" > "$v.dec"
  echo -n "$v: "; $PY "$CHECK" decoded "$v.model" "$v.dec" "${texts[@]}"
done

echo "== (b) LLaMA-2's vocabulary"
if bash "$OLDPWD/tests/tokenizer/install.sh"; then
  JS="node $OLDPWD/tests/tokenizer/llama_js.mjs"
  $JS vocab llama.json
  $PY "$CHECK" llama llama.json llama.model
  "$TB" ids llama.model "${texts[@]}" > llama.ids
  $PY "$CHECK" compare llama.model llama.ids "${texts[@]}"
  "$TB" roundtrip llama.model "${valid[@]}"
  # the JS tokenizer reads UTF-8 text: the cross-check is on the valid UTF-8 texts
  $JS encode "${valid[@]}" > js.ids
  "$TB" ids llama.model "${valid[@]}" > llama-valid.ids
  cmp js.ids llama-valid.ids && echo "${#valid[@]} texts: same ids as llama-tokenizer-js"
  # LLaMA-2's ids as its own tests state them (no <s>)
  printf 'grabbed' > g1; printf ' grabbed' > g2; printf '           grabbed' > g3
  [ "$("$TB" ids llama.model g1 g2 g3 | tr '\n' '|')" = "2646 1327 287|29871 2646 1327 287|9651 2646 1327 287|" ]
else
  echo "SKIP: (b) llama-tokenizer-js cannot be installed here"
fi

echo "== (d) bad models: exit 65 naming the file"
$PY "$CHECK" bad m.model bad
printf 'hello' > h.txt
for f in bad/*.model; do
  set +e
  "$X" data pack --tokenizer "$f" --out o h.txt 2> err
  rc=$?
  set -e
  cat err
  [ $rc -eq 65 ] || { echo "FAIL: $f: exit $rc, expected 65"; exit 1; }
  grep -q "$f" err || { echo "FAIL: $f: message does not name the file"; exit 1; }
done
echo "PASS"
