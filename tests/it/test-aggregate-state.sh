#!/usr/bin/env bash
# The aggregation job's own cache (aggregate --state DIR, pipelines/aggregate.h): the
# version a job writes (model and diloco's momentum) is kept there, and the next job,
# whose base it is, reads it from there: no version part downloaded ("base": "cached"),
# the same version bits as aggregations without it; a damaged cache, or one of another
# version, falls back to the store (full, or replayed), named, never wrong bits; one
# that cannot be written is a warning after the version is out. A facility retrying a
# round whose base its --state holds downloads nothing either.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$T/config}

pack_alpha_beta
init() { # run
  $X init --store "$T/$1" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
    --seq-len 32 --lr 1e-3 --seed 5 --encoding int4 >/dev/null 2>&1 || fail "init $1"
}
train() { # run facility [extra...]
  local run=$1 f=$2; shift 2
  $X train --store "$T/$run" --facility "$f" --data "$T/data/$f/*_train_*.bin" --state "$T/state-$run/$f" \
    --threads 1 "$@"
}
json() { grep -o "\"$1\": *\"*[a-z0-9]*" "$2" | sed 's/.*: *"*//'; }
agg() { # run [extra...]: aggregate, its --json object in $T/agg.json
  local run=$1; shift
  $X --json aggregate --store "$T/$run" --no-update --threads 2 "$@" >"$T/agg.json" 2>"$T/agg.err" ||
    { cat "$T/agg.err"; fail "aggregate $run"; }
}

init cache; init plain
for r in 1 2 3; do
  for run in cache plain; do
    for f in alpha beta; do train "$run" "$f" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "train $run $f r$r"; }; done
  done
  agg cache --state "$T/agg-state"
  want=$([ $r -eq 1 ] && echo full || echo cached)
  [ "$(json base "$T/agg.json")" = "$want" ] || { cat "$T/agg.json" "$T/agg.err"; fail "r$r: base $(json base "$T/agg.json"), want $want"; }
  [ $r -eq 1 ] || [ "$(json base_bytes "$T/agg.json")" = 0 ] || fail "r$r: cached base, $(json base_bytes "$T/agg.json") bytes"
  agg plain
  [ "$(json base "$T/agg.json")" = full ] || fail "r$r without --state: base $(json base "$T/agg.json")"
  echo "round $r: base $want with --state, full ($(json base_bytes "$T/agg.json") bytes) without"
  diff <(grep '^tensor ' "$T"/cache/versions/v00000$r/INDEX-*) <(grep '^tensor ' "$T"/plain/versions/v00000$r/INDEX-*) \
    >/dev/null || fail "v$r: tensor digests differ with --state"
done
for c in base outer; do
  grep -q "^v000003 versions/v000003/INDEX-" "$T/agg-state/$c.ref" || fail "$c.ref: $(cat "$T/agg-state/$c.ref")"
done
expect_rc 0 $X verify --all --store "$T/cache"

# one bit of the cached momentum: named, the base read from the store, the same version
for f in alpha beta; do
  train cache "$f" >/dev/null 2>&1 || fail "train cache $f r4"
  train plain "$f" >/dev/null 2>&1 || fail "train plain $f r4"
done
printf '\1' | dd of="$T/agg-state/outer.f32" bs=1 seek=100 conv=notrunc 2>/dev/null
agg cache --state "$T/agg-state" --verbose
grep -q "warning: $T/agg-state/outer.f32: digest .*damaged cache" "$T/agg.err" || { cat "$T/agg.err"; fail "damaged outer.f32 not named"; }
[ "$(json base "$T/agg.json")" = full ] || fail "damaged cache: base $(json base "$T/agg.json")"
agg plain
diff <(grep '^tensor ' "$T"/cache/versions/v000004/INDEX-*) <(grep '^tensor ' "$T"/plain/versions/v000004/INDEX-*) \
  >/dev/null || fail "v4 after a damaged cache: tensor digests differ"
grep -q "^v000004 " "$T/agg-state/outer.ref" || fail "the cache did not move on to v4"

# the cache one version behind (another aggregator wrote the last one): replayed
step() { # round $1 of both runs' facilities
  for f in alpha beta; do
    train cache "$f" >/dev/null 2>&1 || fail "train cache $f r$1"
    train plain "$f" >/dev/null 2>&1 || fail "train plain $f r$1"
  done
}
step 5; agg cache --state "$T/agg-state"; agg plain
step 6; cp -a "$T/agg-state" "$T/agg-old"   # holds v5
agg cache --state "$T/agg-state"; agg plain
step 7; agg cache --state "$T/agg-old"      # the base is v6
[ "$(json base "$T/agg.json")" = replay ] || { cat "$T/agg.err"; fail "cache of v5, base v6: base $(json base "$T/agg.json")"; }
agg plain
diff <(grep '^tensor ' "$T"/cache/versions/v000007/INDEX-*) <(grep '^tensor ' "$T"/plain/versions/v000007/INDEX-*) \
  >/dev/null || fail "v7 from a replayed base: tensor digests differ"

# a cache that cannot be written (base.ref a directory): the version is out, the job
# succeeds with a warning, and the next job downloads its base
step 8; rm -rf "$T/agg-bad"; mkdir -p "$T/agg-bad/base.ref/x"
agg cache --state "$T/agg-bad"
grep -q "warning: .*base.ref.*the next aggregation downloads v000008" "$T/agg.err" || { cat "$T/agg.err"; fail "no warning for an unwritable cache"; }
ls "$T"/cache/versions/v000008/INDEX-* >/dev/null || fail "no v8 after an unwritable cache"
expect_rc 2 $X aggregate --store "$T/cache" --state "$T/agg.json"
grep -q "agg.json exists and is not a directory" "$T/err" || fail "--state FILE: $(cat "$T/err")"

# a facility retrying a round whose base its --state holds (its attempt was rejected;
# --insecure, so the test can write the REJECTED aggregate would)
$X init --insecure --store "$T/retry" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
  --seq-len 32 --lr 1e-3 --seed 5 --encoding int4 >/dev/null 2>&1 || fail "init retry"
for f in alpha beta; do train retry "$f" >/dev/null 2>&1 || fail "train retry $f r1"; done
$X aggregate --store "$T/retry" >/dev/null 2>&1 || fail "aggregate retry r1"
train retry alpha >/dev/null 2>&1 || fail "train retry alpha r2"
ck=$(commit_of retry 2 alpha)
printf 'commit=%s\nreason=refused by the test\n' "${ck#"$T/retry/"}" >"$T/rej"
mv "$T/rej" "$(dirname "$ck")/REJECTED-$(sha256sum "$T/rej" | cut -c1-12)"
expect_rc 0 train retry alpha
ck2=$(commit_of retry 2 alpha)
[ "$ck2" != "$ck" ] || { cat "$T/err"; fail "no second attempt: $ck"; }
[ "$(header "$ck2" download)" = cached ] || { cat "$T/err"; fail "retry: download=$(header "$ck2" download), want cached"; }
[ "$(header "$ck2" download_bytes)" = 0 ] || fail "retry: $(header "$ck2" download_bytes) bytes downloaded"
echo "a retried round: $(basename "$(dirname "$ck2")") from the cached base, 0 bytes"
echo "ok"
