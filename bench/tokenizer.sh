#!/usr/bin/env bash
# make bench BENCH=tokenizer: SentencePiece BPE encode MB/s, one thread, one encode call per
# file, ours (text/sentencepiece.h via build/bench/tokenizer_bench) next to SentencePiece
# (Debian's python3-sentencepiece, the C++ library, num_threads=1) on the same files in
# the same run. The model is LLaMA-2's vocabulary (tests/tokenizer: npm llama-tokenizer-js
# rebuilt as a tokenizer.model) or, where npm is unreachable, a LLaMA-style BPE model
# trained here. The text: the /usr/share/doc/*/copyright files of at most 256 KiB (up to
# BENCH_TOK_FILES, default 2000), ours best of 3, SentencePiece best of 2; then one 4 MiB
# file of them concatenated, once each (SentencePiece's merge queue makes a long text
# slower per byte; ours splits it into words). About a minute.
set -u
cd "$(dirname "$0")/.."
BUILD=${XFFL_BUILD:-build}
TB=$PWD/$BUILD/bench/tokenizer_bench
PY=/usr/bin/python3
CHECK=$PWD/tests/tokenizer/sp_check.py
[ -x "$TB" ] || { echo "bench tokenizer: build first ($TB)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/xffl-bench-tok-XXXXXX")
trap 'rm -rf "$work"' EXIT
if bash tests/tokenizer/install.sh 2>"$work/npm.err"; then
  node tests/tokenizer/llama_js.mjs vocab "$work/v.json" && $PY "$CHECK" llama "$work/v.json" "$work/tok.model" || exit 1
  model_name=llama2
else
  $PY "$CHECK" train /usr/share/common-licenses "$work/tok" 8000 llama || exit 1
  model_name=trained_llama_style_8000
fi
mkdir -p "$work/docs"
i=0
for f in /usr/share/doc/*/copyright; do
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 262144 ] || continue
  cp "$f" "$work/docs/$(printf %05d $i)"
  i=$((i + 1))
  [ $i -ge "${BENCH_TOK_FILES:-2000}" ] && break
done
cat "$work"/docs/* | head -c 4194304 > "$work/all.txt"

best() { # the fastest of 3 runs' JSON lines
  $PY -c "import json,sys; print(max((json.loads(l) for l in sys.stdin if l.strip()), key=lambda d: d['mb_s'])['mb_s'])"
}
line() { # name files-desc ours ref bytes
  $PY -c "
import json,sys
v,r=float(sys.argv[3]),float(sys.argv[4])
print(json.dumps({'bench':sys.argv[1],'value':v,'unit':'MB/s','ref_name':'sentencepiece_python_1thread','ref':r,
  'ratio':round(v/r,3),'model':sys.argv[6],'text':sys.argv[2],'bytes':int(sys.argv[5]),'threads':1}))" "$@"
}
for set in files big; do
  if [ $set = files ]; then args=("$work"/docs/*); desc="$i files, one call each"; else args=("$work/all.txt"); desc="one file of all"; fi
  runs=3; [ $set = big ] && runs=1
  ours=$(for k in $(seq $runs); do "$TB" speed "$work/tok.model" "${args[@]}"; done | best) || exit 1
  [ $runs -gt 1 ] && runs=2
  ref=$(for k in $(seq $runs); do $PY "$CHECK" speed "$work/tok.model" "${args[@]}"; done | best) || exit 1
  bytes=$(cat "${args[@]}" | wc -c)
  line "tokenizer_encode_$set" "$desc" "$ours" "$ref" "$bytes" "$model_name"
done
