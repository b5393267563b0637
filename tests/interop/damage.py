"""Damages a copy of an xffl part file in one named way, for the exit-code tests.
usage: damage.py MODE SRC OUT   (MODE: flip format missing shape digest)
Needs /usr/bin/python3 with h5py; HDF5_PLUGIN_PATH is not needed (no decoding)."""
import shutil
import sys

import h5py

mode, src, out = sys.argv[1:4]
shutil.copyfile(src, out)
W = "model/layers.1.feed_forward.w1.weight"
if mode == "flip":
    with h5py.File(out, "r") as h:
        info = h[W].id.get_chunk_info(0)
    with open(out, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        b = f.read(1)
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes([b[0] ^ 0x10]))
    print(W)
elif mode == "format":
    with h5py.File(out, "r+") as h:
        h.attrs["format"] = "xffl-something-else"
    print("format")
elif mode == "missing":
    with h5py.File(out, "r+") as h:
        del h["model/norm.weight"]
    print("model/norm.weight")
elif mode == "shape":
    with h5py.File(out, "r+") as h:
        del h["model/layers.0.attention.wk.weight"]
        h.copy("model/layers.0.attention.wq.weight", "model/layers.0.attention.wk.weight")
    print("model/layers.0.attention.wk.weight")
elif mode == "digest":
    with h5py.File(out, "r+") as h:
        h["model/output.weight"].attrs["sha256"] = "0" * 64
    print("model/output.weight")
else:
    sys.exit("unknown mode " + mode)
