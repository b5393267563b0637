"""h5py <-> xffl interop through the zstd plugin (filter 32015).

Run with Debian's /usr/bin/python3 (h5py, numpy) and HDF5_PLUGIN_PATH=<build>/plugins.
  read PART           read every /model tensor C wrote; each must hash to its sha256
                      attribute (what C computed from the values it wrote) and to the
                      INDEX line next to it; prints the first values of norm.weight
  write SRC OUT       rewrite part SRC as OUT with h5py: same attributes and values,
                      h5py's own chunking, filters shuffle + 32015 (level 5) through the
                      plugin; C must read it back (`xffl verify OUT`)
Exits non-zero with a message on any mismatch.
"""
import hashlib
import os
import sys

import h5py
import numpy as np


def read(part, index):
    tensors = {}
    with open(index) as f:
        for line in f:
            if line.startswith("tensor "):
                _, name, dtype, shape, sha = line.split()
                tensors[name] = (dtype, shape, sha)
    n = 0
    with h5py.File(part, "r") as h:
        assert h.attrs["format"] == b"xffl-checkpoint" or h.attrs["format"] == "xffl-checkpoint", h.attrs["format"]
        for name, ds in h["model"].items():
            v = ds[...]
            assert v.dtype == np.float32, (name, v.dtype)
            assert "32015" in ds._filters and "shuffle" in ds._filters, (name, ds._filters)
            digest = hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
            attr = ds.attrs["sha256"]
            attr = attr.decode() if isinstance(attr, bytes) else str(attr)
            if digest != attr:
                sys.exit(f"{part}: model/{name}: h5py read values hashing to {digest[:12]}, C wrote {attr[:12]}")
            dtype, shape, sha = tensors["model/" + name]
            if sha != digest or shape != "x".join(map(str, v.shape)):
                sys.exit(f"{part}: model/{name}: INDEX says {shape} {sha[:12]}, h5py read {v.shape} {digest[:12]}")
            n += 1
        print("norm.weight[:4] =", h["model/norm.weight"][:4].tolist())
        print("tok_embeddings[0,:3] =", h["model/tok_embeddings.weight"][0, :3].tolist())
    print(f"h5py read {n} tensors equal to what C wrote")


def write(src, out):
    with h5py.File(src, "r") as s, h5py.File(out, "w") as d:
        for k, v in s.attrs.items():
            d.attrs[k] = v
        for gname in ("model",):
            g = d.create_group(gname)
            for name, ds in s[gname].items():
                v = ds[...]
                nd = g.create_dataset(name, data=v, chunks=True, shuffle=True, compression=32015,
                                      compression_opts=(5,))
                nd.attrs["sha256"] = hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
    with h5py.File(out, "r") as d:
        ds = d["model/tok_embeddings.weight"]
        assert "32015" in ds._filters, ds._filters
        print(f"h5py wrote {out}: chunks {ds.chunks}, filters {list(ds._filters)}")


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: h5py_interop.py read PART INDEX | write SRC OUT")
