# Sourced by the integration scripts: the repository root as working directory, X the
# xffl binary of the build under test ($XFFL_BUILD, default build/), the HDF5 plugin
# for outside tools (h5dump, h5py), T a temporary directory removed on exit, fail().
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
export HDF5_PLUGIN_PATH=$PWD/$B/plugins
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
