#!/usr/bin/env bash
# Kernels through the CLI on a file:// store (issue 5): data pack, one federated round
# on the tiny model, eval (loss below uniform after training, perplexity = exp(loss)),
# sample (greedy twice = same bytes; seeded sampling reproducible), export to llama2.c
# (file sizes from the layout), and the exit codes of bad input.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# spinning OpenMP threads crawl when the cores are shared with other jobs
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
S=$T/store
for c in init train aggregate; do
  $X $c --help >/dev/null 2>&1 || { echo "FAIL: xffl $c --help failed"; exit 1; }
done

expect_rc 0 $X data pack /usr/share/common-licenses/GPL-3 --out "$T/data" --name gpl --val-fraction 0.1
grep -q 'train .* tokens in 1 shards' "$T/out" || fail "pack output: $(cat "$T/out")"
[ -f "$T/data/gpl_train_0000.bin" ] && [ -f "$T/data/gpl_val_0000.bin" ] || fail "shard names"
expect_rc 1 $X data pack /nonexistent --out "$T/x"
grep -q /nonexistent "$T/err" || fail "missing input not named"
expect_rc 2 $X data pack /usr/share/common-licenses/GPL-3 --out "$T/x" --val-fraction 2

$X init --store "$S" --model tiny --local-steps 40 --batch 4 --seq-len 64 --lr 3e-3 --seed 1 >/dev/null 2>&1 ||
  fail "init"
$X train --store "$S" --facility local --data "$T/data/gpl_train_*.bin" --threads 2 >/dev/null 2>"$T/train.err" ||
  { cat "$T/train.err"; fail "train"; }
$X aggregate --store "$S" >/dev/null 2>&1 || fail "aggregate"

# eval: v0 (init) is near uniform ln 256 = 5.55; v1 lower
expect_rc 0 $X eval --json --store "$S" --version 0 --data "$T/data/gpl_val_*.bin" --threads 2
l0=$(sed 's/.*"loss":\([0-9.]*\).*/\1/' "$T/out")
expect_rc 0 $X eval --json --store "$S" --data "$T/data/gpl_val_*.bin" --threads 2
l1=$(sed 's/.*"loss":\([0-9.]*\).*/\1/' "$T/out")
ppl=$(sed 's/.*"perplexity":\([0-9.]*\).*/\1/' "$T/out")
awk -v a="$l0" 'BEGIN{exit !(a > 5.45 && a < 5.65)}' || fail "v0 loss $l0 not near ln 256"
awk -v a="$l0" -v b="$l1" 'BEGIN{exit !(b < a - 0.5)}' || fail "v1 loss $l1 not below v0 $l0"
awk -v l="$l1" -v p="$ppl" 'BEGIN{d=exp(l)-p; exit !(d < 1e-3 && d > -1e-3)}' || fail "perplexity $ppl != exp($l1)"
# a shard with a token outside the vocabulary: 65, naming the shard
printf '\x28\xd4\x34\x01\x01\x00\x00\x00\x02\x00\x00\x00' >"$T/bad.bin"
head -c 1012 /dev/zero >>"$T/bad.bin"
printf '\x41\x00\x00\x01' >>"$T/bad.bin"
expect_rc 65 $X eval --store "$S" --data "$T/bad.bin"
grep -q bad.bin "$T/err" || fail "bad shard not named: $(cat "$T/err")"

# sample: greedy is deterministic; seeded sampling too; the prompt is echoed
expect_rc 0 $X sample --store "$S" --prompt "The " --temperature 0 --tokens 40 --threads 2
cp "$T/out" "$T/g1"
expect_rc 0 $X sample --store "$S" --prompt "The " --temperature 0 --tokens 40 --threads 1
cmp -s "$T/g1" "$T/out" || fail "greedy sampling differs between runs"
head -c 4 "$T/g1" | grep -q '^The ' || fail "prompt not echoed"
[ "$(wc -c <"$T/g1")" -eq 45 ] || fail "expected 4 + 40 bytes + newline, got $(wc -c <"$T/g1")"
expect_rc 0 $X sample --store "$S" --prompt "The " --temperature 1 --seed 7 --tokens 40 --threads 2
cp "$T/out" "$T/s1"
expect_rc 0 $X sample --store "$S" --prompt "The " --temperature 1 --seed 7 --tokens 40 --threads 2
cmp -s "$T/s1" "$T/out" || fail "seeded sampling differs between runs"
expect_rc 2 $X sample --store "$S" --prompt ""

# export: tiny = dim 64, hidden 160, 2 layers, 4 heads, 2 kv, vocab 256, seq 64
expect_rc 0 $X export --store "$S" --version 1 --format llama2c "$T/m.bin"
D=64; F=160; L=2; KVD=32; V=256; S_=64; HD=16
want=$((28 + 4 * (V*D + L*(D + D*D + 2*D*KVD + D*D + D + 3*D*F) + D + 2*S_*HD/2 + V*D)))
[ "$(stat -c %s "$T/m.bin")" -eq "$want" ] || fail "export size $(stat -c %s "$T/m.bin") != $want"
[ "$(stat -c %s "$T/m.tokenizer.bin")" -eq $((4 + 256 * 9)) ] || fail "tokenizer size"
[ "$(od -An -t d4 -N 28 "$T/m.bin" | xargs)" = "64 160 2 4 2 -256 64" ] || fail "header"
expect_rc 2 $X export --store "$S" --version 1 "$T/m2.bin"
expect_rc 1 $X export --store "$S" --version 9 --format llama2c "$T/m3.bin"
echo "kernels CLI: v0 loss $l0, v1 loss $l1"
