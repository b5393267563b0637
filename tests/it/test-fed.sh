#!/usr/bin/env bash
# Federation through the CLI on a file:// store (issue 7, points 2 and 4, fast part):
# concurrent train jobs, aggregate, no-op and not-yet exit codes, unknown facility,
# reproduce (aggregation and --train) for every round, two aggregators at once
# (identical bytes), different quorums at once (consistent store), verify --all, gc.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
S=$T/store
latest() { cut -d' ' -f1 "$S/LATEST"; }

if ! $X data pack --help >/dev/null 2>&1 || ! $X train --help >/dev/null 2>&1; then
  echo "FAIL: xffl data pack / train --help failed"; exit 1
fi
pack_alpha_beta
ls "$T"/data/alpha/*_train_*.bin >/dev/null || fail "data pack made no train shard"

$X init --store "$S" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 --seq-len 32 \
  --lr 1e-3 --seed 5 >/dev/null 2>&1
train() { # facility [extra...]
  local f=$1; shift
  $X train --store "$S" --facility "$f" --data "$T/data/$f/*_train_*.bin" --state "$T/state/$f" --threads 1 "$@"
}

# round 1: both facilities at once, then the aggregator
train alpha >"$T/a.out" 2>"$T/a.err" & pa=$!
train beta >"$T/b.out" 2>"$T/b.err" & pb=$!
wait $pa || { cat "$T/a.err"; fail "train alpha"; }
wait $pb || { cat "$T/b.err"; fail "train beta"; }
grep -q '^round 1 a1 rounds/r000001/alpha/a1/COMMIT-' "$T/a.out" || { cat "$T/a.out"; fail "train output"; }
expect_rc 0 train alpha            # already pending: a no-op that says so
grep -q 'nothing to do' "$T/err" || fail "no-op not reported"
expect_rc 75 train alpha --round 3  # base v2 not there yet
expect_rc 2 $X train --store "$S" --facility gamma --data "$T/data/alpha/*_train_*.bin"
grep -q "gamma" "$T/err" || fail "unknown facility not named"
expect_rc 75 $X aggregate --store "$S" --round 2
expect_rc 0 $X aggregate --store "$S" --round 1
[ "$(latest)" = v000001 ] || fail "LATEST is $(latest) after round 1"
expect_rc 0 $X aggregate --store "$S" --round 1   # exists already
grep -q already "$T/out" || fail "aggregate --round 1 again did not say 'already'"

# round 2 (cursor resumes from --state), round 3 with two aggregators at once
train alpha --round 2 >/dev/null 2>&1 & pa=$!
train beta --round 2 >/dev/null 2>&1 & pb=$!
wait $pa && wait $pb || fail "train round 2"
[ "$(latest)" = v000001 ] || fail "LATEST moved without an aggregator"
$X aggregate --store "$S" --round 2 >/dev/null 2>&1 || fail "aggregate round 2"
train alpha --round 3 >/dev/null 2>&1 & pa=$!
train beta --round 3 >/dev/null 2>&1 & pb=$!
wait $pa && wait $pb || fail "train round 3"
$X aggregate --store "$S" --round 3 --threads 1 >"$T/ag1" 2>&1 & p1=$!
$X aggregate --store "$S" --round 3 --threads 2 >"$T/ag2" 2>&1 & p2=$!
wait $p1 || { cat "$T/ag1"; fail "aggregator 1"; }
wait $p2 || { cat "$T/ag2"; fail "aggregator 2"; }
n=$(ls "$S"/versions/v000003/ | grep -c '^INDEX-')
[ "$n" -eq 1 ] || fail "two aggregators on the same deltas wrote $n different INDEXes"
[ "$(latest)" = v000003 ] || fail "LATEST is $(latest) after round 3"

# reproduce every round, and alpha's training of round 2 and 3
for r in 1 2 3; do
  expect_rc 0 $X reproduce --store "$S" --round $r
  grep -q "^ok round $r" "$T/out" || fail "reproduce round $r"
done
expect_rc 0 $X reproduce --store "$S" --round 3 --train --facility alpha --data "$T/data/alpha/*_train_*.bin" \
  --state "$T/state/alpha" --threads 1
grep -q "delta reproduced" "$T/out" || fail "reproduce --train"

# round 4: different quorums at once; beta arrives late
train alpha --round 4 >/dev/null 2>&1 || fail "train alpha round 4"
$X aggregate --store "$S" --round 4 --quorum 1 >"$T/q1" 2>&1 & p1=$!
$X aggregate --store "$S" --round 4 --quorum 2 --deadline 20 --poll 0.2 >"$T/q2" 2>&1 & p2=$!
train beta --round 4 >/dev/null 2>&1 || true   # no-op exit 0 if v4 already exists
wait $p1 || { cat "$T/q1"; fail "quorum-1 aggregator"; }
wait $p2 || { cat "$T/q2"; fail "quorum-2 aggregator"; }
[ "$(latest)" = v000004 ] || fail "LATEST is $(latest) after round 4"
expect_rc 0 $X verify --store "$S"            # LATEST's version is complete
expect_rc 0 $X verify --all --store "$S"
grep -q '^ok:' "$T/out" || fail "verify --all"

# init --from: a new federation (different facilities and algorithm) starting from v4's
# model, every tensor digest equal, its INDEX naming the source; a different model refused
S2=$T/store-from
expect_rc 0 $X init --store "$S2" --model tiny --facilities gamma --algo fedavg --local-steps 2 --batch 2 \
  --seq-len 32 --from "$S" --from-version 4
idx4=$S/versions/v000004/$(cut -d' ' -f2 "$S/LATEST")   # round 4's quorums left two INDEXes
diff <(grep '^tensor model/' "$idx4") <(grep -h '^tensor model/' "$S2"/versions/v000000/INDEX-*) \
  || fail "init --from: version 0's tensors differ from the source version's"
grep -q "^init_from=$S v000004 versions/v000004/$(cut -d' ' -f2 "$S/LATEST") " "$S2"/versions/v000000/INDEX-* || fail "init --from: no init_from line"
expect_rc 0 $X verify --store "$S2"
$X train --store "$S2" --facility gamma --data "$T/data/alpha/*_train_*.bin" --threads 1 >/dev/null 2>&1 \
  || fail "train on a federation made with init --from"
expect_rc 0 $X aggregate --store "$S2"
expect_rc 65 $X init --store "$T/store-bad" --model small --from "$S"
grep -q "is not --model small" "$T/err" || { cat "$T/err"; fail "init --from with another model: no clear error"; }
[ ! -e "$T/store-bad" ] || fail "init --from with another model wrote a store"
# init --from a llama2.c checkpoint: export v4, import it (same tensor digests); a file
# whose classifier is its embedding (positive vocab) and a truncated file
expect_rc 0 $X export --store "$S" --version 4 --format llama2c "$T/v4.bin"
expect_rc 0 $X init --store "$T/store-l2c" --model tiny --facilities gamma --from "$T/v4.bin"
diff <(grep '^tensor model/' "$idx4") <(grep -h '^tensor model/' "$T"/store-l2c/versions/v000000/INDEX-*) \
  || fail "init --from a llama2.c file: tensors differ from the version exported"
grep -q "^init_from=$T/v4.bin llama2c $(sha256sum "$T/v4.bin" | cut -c1-64)$" "$T"/store-l2c/versions/v000000/INDEX-* \
  || fail "init --from a llama2.c file: no init_from line with the file's digest"
/usr/bin/python3 - "$T/v4.bin" "$T/shared.bin" "$T/cut.bin" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
h = list(struct.unpack("7i", b[:28])); v, d = -h[5], h[0]
h[5] = v  # positive: the classifier is tok_embeddings, so the file has no output tensor
open(sys.argv[2], "wb").write(struct.pack("7i", *h) + b[28:len(b) - 4 * v * d])
open(sys.argv[3], "wb").write(b[:-100])
PY
expect_rc 0 $X init --store "$T/store-shared" --model tiny --from "$T/shared.bin"
emb=$(grep -h '^tensor model/tok_embeddings.weight ' "$T"/store-shared/versions/v000000/INDEX-* | cut -d' ' -f5)
out=$(grep -h '^tensor model/output.weight ' "$T"/store-shared/versions/v000000/INDEX-* | cut -d' ' -f5)
[ -n "$emb" ] && [ "$emb" = "$out" ] || fail "init --from a shared-classifier llama2.c file: output.weight is not the embedding"
expect_rc 65 $X init --store "$T/store-cut" --model tiny --from "$T/cut.bin"
grep -q "cut.bin: .* bytes, but its header" "$T/err" || { cat "$T/err"; fail "truncated llama2.c file: no clear error"; }

# status and gc
$X status --store "$S" --json >"$T/st.json"
grep -q '"round": 4, "done": true' "$T/st.json" || { cat "$T/st.json"; fail "status --json"; }
expect_rc 0 $X gc --store "$S" --keep 2 --grace 0
[ -z "$(ls "$S/versions/v000001" 2>/dev/null)" ] || fail "gc kept v1"
[ -d "$S/versions/v000004" ] || fail "gc removed LATEST's version"
expect_rc 0 $X verify --all --store "$S"
grep -q ' 0 orphans' "$T/out" || { cat "$T/out" "$T/err"; fail "orphans left after gc"; }
expect_rc 0 $X reproduce --store "$S" --round 4
echo "federation CLI flow ok"
