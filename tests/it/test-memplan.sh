#!/usr/bin/env bash
# train --dry-run (issue 15's memory plan) through the CLI: LLaMA-2 7b at T = 4096 with
# recomputation fits 4 x 64 GiB and 8 x 40 GiB GPUs (ZeRO-2), and does not without
# recomputation; the fused attention has no T^2 term, the reference one names it; the JSON adds up; --store takes the
# model and batch from federation.h5; usage errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
P7="--model 7b --backend cuda --batch 1 --seq-len 4096"

expect_rc 0 $X train --dry-run $P7 --recompute --ranks 4 --device-memory 64G
tail -1 "$T/out" | grep -q '^fits (' || fail "7b on 4 x 64G: $(tail -1 "$T/out")"
grep -q '^memory plan per rank: 7b (6738415616 parameters), cuda bf16, 4 ranks (ZeRO-2), micro-batch 1 x 4096 tokens, recompute$' "$T/out" ||
  fail "header: $(head -1 "$T/out")"
for k in parameters gradients 'optimizer state' activations communication runtime total; do
  grep -q "^  $k " "$T/out" || fail "no '$k' line"
done
grep -q 'bf16 weights, replicated  *12.55 GiB' "$T/out" || fail "bf16 weights line"
grep -q 'AdamW m, v (fp32), 1/4 shard  *12.55 GiB' "$T/out" || fail "moments line"
grep -q '^  (the target layout, docs/design.md "Memory plan"' "$T/out" || fail "cuda ZeRO-2 plan not labelled as the target"
expect_rc 0 $X train --dry-run $P7 --recompute --ranks 8 --device-memory 40G
tail -1 "$T/out" | grep -q '^fits (' || fail "7b on 8 x 40G: $(tail -1 "$T/out")"
# without recomputation 7b does not fit 8 x 40G; the fused attention (bf16 default) keeps no
# T^2 term, the three-GEMM one (XFFL_CUDA_ATTENTION=reference) 2 GiB of probabilities a layer
expect_rc 0 $X train --dry-run $P7 --ranks 8 --device-memory 40G
tail -1 "$T/out" | grep -q '^does not fit: .* short$' || fail "7b without recompute: $(tail -1 "$T/out")"
grep -q 'fused attention: bf16 q, k, v (N\*D + 2 x N\*KV\*hd), lse (N\*H) x 32 ' "$T/out" || fail "no fused attention line"
! grep -q 'T^2' "$T/out" || fail "a T^2 term in the fused plan: $(grep 'T^2' "$T/out")"
XFFL_CUDA_ATTENTION=reference expect_rc 0 $X train --dry-run $P7 --ranks 8 --device-memory 40G
grep -q 'attention probabilities P (B\*H\*T^2) x 32  *64.00 GiB' "$T/out" || fail "the T^2 term is not shown"
# one 141 GB H200 holds 7b at 1 x 4096 with recomputation (make bench-gpu's 7b configuration)
expect_rc 0 $X train --dry-run $P7 --recompute --device-memory 141G
tail -1 "$T/out" | grep -q '^fits (' || fail "7b on one 141G GPU with recompute: $(tail -1 "$T/out")"
# today's single-GPU layout (18 bytes per parameter) does not fit one 64 GiB GPU
expect_rc 0 $X train --dry-run $P7 --recompute --device-memory 64G
tail -1 "$T/out" | grep -q '^does not fit' || fail "7b on one GPU fits?"

# JSON: the items add up to the kinds, the kinds to the total
expect_rc 0 $X --json train --dry-run $P7 --recompute --ranks 4 --device-memory 64G
python3 - "$T/out" <<'PY' || fail "json: $(cat "$T/out")"
import json, sys
p = json.load(open(sys.argv[1]))
kinds = {}
for it in p["items"]:
    kinds[it["kind"]] = kinds.get(it["kind"], 0) + it["bytes"]
assert all(kinds.get(k, 0) == v for k, v in p["per_rank"].items()), (kinds, p["per_rank"])
assert sum(p["per_rank"].values()) == p["total"]
assert p["fits"] is True and p["ranks"] == 4 and p["zero"] == 2 and p["device_memory"] == 64 << 30
assert p["layout"] == "target", p["layout"]
PY
# the cpu plan is what the loop allocates: backend weights and gradient full, host shards
expect_rc 0 $X --json train --dry-run --model base --batch 1 --seq-len 1024 --ranks 2 --threads 1
python3 - "$T/out" <<'PY' || fail "cpu 2-rank json: $(cat "$T/out")"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["layout"] == "allocated", p["layout"]
what = [it["what"] for it in p["items"]]
assert "fp32 gradients in the backend, full" in what and "host AdamW m, v (fp32), shard" in what, what
PY

# from a store: the federation's model, batch 4 and seq_len 64 (tiny's defaults)
expect_rc 0 $X init --store "$T/s" --model tiny
expect_rc 0 $X train --dry-run --store "$T/s" --ranks 2 --threads 1 --device-memory 1G
grep -q '^memory plan per rank: tiny (.*), cpu fp32, 2 ranks (ZeRO-2), micro-batch 2 x 64 tokens$' "$T/out" ||
  fail "store plan: $(head -1 "$T/out")"
tail -1 "$T/out" | grep -q '^fits (' || fail "tiny does not fit 1G?"

expect_rc 0 $X train --dry-run --help
grep -q -- '--device-memory' "$T/out" || fail "dry-run help"
expect_rc 0 $X train --help
grep -q -- '--dry-run' "$T/out" || fail "train help does not name --dry-run"
expect_rc 2 $X train --dry-run
grep -q -- '--model PRESET or --store URL' "$T/err" || fail "no model: $(cat "$T/err")"
expect_rc 2 $X train --dry-run --model 7b --backend cuda
grep -q -- '--device-memory' "$T/err" || fail "cuda without memory: $(cat "$T/err")"
expect_rc 2 $X train --dry-run --model 7b --store "$T/s"
expect_rc 2 $X train --dry-run --model 7b --zero 3
expect_rc 2 $X train --dry-run --model tiny --seq-len 65
expect_rc 2 $X train --dry-run --model tiny --backend tpu
echo ok
