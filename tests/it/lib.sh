# Sourced by the integration scripts: the repository root as working directory, X the
# xffl binary of the build under test ($XFFL_BUILD, default build/), the HDF5 plugin
# for outside tools (h5dump, h5py), T a temporary directory removed on exit, fail() and
# expect_rc (a command's exit code, its output left in $T/out and $T/err).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect_rc() { # want cmd...
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ "$rc" -eq "$want" ] || { cat "$T/out" "$T/err"; fail "'$*' exited $rc, expected $want"; }
}
