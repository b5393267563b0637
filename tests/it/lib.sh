# Sourced by the integration scripts: the repository root as working directory, X the
# xffl binary of the build under test ($XFFL_BUILD, default build/), the HDF5 plugin
# for outside tools (h5dump, h5py), T a temporary directory removed on exit (TMPDIR is
# inside it), fail() and
# expect_rc (a command's exit code, its output left in $T/out and $T/err).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# temporary files of the xffl processes a test starts (xffl_mkdtemp honours TMPDIR) go
# with T, also those of a process the test kills, which cannot remove its own
mkdir -p "$T/tmp" && export TMPDIR=$T/tmp
fail() { echo "FAIL: $*"; exit 1; }
expect_rc() { # want cmd...
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ "$rc" -eq "$want" ] || { cat "$T/out" "$T/err"; fail "'$*' exited $rc, expected $want"; }
}
# A result-changing setting: versions 1..N of store A (with it) and store B (without)
# must differ, and store A's aggregation must reproduce round by round.
expect_setting_changes_and_reproduces() { # store-with store-without rounds what
  local a=$1 b=$2 n=$3 what=$4 v x y
  for v in $(seq 1 "$n"); do
    x=$(basename "$(ls "$a"/versions/v00000$v/INDEX-*)")
    y=$(basename "$(ls "$b"/versions/v00000$v/INDEX-*)")
    [ "$x" != "$y" ] || fail "version $v is the same with and without $what ($x)"
  done
  expect_rc 0 $X verify --all --store "$a"
  for v in $(seq 1 "$n"); do
    expect_rc 0 $X reproduce --store "$a" --round "$v"
    grep -q "^ok round $v" "$T/out" || fail "reproduce round $v with $what"
  done
}
# Two facilities' corpora, alpha (GPL-3) and beta (Apache-2.0), packed into
# $T/data/{alpha,beta} with 10 % held out.
# A manifest's header value: header FILE KEY.
header() { grep "^$2=" "$1" | cut -d= -f2; }
# The COMMIT of the latest attempt: commit_of STORE-DIR-UNDER-T ROUND FACILITY.
commit_of() { ls "$T/$1/rounds/r$(printf %06d "$2")/$3/a"*/COMMIT-* | tail -1; }
# A manifest's tensor lines (name, shape, digest): what two deltas or versions with the
# same bits share whatever their timing headers say.
tensors() { grep '^tensor ' "$1"; }
pack_alpha_beta() {
  local f
  mkdir -p "$T/txt/alpha" "$T/txt/beta"
  cp /usr/share/common-licenses/GPL-3 "$T/txt/alpha/gpl.txt"
  cp /usr/share/common-licenses/Apache-2.0 "$T/txt/beta/apache.txt"
  for f in alpha beta; do $X data pack "$T/txt/$f"/* --out "$T/data/$f" --val-fraction 0.1 >/dev/null 2>&1; done
}
# A tiny federation of alpha and beta in store $T/$1 (diloco, int4 deltas with their
# residual, AdamW state kept: every piece of facility state in play), and one
# facility's job on it with its state in $T/state-$1/<facility>.
init_ab() { # store
  $X init --store "$T/$1" --model tiny --facilities alpha,beta --algo diloco --local-steps 3 --batch 2 \
    --seq-len 32 --lr 1e-3 --seed 5 --encoding int4 --keep-inner-state >/dev/null 2>&1 || fail "init $1"
}
train_ab() { # store facility [extra...]
  local st=$1 f=$2; shift 2
  $X train --store "$T/$st" --facility "$f" --data "$T/data/$f/*_train_*.bin" --state "$T/state-$st/$f" --threads 1 "$@"
}
