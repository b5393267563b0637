#!/usr/bin/env bash
# Other HDF5 tools read xffl checkpoints through build/plugins/libh5zstd.so:
# h5dump -d prints a weight's values; h5py (Debian's /usr/bin/python3) reads every
# tensor equal to what C wrote, and writes a part through the plugin that C reads back.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# Under `make asan` the plugin is built with the sanitizers, which h5dump and python
# cannot load: give the outside tools a plain build of the same sources.
if ldd "$B/plugins/libh5zstd.so" 2>/dev/null | grep -q 'libasan\|libubsan'; then
  mkdir -p "$T/plugins"
  cc -std=c11 -O2 -fPIC -shared -I. $(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial) \
    -o "$T/plugins/libh5zstd.so" libckpt/plugin/*.c libckpt/zstd_filter.c \
    $(pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5) -lzstd
  export HDF5_PLUGIN_PATH=$T/plugins
  echo "sanitizer build: h5dump/h5py use a plain build of the plugin in $T/plugins"
fi
$X init --store "$T/s" --model tiny --seed 3 >/dev/null 2>&1
part=$(ls "$T"/s/versions/v000000/part-000-*.h5)
index=$(ls "$T"/s/versions/v000000/INDEX-*)

if command -v h5dump >/dev/null; then
  h5dump -d /model/norm.weight "$part" >"$T/dump"
  grep -q '(0): 1, 1, 1, 1' "$T/dump"
  h5dump -d /model/layers.0.attention.wq.weight -c 1,4 "$part" >"$T/dump2"
  grep -E '^\s+\(0,0\): -?0\.0[0-9]+' "$T/dump2" >/dev/null || { cat "$T/dump2"; exit 1; }
  # without the plugin, HDF5 cannot decode: proves the plugin is what h5dump used
  if HDF5_PLUGIN_PATH=/nonexistent h5dump -d /model/norm.weight "$part" 2>/dev/null | grep -q '(0): 1, 1'; then
    echo "FAIL: h5dump decoded without the plugin"; exit 1
  fi
  h5dump -H "$part" >"$T/head"
  grep -q 'ATTRIBUTE "format"' "$T/head"
  echo "h5dump: values printed through the plugin"
else
  echo "SKIP: h5dump not installed (hdf5-tools)"
fi

if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
  /usr/bin/python3 tests/interop/h5py_interop.py read "$part" "$index"
  /usr/bin/python3 tests/interop/h5py_interop.py write "$part" "$T/py.h5"
  $X verify "$T/py.h5"
  # h5py chose its own chunk shape: C read it through HDF5's pipeline and our filter
  $X show --json "$T/py.h5" | grep '"parameters":119104' >/dev/null
else
  echo "SKIP: /usr/bin/python3 has no h5py/numpy (python3-h5py)"
fi
echo "test-ckpt-interop: ok"
