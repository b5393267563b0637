"""Crafted HDF5 parts for tests/it/test-hostile-parts.sh (issue 14, "crashes on damaged HDF5").
usage: hostile_part.py chunk SRC OUT DATASET N  -- the dataset's layout message declares chunks whose
           last dimension is N (a 32x64 tensor with 32x65600 chunks crashed H5Dread)
       hostile_part.py forge MANIFEST PART NEWPART -- PART replaced by NEWPART: the object renamed
           to its digest, the COMMIT's (or INDEX's, and LATEST) object line and name rewritten (what a
           facility holding a valid key can send); prints the new manifest path
Needs /usr/bin/python3 with h5py."""
import hashlib
import os
import shutil
import struct
import sys

import h5py

mode = sys.argv[1]
if mode == "chunk":
    src, out, name, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    with h5py.File(src, "r") as h:
        ch, es = h[name].chunks, h[name].dtype.itemsize
        addr = h[name].id.get_offset()  # None for chunked; the layout message is found by bytes
    b = bytearray(open(src, "rb").read())
    pat = b"".join(struct.pack("<I", c) for c in ch) + struct.pack("<I", es)
    # the dataset's layout message: the chunk dims (4 bytes each) then the element size;
    # several datasets of one shape share the pattern: change every one
    i = b.find(pat)
    assert i >= 0, "layout message not found"
    while i >= 0:
        b[i + 4 * (len(ch) - 1):i + 4 * len(ch)] = struct.pack("<I", n)
        i = b.find(pat, i + 1)
    open(out, "wb").write(bytes(b))
elif mode == "forge":
    commit, part, newpart = sys.argv[2:5]
    d = os.path.dirname(commit)
    data = open(newpart, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    old = os.path.basename(part)
    new = old[:len("part-000-")] + sha[:12] + ".h5"
    os.remove(part)
    open(os.path.join(d, new), "wb").write(data)
    lines = open(commit).read().split("\n")
    for k, l in enumerate(lines):
        if l.startswith("object ") and l.split(" ")[1].endswith(old):
            key = l.split(" ")[1][:-len(old)] + new
            lines[k] = "object %s %d %s" % (key, len(data), sha)
    text = "\n".join(lines).encode()
    os.remove(commit)
    stem = os.path.basename(commit).split("-")[0]
    digest = hashlib.sha256(text).hexdigest()
    out = os.path.join(d, stem + "-" + digest[:12])
    open(out, "wb").write(text)
    if stem == "INDEX":  # versions/vNNNNNN/INDEX-*: LATEST names it with its digest
        root = os.path.dirname(os.path.dirname(d))
        v = os.path.basename(d)
        open(os.path.join(root, "LATEST"), "w").write("%s INDEX-%s %s\n" % (v, digest[:12], digest))
    print(out)
else:
    sys.exit("unknown mode " + mode)
