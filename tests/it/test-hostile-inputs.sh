#!/usr/bin/env bash
# Issue 14, "other inputs", through the CLI: data pack from a pipe (ftell was -1: a heap
# overflow), --data /dev/zero (read until memory ran out), a cursor of INT64_MAX in
# --state (read out of bounds), a symlinked round folder (train wrote outside the store),
# two train jobs of one facility at once (both committed into one attempt).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
run() { # want, then the command
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ $rc -eq "$want" ] || { cat "$T/out" "$T/err"; fail "'$*' exited $rc, wanted $want"; }
}
G=/usr/share/common-licenses/GPL-3

$X data pack "$G" --out "$T/file" >/dev/null
cat "$G" | $X data pack /dev/stdin --out "$T/pipe" >/dev/null || fail "data pack /dev/stdin"
cmp "$T/file/data_train_0000.bin" "$T/pipe/data_train_0000.bin" || fail "data pack from a pipe differs from the file"

S=$T/s
$X init --store "$S" --model tiny --facilities a,b --local-steps 2 --batch 2 --seq-len 16 >/dev/null 2>&1
D="$T/file/*_train_*.bin"
run 65 timeout 60 $X train --store "$S" --facility a --data /dev/zero --state "$T/z"
grep -q "shard /dev/zero: not a regular file" "$T/err" || { cat "$T/err"; fail "--data /dev/zero not refused by its header"; }

mkdir -p "$T/big"
echo 9223372036854775807 >"$T/big/cursor"
run 65 $X train --store "$S" --facility a --data "$D" --state "$T/big"
grep -q "cursor 9223372036854775807 out of range" "$T/err" || { cat "$T/err"; fail "cursor not refused"; }

# two jobs of facility a at once: one COMMIT in a1, whoever lost says so
$X -q train --store "$S" --facility a --data "$D" --state "$T/a1" >"$T/j1.out" 2>"$T/j1.err" & p1=$!
$X -q train --store "$S" --facility a --data "$D" --state "$T/a2" >"$T/j2.out" 2>"$T/j2.err" & p2=$!
r1=0; r2=0; wait $p1 || r1=$?; wait $p2 || r2=$?
n=$(ls "$S"/rounds/r000001/a/a1/ | grep -c '^COMMIT-')
[ "$n" -eq 1 ] || fail "two train jobs left $n COMMITs in one attempt"
[ $r1 -eq 0 ] || [ $r2 -eq 0 ] || { cat "$T"/j*.err; fail "neither train job succeeded"; }
for j in 1 2; do
  eval "r=\$r$j"
  [ "$r" -eq 0 ] || grep -q "committed this attempt first" "$T/j$j.err" || { cat "$T/j$j.err"; fail "job $j: exit $r"; }
done

$X -q train --store "$S" --facility b --data "$D" --state "$T/b" >/dev/null
$X -q aggregate --store "$S" >/dev/null
mkdir "$T/outside"
ln -s "$T/outside" "$S/rounds/r000002"
run 65 $X train --store "$S" --facility a --data "$D" --state "$T/a1"
grep -q "rounds/r000002 is a symbolic link" "$T/err" || { cat "$T/err"; fail "symlinked round not named"; }
[ -z "$(ls -A "$T/outside")" ] || fail "train wrote outside the store: $(ls -R "$T/outside")"
echo "pipe, /dev/zero, cursor, symlink and concurrent train refused or handled"
